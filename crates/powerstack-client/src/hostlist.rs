//! Slurm-style hostlist expressions: `node[01-04,07]`, `rack[1-2]-node[01-02]`, `a,b[1-2]`.
//!
//! [`expand`] turns an expression into host names, in order (duplicates kept); [`compress`] does
//! the reverse for display. Zero padding is kept: a range pads every number to the width of its
//! first bound (`[08-10]` gives `08 09 10`, `[8-10]` gives `8 9 10`).

use std::fmt::Write as _;

/// The most hosts one expression may name.
pub const MAX_HOSTS: usize = 100_000;

/// Why an expression could not be expanded. Messages are one line and quote the expression.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HostlistError {
    /// Nothing to expand.
    #[error("empty hostlist")]
    Empty,
    /// An empty item between commas, or empty brackets.
    #[error("invalid hostlist {expr:?}: empty item at position {pos}")]
    EmptyItem {
        /// The whole expression.
        expr: String,
        /// Byte offset of the empty item.
        pos: usize,
    },
    /// A `[` without its `]`, a `]` without its `[`, or brackets inside brackets.
    #[error("invalid hostlist {expr:?}: unbalanced brackets at position {pos}")]
    Unbalanced {
        /// The whole expression.
        expr: String,
        /// Byte offset of the offending bracket.
        pos: usize,
    },
    /// A range whose end is below its start (`[5-3]`).
    #[error("invalid hostlist {expr:?}: range {range} goes backwards")]
    Reversed {
        /// The whole expression.
        expr: String,
        /// The range as written.
        range: String,
    },
    /// Something other than digits in a bracket group, or a bound too large.
    #[error("invalid hostlist {expr:?}: {item:?} is not a number or a range like 1-4")]
    BadRange {
        /// The whole expression.
        expr: String,
        /// The item as written.
        item: String,
    },
    /// A character that cannot be part of a host name (whitespace, control characters).
    #[error("invalid hostlist {expr:?}: unexpected character {ch:?} at position {pos}")]
    BadChar {
        /// The whole expression.
        expr: String,
        /// The character.
        ch: char,
        /// Its byte offset.
        pos: usize,
    },
    /// The expression names more than [`MAX_HOSTS`] hosts.
    #[error("hostlist {expr:?} names more than {max} hosts", max = MAX_HOSTS)]
    TooMany {
        /// The whole expression.
        expr: String,
    },
}

/// One bracket group: its items, each an inclusive range with the padding width of its start.
#[derive(Debug)]
struct Group {
    ranges: Vec<(u64, u64, usize)>,
}

impl Group {
    fn len(&self) -> u64 {
        self.ranges.iter().fold(0u64, |n, (lo, hi, _)| n.saturating_add(hi - lo + 1))
    }
}

/// A piece of one item: literal text or a bracket group.
#[derive(Debug)]
enum Piece<'a> {
    Text(&'a str),
    Group(Group),
}

/// Splits at commas outside brackets, checking bracket balance. Returns `(offset, item)` pairs.
fn split_top(expr: &str) -> Result<Vec<(usize, &str)>, HostlistError> {
    let mut items = Vec::new();
    let mut depth = 0usize;
    let mut open_at = 0usize;
    let mut start = 0usize;
    for (i, c) in expr.char_indices() {
        match c {
            '[' => {
                if depth > 0 {
                    return Err(HostlistError::Unbalanced { expr: expr.to_string(), pos: i });
                }
                depth = 1;
                open_at = i;
            }
            ']' => {
                if depth == 0 {
                    return Err(HostlistError::Unbalanced { expr: expr.to_string(), pos: i });
                }
                depth = 0;
            }
            ',' if depth == 0 => {
                items.push((start, &expr[start..i]));
                start = i + 1;
            }
            c if c.is_whitespace() || c.is_control() => {
                return Err(HostlistError::BadChar { expr: expr.to_string(), ch: c, pos: i });
            }
            _ => {}
        }
    }
    if depth > 0 {
        return Err(HostlistError::Unbalanced { expr: expr.to_string(), pos: open_at });
    }
    items.push((start, &expr[start..]));
    Ok(items)
}

fn parse_bound(expr: &str, item: &str, text: &str) -> Result<u64, HostlistError> {
    let bad = || HostlistError::BadRange { expr: expr.to_string(), item: item.to_string() };
    // 18 digits always fit in a u64.
    if text.is_empty() || text.len() > 18 || !text.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad());
    }
    text.parse::<u64>().map_err(|_| bad())
}

