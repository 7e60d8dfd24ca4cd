//! Wall-clock times as people read and type them, in UTC: `2026-11-21 10:00:00`,
//! `2026-11-21T10:00`, `@1795000000`, or `7d` back from a `now` the caller passes in.
//!
//! Dates are proleptic Gregorian, from 1970-01-01 to 9999-12-31; times are µs since the Unix
//! epoch, as every document has them. Nothing here reads a clock.

use crate::duration::parse_duration;

/// Why a time could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "invalid time {input:?}: {why} (examples: 7d, 12h, 2026-11-21, 2026-11-21T08:30, @1795000000)"
)]
pub struct TimeError {
    /// What was given.
    pub input: String,
    /// What is wrong with it.
    pub why: &'static str,
}

const US_PER_DAY: u64 = 86_400_000_000;

/// Days from 1970-01-01 to `year-month-day` (negative before it), in the proleptic Gregorian
/// calendar. `month` is 1 to 12, `day` 1 to 31 (not checked against the month here).
pub fn days_from_civil(year: i64, month: u32, day: u32) -> i64 {
    // Years counted from March, so that the leap day is the last day of its year.
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let year_of_era = y - era * 400;
    let m = i64::from(month);
    let day_of_year = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(day) - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    era * 146_097 + day_of_era - 719_468
}

