//! The FMC's rule for N in `Done processing N commands.`, learned instead of assumed
//! (host-input.md §3.4 and §6: nothing public says how the server counts).
//!
//! The plausible rules differ in two kinds of line: `SetSource` (S of them in a block)
//! and the commits `ScanFlush`/`ScanUpdate` (C). Over T command lines they give T, T − S,
//! T − C and T − S − C, all different only when S = 1 and C ≥ 2. So every new connection
//! first sends a calibration block of its own: the preamble (the SetSource line) and two
//! `ScanUpdate` lines, for which the rules give 3, 2, 1 and 0. Nothing is staged on a new
//! connection, so those commits apply nothing (the FMC runs the same empty ScanUpdate at
//! every close, §3.5). The block carries no host: a line the server drops there can never
//! confirm a host wrongly. It gives either a count no rule fits, or a rule that sees
//! fewer lines than the real one, which fails the next connection's calibration or
//! shows every later host block as short; never a silent success.
//!
//! The first connection's reply names the rule; every later connection's calibration,
//! and every host block, must fit that same rule exactly.

use std::fmt;

/// Which lines of a block the server counts in its reply.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CountRule {
    /// Every command line sent.
    All,
    /// Every line except `SetSource`.
    NoSetSource,
    /// Every line except the commits `ScanFlush` and `ScanUpdate`.
    NoCommit,
    /// Neither `SetSource` nor the commits: only the data lines.
    DataOnly,
}

impl CountRule {
    /// Every candidate, in the order messages list them.
    pub const ALL: [CountRule; 4] = [
        CountRule::All,
        CountRule::NoSetSource,
        CountRule::NoCommit,
        CountRule::DataOnly,
    ];

    /// The rule's short name (as fmc-sim's `--count-rule` spells it).
    pub fn name(self) -> &'static str {
        match self {
            CountRule::All => "all",
            CountRule::NoSetSource => "no-setsource",
            CountRule::NoCommit => "no-commit",
            CountRule::DataOnly => "data-only",
        }
    }

    /// What the rule counts, in words for the log.
    pub fn describe(self) -> &'static str {
        match self {
            CountRule::All => "every line sent",
            CountRule::NoSetSource => "every line except SetSource",
            CountRule::NoCommit => "every line except ScanFlush/ScanUpdate",
            CountRule::DataOnly => "only the data lines (no SetSource, ScanFlush or ScanUpdate)",
        }
    }
}

impl fmt::Display for CountRule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The lines of one frame, by kind.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Tally {
    /// Command lines: every line but empty ones and `#` comments.
    pub lines: u64,
    /// Lines whose command is `SetSource`.
    pub sources: u64,
    /// `ScanFlush` and `ScanUpdate` lines.
    pub commits: u64,
}

/// The two commit lines every calibration block ends with.
pub const CALIBRATION_COMMITS: &[u8] = b"ScanUpdate\nScanUpdate\n";

impl Tally {
    /// Counts the lines of the exact bytes sent. The command is the text before the
    /// first comma, spaces trimmed (the csv plugin sends files as their authors wrote
    /// them, `SetSource, Name` included).
    pub fn of(frame: &[u8]) -> Tally {
        let mut tally = Tally::default();
        for line in frame.split(|&b| b == b'\n') {
            let line = line.strip_suffix(b"\r").unwrap_or(line);
            if line.is_empty() || line.starts_with(b"#") {
                continue;
            }
            tally.lines += 1;
            let name = line.split(|&b| b == b',').next().unwrap_or_default();
            match name.trim_ascii() {
                b"SetSource" => tally.sources += 1,
                b"ScanFlush" | b"ScanUpdate" => tally.commits += 1,
                _ => {}
            }
        }
        tally
    }

    /// N as a server following `rule` would report it for these lines.
    pub fn count(&self, rule: CountRule) -> u64 {
        match rule {
            CountRule::All => self.lines,
            CountRule::NoSetSource => self.lines - self.sources,
            CountRule::NoCommit => self.lines - self.commits,
            CountRule::DataOnly => self.lines - self.sources - self.commits,
        }
    }

