//! The plumbing of every C entry point: a status code, the calling thread's last error as a
//! message, no panic across the boundary, strings in and out, and the options a node is opened
//! with (arguments first, then the environment, as the CLI reads them).

use powerstack_node::open::NodeOptions;
use std::cell::RefCell;
use std::ffi::{CStr, CString, c_char, c_int};
use std::panic::{AssertUnwindSafe, catch_unwind};

/// What a call returns: 0 on success, a negative code on failure, with the message in
/// `ps_last_error()`.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[allow(non_camel_case_types)] // the names C programs use, as the generated header has them
pub enum PsStatus {
    /// Done.
    PS_OK = 0,
    /// An argument cannot be used (a null pointer, a string that is not UTF-8, an unknown name).
    PS_ERR_INVALID = -1,
    /// The node has no such domain or data (no GPU, no memory limit).
    PS_ERR_UNAVAILABLE = -2,
    /// Refused by validation before anything was written (out of range, locked).
    PS_ERR_REFUSED = -3,
    /// The hardware or the state directory could not be read or written.
    PS_ERR_IO = -4,
    /// A defect in powerstack (a caught panic); nothing more is known.
    PS_ERR_INTERNAL = -5,
}

/// A failed call: its status and the message for `ps_last_error()`.
#[derive(Debug)]
pub struct Failure {
    /// The code returned.
    pub status: PsStatus,
    /// One line that says what to do.
    pub message: String,
}

impl Failure {
    /// A failure with `status` and `message`.
    pub fn new(status: PsStatus, message: impl Into<String>) -> Failure {
        Failure { status, message: message.into() }
    }

    /// An argument that cannot be used.
    pub fn invalid(message: impl Into<String>) -> Failure {
        Failure::new(PsStatus::PS_ERR_INVALID, message)
    }
}

thread_local! {
    static LAST_ERROR: RefCell<CString> = RefCell::new(CString::default());
}

/// Makes `message` the calling thread's last error.
pub fn set_last_error(message: &str) {
    // A NUL inside a message would cut it: replace it rather than lose the message.
    let text = CString::new(message.replace('\0', " ")).unwrap_or_default();
    LAST_ERROR.with(|e| *e.borrow_mut() = text);
}

/// The calling thread's last error: the message of the last call that failed on this thread, or
/// an empty string. The pointer stays valid until the next failing call on this thread.
#[unsafe(no_mangle)]
pub extern "C" fn ps_last_error() -> *const c_char {
    LAST_ERROR.with(|e| e.borrow().as_ptr())
}

/// Runs `body` at the C boundary: its failure becomes a status and the last error; a panic is
/// caught and reported as `PS_ERR_INTERNAL`, never unwound into C.
pub fn guard(body: impl FnOnce() -> Result<(), Failure>) -> c_int {
    match catch_unwind(AssertUnwindSafe(body)) {
        Ok(Ok(())) => PsStatus::PS_OK as c_int,
        Ok(Err(f)) => {
            set_last_error(&f.message);
            f.status as c_int
        }
        Err(panic) => {
            let what = panic
                .downcast_ref::<&str>()
                .map(|s| (*s).to_string())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "unknown".into());
            set_last_error(&format!("internal error in powerstack (please report): {what}"));
            PsStatus::PS_ERR_INTERNAL as c_int
        }
    }
}

/// A C string argument that may be null (`None`).
///
/// # Safety
/// `p` is null or points to a NUL-terminated string that lives for the call.
pub unsafe fn opt_str(p: *const c_char, what: &str) -> Result<Option<String>, Failure> {
    if p.is_null() {
        return Ok(None);
    }
    // SAFETY: the caller guarantees a NUL-terminated string.
    let s = unsafe { CStr::from_ptr(p) };
    s.to_str()
        .map(|s| Some(s.to_string()))
        .map_err(|_| Failure::invalid(format!("{what}: not valid UTF-8")))
}

