//! A mock of NVIDIA's NVML library (`libnvidia-ml.so.1`), so the `nvml` provider's real path
//! (`dlopen` through `nvml-wrapper`, symbol lookup, C calls) runs in CI without a GPU or a driver.
//!
//! Built as `libpowerstack_mock_nvml.so`; install it (a copy or a symlink) as
//! `<root>/usr/lib/x86_64-linux-gnu/libnvidia-ml.so.1` (or `<root>/usr/lib64/...`). It exports the
//! NVML entry points the provider uses, with NVML's C signatures and struct layouts (taken from
//! `nvml-wrapper-sys`), and answers from a **state directory** written by the simulator:
//!
//! ```text
//! STATE = $POWERSTACK_MOCK_NVML_DIR, else <root>/var/lib/powerstack-sim/nvml where the library was
//!         loaded as <root>/usr/lib/x86_64-linux-gnu/libnvidia-ml.so.1 (or <root>/usr/lib64/...),
//!         else $POWERSTACK_ROOT/var/lib/powerstack-sim/nvml; none → NVML_ERROR_DRIVER_NOT_LOADED.
//! STATE/count                  number of GPUs, NVML index order
//! STATE/gpuN/name, uuid        strings
//! STATE/gpuN/pci_bus_id        `00000000:17:00.0` (NVML format)
//! STATE/gpuN/energy_mj         total energy since driver load, mJ
//! STATE/gpuN/power_mw          current power, mW
//! STATE/gpuN/power_limit_mw    current (and enforced) limit, mW; rewritten in place by a set
//! STATE/gpuN/limit_min_mw, limit_max_mw, limit_default_mw
//! STATE/gpuN/energy_supported  `0` → the energy counter is not supported (pre-Volta)
//! STATE/gpuN/set_permission    optional; `0` → setting the limit needs root (NO_PERMISSION)
//! STATE/gpuN/pci_device_id     optional; hex `0x233010de` (device << 16 | vendor)
//! STATE/driver_version         optional; default `550.54.15`
//! STATE/latency_us/energy       optional; how long nvmlDeviceGetTotalEnergyConsumption takes:
//!                               "<median> <tail>" µs, e.g. `2850 15000` (an H200's)
//! STATE/latency_us/limit        optional; likewise for the power-limit reads (the management
//!                               limit, enforced limit, default, constraints), e.g. `142 300`
//! STATE/latency_us/power        optional; likewise for nvmlDeviceGetPowerUsage
//! ```
//!
//! Every call reads the files again (the simulator updates them), except `count` and
//! `latency_us/*`, read once by `nvmlInit`. A `gpuN` directory that disappears after initialisation
//! makes that device's calls return `NVML_ERROR_GPU_IS_LOST`.
//!
//! # Call latency
//!
//! A real NVML call takes time: on an H200, `nvmlDeviceGetTotalEnergyConsumption` takes 2.6 ms at
//! the least, 2.85 ms at the median and 15 ms at p99, a power-limit read about 142 µs (300 µs at
//! p99), `nvmlDeviceGetPowerUsage` about 2 µs. The mock sleeps (it does not spin) for a duration
//! drawn from `latency_us/<call>`, split around its read of the value, which it takes at a random
//! point of the call. With `"<median> <tail>"`, 63 calls in 64 last between 0.9 and 1.1 times the
//! median, and one in 64 between 0.9 times the tail and the tail (when the tail is longer than the
//! body); `"<median>"` alone has no tail. `"0 0"`, or no file: no latency (a call then costs what
//! reading its file costs, a few µs, about what the real `nvmlDeviceGetPowerUsage` costs). The
//! draws are a splitmix64 sequence with a fixed seed. The kernel's timer slack (about 50 µs a
//! sleep) makes short latencies a little longer than drawn.
//!
//! # Threads
//!
//! Every entry point may be called from several threads at once (one per GPU, as a sampler does):
//! the session is behind a mutex held only to copy what a call needs, never while it sleeps or
//! reads a file.
//!
//! Several roots loaded in one process must use **copies** of this file, not symlinks or hard
//! links: the dynamic loader recognises the same file and returns the instance already loaded,
//! whose load path (and so state directory) is the first one's.
//!
//! No panic crosses the C boundary: every entry point runs under `catch_unwind` and reports a panic
//! as `NVML_ERROR_UNKNOWN`.

