//! libvariorum.so: a drop-in for LLNL Variorum 0.8's C API (`include/variorum.h`,
//! `include/variorum_topology.h`) over powerstack's node. A program written against Variorum
//! compiles unchanged against these headers, or runs unchanged with this library first on
//! `LD_LIBRARY_PATH`.
//!
//! - [`node`]: the one process-wide node, opened on first use from the environment as the CLI
//!   opens it (`POWERSTACK_ROOT`, `POWERSTACK_SOURCE`, `POWERSTACK_SIMULATE`), and the boundary
//!   every entry point goes through (0, or -1 with a message on stderr).
//! - [`json`]: the JSON calls, the documents `powerstack ... --format variorum` writes.
//! - [`cap`]: the caps, through powerstack's cap session (validation, journal, read-back).
//! - [`print`](mod@print): the print calls, in Variorum's layouts, for the data powerstack has.
//! - [`topology`]: sockets, cores and threads (`variorum_topology.h`) and their print calls.
//! - [`unsupported`]: the calls whose data or control powerstack does not have: -1 and why.
//!
//! What differs from Variorum, on purpose: the first power reading is a real measurement (never
//! Variorum's first-call 0 W), caps are validated against the hardware's range and journaled
//! for `powerstack cap reset`, and a call without data fails (-1) instead of returning 0.

pub mod cap;
pub mod json;
pub mod node;
pub mod print;
pub mod topology;
pub mod unsupported;

use std::ffi::c_char;

/// The Variorum version this library stands in for.
static VERSION: &[u8] = b"0.8.0\0";

/// `variorum_get_current_version`: "0.8.0", a static string the caller must not free or change.
#[unsafe(no_mangle)]
pub extern "C" fn variorum_get_current_version() -> *mut c_char {
    // Variorum's signature returns `char *`; the bytes are never written through it.
    VERSION.as_ptr().cast::<c_char>().cast_mut()
}

/// `variorum_tester`: opens the node (as every call does on first use) and returns 0, or -1
/// with the reason on stderr.
#[unsafe(no_mangle)]
pub extern "C" fn variorum_tester() -> std::ffi::c_int {
    node::call("variorum_tester", || node::with_node(|_| Ok(())))
}
