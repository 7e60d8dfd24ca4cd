//! Answers through C pointers and buffers, and NVML's bus id format.

use std::ffi::{c_char, c_uint};

use nvml_wrapper_sys::bindings::{
    nvmlReturn_enum_NVML_ERROR_INSUFFICIENT_SIZE as INSUFFICIENT_SIZE,
    nvmlReturn_enum_NVML_ERROR_INVALID_ARGUMENT as INVALID_ARGUMENT, nvmlReturn_t,
};

/// Stores `value` through an output pointer.
///
/// # Safety
/// `out` must be null or valid for a write of `T`.
pub(crate) unsafe fn put<T>(out: *mut T, value: T) -> Result<(), nvmlReturn_t> {
    if out.is_null() {
        return Err(INVALID_ARGUMENT);
    }
    // SAFETY: not null, and valid for writes by the caller's contract.
    unsafe { out.write(value) };
    Ok(())
}

/// Copies `text` and a terminating NUL into a caller's buffer of `length` bytes.
///
/// # Safety
/// `buf` must be null or valid for writes of `length` bytes.
pub(crate) unsafe fn put_str(
    buf: *mut c_char,
    length: c_uint,
    text: &str,
) -> Result<(), nvmlReturn_t> {
    if buf.is_null() {
        return Err(INVALID_ARGUMENT);
    }
    let bytes = text.as_bytes();
    let bytes = &bytes[..bytes.iter().position(|&b| b == 0).unwrap_or(bytes.len())];
    if bytes.len() >= length as usize {
        return Err(INSUFFICIENT_SIZE);
    }
    // SAFETY: `buf` holds `length` > `bytes.len()` writable bytes (caller's contract), and a
    // caller's buffer cannot overlap our own string.
    unsafe {
        std::ptr::copy_nonoverlapping(bytes.as_ptr().cast::<c_char>(), buf, bytes.len());
        buf.add(bytes.len()).write(0);
    }
    Ok(())
}

/// Copies `text` (truncated to leave room for the NUL) into a fixed C char array.
pub(crate) fn fill(dst: &mut [c_char], text: &str) {
    let room = dst.len().saturating_sub(1);
    for (d, s) in dst.iter_mut().zip(text.bytes().take(room)) {
        *d = s as c_char;
    }
}

/// Parses an NVML bus id (`00000000:17:00.0`) into (domain, bus, device, function).
pub(crate) fn parse_bus_id(id: &str) -> Option<(u32, u32, u32, u32)> {
    let mut parts = id.split(':');
    let (domain, bus, rest) = (parts.next()?, parts.next()?, parts.next()?);
    if parts.next().is_some() {
        return None;
    }
    let (dev, func) = rest.split_once('.')?;
    let hex = |s: &str| u32::from_str_radix(s, 16).ok();
    Some((hex(domain)?, hex(bus)?, hex(dev)?, hex(func)?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_nvml_bus_ids() {
        assert_eq!(parse_bus_id("00000000:17:00.0"), Some((0, 0x17, 0, 0)));
        assert_eq!(parse_bus_id("00000001:B3:1F.7"), Some((1, 0xb3, 0x1f, 7)));
        assert_eq!(parse_bus_id("0000:17:00"), None);
    }
}