/// Hands `text` to C through `out`, to be freed with `ps_string_free` (or `free` where the API
/// says so: [`out_malloc_string`]).
///
/// # Safety
/// `out` is null (refused) or points to writable storage for a pointer.
pub unsafe fn out_string(text: String, out: *mut *mut c_char) -> Result<(), Failure> {
    if out.is_null() {
        return Err(Failure::invalid("the output pointer is null"));
    }
    let c = CString::new(text).map_err(|_| Failure::invalid("the text holds a NUL byte"))?;
    // SAFETY: `out` is not null and the caller guarantees it is writable.
    unsafe { *out = c.into_raw() };
    Ok(())
}

/// Frees a string returned by a `ps_` call; null is ignored.
///
/// # Safety
/// `s` is null or a string returned by a `ps_` call that has not been freed.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ps_string_free(s: *mut c_char) {
    if !s.is_null() {
        // SAFETY: it came from `CString::into_raw` in `out_string`.
        drop(unsafe { CString::from_raw(s) });
    }
}

/// Hands `text` to C through `out` in memory from `malloc`, for APIs whose caller calls `free`
/// (Variorum's JSON calls).
///
/// # Safety
/// `out` is null (refused) or points to writable storage for a pointer.
pub unsafe fn out_malloc_string(text: &str, out: *mut *mut c_char) -> Result<(), Failure> {
    if out.is_null() {
        return Err(Failure::invalid("the output pointer is null"));
    }
    if text.contains('\0') {
        return Err(Failure::invalid("the text holds a NUL byte"));
    }
    // SAFETY: plain allocation; checked for null below.
    let p = unsafe { libc::malloc(text.len() + 1) }.cast::<u8>();
    if p.is_null() {
        return Err(Failure::new(PsStatus::PS_ERR_IO, "out of memory"));
    }
    // SAFETY: `p` holds `len + 1` bytes; `out` is writable (the caller's guarantee).
    unsafe {
        std::ptr::copy_nonoverlapping(text.as_ptr(), p, text.len());
        *p.add(text.len()) = 0;
        *out = p.cast::<c_char>();
    }
    Ok(())
}

/// The options a node is opened with: each argument when given, else the environment
/// (`POWERSTACK_ROOT`, `POWERSTACK_SOURCE`, `POWERSTACK_SIMULATE`, `POWERSTACK_NVML_LIB`), else
/// the CLI's defaults (`/`, `auto`, `off`).
pub fn node_options(
    root: Option<String>,
    source: Option<String>,
    simulate: Option<String>,
) -> Result<NodeOptions, Failure> {
    NodeOptions::from_env(root, source, simulate).map_err(|e| Failure::invalid(e.to_string()))
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use powerstack_node::open::Simulate;

    use super::*;

    #[test]
    fn a_failure_sets_the_last_error_and_a_panic_is_caught() {
        assert_eq!(guard(|| Ok(())), 0);
        let rc = guard(|| Err(Failure::invalid("socket 9: the node has 2 sockets")));
        assert_eq!(rc, PsStatus::PS_ERR_INVALID as c_int);
        // SAFETY: the pointer is valid until the next failing call on this thread.
        let msg = unsafe { CStr::from_ptr(ps_last_error()) }.to_str().unwrap().to_string();
        assert_eq!(msg, "socket 9: the node has 2 sockets");
        let rc = guard(|| panic!("boom"));
        assert_eq!(rc, PsStatus::PS_ERR_INTERNAL as c_int);
        // SAFETY: as above.
        let msg = unsafe { CStr::from_ptr(ps_last_error()) }.to_str().unwrap().to_string();
        assert!(msg.contains("boom"), "{msg}");
    }

    #[test]
    fn arguments_come_before_the_environment() {
        let o = node_options(Some("/tmp".into()), None, Some("intel-2s".into())).unwrap();
        assert_eq!(o.root, PathBuf::from("/tmp"));
        assert!(matches!(o.simulate, Simulate::Profile(_)));
        assert!(node_options(None, None, Some("nonsense".into())).is_err());
    }
}
