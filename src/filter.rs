//! The `ip_ranges` host filter: which hosts of a Qualys report are sent to
//! the FMC.
//!
//! The original connector documents the key as "one or more IP ranges ...
//! using CIDR notation or a dashed range", e.g.
//! `ip_ranges: 192.168.1.0/24, 10.1.2.3-10.1.2.10, 42.4.2.1`, defaulting to
//! none (no filtering). This module parses that value once and answers
//! "is this host in scope?" for every host of the report.
//!
//! Accepted syntax:
//! - entries are single addresses (`42.4.2.1`, `2001:db8::1`), CIDR blocks
//!   (`192.168.1.0/24`, `2001:db8::/32`) or dashed ranges
//!   (`192.168.1.234-192.168.2.2`, also `10.1.2.3 - 10.1.2.10`), IPv4 or IPv6;
//! - entries are separated by commas and/or any whitespace, in any number;
//! - an empty value (or one made only of separators) or the single word
//!   `none` (any case) means no filtering at all.
//!
//! A CIDR block with host bits set (`192.168.1.5/24`) is accepted and means
//! its network (`192.168.1.0/24`): rejecting it would break configurations
//! that the original accepted, and the intent is unambiguous.
//!
//! IPv4 hosts may appear in a report in IPv4-mapped IPv6 form
//! (`::ffff:10.1.2.3`). Such a host is the IPv4 host: it is tested against
//! the IPv4 ranges, so the answer never depends on how the report spelled
//! it. For the same reason an entry lying wholly inside the mapped block
//! (`::ffff:10.1.2.0/120`) is stored as the IPv4 range it denotes. An IPv6
//! entry that only partly overlaps the mapped block (`::/0`) is an IPv6
//! entry and does not select IPv4 hosts.
//!
//! The entries are merged into sorted, disjoint, non-adjacent intervals per
//! family, so a membership test is one binary search: filtering a report of
//! 100,000 hosts against a long list costs microseconds, not a scan per host.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// The parsed value of `ip_ranges`.
///
/// The [`Default`] value is unrestricted (every host is kept). Any value
/// parsed from a non-empty spec holds at least one interval, so
/// "unrestricted" is exactly "no intervals at all": a spec with only IPv6
/// ranges is restricted and keeps no IPv4 host.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct IpRanges {
    /// Inclusive `(start, end)` pairs, sorted, disjoint and non-adjacent.
    v4: Vec<(u32, u32)>,
    /// Inclusive `(start, end)` pairs, sorted, disjoint and non-adjacent;
    /// never an interval lying wholly inside the IPv4-mapped block.
    v6: Vec<(u128, u128)>,
}

/// One bad entry of `ip_ranges`: the entry exactly as written and what is
/// wrong with it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("bad ip_ranges entry '{token}': {reason}")]
pub struct RangeError {
    /// The offending entry, as it appears in the configuration (a dashed
    /// range written with spaces keeps them).
    pub token: String,
    /// What is wrong with it.
    pub reason: String,
}

/// One parsed entry, before merging.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Interval {
    V4(u32, u32),
    V6(u128, u128),
}

impl Interval {
    /// An IPv6 interval inside the IPv4-mapped block is the IPv4 interval
    /// it denotes. The block is contiguous, so both ends mapping is enough.
    fn v6(start: Ipv6Addr, end: Ipv6Addr) -> Self {
        match (start.to_ipv4_mapped(), end.to_ipv4_mapped()) {
            (Some(s), Some(e)) => Interval::V4(u32::from(s), u32::from(e)),
            _ => Interval::V6(u128::from(start), u128::from(end)),
        }
    }
}

impl IpRanges {
    /// Parses the value of `ip_ranges`.
    ///
    /// Stops at the first bad entry; see the module documentation for the
    /// syntax.
    pub fn parse(spec: &str) -> Result<IpRanges, RangeError> {
        let tokens = tokenize(spec);
        // `none` is only special as the whole value: inside a list it is a
        // typo for an address and must be reported as such.
        if let [only] = tokens.as_slice()
            && only.eq_ignore_ascii_case("none")
        {
            return Ok(IpRanges::default());
        }

        let mut v4 = Vec::new();
        let mut v6 = Vec::new();
        for token in tokens {
            match parse_entry(token) {
                Ok(Interval::V4(s, e)) => v4.push((s, e)),
                Ok(Interval::V6(s, e)) => v6.push((s, e)),
                Err(reason) => {
                    return Err(RangeError {
                        token: token.to_owned(),
                        reason,
                    });
                }
            }
        }
        Ok(IpRanges {
            v4: merge(v4, |x| x.checked_add(1)),
            v6: merge(v6, |x| x.checked_add(1)),
        })
    }

    /// True when no `ip_ranges` were configured: every host is kept.
    pub fn is_unrestricted(&self) -> bool {
        self.v4.is_empty() && self.v6.is_empty()
    }

    /// Whether the host is in scope. Always true when unrestricted; an
    /// IPv4-mapped IPv6 address is tested as the IPv4 address it carries.
    pub fn contains(&self, ip: IpAddr) -> bool {
        if self.is_unrestricted() {
            return true;
        }
        match ip {
            IpAddr::V4(a) => covers(&self.v4, u32::from(a)),
            // `to_ipv4_mapped`, not `to_ipv4`: the latter would also turn
            // IPv4-compatible addresses such as `::1` into `0.0.0.1`.
            IpAddr::V6(a) => match a.to_ipv4_mapped() {
                Some(v4) => covers(&self.v4, u32::from(v4)),
                None => covers(&self.v6, u128::from(a)),
            },
        }
    }

