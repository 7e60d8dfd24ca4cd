//! libpowerstack: powerstack's node use cases (`powerstack-node`) behind a C ABI, for C, Fortran
//! and anything with a C foreign-function interface. `include/powerstack.h` is generated from
//! this crate by cbindgen (`tests/header.rs` checks it is current).
//!
//! - [`ffi`]: the plumbing every entry point uses (status codes, the last error of the calling
//!   thread, panics caught at the boundary, strings in and out, where the node is found), shared
//!   with the Variorum-compatible library (`powerstack-variorum`).
//! - [`node`]: the node handle (`ps_node`: open, close, simulated or not) and its domains.
//! - [`read`]: power over an interval and energy now, as structs and documents.
//! - [`cap`]: socket, memory, GPU and node caps, the reset and the limits in force.
//!
//! Every entry point returns a `PsStatus` (0 or a negative code, the message in
//! `ps_last_error()`), never unwinds a panic into C and never exits the process. A node handle
//! may be used from several threads at once (calls on it take turns).

pub mod cap;
pub mod ffi;
pub mod node;
pub mod read;
