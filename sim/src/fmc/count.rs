//! How the server counts N in `Done processing N commands.` (host-input.md §3.4, §6:
//! nothing public says). The simulator can play each plausible rule, so the connector
//! can be shown to work under every one of them.

use std::fmt;
use std::str::FromStr;

use super::command::CommandRef;

/// Which processed lines of a block N counts. A line dropped by `reject_line` is never
/// counted (a client that compares N with what it sent sees it); without `strict`, an
/// unparseable line is dropped, logged, and counted as a data line under every rule.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum CountRule {
    /// Every command line.
    #[default]
    All,
    /// Every command line except `SetSource`.
    NoSetSource,
    /// Every command line except the commits, `ScanFlush` and `ScanUpdate`.
    NoCommit,
    /// Neither `SetSource` nor the commits: only the data lines.
    DataOnly,
}

impl CountRule {
    /// Every rule, in the order the flags list them.
    pub const ALL: [CountRule; 4] = [
        CountRule::All,
        CountRule::NoSetSource,
        CountRule::NoCommit,
        CountRule::DataOnly,
    ];

    /// The flag value: `all`, `no-setsource`, `no-commit`, `data-only`.
    pub fn name(self) -> &'static str {
        match self {
            CountRule::All => "all",
            CountRule::NoSetSource => "no-setsource",
            CountRule::NoCommit => "no-commit",
            CountRule::DataOnly => "data-only",
        }
    }

    /// Whether a processed command counts under this rule.
    pub(crate) fn counts(self, command: &CommandRef<'_>) -> bool {
        let source = matches!(command, CommandRef::SetSource(_));
        let commit = matches!(command, CommandRef::ScanFlush | CommandRef::ScanUpdate);
        match self {
            CountRule::All => true,
            CountRule::NoSetSource => !source,
            CountRule::NoCommit => !commit,
            CountRule::DataOnly => !source && !commit,
        }
    }
}

impl fmt::Display for CountRule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for CountRule {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        CountRule::ALL
            .into_iter()
            .find(|r| r.name() == s)
            .ok_or_else(|| format!("{s:?} is not all, no-setsource, no-commit or data-only"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rules_count_their_lines() {
        let lines = [
            CommandRef::SetSource("Q"),
            CommandRef::AddHost {
                ip: [192, 0, 2, 1].into(),
                mac: None,
            },
            CommandRef::ScanFlush,
            CommandRef::ScanUpdate,
        ];
        let cases = [
            (CountRule::All, 4),
            (CountRule::NoSetSource, 3),
            (CountRule::NoCommit, 2),
            (CountRule::DataOnly, 1),
        ];
        for (rule, want) in cases {
            let n = lines.iter().filter(|c| rule.counts(c)).count();
            assert_eq!(n, want, "{rule}");
            assert_eq!(rule.name().parse::<CountRule>(), Ok(rule));
        }
        assert!("every".parse::<CountRule>().is_err());
    }
}