    /// Number of intervals after merging, IPv4 and IPv6 together (0 when
    /// unrestricted).
    pub fn interval_count(&self) -> usize {
        self.v4.len() + self.v6.len()
    }
}

/// Canonical form: merged intervals, IPv4 before IPv6, each in ascending
/// order, written `a` or `a-b` and joined by `", "`; `none` when
/// unrestricted. It parses back to an equal value, so it is safe to log
/// and to paste back into a configuration.
impl fmt::Display for IpRanges {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.is_unrestricted() {
            return f.write_str("none");
        }
        let v4 = self
            .v4
            .iter()
            .map(|&(s, e)| (IpAddr::V4(Ipv4Addr::from(s)), IpAddr::V4(Ipv4Addr::from(e))));
        let v6 = self
            .v6
            .iter()
            .map(|&(s, e)| (IpAddr::V6(Ipv6Addr::from(s)), IpAddr::V6(Ipv6Addr::from(e))));
        for (i, (start, end)) in v4.chain(v6).enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            if start == end {
                write!(f, "{start}")?;
            } else {
                write!(f, "{start}-{end}")?;
            }
        }
        Ok(())
    }
}

/// Splits the spec into entries, each a slice of `spec` so that errors can
/// quote it exactly as written.
///
/// Commas always end an entry. Whitespace ends an entry too, except next to
/// a dash: the guide's `10.1.2.3 - 10.1.2.10` style is one entry. A word
/// that ends with `-` or a word that starts with `-` therefore joins its
/// neighbour.
fn tokenize(spec: &str) -> Vec<&str> {
    let mut tokens = Vec::new();
    for chunk in spec.split(',') {
        // (start, end) byte offsets in `chunk` of the current entry and of
        // its last word; offsets come from `char_indices`, so slicing with
        // `get` always succeeds.
        let mut entry: Option<(usize, usize)> = None;
        let mut last_word_ends_with_dash = false;
        for (start, end) in words(chunk) {
            let word = chunk.get(start..end).unwrap_or_default();
            entry = match entry {
                Some((entry_start, _)) if last_word_ends_with_dash || word.starts_with('-') => {
                    Some((entry_start, end))
                }
                Some((entry_start, entry_end)) => {
                    tokens.push(chunk.get(entry_start..entry_end).unwrap_or_default());
                    Some((start, end))
                }
                None => Some((start, end)),
            };
            last_word_ends_with_dash = word.ends_with('-');
        }
        if let Some((entry_start, entry_end)) = entry {
            tokens.push(chunk.get(entry_start..entry_end).unwrap_or_default());
        }
    }
    tokens
}

/// Byte ranges of the whitespace-separated words of `s`.
fn words(s: &str) -> Vec<(usize, usize)> {
    let mut out = Vec::new();
    let mut start = None;
    for (i, c) in s.char_indices() {
        if c.is_whitespace() {
            if let Some(st) = start.take() {
                out.push((st, i));
            }
        } else if start.is_none() {
            start = Some(i);
        }
    }
    if let Some(st) = start {
        out.push((st, s.len()));
    }
    out
}

/// Parses one entry; the error is the reason only, the caller adds the
/// token.
fn parse_entry(token: &str) -> Result<Interval, String> {
    // IP addresses never contain '-', so a dash always means a range.
    if token.contains('-') {
        return parse_dashed(token);
    }
    if token.contains('/') {
        return parse_cidr(token);
    }
    match parse_ip(token) {
        Some(IpAddr::V4(a)) => Ok(Interval::V4(u32::from(a), u32::from(a))),
        Some(IpAddr::V6(a)) => Ok(Interval::v6(a, a)),
        None => Err("not an IP address".to_owned()),
    }
}

/// `start-end`, with optional whitespace around the dash.
fn parse_dashed(token: &str) -> Result<Interval, String> {
    let parts: Vec<&str> = token.split('-').map(str::trim).collect();
    let [start, end] = parts.as_slice() else {
        return Err("more than one '-' (a range is START-END)".to_owned());
    };
    if start.is_empty() {
        return Err("range has no start address".to_owned());
    }
    if end.is_empty() {
        return Err("range has no end address".to_owned());
    }
    let a = parse_ip(start).ok_or_else(|| format!("range start '{start}' is not an IP address"))?;
    let b = parse_ip(end).ok_or_else(|| format!("range end '{end}' is not an IP address"))?;
    let reversed = || format!("range start {a} is after range end {b}");
    match (a, b) {
        (IpAddr::V4(s), IpAddr::V4(e)) => {
            if s > e {
                return Err(reversed());
            }
            Ok(Interval::V4(u32::from(s), u32::from(e)))
        }
        (IpAddr::V6(s), IpAddr::V6(e)) => {
            if s > e {
                return Err(reversed());
            }
            Ok(Interval::v6(s, e))
        }
        _ => Err("range mixes an IPv4 and an IPv6 address".to_owned()),
    }
}

