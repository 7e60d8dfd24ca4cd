//! access (being written).