use std::ffi::{CStr, c_char, c_uint, c_ulonglong};
use std::io::ErrorKind;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard, PoisonError};

use cabi::{fill, parse_bus_id, put, put_str};
use latency::{Latencies, Latency};
use state::{read_text, read_u32, read_u64, state_dir};

use nvml_wrapper_sys::bindings::{
    NVML_DEVICE_PCI_BUS_ID_BUFFER_SIZE, NVML_DEVICE_PCI_BUS_ID_BUFFER_V2_SIZE, nvmlDevice_t,
    nvmlPciInfo_t, nvmlReturn_enum_NVML_ERROR_ALREADY_INITIALIZED as ALREADY_INITIALIZED,
    nvmlReturn_enum_NVML_ERROR_DRIVER_NOT_LOADED as DRIVER_NOT_LOADED,
    nvmlReturn_enum_NVML_ERROR_FUNCTION_NOT_FOUND as FUNCTION_NOT_FOUND,
    nvmlReturn_enum_NVML_ERROR_GPU_IS_LOST as GPU_IS_LOST,
    nvmlReturn_enum_NVML_ERROR_INSUFFICIENT_SIZE as INSUFFICIENT_SIZE,
    nvmlReturn_enum_NVML_ERROR_INVALID_ARGUMENT as INVALID_ARGUMENT,
    nvmlReturn_enum_NVML_ERROR_LIBRARY_NOT_FOUND as LIBRARY_NOT_FOUND,
    nvmlReturn_enum_NVML_ERROR_NO_PERMISSION as NO_PERMISSION,
    nvmlReturn_enum_NVML_ERROR_NOT_FOUND as NOT_FOUND,
    nvmlReturn_enum_NVML_ERROR_NOT_SUPPORTED as NOT_SUPPORTED,
    nvmlReturn_enum_NVML_ERROR_UNINITIALIZED as UNINITIALIZED,
    nvmlReturn_enum_NVML_ERROR_UNKNOWN as UNKNOWN, nvmlReturn_enum_NVML_SUCCESS as SUCCESS,
    nvmlReturn_t,
};

mod cabi;
mod latency;
mod state;

/// The driver version reported when the state directory does not name one.
const DEFAULT_DRIVER_VERSION: &str = "550.54.15";
/// The PCI device and vendor ids reported when the state directory does not name them (H100 SXM).
const DEFAULT_PCI_DEVICE_ID: c_uint = 0x2330_10de;

/// An initialised library: NVML counts `nvmlInit` calls and shuts down at the last `nvmlShutdown`.
struct Session {
    dir: PathBuf,
    count: u32,
    refs: u32,
    latency: Latencies,
}

static SESSION: Mutex<Option<Session>> = Mutex::new(None);

fn session() -> MutexGuard<'static, Option<Session>> {
    SESSION.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Runs an entry point's body, turning a panic into `NVML_ERROR_UNKNOWN`.
fn ffi(body: impl FnOnce() -> Result<(), nvmlReturn_t>) -> nvmlReturn_t {
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(body)) {
        Ok(Ok(())) => SUCCESS,
        Ok(Err(code)) => code,
        Err(_) => UNKNOWN,
    }
}

/// A call's latency in the current session (none before `nvmlInit`).
fn latency_of(call: fn(&Latencies) -> Latency) -> Latency {
    session().as_ref().map(|s| call(&s.latency)).unwrap_or_default()
}

/// Reads a value file of a device at a random point of a call lasting a draw of `call`'s latency.
fn timed_read(
    call: fn(&Latencies) -> Latency,
    read: impl FnOnce() -> Result<c_uint, nvmlReturn_t>,
) -> Result<c_uint, nvmlReturn_t> {
    latency::during(latency_of(call), read)
}