/// `address/prefix`; host bits in the address are ignored (see the module
/// documentation).
fn parse_cidr(token: &str) -> Result<Interval, String> {
    let Some((addr, prefix)) = token.split_once('/') else {
        return Err("not an IP address".to_owned());
    };
    if prefix.contains('/') {
        return Err("more than one '/'".to_owned());
    }
    if addr.is_empty() {
        return Err("missing network address before '/'".to_owned());
    }
    if prefix.is_empty() {
        return Err("missing prefix length after '/'".to_owned());
    }
    // Checked by hand because `u32::from_str` accepts a leading '+'.
    if !prefix.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!("prefix length '{prefix}' is not a number"));
    }
    let ip =
        parse_ip(addr).ok_or_else(|| format!("network address '{addr}' is not an IP address"))?;
    let max = match ip {
        IpAddr::V4(_) => 32,
        IpAddr::V6(_) => 128,
    };
    // All digits, so a parse failure can only be an overflow: too large.
    let len = prefix
        .parse::<u32>()
        .ok()
        .filter(|&len| len <= max)
        .ok_or_else(|| format!("prefix length {prefix} is larger than {max}"))?;
    match ip {
        IpAddr::V4(a) => {
            // Shifting by the full width is `None`: a /32 has no host bits.
            let host = u32::MAX.checked_shr(len).unwrap_or(0);
            let a = u32::from(a);
            Ok(Interval::V4(a & !host, a | host))
        }
        IpAddr::V6(a) => {
            let host = u128::MAX.checked_shr(len).unwrap_or(0);
            let a = u128::from(a);
            Ok(Interval::v6(
                Ipv6Addr::from(a & !host),
                Ipv6Addr::from(a | host),
            ))
        }
    }
}

/// Plain address syntax of the standard library: no zone ids, no
/// brackets, and no leading zeros in IPv4 octets (which some tools read as
/// octal).
fn parse_ip(s: &str) -> Option<IpAddr> {
    s.parse().ok()
}

/// Sorts and merges overlapping and adjacent intervals. `succ` is `x + 1`,
/// `None` at the top of the address space (where everything after `x`
/// trivially touches it).
fn merge<T: Ord + Copy>(mut intervals: Vec<(T, T)>, succ: impl Fn(T) -> Option<T>) -> Vec<(T, T)> {
    intervals.sort_unstable();
    let mut out: Vec<(T, T)> = Vec::with_capacity(intervals.len());
    for (start, end) in intervals {
        match out.last_mut() {
            Some(last) if succ(last.1).is_none_or(|next| start <= next) => {
                last.1 = last.1.max(end);
            }
            _ => out.push((start, end)),
        }
    }
    out.shrink_to_fit();
    out
}

