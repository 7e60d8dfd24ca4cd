//! libpowerstack: powerstack's node use cases (`powerstack-node`) behind a C ABI, for C, Fortran
//! and anything with a C foreign-function interface. `include/powerstack.h` is generated from
//! this crate by cbindgen.
//!
//! - [`ffi`]: the plumbing every entry point uses (status codes, the last error of the calling
//!   thread, panics caught at the boundary, strings in and out, where the node is found), shared
//!   with the Variorum-compatible library (`powerstack-variorum`).

pub mod ffi;