/// The state directory and GPU count of the current session.
fn current() -> Result<(PathBuf, u32), nvmlReturn_t> {
    session().as_ref().map(|s| (s.dir.clone(), s.count)).ok_or(UNINITIALIZED)
}

/// A device handle: the NVML index plus one, never dereferenced.
fn handle_of(index: u32) -> nvmlDevice_t {
    std::ptr::without_provenance_mut(index as usize + 1)
}

/// The NVML index and state directory of a device handle.
fn gpu(device: nvmlDevice_t) -> Result<(u32, PathBuf), nvmlReturn_t> {
    let (dir, count) = current()?;
    let index = device.addr().wrapping_sub(1);
    let index = u32::try_from(index).ok().filter(|i| *i < count).ok_or(INVALID_ARGUMENT)?;
    let gpu_dir = dir.join(format!("gpu{index}"));
    if !gpu_dir.is_dir() {
        return Err(GPU_IS_LOST);
    }
    Ok((index, gpu_dir))
}

fn init() -> Result<(), nvmlReturn_t> {
    let mut s = session();
    if let Some(s) = s.as_mut() {
        s.refs = s.refs.saturating_add(1);
        return Ok(());
    }
    let dir = state_dir().ok_or(DRIVER_NOT_LOADED)?;
    let count = read_u64(&dir.join("count")).map_err(|_| DRIVER_NOT_LOADED)?;
    let count = u32::try_from(count).map_err(|_| DRIVER_NOT_LOADED)?;
    let latency = Latencies::load(&dir);
    *s = Some(Session { dir, count, refs: 1, latency });
    Ok(())
}

/// Initialises the library (reference counted, as NVML is). Returns
/// `NVML_ERROR_DRIVER_NOT_LOADED` when no state directory can be found.
#[unsafe(no_mangle)]
pub extern "C" fn nvmlInit_v2() -> nvmlReturn_t {
    ffi(init)
}

/// The version 1 name of [`nvmlInit_v2`].
#[unsafe(no_mangle)]
pub extern "C" fn nvmlInit() -> nvmlReturn_t {
    ffi(init)
}

/// [`nvmlInit_v2`]; the flags are accepted and ignored.
#[unsafe(no_mangle)]
pub extern "C" fn nvmlInitWithFlags(_flags: c_uint) -> nvmlReturn_t {
    ffi(init)
}

/// Releases one initialisation; the last one ends the session.
#[unsafe(no_mangle)]
pub extern "C" fn nvmlShutdown() -> nvmlReturn_t {
    ffi(|| {
        let mut guard = session();
        let s = guard.as_mut().ok_or(UNINITIALIZED)?;
        s.refs -= 1;
        if s.refs == 0 {
            *guard = None;
        }
        Ok(())
    })
}

/// A static description of an NVML return code.
#[unsafe(no_mangle)]
pub extern "C" fn nvmlErrorString(result: nvmlReturn_t) -> *const c_char {
    let text: &'static CStr = match result {
        SUCCESS => c"Success",
        UNINITIALIZED => c"Uninitialized",
        INVALID_ARGUMENT => c"Invalid Argument",
        NOT_SUPPORTED => c"Not Supported",
        NO_PERMISSION => c"Insufficient Permissions",
        ALREADY_INITIALIZED => c"Already Initialized",
        NOT_FOUND => c"Not Found",
        INSUFFICIENT_SIZE => c"Insufficient Size",
        DRIVER_NOT_LOADED => c"Driver Not Loaded",
        LIBRARY_NOT_FOUND => c"NVML Shared Library Not Found",
        FUNCTION_NOT_FOUND => c"Function Not Found",
        GPU_IS_LOST => c"GPU is lost",
        _ => c"Unknown Error",
    };
    text.as_ptr()
}

/// The driver version (`STATE/driver_version`, else a fixed one).
///
/// # Safety
/// `version` must be null or valid for writes of `length` bytes.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn nvmlSystemGetDriverVersion(
    version: *mut c_char,
    length: c_uint,
) -> nvmlReturn_t {
    ffi(|| {
        let (dir, _) = current()?;
        let v = read_text(&dir.join("driver_version"))
            .unwrap_or_else(|_| DEFAULT_DRIVER_VERSION.to_string());
        // SAFETY: forwarded caller contract on `version`.
        unsafe { put_str(version, length, &v) }
    })
}