    /// What each remaining candidate expects, for messages: `3 (all), 2 (no-setsource)`.
    fn expectations(&self, candidates: &[CountRule]) -> String {
        let each: Vec<String> = candidates
            .iter()
            .map(|&r| format!("{} ({r})", self.count(r)))
            .collect();
        match each.split_last() {
            Some((last, [])) => last.clone(),
            Some((last, rest)) => format!("{} or {last}", rest.join(", ")),
            None => String::new(),
        }
    }
}

/// Why a reply's N does not confirm its block.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Miscount {
    /// Before the rule is known: no candidate gives this N.
    #[error(
        "the FMC reported {n} commands, which no known counting rule gives for this block: expected {expected}"
    )]
    NoRule { n: u64, expected: String },
    /// Fewer lines than the learned rule counts: the server dropped some.
    #[error("the FMC processed {n} commands of {want}")]
    Fewer { n: u64, want: u64 },
    /// More than the learned rule counts.
    #[error("the FMC reported {n} commands, more than the {want} it counts by its rule ({rule}: {})", rule.describe())]
    More { n: u64, want: u64, rule: CountRule },
    /// The N another rule gives: the server no longer counts as it did.
    #[error("the FMC reported {n} commands, the count of rule {fits} ({}), but it counted by rule {learned} ({}) before", fits.describe(), learned.describe())]
    OtherRule {
        n: u64,
        learned: CountRule,
        fits: CountRule,
    },
}

/// The candidates still possible and, once only one is, the learned rule.
#[derive(Debug, Clone)]
pub struct Learner {
    candidates: Vec<CountRule>,
}

impl Default for Learner {
    fn default() -> Self {
        Learner {
            candidates: CountRule::ALL.to_vec(),
        }
    }
}

impl Learner {
    /// The rule, once one reply has left a single candidate.
    pub fn learned(&self) -> Option<CountRule> {
        match self.candidates[..] {
            [rule] => Some(rule),
            _ => None,
        }
    }

    /// Judges the N of a reply to a block of `tally`. Returns the rule when this reply
    /// is the one that decided it.
    pub fn check(&mut self, tally: &Tally, n: u64) -> Result<Option<CountRule>, Miscount> {
        if let Some(rule) = self.learned() {
            return Self::fits(rule, tally, n).map(|()| None);
        }
        let fitting: Vec<CountRule> = self
            .candidates
            .iter()
            .copied()
            .filter(|&r| tally.count(r) == n)
            .collect();
        if fitting.is_empty() {
            return Err(Miscount::NoRule {
                n,
                expected: tally.expectations(&self.candidates),
            });
        }
        self.candidates = fitting;
        Ok(self.learned())
    }

