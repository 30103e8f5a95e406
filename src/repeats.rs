//! Hosts the report lists more than once, found exactly in bounded memory.
//!
//! A host listed twice must not lose its first findings to the second ScanFlush
//! (host-input.md §4), so its later listings merge with ScanUpdate; except after listings
//! with nothing to send, which only staged the generic "no open findings" result: the
//! first listing with findings replaces that one. Keeping every address in memory grows
//! with the report, so each listing (address, position, whether it had nothing to send)
//! goes to an external sort instead ([`crate::runsort`]); sorted by address, a host's
//! listings are adjacent and in report order. The listings that merge are sorted back by
//! position, and the second stage reads them alongside the spill file.

use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use crate::runsort::{RECORD, Record, Sorted, Sorter};

const SEQ: usize = 17;
const NOTHING: usize = SEQ + 8;

/// The listings of the first stage, in report order.
#[derive(Debug, Default)]
pub struct Listings {
    sorter: Sorter,
    next: u64,
}

impl Listings {
    #[cfg(test)]
    fn with_sorter(sorter: Sorter) -> Listings {
        Listings { sorter, next: 0 }
    }

    /// Records the next listing: `nothing` when it has nothing to send and, being a
    /// ScanFlush, only clears the host.
    pub fn push(&mut self, ip: IpAddr, nothing: bool) -> io::Result<()> {
        let mut r = [0u8; RECORD];
        match ip {
            IpAddr::V4(v4) => {
                r[0] = 4;
                r[1..5].copy_from_slice(&v4.octets());
            }
            IpAddr::V6(v6) => {
                r[0] = 6;
                r[1..17].copy_from_slice(&v6.octets());
            }
        }
        r[SEQ..NOTHING].copy_from_slice(&self.next.to_be_bytes());
        r[NOTHING] = u8::from(nothing);
        self.next += 1;
        self.sorter.push(r)
    }

    /// Decides every repeated listing, logging a warning for each; returns the listings
    /// that merge and how many listings were repeats.
    pub fn resolve(self) -> io::Result<(Merges, u64)> {
        let mut sorted = self.sorter.into_sorted()?;
        let mut merges = Sorter::default();
        let mut repeats = 0;
        let mut previous: Option<Record> = None;
        // The current host's listings so far had nothing to send.
        let mut cleared = false;
        while let Some(r) = sorted.next_record()? {
            let nothing = r[NOTHING] != 0;
            let repeat = previous.is_some_and(|p| p[..SEQ] == r[..SEQ]);
            previous = Some(r);
            if !repeat {
                cleared = nothing;
                continue;
            }
            repeats += 1;
            let ip = address(&r)?;
            if cleared && !nothing {
                cleared = false;
                log::warn!(
                    "host {ip} appears more than once in the report: its earlier listing had no findings to send, this one replaces it (ScanFlush)"
                );
                continue;
            }
            log::warn!(
                "host {ip} appears more than once in the report: its later findings are merged with the earlier ones (ScanUpdate)"
            );
            let mut m = [0u8; RECORD];
            m[..8].copy_from_slice(&r[SEQ..NOTHING]);
            merges.push(m)?;
        }
        Ok((
            Merges {
                sorted: merges.into_sorted()?,
                next: None,
                started: false,
            },
            repeats,
        ))
    }
}

/// The positions of the listings that merge (ScanUpdate), asked in report order.
#[derive(Debug)]
pub struct Merges {
    sorted: Sorted,
    next: Option<u64>,
    started: bool,
}

impl Merges {
    /// Whether listing `seq` merges; `seq` must grow from call to call.
    pub fn merges(&mut self, seq: u64) -> io::Result<bool> {
        if !self.started {
            self.started = true;
            self.advance()?;
        }
        while self.next.is_some_and(|n| n < seq) {
            self.advance()?;
        }
        if self.next == Some(seq) {
            self.advance()?;
            return Ok(true);
        }
        Ok(false)
    }