/// The number of GPUs (`STATE/count`, read at initialisation).
///
/// # Safety
/// `device_count` must be null or valid for a write.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn nvmlDeviceGetCount_v2(device_count: *mut c_uint) -> nvmlReturn_t {
    ffi(|| {
        let (_, count) = current()?;
        // SAFETY: forwarded caller contract on `device_count`.
        unsafe { put(device_count, count) }
    })
}

/// The version 1 name of [`nvmlDeviceGetCount_v2`].
///
/// # Safety
/// `device_count` must be null or valid for a write.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn nvmlDeviceGetCount(device_count: *mut c_uint) -> nvmlReturn_t {
    // SAFETY: same contract.
    unsafe { nvmlDeviceGetCount_v2(device_count) }
}

/// The handle of the GPU with NVML index `index`: `NVML_ERROR_INVALID_ARGUMENT` past the count,
/// `NVML_ERROR_GPU_IS_LOST` when its state directory is gone.
///
/// # Safety
/// `device` must be null or valid for a write.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn nvmlDeviceGetHandleByIndex_v2(
    index: c_uint,
    device: *mut nvmlDevice_t,
) -> nvmlReturn_t {
    ffi(|| {
        let handle = handle_of(index);
        current()?;
        if device.is_null() {
            return Err(INVALID_ARGUMENT);
        }
        gpu(handle)?;
        // SAFETY: forwarded caller contract on `device`.
        unsafe { put(device, handle) }
    })
}

/// The version 1 name of [`nvmlDeviceGetHandleByIndex_v2`].
///
/// # Safety
/// `device` must be null or valid for a write.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn nvmlDeviceGetHandleByIndex(
    index: c_uint,
    device: *mut nvmlDevice_t,
) -> nvmlReturn_t {
    // SAFETY: same contract.
    unsafe { nvmlDeviceGetHandleByIndex_v2(index, device) }
}

/// The NVML index of a device.
///
/// # Safety
/// `index` must be null or valid for a write.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn nvmlDeviceGetIndex(
    device: nvmlDevice_t,
    index: *mut c_uint,
) -> nvmlReturn_t {
    ffi(|| {
        let (i, _) = gpu(device)?;
        // SAFETY: forwarded caller contract on `index`.
        unsafe { put(index, i) }
    })
}

/// Reads a string file of a device into a caller's buffer.
///
/// # Safety
/// `buf` must be null or valid for writes of `length` bytes.
unsafe fn device_string(
    device: nvmlDevice_t,
    file: &str,
    buf: *mut c_char,
    length: c_uint,
) -> nvmlReturn_t {
    ffi(|| {
        let (_, dir) = gpu(device)?;
        let text = read_text(&dir.join(file))?;
        // SAFETY: forwarded caller contract on `buf`.
        unsafe { put_str(buf, length, &text) }
    })
}

/// The product name (`gpuN/name`).
///
/// # Safety
/// `name` must be null or valid for writes of `length` bytes.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn nvmlDeviceGetName(
    device: nvmlDevice_t,
    name: *mut c_char,
    length: c_uint,
) -> nvmlReturn_t {
    // SAFETY: same contract.
    unsafe { device_string(device, "name", name, length) }
}

/// The UUID (`gpuN/uuid`).
///
/// # Safety
/// `uuid` must be null or valid for writes of `length` bytes.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn nvmlDeviceGetUUID(
    device: nvmlDevice_t,
    uuid: *mut c_char,
    length: c_uint,
) -> nvmlReturn_t {
    // SAFETY: same contract.
    unsafe { device_string(device, "uuid", uuid, length) }
}

