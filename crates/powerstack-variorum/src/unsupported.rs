//! The calls whose data or control powerstack does not have: each fails with -1 (Variorum's
//! failure code) and says why on stderr, rather than return 0 with nothing done (as Variorum
//! does for a feature its build lacks) or print invented numbers. They exist so that every
//! symbol of `variorum.h` is there: pyVariorum binds them all when it starts.

use std::ffi::c_int;

use crate::node::{call, not_available};

/// Defines `extern "C"` entry points that fail with `why`.
macro_rules! unavailable {
    ($($(#[$doc:meta])* fn $name:ident($($arg:ident: $ty:ty),*) => $why:expr;)*) => {
        $(
            $(#[$doc])*
            #[unsafe(no_mangle)]
            pub extern "C" fn $name($($arg: $ty),*) -> c_int {
                $(let _ = $arg;)*
                call(stringify!($name), || Err(not_available($why)))
            }
        )*
    };
}

const NO_THERMALS: &str = "powerstack reads no temperatures on this node";
const NO_COUNTERS: &str = "powerstack reads no performance counters";
const NO_FREQUENCY: &str =
    "powerstack measures no operating frequencies (APERF/MPERF, GPU clocks) on this node";
const NO_TURBO: &str = "powerstack neither reads nor changes turbo (IA32_MISC_ENABLE)";
const NO_UTILIZATION: &str = "powerstack reads no GPU utilization";
const NO_FREQUENCY_CAP: &str = "frequency caps are not available through libvariorum; use \
                                `powerstack pools` (the frequency pools) or the cpufreq limits";

unavailable! {
    /// `variorum_poll_power`: not available (use `variorum_get_power_json` or `powerstack power
    /// --watch`).
    fn variorum_poll_power(output: *mut libc::FILE) =>
        "the _VAR_MONITOR poll line is not written by powerstack's libvariorum; use \
         variorum_get_power_json or `powerstack power --watch`";
    /// `variorum_monitoring`: not available (no fixed counters, APERF/MPERF or TSC readings).
    fn variorum_monitoring(output: *mut libc::FILE) => NO_COUNTERS;
    /// `variorum_cap_gpu_power_ratio`: not available (IBM Power9's CPU/GPU power-shifting ratio).
    fn variorum_cap_gpu_power_ratio(gpu_power_ratio: c_int) =>
        "this node has no CPU/GPU power-shifting ratio (an IBM Power9 OPAL control)";
    /// `variorum_cap_each_core_frequency_limit`: not available.
    fn variorum_cap_each_core_frequency_limit(cpu_freq_mhz: c_int) => NO_FREQUENCY_CAP;
    /// `variorum_cap_socket_frequency_limit`: not available.
    fn variorum_cap_socket_frequency_limit(socketid: c_int, socket_freq_mhz: c_int) =>
        NO_FREQUENCY_CAP;
    /// `variorum_print_thermals`: not available.
    fn variorum_print_thermals() => NO_THERMALS;
    /// `variorum_print_verbose_thermals`: not available.
    fn variorum_print_verbose_thermals() => NO_THERMALS;
    /// `variorum_print_counters`: not available.
    fn variorum_print_counters() => NO_COUNTERS;
    /// `variorum_print_verbose_counters`: not available.
    fn variorum_print_verbose_counters() => NO_COUNTERS;
    /// `variorum_print_frequency`: not available.
    fn variorum_print_frequency() => NO_FREQUENCY;
    /// `variorum_print_verbose_frequency`: not available.
    fn variorum_print_verbose_frequency() => NO_FREQUENCY;
    /// `variorum_print_available_frequencies`: not available.
    fn variorum_print_available_frequencies() =>
        "powerstack's libvariorum does not list P-state, turbo or AVX frequencies";
    /// `variorum_print_features`: not available (Variorum dumps its MSR table).
    fn variorum_print_features() => "powerstack has no model-specific register table to print";
    /// `variorum_print_turbo`: not available.
    fn variorum_print_turbo() => NO_TURBO;
    /// `variorum_enable_turbo`: not available.
    fn variorum_enable_turbo() => NO_TURBO;
    /// `variorum_disable_turbo`: not available.
    fn variorum_disable_turbo() => NO_TURBO;
    /// `variorum_print_gpu_utilization`: not available.
    fn variorum_print_gpu_utilization() => NO_UTILIZATION;
    /// `variorum_print_verbose_gpu_utilization`: not available.
    fn variorum_print_verbose_gpu_utilization() => NO_UTILIZATION;
}
