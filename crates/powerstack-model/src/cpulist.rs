//! Kernel CPU lists: `0-3,8,10-11`.

/// The error returned for a malformed CPU list.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid CPU list {input:?}: {why} (expected a form like 0-3,8,10-11)")]
pub struct CpuListError {
    /// What was given.
    pub input: String,
    /// What is wrong with it.
    pub why: &'static str,
}

/// The largest CPU number accepted (the kernel's NR_CPUS limit is 8192 on common builds).
pub const MAX_CPU: u32 = 65_535;

/// Parses a CPU list into sorted, de-duplicated CPU numbers. An empty (or blank) list is empty.
pub fn parse_cpulist(input: &str) -> Result<Vec<u32>, CpuListError> {
    let err = |why| CpuListError { input: input.to_string(), why };
    let s = input.trim();
    if s.is_empty() {
        return Ok(Vec::new());
    }
    // Ranges first, merged, then expanded: the output never holds a CPU twice, so overlapping or
    // repeated ranges cannot make it grow past MAX_CPU + 1 numbers.
    let mut ranges: Vec<(u32, u32)> = Vec::new();
    for part in s.split(',') {
        let part = part.trim();
        let (a, b) = match part.split_once('-') {
            Some((a, b)) => (a, b),
            None => (part, part),
        };
        let a: u32 = a.trim().parse().map_err(|_| err("not a CPU number"))?;
        let b: u32 = b.trim().parse().map_err(|_| err("not a CPU number"))?;
        if a > b {
            return Err(err("range runs backwards"));
        }
        if b > MAX_CPU {
            return Err(err("CPU number too large"));
        }
        ranges.push((a, b));
    }
    ranges.sort_unstable();
    let mut out = Vec::new();
    let mut next = 0u32; // the first CPU not yet in `out`
    for (a, b) in ranges {
        let from = a.max(next);
        if from <= b {
            out.extend(from..=b);
            next = b + 1;
        }
    }
    Ok(out)
}

/// Formats CPU numbers as a compact CPU list (`0-3,8`).
pub fn format_cpulist(cpus: &[u32]) -> String {
    let mut sorted = cpus.to_vec();
    sorted.sort_unstable();
    sorted.dedup();
    let mut parts = Vec::new();
    let mut i = 0;
    while i < sorted.len() {
        let start = sorted[i];
        let mut end = start;
        while i + 1 < sorted.len() && sorted[i + 1] == end + 1 {
            i += 1;
            end = sorted[i];
        }
        parts.push(if start == end { start.to_string() } else { format!("{start}-{end}") });
        i += 1;
    }
    parts.join(",")
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn parses_ranges_and_singles() {
        assert_eq!(parse_cpulist("0-3,8,10-11\n").unwrap(), vec![0, 1, 2, 3, 8, 10, 11]);
        assert_eq!(parse_cpulist("").unwrap(), Vec::<u32>::new());
        assert!(parse_cpulist("3-1").is_err());
        assert!(parse_cpulist("a").is_err());
        assert!(parse_cpulist("1,,2").is_err());
        let many = vec!["0-65535"; 2000].join(",");
        assert_eq!(parse_cpulist(&many).unwrap().len(), 65_536);
    }

    proptest! {
        #[test]
        fn format_then_parse_is_the_identity(cpus in proptest::collection::btree_set(0u32..512, 0..64)) {
            let v: Vec<u32> = cpus.into_iter().collect();
            prop_assert_eq!(parse_cpulist(&format_cpulist(&v)).unwrap(), v);
        }

        #[test]
        fn overlapping_ranges_give_each_cpu_once(
            ranges in proptest::collection::vec((0u32..300, 0u32..40), 1..20)
        ) {
            let text: Vec<String> = ranges.iter().map(|(a, n)| format!("{a}-{}", a + n)).collect();
            let mut naive: Vec<u32> = ranges.iter().flat_map(|&(a, n)| a..=a + n).collect();
            naive.sort_unstable();
            naive.dedup();
            prop_assert_eq!(parse_cpulist(&text.join(",")).unwrap(), naive);
        }

        #[test]
        fn never_panics_on_arbitrary_text(s in ".{0,40}") {
            let _ = parse_cpulist(&s);
        }
    }
}
