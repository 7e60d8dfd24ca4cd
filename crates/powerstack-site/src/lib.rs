//! The site service.
