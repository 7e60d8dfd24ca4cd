//! The kernel's CPU frequency vocabulary, shared by the writer of a tree (`build`) and the rules
//! that judge writes to it (`rules`): where cpufreq and uncore attributes live, the EPP strings,
//! and the current frequencies the kernel derives from a policy or an uncore range.

/// The CPU directory under the root.
pub(crate) const CPU: &str = "sys/devices/system/cpu";

/// `intel_uncore_frequency` under the root.
pub(crate) const UNCORE: &str = "sys/devices/system/cpu/intel_uncore_frequency";

/// The uncore drivers work in 100 MHz ratios.
pub(crate) const UNCORE_STEP_KHZ: u64 = 100_000;

/// The EPP strings of intel_pstate and amd-pstate-epp.
pub(crate) const EPP_CHOICES: &str = "default performance balance_performance balance_power power";

/// The EPP every policy starts with (the firmware default).
pub(crate) const EPP_DEFAULT: &str = "balance_performance";

/// The frequency a policy runs at, kHz: the maximum under `performance`, the minimum under
/// `powersave` with a driver that has governors (intel_pstate's and amd-pstate-epp's `powersave`
/// is dynamic), the set speed under `userspace`, else the midpoint; snapped to the table when the
/// driver has one (the lowest entry at or above the target).
pub(crate) fn policy_cur_khz(
    driver: &str,
    governor: &str,
    min: u64,
    max: u64,
    table: &[u64],
    setspeed: Option<u64>,
) -> u64 {
    let max = max.max(min);
    let target = match governor {
        "performance" => max,
        "powersave" if !is_setpolicy(driver) => min,
        "userspace" => setspeed.unwrap_or(max).clamp(min, max),
        _ => min + (max - min) / 2,
    };
    let mut fit: Vec<u64> = table.iter().copied().filter(|f| (min..=max).contains(f)).collect();
    fit.sort_unstable();
    fit.iter().copied().find(|&f| f >= target).or(fit.last().copied()).unwrap_or(target)
}

/// An uncore domain's `current_freq_khz`: the midpoint of its range, in 100 MHz steps.
pub(crate) fn uncore_cur_khz(min: u64, max: u64) -> u64 {
    (min + max.max(min)) / 2 / UNCORE_STEP_KHZ * UNCORE_STEP_KHZ
}

/// Drivers that implement the `performance`/`powersave` policies themselves (no governors).
pub(crate) fn is_setpolicy(driver: &str) -> bool {
    matches!(driver, "intel_pstate" | "amd-pstate-epp")
}

/// Space-separated numbers (`scaling_available_frequencies`).
pub(crate) fn parse_list(text: &str) -> Vec<u64> {
    text.split_whitespace().filter_map(|w| w.parse().ok()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn current_frequencies_follow_the_governor() {
        assert_eq!(policy_cur_khz("intel_pstate", "performance", 1000, 3000, &[], None), 3000);
        assert_eq!(policy_cur_khz("intel_pstate", "powersave", 1000, 3000, &[], None), 2000);
        assert_eq!(policy_cur_khz("acpi-cpufreq", "powersave", 1000, 3000, &[], None), 1000);
        let table = [3_000_000, 2_200_000, 1_500_000];
        assert_eq!(
            policy_cur_khz("acpi-cpufreq", "schedutil", 1_500_000, 3_000_000, &table, None),
            3_000_000
        );
        assert_eq!(
            policy_cur_khz(
                "acpi-cpufreq",
                "userspace",
                1_500_000,
                3_000_000,
                &table,
                Some(1_600_000)
            ),
            2_200_000
        );
        assert_eq!(uncore_cur_khz(800_000, 2_500_000), 1_600_000);
    }
}