/// The PCI attributes (`gpuN/pci_bus_id`, optional `gpuN/pci_device_id`).
///
/// # Safety
/// `pci` must be null or valid for a write of `nvmlPciInfo_t`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn nvmlDeviceGetPciInfo_v3(
    device: nvmlDevice_t,
    pci: *mut nvmlPciInfo_t,
) -> nvmlReturn_t {
    ffi(|| {
        let (_, dir) = gpu(device)?;
        let bus_id = read_text(&dir.join("pci_bus_id"))?;
        let (domain, bus, dev, func) = parse_bus_id(&bus_id).ok_or(UNKNOWN)?;
        let device_id = match read_text(&dir.join("pci_device_id")) {
            Ok(s) => {
                let hex = s.trim_start_matches("0x").trim_start_matches("0X");
                c_uint::from_str_radix(hex, 16).map_err(|_| UNKNOWN)?
            }
            Err(_) => DEFAULT_PCI_DEVICE_ID,
        };
        let mut info = nvmlPciInfo_t {
            busIdLegacy: [0; NVML_DEVICE_PCI_BUS_ID_BUFFER_V2_SIZE as usize],
            domain,
            bus,
            device: dev,
            pciDeviceId: device_id,
            pciSubSystemId: 0,
            busId: [0; NVML_DEVICE_PCI_BUS_ID_BUFFER_SIZE as usize],
        };
        fill(&mut info.busIdLegacy, &format!("{domain:04X}:{bus:02X}:{dev:02X}.{func:X}"));
        fill(&mut info.busId, &bus_id);
        // SAFETY: forwarded caller contract on `pci`.
        unsafe { put(pci, info) }
    })
}

/// Reads an unsigned file of a device through an output pointer, taking `call`'s latency.
///
/// # Safety
/// `out` must be null or valid for a write.
unsafe fn device_u32(
    device: nvmlDevice_t,
    file: &str,
    call: fn(&Latencies) -> Latency,
    out: *mut c_uint,
) -> nvmlReturn_t {
    ffi(|| {
        let (_, dir) = gpu(device)?;
        let v = timed_read(call, || read_u32(&dir.join(file)))?;
        // SAFETY: forwarded caller contract on `out`.
        unsafe { put(out, v) }
    })
}

/// Whether `gpuN/<flag>` says no (`0`); absent means yes.
fn denied(dir: &Path, flag: &str) -> bool {
    matches!(read_text(&dir.join(flag)).as_deref(), Ok("0"))
}

/// Energy since the driver was loaded, mJ (`gpuN/energy_mj`); `NVML_ERROR_NOT_SUPPORTED` when
/// `gpuN/energy_supported` is `0`.
///
/// # Safety
/// `energy` must be null or valid for a write.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn nvmlDeviceGetTotalEnergyConsumption(
    device: nvmlDevice_t,
    energy: *mut c_ulonglong,
) -> nvmlReturn_t {
    ffi(|| {
        let (_, dir) = gpu(device)?;
        if denied(&dir, "energy_supported") {
            return Err(NOT_SUPPORTED);
        }
        let v = latency::during(latency_of(|l| l.energy), || read_u64(&dir.join("energy_mj")))?;
        // SAFETY: forwarded caller contract on `energy`.
        unsafe { put(energy, v) }
    })
}

/// Current power, mW (`gpuN/power_mw`).
///
/// # Safety
/// `power` must be null or valid for a write.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn nvmlDeviceGetPowerUsage(
    device: nvmlDevice_t,
    power: *mut c_uint,
) -> nvmlReturn_t {
    // SAFETY: same contract.
    unsafe { device_u32(device, "power_mw", |l| l.power, power) }
}

/// The power management limit, mW (`gpuN/power_limit_mw`).
///
/// # Safety
/// `limit` must be null or valid for a write.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn nvmlDeviceGetPowerManagementLimit(
    device: nvmlDevice_t,
    limit: *mut c_uint,
) -> nvmlReturn_t {
    // SAFETY: same contract.
    unsafe { device_u32(device, "power_limit_mw", |l| l.limit, limit) }
}

/// The enforced limit, mW: the power management limit (`gpuN/power_limit_mw`).
///
/// # Safety
/// `limit` must be null or valid for a write.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn nvmlDeviceGetEnforcedPowerLimit(
    device: nvmlDevice_t,
    limit: *mut c_uint,
) -> nvmlReturn_t {
    // SAFETY: same contract.
    unsafe { device_u32(device, "power_limit_mw", |l| l.limit, limit) }
}