fn parse_group(expr: &str, offset: usize, inner: &str) -> Result<Group, HostlistError> {
    let mut ranges = Vec::new();
    let mut pos = offset;
    for part in inner.split(',') {
        if part.is_empty() {
            return Err(HostlistError::EmptyItem { expr: expr.to_string(), pos });
        }
        let (lo_s, hi_s) = part.split_once('-').unwrap_or((part, part));
        let lo = parse_bound(expr, part, lo_s)?;
        let hi = parse_bound(expr, part, hi_s)?;
        if hi < lo {
            return Err(HostlistError::Reversed {
                expr: expr.to_string(),
                range: part.to_string(),
            });
        }
        ranges.push((lo, hi, lo_s.len()));
        pos += part.len() + 1;
    }
    Ok(Group { ranges })
}

/// Parses one top-level item into pieces.
fn parse_item<'a>(
    expr: &str,
    offset: usize,
    item: &'a str,
) -> Result<Vec<Piece<'a>>, HostlistError> {
    if item.is_empty() {
        return Err(HostlistError::EmptyItem { expr: expr.to_string(), pos: offset });
    }
    let mut pieces = Vec::new();
    let mut rest = item;
    let mut at = offset;
    while !rest.is_empty() {
        match rest.find('[') {
            None => {
                pieces.push(Piece::Text(rest));
                break;
            }
            Some(open) => {
                if open > 0 {
                    pieces.push(Piece::Text(&rest[..open]));
                }
                // Balance was checked by `split_top`: a `]` follows.
                let close = rest[open..].find(']').map(|c| open + c).ok_or_else(|| {
                    HostlistError::Unbalanced { expr: expr.to_string(), pos: at + open }
                })?;
                let inner = &rest[open + 1..close];
                if inner.is_empty() {
                    return Err(HostlistError::EmptyItem {
                        expr: expr.to_string(),
                        pos: at + open,
                    });
                }
                pieces.push(Piece::Group(parse_group(expr, at + open + 1, inner)?));
                at += close + 1;
                rest = &rest[close + 1..];
            }
        }
    }
    Ok(pieces)
}

/// Expands a hostlist expression into host names, in order.
///
/// Accepts `node01`, `node[01-04,07]`, `node[1-3]-ib`, comma-separated lists at top level
/// (`a,b[1-2]`) and several bracket groups in one item (`rack[1-2]-node[01-02]`, the first group
/// varying slowest). Refuses unbalanced or nested brackets, reversed ranges, empty items,
/// whitespace, and expressions naming more than [`MAX_HOSTS`] hosts.
pub fn expand(expr: &str) -> Result<Vec<String>, HostlistError> {
    if expr.is_empty() {
        return Err(HostlistError::Empty);
    }
    let items = split_top(expr)?;
    let mut parsed = Vec::with_capacity(items.len());
    let mut total: u64 = 0;
    for (offset, item) in items {
        let pieces = parse_item(expr, offset, item)?;
        let mut count: u64 = 1;
        for p in &pieces {
            if let Piece::Group(g) = p {
                count = count.saturating_mul(g.len());
            }
        }
        total = total.saturating_add(count);
        if total > MAX_HOSTS as u64 {
            return Err(HostlistError::TooMany { expr: expr.to_string() });
        }
        parsed.push(pieces);
    }
    let mut hosts = Vec::with_capacity(total as usize);
    for pieces in &parsed {
        let mut names = vec![String::new()];
        for p in pieces {
            match p {
                Piece::Text(t) => names.iter_mut().for_each(|n| n.push_str(t)),
                Piece::Group(g) => {
                    let mut next = Vec::with_capacity(names.len() * g.len() as usize);
                    for n in &names {
                        for &(lo, hi, width) in &g.ranges {
                            for v in lo..=hi {
                                let mut s = n.clone();
                                let _ = write!(s, "{v:0width$}");
                                next.push(s);
                            }
                        }
                    }
                    names = next;
                }
            }
        }
        hosts.extend(names);
    }
    Ok(hosts)
}

/// Splits a host name at its last run of digits: `(prefix, digits, suffix)`.
fn split_number(host: &str) -> Option<(&str, &str, &str)> {
    let bytes = host.as_bytes();
    let end = bytes.iter().rposition(|b| b.is_ascii_digit())? + 1;
    let start = bytes[..end].iter().rposition(|b| !b.is_ascii_digit()).map_or(0, |i| i + 1);
    let digits = &host[start..end];
    if digits.len() > 18 {
        return None;
    }
    Some((&host[..start], digits, &host[end..]))
}