    fn advance(&mut self) -> io::Result<()> {
        self.next = self.sorted.next_record()?.map(|r| {
            let mut seq = [0u8; 8];
            seq.copy_from_slice(&r[..8]);
            u64::from_be_bytes(seq)
        });
        Ok(())
    }
}

fn address(r: &Record) -> io::Result<IpAddr> {
    let mut v6 = [0u8; 16];
    v6.copy_from_slice(&r[1..17]);
    match r[0] {
        4 => Ok(IpAddr::V4(Ipv4Addr::new(v6[0], v6[1], v6[2], v6[3]))),
        6 => Ok(IpAddr::V6(Ipv6Addr::from(v6))),
        other => Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("temporary listing file is corrupt: address family {other}"),
        )),
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use super::*;

    /// The same decisions as a set of every address kept in memory.
    fn reference(listings: &[(IpAddr, bool)]) -> (Vec<bool>, u64) {
        let mut seen = HashSet::new();
        let mut cleared = HashSet::new();
        let mut repeats = 0;
        let merges = listings
            .iter()
            .map(|&(ip, nothing)| {
                if seen.insert(ip) {
                    if nothing {
                        cleared.insert(ip);
                    }
                    return false;
                }
                repeats += 1;
                // Replaced (not merged) when it has findings and the host was cleared.
                nothing || !cleared.remove(&ip)
            })
            .collect();
        (merges, repeats)
    }

    fn decide(sorter: Sorter, listings: &[(IpAddr, bool)]) -> (Vec<bool>, u64) {
        let mut l = Listings::with_sorter(sorter);
        for &(ip, nothing) in listings {
            l.push(ip, nothing).unwrap();
        }
        let (mut merges, repeats) = l.resolve().unwrap();
        let got = (0..listings.len() as u64)
            .map(|i| merges.merges(i).unwrap())
            .collect();
        (got, repeats)
    }

    /// 200,000 listings over 150,000 addresses (IPv4 and IPv6 with the same low bytes),
    /// repeats up to the whole report apart, sorted in many small runs merged in several
    /// rounds: every decision matches the exact in-memory one.
    #[test]
    fn decisions_are_exact_at_scale_and_across_runs() {
        let n = 200_000u32;
        let listings: Vec<(IpAddr, bool)> = (0..n)
            .map(|i| {
                let k = (i.wrapping_mul(2_654_435_761)) % 150_000;
                let ip = if k % 7 == 0 {
                    IpAddr::V6(Ipv6Addr::from(u128::from(k)))
                } else {
                    IpAddr::V4(Ipv4Addr::from(k))
                };
                (ip, i % 3 == 0)
            })
            .collect();
        let want = reference(&listings);
        assert!(want.1 >= 50_000, "the case has repeats: {}", want.1);
        assert!(want.0.iter().any(|m| !m) && want.0.iter().any(|m| *m));
        for (limit, fan_in) in [(1 << 20, 32), (4096, 8), (1000, 3)] {
            let got = decide(Sorter::with_limits(limit, fan_in), &listings);
            assert!(got == want, "limit {limit}, fan-in {fan_in}");
        }
    }

    #[test]
    fn the_table_of_listings() {
        let a: IpAddr = "192.0.2.1".parse().unwrap();
        let b: IpAddr = "2001:db8::1".parse().unwrap();
        // (listings, merges, repeats)
        type Case = (Vec<(IpAddr, bool)>, Vec<bool>, u64);
        let cases: [Case; 5] = [
            (vec![(a, false), (b, false)], vec![false, false], 0),
            (
                vec![(a, false), (b, false), (a, false)],
                vec![false, false, true],
                1,
            ),
            (vec![(a, false), (a, true)], vec![false, true], 1),
            (
                vec![(a, true), (b, true), (a, false)],
                vec![false, false, false],
                1,
            ),
            (
                vec![(a, true), (a, true), (a, false), (a, false)],
                vec![false, true, false, true],
                3,
            ),
        ];
        for (listings, merges, repeats) in cases {
            let got = decide(Sorter::default(), &listings);
            assert_eq!(got, (merges, repeats), "{listings:?}");
        }
    }
}