/// The default limit, mW (`gpuN/limit_default_mw`).
///
/// # Safety
/// `default_limit` must be null or valid for a write.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn nvmlDeviceGetPowerManagementDefaultLimit(
    device: nvmlDevice_t,
    default_limit: *mut c_uint,
) -> nvmlReturn_t {
    // SAFETY: same contract.
    unsafe { device_u32(device, "limit_default_mw", |l| l.limit, default_limit) }
}

/// The accepted range of the limit, mW (`gpuN/limit_min_mw`, `gpuN/limit_max_mw`).
///
/// # Safety
/// `min_limit` and `max_limit` must each be null or valid for a write.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn nvmlDeviceGetPowerManagementLimitConstraints(
    device: nvmlDevice_t,
    min_limit: *mut c_uint,
    max_limit: *mut c_uint,
) -> nvmlReturn_t {
    ffi(|| {
        let (_, dir) = gpu(device)?;
        if min_limit.is_null() || max_limit.is_null() {
            return Err(INVALID_ARGUMENT);
        }
        let (min, max) = latency::during(latency_of(|l| l.limit), || {
            Ok::<_, nvmlReturn_t>((
                read_u32(&dir.join("limit_min_mw"))?,
                read_u32(&dir.join("limit_max_mw"))?,
            ))
        })?;
        // SAFETY: forwarded caller contract on both pointers.
        unsafe {
            put(min_limit, min)?;
            put(max_limit, max)
        }
    })
}

/// Sets the power management limit, mW: `NVML_ERROR_NO_PERMISSION` when `gpuN/set_permission`
/// is `0`, `NVML_ERROR_INVALID_ARGUMENT` outside `[limit_min_mw, limit_max_mw]`; else rewrites
/// `gpuN/power_limit_mw` in place.
#[unsafe(no_mangle)]
pub extern "C" fn nvmlDeviceSetPowerManagementLimit(
    device: nvmlDevice_t,
    limit: c_uint,
) -> nvmlReturn_t {
    ffi(|| {
        use std::os::unix::fs::FileExt;
        let (_, dir) = gpu(device)?;
        if denied(&dir, "set_permission") {
            return Err(NO_PERMISSION);
        }
        let min = read_u32(&dir.join("limit_min_mw"))?;
        let max = read_u32(&dir.join("limit_max_mw"))?;
        if limit < min || limit > max {
            return Err(INVALID_ARGUMENT);
        }
        let path = dir.join("power_limit_mw");
        let file =
            std::fs::OpenOptions::new().write(true).open(&path).map_err(|e| match e.kind() {
                ErrorKind::PermissionDenied => NO_PERMISSION,
                ErrorKind::NotFound => NOT_SUPPORTED,
                _ => UNKNOWN,
            })?;
        let text = format!("{limit}\n");
        file.write_all_at(text.as_bytes(), 0).map_err(|_| UNKNOWN)?;
        file.set_len(text.len() as u64).map_err(|_| UNKNOWN)?;
        Ok(())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn calls_before_init_are_uninitialized_and_strings_are_bounded() {
        let mut count = 0;
        // SAFETY: a valid pointer to a local.
        assert_eq!(unsafe { nvmlDeviceGetCount_v2(&mut count) }, UNINITIALIZED);
        let mut buf = [0 as c_char; 4];
        // SAFETY: `buf` has 4 writable bytes.
        assert_eq!(unsafe { put_str(buf.as_mut_ptr(), 4, "abcd") }, Err(INSUFFICIENT_SIZE));
        // SAFETY: as above.
        assert_eq!(unsafe { put_str(buf.as_mut_ptr(), 4, "abc") }, Ok(()));
        assert_eq!(buf[3], 0);
        // SAFETY: nvmlErrorString returns a static NUL-terminated string.
        let s = unsafe { CStr::from_ptr(nvmlErrorString(GPU_IS_LOST)) };
        assert_eq!(s.to_str().unwrap(), "GPU is lost");
    }
}