/// Writes hosts as a compact hostlist expression, keeping their order: consecutive hosts that
/// differ only in one number (with the same padding) share a bracket group
/// (`node01 node02 node03 node07` gives `node[01-03,07]`).
///
/// For host names made of letters, digits, `-`, `_` and `.`, `expand(&compress(h)) == h`.
pub fn compress<S: AsRef<str>>(hosts: &[S]) -> String {
    // Runs: (prefix, suffix, width, ranges).
    struct Run<'a> {
        prefix: &'a str,
        suffix: &'a str,
        width: usize,
        ranges: Vec<(u64, u64)>,
    }
    let mut items: Vec<String> = Vec::new();
    let mut run: Option<Run> = None;
    let flush = |run: &mut Option<Run>, items: &mut Vec<String>| {
        if let Some(r) = run.take() {
            let w = r.width;
            let single = r.ranges.len() == 1 && r.ranges[0].0 == r.ranges[0].1;
            let mut s = r.prefix.to_string();
            if single {
                let _ = write!(s, "{:0w$}", r.ranges[0].0);
            } else {
                s.push('[');
                for (i, (lo, hi)) in r.ranges.iter().enumerate() {
                    if i > 0 {
                        s.push(',');
                    }
                    if lo == hi {
                        let _ = write!(s, "{lo:0w$}");
                    } else {
                        let _ = write!(s, "{lo:0w$}-{hi:0w$}");
                    }
                }
                s.push(']');
            }
            s.push_str(r.suffix);
            items.push(s);
        }
    };
    for host in hosts {
        let host = host.as_ref();
        let Some((prefix, digits, suffix)) = split_number(host) else {
            flush(&mut run, &mut items);
            items.push(host.to_string());
            continue;
        };
        let Ok(n) = digits.parse::<u64>() else {
            flush(&mut run, &mut items);
            items.push(host.to_string());
            continue;
        };
        if let Some(r) = run.as_mut() {
            let w = r.width;
            if r.prefix == prefix && r.suffix == suffix && format!("{n:0w$}") == digits {
                match r.ranges.last_mut() {
                    Some(last) if last.1.checked_add(1) == Some(n) => last.1 = n,
                    _ => r.ranges.push((n, n)),
                }
                continue;
            }
        }
        flush(&mut run, &mut items);
        run = Some(Run { prefix, suffix, width: digits.len(), ranges: vec![(n, n)] });
    }
    flush(&mut run, &mut items);
    items.join(",")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ex(s: &str) -> Vec<String> {
        expand(s).unwrap()
    }

    #[test]
    fn plain_and_ranges() {
        assert_eq!(ex("node01"), ["node01"]);
        assert_eq!(ex("node[01-04,07]"), ["node01", "node02", "node03", "node04", "node07"]);
        assert_eq!(ex("node[1-3]-ib"), ["node1-ib", "node2-ib", "node3-ib"]);
        assert_eq!(ex("a,b[1-2]"), ["a", "b1", "b2"]);
        assert_eq!(ex("n[8-10]"), ["n8", "n9", "n10"]);
        assert_eq!(ex("n[08-10]"), ["n08", "n09", "n10"]);
        assert_eq!(
            ex("rack[1-2]-node[01-02]"),
            ["rack1-node01", "rack1-node02", "rack2-node01", "rack2-node02"]
        );
    }

    #[test]
    fn errors() {
        assert_eq!(expand(""), Err(HostlistError::Empty));
        assert!(matches!(expand("node[1-3"), Err(HostlistError::Unbalanced { .. })));
        assert!(matches!(expand("node1-3]"), Err(HostlistError::Unbalanced { .. })));
        assert!(matches!(expand("node[[1]]"), Err(HostlistError::Unbalanced { .. })));
        assert!(matches!(expand("node[5-3]"), Err(HostlistError::Reversed { .. })));
        assert!(matches!(expand("a,,b"), Err(HostlistError::EmptyItem { .. })));
        assert!(matches!(expand("a,"), Err(HostlistError::EmptyItem { .. })));
        assert!(matches!(expand("node[]"), Err(HostlistError::EmptyItem { .. })));
        assert!(matches!(expand("node[1,]"), Err(HostlistError::EmptyItem { .. })));
        assert!(matches!(expand("node[a-b]"), Err(HostlistError::BadRange { .. })));
        assert!(matches!(expand("node[1-2-3]"), Err(HostlistError::BadRange { .. })));
        assert!(matches!(expand("n[0-99999],m[0-1]"), Err(HostlistError::TooMany { .. })));
        assert!(matches!(expand("a b"), Err(HostlistError::BadChar { .. })));
        let huge = format!("n[{}]", vec!["0-999999999999999999"; 20].join(","));
        assert!(matches!(expand(&huge), Err(HostlistError::TooMany { .. })));
        assert_eq!(ex("n[1-100000]").len(), 100_000);
    }

    #[test]
    fn compress_groups_runs() {
        let h = ["node01", "node02", "node03", "node07", "login", "gpu9", "gpu10"];
        assert_eq!(compress(&h), "node[01-03,07],login,gpu[9-10]");
        assert_eq!(compress(&["a1"]), "a1");
        assert_eq!(compress::<&str>(&[]), "");
    }
}