    fn fits(rule: CountRule, tally: &Tally, n: u64) -> Result<(), Miscount> {
        let want = tally.count(rule);
        if n == want {
            return Ok(());
        }
        if let Some(fits) = CountRule::ALL.into_iter().find(|&r| tally.count(r) == n) {
            return Err(Miscount::OtherRule {
                n,
                learned: rule,
                fits,
            });
        }
        if n > want {
            Err(Miscount::More { n, want, rule })
        } else {
            Err(Miscount::Fewer { n, want })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HOST: &str = "AddHost,192.0.2.1\nAddScanResult,192.0.2.1,\"Q\",1,,,\"a\",\"d\",\"cve_ids: \",\"bugtraq_ids: \"\nScanFlush\n";

    #[test]
    fn tallies() {
        let cases: [(&[u8], Tally); 5] = [
            (b"", Tally::default()),
            (
                b"SetSource,Q\nScanUpdate\nScanUpdate\n",
                Tally {
                    lines: 3,
                    sources: 1,
                    commits: 2,
                },
            ),
            (
                b"# note\n\nSetSource, Q\r\nSetSourceType, 2\r\nAddHost, 192.0.2.1\r\nScanFlush\r\n",
                Tally {
                    lines: 4,
                    sources: 1,
                    commits: 1,
                },
            ),
            (
                HOST.as_bytes(),
                Tally {
                    lines: 3,
                    sources: 0,
                    commits: 1,
                },
            ),
            (
                b"ScanFlushed\nSetSourceX,1\n",
                Tally {
                    lines: 2,
                    sources: 0,
                    commits: 0,
                },
            ),
        ];
        for (frame, want) in cases {
            assert_eq!(Tally::of(frame), want, "{frame:?}");
        }
    }

    /// Replays replies to a sequence of blocks; returns what the learner knows after
    /// each, or the first miscount.
    fn learn(blocks: &[(&str, u64)]) -> Result<Vec<Option<CountRule>>, Miscount> {
        let mut learner = Learner::default();
        let mut known = Vec::new();
        for (block, n) in blocks {
            learner.check(&Tally::of(block.as_bytes()), *n)?;
            known.push(learner.learned());
        }
        Ok(known)
    }

    #[test]
    fn the_rule_is_learned_only_where_the_candidates_differ() {
        let calibration = "SetSource,Q\nScanUpdate\nScanUpdate\n";
        let two_hosts = format!("SetSource,Q\n{HOST}{HOST}");
        let one_host = format!("SetSource,Q\n{HOST}");
        for rule in CountRule::ALL {
            let n = |block: &str| Tally::of(block.as_bytes()).count(rule);
            // The calibration block separates all four.
            assert_eq!(
                learn(&[(calibration, n(calibration))]),
                Ok(vec![Some(rule)])
            );
            // So does a first block of SetSource and two hosts (the issue's example).
            assert_eq!(learn(&[(&two_hosts, n(&two_hosts))]), Ok(vec![Some(rule)]));
            // SetSource alone, then one host: decided over the two blocks.
            let known = learn(&[("SetSource,Q\n", n("SetSource,Q\n")), (HOST, n(HOST))]);
            assert_eq!(known.unwrap()[1], Some(rule), "{rule}");
        }
        // SetSource and one host (S = C = 1): no-setsource and no-commit both give 3.
        assert_eq!(learn(&[(&one_host, 3)]), Ok(vec![None]));
    }

    #[test]
    fn replies_that_fit_no_rule_are_refused() {
        let calibration = "SetSource,Q\nScanUpdate\nScanUpdate\n";
        let err = learn(&[(calibration, 7)]).unwrap_err();
        assert_eq!(
            err.to_string(),
            "the FMC reported 7 commands, which no known counting rule gives for this block: expected 3 (all), 2 (no-setsource), 1 (no-commit) or 0 (data-only)"
        );
    }

    #[test]
    fn later_blocks_must_fit_the_learned_rule() {
        let calibration = "SetSource,Q\nScanUpdate\nScanUpdate\n";
        let two = format!("{HOST}{HOST}");
        // (learned from the calibration reply, N for `two` (6 lines, 2 commits), verdict)
        let cases: [(u64, u64, Result<(), &str>); 7] = [
            (3, 6, Ok(())),
            (1, 4, Ok(())),
            (3, 5, Err("processed 5 commands of 6")),
            (3, 4, Err("the count of rule no-commit")),
            (3, 7, Err("more than the 6 it counts by its rule (all")),
            (1, 6, Err("the count of rule all")),
            (0, 3, Err("processed 3 commands of 4")),
        ];
        for (calibrated, n, want) in cases {
            let mut learner = Learner::default();
            learner
                .check(&Tally::of(calibration.as_bytes()), calibrated)
                .unwrap();
            let got = learner.check(&Tally::of(two.as_bytes()), n);
            match want {
                Ok(()) => assert_eq!(got, Ok(None), "{calibrated} {n}"),
                Err(text) => {
                    let e = got.unwrap_err().to_string();
                    assert!(e.contains(text), "{calibrated} {n}: {e}");
                }
            }
        }
    }
}