/// Binary search in sorted, disjoint intervals.
fn covers<T: Ord + Copy>(intervals: &[(T, T)], x: T) -> bool {
    // Index of the first interval starting after `x`: only the one before
    // it can contain `x`.
    let after = intervals.partition_point(|&(start, _)| start <= x);
    after
        .checked_sub(1)
        .and_then(|i| intervals.get(i))
        .is_some_and(|&(_, end)| x <= end)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn ip(s: &str) -> IpAddr {
        s.parse()
            .unwrap_or_else(|e| panic!("test address {s:?}: {e}"))
    }

    fn parse_ok(spec: &str) -> IpRanges {
        IpRanges::parse(spec).unwrap_or_else(|e| panic!("spec {spec:?}: {e}"))
    }

    struct Case {
        spec: &'static str,
        inside: &'static [&'static str],
        outside: &'static [&'static str],
        intervals: usize,
    }

    const CASES: &[Case] = &[
        // The guide's example, exactly.
        Case {
            spec: "192.168.1.234-192.168.2.2, 192.168.1.245",
            inside: &[
                "192.168.1.234",
                "192.168.1.245",
                "192.168.1.255",
                "192.168.2.0",
                "192.168.2.2",
            ],
            outside: &["192.168.1.233", "192.168.2.3", "10.0.0.1", "::1"],
            intervals: 1,
        },
        // The guide's sample configuration.
        Case {
            spec: "192.168.1.0/24, 10.1.2.3-10.1.2.10, 42.4.2.1",
            inside: &[
                "192.168.1.0",
                "192.168.1.128",
                "192.168.1.255",
                "10.1.2.3",
                "10.1.2.7",
                "10.1.2.10",
                "42.4.2.1",
            ],
            outside: &[
                "192.168.0.255",
                "192.168.2.0",
                "10.1.2.2",
                "10.1.2.11",
                "42.4.2.0",
                "42.4.2.2",
            ],
            intervals: 3,
        },
        Case {
            spec: "10.0.0.1",
            inside: &["10.0.0.1"],
            outside: &["10.0.0.0", "10.0.0.2", "::a00:1"],
            intervals: 1,
        },
        // Dashed ranges with whitespace around the dash.
        Case {
            spec: "10.1.2.3 - 10.1.2.10",
            inside: &["10.1.2.3", "10.1.2.10"],
            outside: &["10.1.2.2", "10.1.2.11"],
            intervals: 1,
        },
        Case {
            spec: "10.1.2.3 -10.1.2.10",
            inside: &["10.1.2.3", "10.1.2.10"],
            outside: &["10.1.2.2", "10.1.2.11"],
            intervals: 1,
        },
        Case {
            spec: "10.1.2.3- 10.1.2.10",
            inside: &["10.1.2.3", "10.1.2.10"],
            outside: &["10.1.2.2", "10.1.2.11"],
            intervals: 1,
        },
        Case {
            spec: "\t10.1.2.3\t-\n10.1.2.10 , 42.4.2.1",
            inside: &["10.1.2.3", "10.1.2.10", "42.4.2.1"],
            outside: &["10.1.2.2", "10.1.2.11"],
            intervals: 2,
        },
        // Separators.
        Case {
            spec: "10.0.0.1,10.0.0.3",
            inside: &["10.0.0.1", "10.0.0.3"],
            outside: &["10.0.0.2"],
            intervals: 2,
        },
        Case {
            spec: "10.0.0.1 10.0.0.3",
            inside: &["10.0.0.1", "10.0.0.3"],
            outside: &["10.0.0.2"],
            intervals: 2,
        },
        Case {
            spec: "10.0.0.1\t10.0.0.3",
            inside: &["10.0.0.1", "10.0.0.3"],
            outside: &["10.0.0.2"],
            intervals: 2,
        },
        Case {
            spec: "10.0.0.1\n10.0.0.3\n",
            inside: &["10.0.0.1", "10.0.0.3"],
            outside: &["10.0.0.2"],
            intervals: 2,
        },
        Case {
            spec: "10.0.0.1,\r\n10.0.0.3",
            inside: &["10.0.0.1", "10.0.0.3"],
            outside: &["10.0.0.2"],
            intervals: 2,
        },
        Case {
            spec: " ,, 10.0.0.1 ,,\n\t, 10.0.0.3 , ",
            inside: &["10.0.0.1", "10.0.0.3"],
            outside: &["10.0.0.2"],
            intervals: 2,
        },
        // CIDR with host bits set means the network.
        Case {
            spec: "192.168.1.5/24",
            inside: &["192.168.1.0", "192.168.1.5", "192.168.1.255"],
            outside: &["192.168.0.255", "192.168.2.0"],
            intervals: 1,
        },
        Case {
            spec: "10.0.0.7/32",
            inside: &["10.0.0.7"],
            outside: &["10.0.0.6", "10.0.0.8"],
            intervals: 1,
        },
        Case {
            spec: "10.9.9.9/0",
            inside: &["0.0.0.0", "10.9.9.9", "255.255.255.255", "::ffff:1.2.3.4"],
            outside: &["::", "::1", "2001:db8::1"],
            intervals: 1,
        },
        // Ends of the IPv4 space.
        Case {
            spec: "0.0.0.0, 255.255.255.255",
            inside: &["0.0.0.0", "255.255.255.255"],
            outside: &["0.0.0.1", "255.255.255.254"],
            intervals: 2,
        },
        Case {
            spec: "0.0.0.0-0.0.0.1, 255.255.255.254-255.255.255.255",
            inside: &["0.0.0.0", "0.0.0.1", "255.255.255.254", "255.255.255.255"],
            outside: &["0.0.0.2", "255.255.255.253"],
            intervals: 2,
        },
        Case {
            spec: "0.0.0.0/1, 128.0.0.0/1",
            inside: &["0.0.0.0", "127.255.255.255", "128.0.0.0", "255.255.255.255"],
            outside: &["::1"],
            intervals: 1,
        },
        Case {
            spec: "255.255.255.0/24, 255.255.255.255, 255.255.255.128-255.255.255.255",
            inside: &["255.255.255.0", "255.255.255.255"],
            outside: &["255.255.254.255"],
            intervals: 1,
        },
        // IPv6.
        Case {
            spec: "2001:db8::/32",
            inside: &[
                "2001:db8::",
                "2001:db8::1",
                "2001:db8:ffff:ffff:ffff:ffff:ffff:ffff",
            ],
            outside: &[
                "2001:db7:ffff:ffff:ffff:ffff:ffff:ffff",
                "2001:db9::",
                "10.0.0.1",
                "::ffff:10.0.0.1",
            ],
            intervals: 1,
        },
        Case {
            spec: "2001:DB8::1:0/112",
            inside: &["2001:db8::1:0", "2001:db8::1:ffff"],
            outside: &["2001:db8::0:ffff", "2001:db8::2:0"],
            intervals: 1,
        },
        Case {
            spec: "2001:db8::1 - 2001:db8::ff, 2001:db8::100-2001:db8::1ff",
            inside: &[
                "2001:db8::1",
                "2001:db8::ff",
                "2001:db8::100",
                "2001:db8::1ff",
            ],
            outside: &["2001:db8::", "2001:db8::200"],
            intervals: 1,
        },
        Case {
            spec: "::1/128",
            inside: &["::1"],
            outside: &["::", "::2", "0.0.0.1"],
            intervals: 1,
        },
        Case {
            spec: "::/0",
            inside: &["::", "::1", "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff"],
            // IPv4 hosts, in either spelling, are not IPv6 hosts.
            outside: &["10.0.0.1", "::ffff:10.0.0.1"],
            intervals: 1,
        },
        Case {
            spec: "::/1, 8000::/1",
            inside: &["::", "7fff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", "8000::"],
            outside: &["1.2.3.4"],
            intervals: 1,
        },
        Case {
            spec: "::, ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff",
            inside: &["::", "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff"],
            outside: &["::1", "ffff:ffff:ffff:ffff:ffff:ffff:ffff:fffe"],
            intervals: 2,
        },
        // Both families.
        Case {
            spec: "10.0.0.0/8 2001:db8::/32",
            inside: &["10.1.2.3", "2001:db8::5"],
            outside: &["11.0.0.0", "2001:db9::"],
            intervals: 2,
        },
        // Overlapping and adjacent entries merge.
        Case {
            spec: "10.0.0.0/24, 10.0.0.128-10.0.1.5, 10.0.1.6, 10.0.2.0/24",
            inside: &["10.0.0.0", "10.0.1.5", "10.0.1.6", "10.0.2.0", "10.0.2.255"],
            outside: &["10.0.1.7", "10.0.1.255", "10.0.3.0"],
            intervals: 2,
        },
        Case {
            spec: "10.0.0.0-10.0.0.9, 10.0.0.10-10.0.0.20",
            inside: &["10.0.0.9", "10.0.0.10", "10.0.0.20"],
            outside: &["10.0.0.21"],
            intervals: 1,
        },
        Case {
            spec: "10.0.0.5, 10.0.0.5, 10.0.0.4, 10.0.0.6",
            inside: &["10.0.0.4", "10.0.0.5", "10.0.0.6"],
            outside: &["10.0.0.3", "10.0.0.7"],
            intervals: 1,
        },
        Case {
            spec: "10.0.0.0/8, 10.1.0.0/16, 10.1.2.3",
            inside: &["10.0.0.0", "10.255.255.255"],
            outside: &["9.255.255.255", "11.0.0.0"],
            intervals: 1,
        },
        // IPv4-mapped hosts match IPv4 ranges; IPv4-compatible ones do not.
        Case {
            spec: "10.1.2.0/24",
            inside: &["::ffff:10.1.2.3", "::FFFF:10.1.2.255", "::ffff:a01:200"],
            outside: &["::ffff:10.1.3.0", "::10.1.2.3", "::a01:203"],
            intervals: 1,
        },
        // Entries written in mapped form are IPv4 entries.
        Case {
            spec: "::ffff:10.1.2.0/120, ::ffff:10.1.3.0 - ::ffff:10.1.3.9",
            inside: &["10.1.2.3", "::ffff:10.1.2.3", "10.1.3.9"],
            outside: &["10.1.3.10", "::ffff:10.1.3.10"],
            intervals: 1,
        },
    ];

    #[test]
    fn table_of_specs() {
        for case in CASES {
            let r = parse_ok(case.spec);
            assert!(!r.is_unrestricted(), "{:?}", case.spec);
            assert_eq!(
                r.interval_count(),
                case.intervals,
                "spec {:?} -> {r}",
                case.spec
            );
            for a in case.inside {
                assert!(r.contains(ip(a)), "spec {:?} should contain {a}", case.spec);
            }
            for a in case.outside {
                assert!(
                    !r.contains(ip(a)),
                    "spec {:?} should not contain {a}",
                    case.spec
                );
            }
            // The canonical form denotes the same set.
            assert_eq!(parse_ok(&r.to_string()), r, "spec {:?}", case.spec);
        }
    }

    #[test]
    fn canonical_form() {
        let cases = [
            (
                "192.168.1.0/24, 10.1.2.3-10.1.2.10, 42.4.2.1",
                "10.1.2.3-10.1.2.10, 42.4.2.1, 192.168.1.0-192.168.1.255",
            ),
            (
                "192.168.1.234-192.168.2.2, 192.168.1.245",
                "192.168.1.234-192.168.2.2",
            ),
            ("10.0.0.1 - 10.0.0.1", "10.0.0.1"),
            (
                "2001:db8::/32, 10.0.0.0/31",
                "10.0.0.0-10.0.0.1, 2001:db8::-2001:db8:ffff:ffff:ffff:ffff:ffff:ffff",
            ),
            ("::ffff:10.1.2.0/120", "10.1.2.0-10.1.2.255"),
            ("::/0", "::-ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff"),
            ("", "none"),
            ("NONE", "none"),
        ];
        for (spec, expected) in cases {
            assert_eq!(parse_ok(spec).to_string(), expected, "spec {spec:?}");
        }
    }

    #[test]
    fn unrestricted_specs() {
        for spec in [
            "", "   ", "\n\t ", ",", " , ,, ", "none", "NONE", " None\n", "nOnE,",
        ] {
            let r = parse_ok(spec);
            assert!(r.is_unrestricted(), "{spec:?}");
            assert_eq!(r, IpRanges::default(), "{spec:?}");
            assert_eq!(r.interval_count(), 0, "{spec:?}");
            for a in [
                "0.0.0.0",
                "10.1.2.3",
                "255.255.255.255",
                "::",
                "2001:db8::1",
                "::ffff:1.2.3.4",
            ] {
                assert!(r.contains(ip(a)), "{spec:?} should keep {a}");
            }
        }
        assert!(IpRanges::default().is_unrestricted());
    }

    #[test]
    fn ipv6_only_spec_keeps_no_ipv4_host() {
        let r = parse_ok("2001:db8::/32");
        assert!(!r.is_unrestricted());
        assert_ne!(r, IpRanges::default());
        assert!(!r.contains(ip("10.0.0.1")));
        assert!(!r.contains(ip("::ffff:10.0.0.1")));
    }

    #[test]
    fn table_of_bad_specs() {
        let cases: &[(&str, &str, &str)] = &[
            ("10.1.2.300", "10.1.2.300", "not an IP address"),
            ("10.0.0.1, bogus", "bogus", "not an IP address"),
            ("bogus1 bogus2", "bogus1", "not an IP address"),
            ("none, 10.0.0.1", "none", "not an IP address"),
            ("none none", "none", "not an IP address"),
            ("010.0.0.1", "010.0.0.1", "not an IP address"),
            ("10.0.0", "10.0.0", "not an IP address"),
            ("fe80::1%eth0", "fe80::1%eth0", "not an IP address"),
            ("[::1]", "[::1]", "not an IP address"),
            (
                "10.0.0.0/33",
                "10.0.0.0/33",
                "prefix length 33 is larger than 32",
            ),
            ("::/129", "::/129", "prefix length 129 is larger than 128"),
            (
                "10.0.0.0/99999999999",
                "10.0.0.0/99999999999",
                "prefix length 99999999999 is larger than 32",
            ),
            ("10.0.0.0/", "10.0.0.0/", "missing prefix length after '/'"),
            ("/24", "/24", "missing network address before '/'"),
            (
                "10.0.0.0/2x",
                "10.0.0.0/2x",
                "prefix length '2x' is not a number",
            ),
            (
                "10.0.0.0/+8",
                "10.0.0.0/+8",
                "prefix length '+8' is not a number",
            ),
            ("10.0.0.0/8/8", "10.0.0.0/8/8", "more than one '/'"),
            (
                "10.0.0.x/8",
                "10.0.0.x/8",
                "network address '10.0.0.x' is not an IP address",
            ),
            (
                "10.0.0.5-10.0.0.1",
                "10.0.0.5-10.0.0.1",
                "range start 10.0.0.5 is after range end 10.0.0.1",
            ),
            (
                "42.4.2.1, 10.0.0.5 - 10.0.0.1",
                "10.0.0.5 - 10.0.0.1",
                "range start 10.0.0.5 is after range end 10.0.0.1",
            ),
            (
                "2001:db8::ff-2001:db8::1",
                "2001:db8::ff-2001:db8::1",
                "range start 2001:db8::ff is after range end 2001:db8::1",
            ),
            (
                "10.0.0.1-10.0.0.2-10.0.0.3",
                "10.0.0.1-10.0.0.2-10.0.0.3",
                "more than one '-' (a range is START-END)",
            ),
            (
                "10.0.0.1 - - 10.0.0.3",
                "10.0.0.1 - - 10.0.0.3",
                "more than one '-' (a range is START-END)",
            ),
            ("10.0.0.1-", "10.0.0.1-", "range has no end address"),
            (
                "10.0.0.1 -, 10.0.0.2",
                "10.0.0.1 -",
                "range has no end address",
            ),
            ("-10.0.0.1", "-10.0.0.1", "range has no start address"),
            (
                "10.0.0.1, - 10.0.0.2",
                "- 10.0.0.2",
                "range has no start address",
            ),
            ("-", "-", "range has no start address"),
            (
                "10.0.0.1-::1",
                "10.0.0.1-::1",
                "range mixes an IPv4 and an IPv6 address",
            ),
            (
                "::ffff:10.0.0.1-10.0.0.5",
                "::ffff:10.0.0.1-10.0.0.5",
                "range mixes an IPv4 and an IPv6 address",
            ),
            (
                "10.0.0.1-10.0.0.x",
                "10.0.0.1-10.0.0.x",
                "range end '10.0.0.x' is not an IP address",
            ),
            (
                "10.0.0.0/24-10.0.1.0",
                "10.0.0.0/24-10.0.1.0",
                "range start '10.0.0.0/24' is not an IP address",
            ),
        ];
        for &(spec, token, reason) in cases {
            let err = IpRanges::parse(spec).expect_err(spec);
            assert_eq!(
                err,
                RangeError {
                    token: token.to_owned(),
                    reason: reason.to_owned()
                },
                "spec {spec:?}"
            );
        }
    }

    #[test]
    fn error_message() {
        let err = IpRanges::parse("192.168.1.0/24, 10.1.2.300").expect_err("bad");
        assert_eq!(
            err.to_string(),
            "bad ip_ranges entry '10.1.2.300': not an IP address"
        );
    }

    #[test]
    fn filtering_many_hosts_against_many_ranges() {
        // 1,000 disjoint /24 blocks, every other one, and 100,000 hosts.
        let spec: Vec<String> = (0u32..1000)
            .map(|i| format!("10.{}.{}.0/24", i / 128, (i % 128) * 2))
            .collect();
        let r = parse_ok(&spec.join(", "));
        assert_eq!(r.interval_count(), 1000);
        let kept = (0u32..100_000)
            .map(|i| IpAddr::V4(Ipv4Addr::from(0x0a00_0000 + i * 7)))
            .filter(|&a| r.contains(a))
            .count();
        let expected = (0u32..100_000)
            .filter(|i| {
                let a = 0x0a00_0000 + i * 7;
                let third = (a >> 8) & 0xff;
                let second = (a >> 16) & 0xff;
                second < 8 && third % 2 == 0 && (second * 128 + third / 2) < 1000
            })
            .count();
        assert_eq!(kept, expected);
        assert!(kept > 0);
    }

    // ---- Property tests against a naive linear model ----

    const MAPPED_LO: u128 = 0xffff_u128 << 32;
    const MAPPED_HI: u128 = MAPPED_LO | 0xffff_ffff;

    /// An entry as the model sees it; `W` is u32 or u128.
    #[derive(Debug, Clone, Copy)]
    enum Entry<W> {
        Single(W),
        Cidr(W, u32),
        Range(W, W),
    }

    fn mask4(prefix: u32) -> u32 {
        if prefix == 0 {
            0
        } else {
            u32::MAX << (32 - prefix)
        }
    }

    fn mask6(prefix: u32) -> u128 {
        if prefix == 0 {
            0
        } else {
            u128::MAX << (128 - prefix)
        }
    }

    fn bounds4(e: Entry<u32>) -> (u32, u32) {
        match e {
            Entry::Single(a) => (a, a),
            Entry::Cidr(a, p) => (a & mask4(p), a | !mask4(p)),
            Entry::Range(a, b) => (a, b),
        }
    }

    fn bounds6(e: Entry<u128>) -> (u128, u128) {
        match e {
            Entry::Single(a) => (a, a),
            Entry::Cidr(a, p) => (a & mask6(p), a | !mask6(p)),
            Entry::Range(a, b) => (a, b),
        }
    }

    fn model4(entries: &[Entry<u32>], x: u32) -> bool {
        entries.iter().any(|&e| match e {
            Entry::Single(a) => x == a,
            Entry::Cidr(a, p) => (x ^ a) & mask4(p) == 0,
            Entry::Range(a, b) => a <= x && x <= b,
        })
    }

    /// An IPv6 probe: a mapped probe is an IPv4 host, only matched by
    /// entries lying wholly in the mapped block; any other probe by any
    /// entry containing it.
    fn model6(entries: &[Entry<u128>], x: u128) -> bool {
        let probe_is_v4 = (MAPPED_LO..=MAPPED_HI).contains(&x);
        entries.iter().any(|&e| {
            let (lo, hi) = bounds6(e);
            let entry_is_v4 = MAPPED_LO <= lo && hi <= MAPPED_HI;
            lo <= x && x <= hi && probe_is_v4 == entry_is_v4
        })
    }

    fn render<W: Copy>(entries: &[(Entry<W>, u8, u8)], show: impl Fn(W) -> String) -> String {
        const SEPS: [&str; 7] = [",", " ", ", ", "\t", "\n", " ,, ", ",\r\n\t"];
        const DASHES: [&str; 4] = ["-", " - ", " -", "-\t"];
        let mut out = String::from(" ");
        for &(e, dash, sep) in entries {
            match e {
                Entry::Single(a) => out.push_str(&show(a)),
                Entry::Cidr(a, p) => out.push_str(&format!("{}/{p}", show(a))),
                Entry::Range(a, b) => {
                    out.push_str(&show(a));
                    out.push_str(DASHES[usize::from(dash) % DASHES.len()]);
                    out.push_str(&show(b));
                }
            }
            out.push_str(SEPS[usize::from(sep) % SEPS.len()]);
        }
        out
    }

    /// Addresses clustered so that entries overlap, touch and hit the ends
    /// of the space often.
    fn addr4() -> impl Strategy<Value = u32> {
        prop_oneof![
            any::<u32>(),
            (0u32..600).prop_map(|x| 0x0a00_0000 + x),
            (0u32..4).prop_map(|x| x),
            (0u32..4).prop_map(|x| u32::MAX - x),
        ]
    }

    fn addr6() -> impl Strategy<Value = u128> {
        prop_oneof![
            any::<u128>(),
            (0u128..600).prop_map(|x| (0x2001_0db8_u128 << 96) + x),
            any::<u32>().prop_map(|x| MAPPED_LO | u128::from(x)),
            (0u128..600).prop_map(|x| MAPPED_LO + 0x0a00_0000 + x),
            (0u128..4).prop_map(|x| MAPPED_LO - 1 - x),
            (0u128..4).prop_map(|x| MAPPED_HI + x),
            (0u128..4).prop_map(|x| x),
            (0u128..4).prop_map(|x| u128::MAX - x),
        ]
    }

    fn entry4() -> impl Strategy<Value = Entry<u32>> {
        prop_oneof![
            addr4().prop_map(Entry::Single),
            (addr4(), 0u32..=32).prop_map(|(a, p)| Entry::Cidr(a, p)),
            (addr4(), addr4()).prop_map(|(a, b)| Entry::Range(a.min(b), a.max(b))),
        ]
    }

    fn entry6() -> impl Strategy<Value = Entry<u128>> {
        prop_oneof![
            addr6().prop_map(Entry::Single),
            (addr6(), 0u32..=128).prop_map(|(a, p)| Entry::Cidr(a, p)),
            (addr6(), addr6()).prop_map(|(a, b)| Entry::Range(a.min(b), a.max(b))),
        ]
    }

    fn probes4(entries: &[(Entry<u32>, u8, u8)], random: &[u32]) -> Vec<u32> {
        let mut out = random.to_vec();
        for &(e, _, _) in entries {
            let (lo, hi) = bounds4(e);
            out.extend([lo.wrapping_sub(1), lo, hi, hi.wrapping_add(1)]);
        }
        out
    }

    fn probes6(entries: &[(Entry<u128>, u8, u8)], random: &[u128]) -> Vec<u128> {
        let mut out = random.to_vec();
        for &(e, _, _) in entries {
            let (lo, hi) = bounds6(e);
            out.extend([lo.wrapping_sub(1), lo, hi, hi.wrapping_add(1)]);
        }
        out
    }

    proptest! {
        #[test]
        fn ipv4_matches_naive_model(
            entries in prop::collection::vec((entry4(), any::<u8>(), any::<u8>()), 1..12),
            random in prop::collection::vec(addr4(), 0..20),
        ) {
            let spec = render(&entries, |a| Ipv4Addr::from(a).to_string());
            let r = IpRanges::parse(&spec).map_err(|e| TestCaseError::fail(format!("{spec:?}: {e}")))?;
            prop_assert!(!r.is_unrestricted());
            prop_assert!(r.interval_count() >= 1 && r.interval_count() <= entries.len());
            let model: Vec<Entry<u32>> = entries.iter().map(|&(e, _, _)| e).collect();
            for x in probes4(&entries, &random) {
                let expected = model4(&model, x);
                prop_assert_eq!(r.contains(IpAddr::V4(Ipv4Addr::from(x))), expected, "spec {:?} probe {}", spec, Ipv4Addr::from(x));
                let mapped = Ipv4Addr::from(x).to_ipv6_mapped();
                prop_assert_eq!(r.contains(IpAddr::V6(mapped)), expected, "spec {:?} probe {}", spec, mapped);
            }
            prop_assert_eq!(IpRanges::parse(&r.to_string()), Ok(r.clone()));
        }

        #[test]
        fn ipv6_matches_naive_model(
            entries in prop::collection::vec((entry6(), any::<u8>(), any::<u8>()), 1..12),
            random in prop::collection::vec(addr6(), 0..20),
        ) {
            let spec = render(&entries, |a| Ipv6Addr::from(a).to_string());
            let r = IpRanges::parse(&spec).map_err(|e| TestCaseError::fail(format!("{spec:?}: {e}")))?;
            prop_assert!(!r.is_unrestricted());
            let model: Vec<Entry<u128>> = entries.iter().map(|&(e, _, _)| e).collect();
            for x in probes6(&entries, &random) {
                let addr = Ipv6Addr::from(x);
                prop_assert_eq!(r.contains(IpAddr::V6(addr)), model6(&model, x), "spec {:?} probe {}", spec, addr);
                // A mapped host answers as its IPv4 spelling does.
                if let Some(v4) = addr.to_ipv4_mapped() {
                    prop_assert_eq!(r.contains(IpAddr::V4(v4)), r.contains(IpAddr::V6(addr)));
                }
            }
            prop_assert_eq!(IpRanges::parse(&r.to_string()), Ok(r.clone()));
        }

        #[test]
        fn mixed_families_match_naive_models(
            e4 in prop::collection::vec((entry4(), any::<u8>(), any::<u8>()), 0..6),
            e6 in prop::collection::vec((entry6(), any::<u8>(), any::<u8>()), 0..6),
            r4 in prop::collection::vec(addr4(), 0..10),
            r6 in prop::collection::vec(addr6(), 0..10),
        ) {
            let spec = format!(
                "{},{}",
                render(&e4, |a| Ipv4Addr::from(a).to_string()),
                render(&e6, |a| Ipv6Addr::from(a).to_string()),
            );
            let r = IpRanges::parse(&spec).map_err(|e| TestCaseError::fail(format!("{spec:?}: {e}")))?;
            prop_assert_eq!(r.is_unrestricted(), e4.is_empty() && e6.is_empty());
            if r.is_unrestricted() {
                return Ok(());
            }
            // IPv4 entries are, for the model, IPv6 ranges in the mapped block.
            let mut model: Vec<Entry<u128>> = e6.iter().map(|&(e, _, _)| e).collect();
            model.extend(e4.iter().map(|&(e, _, _)| {
                let (lo, hi) = bounds4(e);
                Entry::Range(MAPPED_LO | u128::from(lo), MAPPED_LO | u128::from(hi))
            }));
            let mut probes = probes6(&e6, &r6);
            probes.extend(probes4(&e4, &r4).into_iter().map(|x| MAPPED_LO | u128::from(x)));
            for x in probes {
                let addr = Ipv6Addr::from(x);
                let expected = model6(&model, x);
                prop_assert_eq!(r.contains(IpAddr::V6(addr)), expected, "spec {:?} probe {}", spec, addr);
                if let Some(v4) = addr.to_ipv4_mapped() {
                    prop_assert_eq!(r.contains(IpAddr::V4(v4)), expected, "spec {:?} probe {}", spec, v4);
                }
            }
            prop_assert_eq!(IpRanges::parse(&r.to_string()), Ok(r.clone()));
        }

        #[test]
        fn parse_never_panics_on_arbitrary_strings(spec in any::<String>()) {
            check_arbitrary(&spec)?;
        }

        #[test]
        fn parse_never_panics_on_address_like_strings(
            spec in "[0-9a-fA-F.:/%\\-, \t\nnoe\u{a0}\u{3000}]{0,48}",
        ) {
            check_arbitrary(&spec)?;
        }
    }

    /// Whatever the input: no panic, errors quote a piece of the input, and
    /// successes print a form that parses back to the same value.
    fn check_arbitrary(spec: &str) -> Result<(), TestCaseError> {
        match IpRanges::parse(spec) {
            Ok(r) => {
                prop_assert_eq!(IpRanges::parse(&r.to_string()), Ok(r.clone()));
            }
            Err(e) => {
                prop_assert!(!e.token.is_empty());
                prop_assert!(
                    spec.contains(&e.token),
                    "token {:?} not in {:?}",
                    e.token,
                    spec
                );
                prop_assert!(!e.reason.is_empty());
            }
        }
        Ok(())
    }
}
