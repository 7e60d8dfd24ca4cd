//! hostlist (being written).