/// The date (`year`, `month`, `day`) that is `days` after 1970-01-01.
pub fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let day_of_era = z - era * 146_097;
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let mp = (5 * day_of_year + 2) / 153;
    let day = (day_of_year - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

fn is_leap(year: i64) -> bool {
    (year % 4 == 0 && year % 100 != 0) || year % 400 == 0
}

fn days_in_month(year: i64, month: u32) -> u32 {
    match month {
        2 if is_leap(year) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// `unix_us` as `YYYY-MM-DD HH:MM:SS` in UTC (whole seconds, rounded down).
pub fn format_utc(unix_us: u64) -> String {
    let secs = unix_us / 1_000_000;
    let (year, month, day) = civil_from_days((secs / 86_400) as i64);
    let s = secs % 86_400;
    format!("{year:04}-{month:02}-{day:02} {:02}:{:02}:{:02}", s / 3600, s / 60 % 60, s % 60)
}

/// Reads `YYYY-MM-DD[THH:MM[:SS]]` (a space may stand for the `T`) as a UTC time, µs since the
/// Unix epoch.
pub fn parse_utc(input: &str) -> Result<u64, TimeError> {
    let err = |why| TimeError { input: input.to_string(), why };
    let text = input.trim();
    let (date, time) = match text.split_once(['T', ' ']) {
        Some((d, t)) => (d, Some(t)),
        None => (text, None),
    };
    let num = |s: &str, width: usize| -> Option<u32> {
        (s.len() == width && s.bytes().all(|b| b.is_ascii_digit())).then(|| s.parse().ok())?
    };
    let mut parts = date.split('-');
    let (Some(y), Some(m), Some(d), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(err("the date is not YYYY-MM-DD"));
    };
    let (Some(year), Some(month), Some(day)) = (num(y, 4), num(m, 2), num(d, 2)) else {
        return Err(err("the date is not YYYY-MM-DD"));
    };
    let year = i64::from(year);
    if year < 1970 {
        return Err(err("before 1970"));
    }
    if !(1..=12).contains(&month) || day < 1 || day > days_in_month(year, month) {
        return Err(err("no such date"));
    }
    let mut secs = 0u64;
    if let Some(t) = time {
        let fields: Vec<&str> = t.split(':').collect();
        if !(2..=3).contains(&fields.len()) {
            return Err(err("the time of day is not HH:MM or HH:MM:SS"));
        }
        let values: Option<Vec<u32>> = fields.iter().map(|f| num(f, 2)).collect();
        let Some(v) = values else {
            return Err(err("the time of day is not HH:MM or HH:MM:SS"));
        };
        let (h, mi, s) = (v[0], v[1], v.get(2).copied().unwrap_or(0));
        if h > 23 || mi > 59 || s > 59 {
            return Err(err("no such time of day"));
        }
        secs = u64::from(h) * 3600 + u64::from(mi) * 60 + u64::from(s);
    }
    let days = days_from_civil(year, month, day) as u64;
    Ok(days * US_PER_DAY + secs * 1_000_000)
}

/// Reads a point in time, µs since the Unix epoch: a duration back from `now_unix_us` (`7d`,
/// `12h`, `30m`, `2w`; a leading `-` is allowed), a UTC date (`2026-11-21`,
/// `2026-11-21T08:30[:00]`, see [`parse_utc`]), `@SECONDS` since the epoch, or `now`.
pub fn parse_time(input: &str, now_unix_us: u64) -> Result<u64, TimeError> {
    let err = |why| TimeError { input: input.to_string(), why };
    let text = input.trim();
    if text.is_empty() {
        return Err(err("empty"));
    }
    if text == "now" {
        return Ok(now_unix_us);
    }
    if let Some(secs) = text.strip_prefix('@') {
        if secs.is_empty() || !secs.bytes().all(|b| b.is_ascii_digit()) {
            return Err(err("@ must be followed by whole seconds since the epoch"));
        }
        let secs: u64 = secs.parse().map_err(|_| err("too large"))?;
        return secs.checked_mul(1_000_000).ok_or_else(|| err("too large"));
    }
    if text.len() >= 10 && text.as_bytes()[4] == b'-' {
        return parse_utc(text);
    }
    let back = text.strip_prefix('-').unwrap_or(text);
    let back_us = ago_us(back).ok_or_else(|| err("not a duration, a date or @SECONDS"))?;
    now_unix_us.checked_sub(back_us).ok_or_else(|| err("before 1970"))
}

/// A duration as µs: days (`d`) and weeks (`w`), or any unit of [`parse_duration`].
fn ago_us(text: &str) -> Option<u64> {
    let days = |n: &str, per: f64| -> Option<u64> {
        let v: f64 = n.parse().ok()?;
        let us = v * per * US_PER_DAY as f64;
        (v.is_finite() && v >= 0.0 && us < 1e19).then_some(us as u64)
    };
    if let Some(n) = text.strip_suffix('d') {
        return days(n, 1.0);
    }
    if let Some(n) = text.strip_suffix('w') {
        return days(n, 7.0);
    }
    parse_duration(text).ok().and_then(|d| u64::try_from(d.as_micros()).ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    const DAY: u64 = US_PER_DAY;

    #[test]
    fn dates_and_day_numbers_agree() {
        assert_eq!(days_from_civil(1970, 1, 1), 0);
        assert_eq!(days_from_civil(2000, 3, 1), 11_017);
        assert_eq!(civil_from_days(11_016), (2000, 2, 29));
        assert_eq!(civil_from_days(-1), (1969, 12, 31));
        for days in (-800_000..3_000_000).step_by(997) {
            let (y, m, d) = civil_from_days(days);
            assert_eq!(days_from_civil(y, m, d), days, "{y}-{m}-{d}");
            assert!(d <= days_in_month(y, m));
        }
    }

    #[test]
    fn formats_utc() {
        assert_eq!(format_utc(0), "1970-01-01 00:00:00");
        // 2026-11-21 10:00:00 UTC.
        assert_eq!(format_utc(1_795_255_200_000_000), "2026-11-21 10:00:00");
        assert_eq!(format_utc(1_795_255_200_999_999 + 59_000_000), "2026-11-21 10:00:59");
    }

    #[test]
    fn parses_dates_and_times_of_day() {
        assert_eq!(parse_utc("2026-11-21").unwrap(), 1_795_219_200_000_000);
        assert_eq!(parse_utc("2026-11-21T10:00").unwrap(), 1_795_255_200_000_000);
        assert_eq!(parse_utc("2026-11-21 10:00:30").unwrap(), 1_795_255_230_000_000);
        assert_eq!(parse_utc("2024-02-29").unwrap(), days_from_civil(2024, 2, 29) as u64 * DAY);
        for bad in [
            "2026-11-31",
            "2025-02-29",
            "2026-13-01",
            "2026-1-01",
            "26-11-21",
            "2026-11-21T24:00",
            "2026-11-21T10",
            "2026-11-21T10:00:00:00",
            "2026-11-21T1a:00",
            "1969-12-31",
            "2026/11/21",
        ] {
            assert!(parse_utc(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn parses_points_in_time() {
        let now = 1_795_255_200_000_000;
        assert_eq!(parse_time("7d", now).unwrap(), now - 7 * DAY);
        assert_eq!(parse_time("-7d", now).unwrap(), now - 7 * DAY);
        assert_eq!(parse_time("2w", now).unwrap(), now - 14 * DAY);
        assert_eq!(parse_time("1.5d", now).unwrap(), now - 3 * DAY / 2);
        assert_eq!(parse_time("12h", now).unwrap(), now - 12 * 3_600_000_000);
        assert_eq!(parse_time("30m", now).unwrap(), now - 30 * 60_000_000);
        assert_eq!(parse_time("now", now).unwrap(), now);
        assert_eq!(parse_time("@1795000000", now).unwrap(), 1_795_000_000_000_000);
        assert_eq!(parse_time("2026-11-21", now).unwrap(), 1_795_219_200_000_000);
        for bad in ["", "7", "7x", "d", "-", "@", "@-5", "@1.5", "yesterday", "nand", "1e30d"] {
            let e = parse_time(bad, now).unwrap_err().to_string();
            assert!(e.contains("examples"), "{bad:?}: {e}");
        }
        assert!(parse_time("100000d", now).is_err());
    }
}
