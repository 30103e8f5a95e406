//! Full or delta: what a run sends, and why (said in the log, the summary and the run
//! history). A full sync sends every host and is the only run that trusts no
//! fingerprint; a delta run sends only new and changed hosts.

use super::state::Opened;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Full,
    Delta,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Full => "full",
            Kind::Delta => "delta",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    pub kind: Kind,
    pub reason: String,
}

/// What the decision depends on.
#[derive(Debug, Clone)]
pub struct Inputs<'a> {
    /// `-full` on the command line.
    pub forced: bool,
    /// `full_sync_days` (0: never by age).
    pub full_sync_days: u32,
    pub opened: &'a Opened,
    /// The destination is new to this state.
    pub new_destination: bool,
    /// When the destination's last full sync that ended with every host confirmed
    /// started (UNIX seconds).
    pub last_full: Option<u64>,
    pub now: u64,
}

pub fn decide(i: &Inputs<'_>) -> Plan {
    let full = |reason: String| Plan {
        kind: Kind::Full,
        reason,
    };
    if i.forced {
        return full("-full was given".into());
    }
    match i.opened {
        Opened::Created => return full("there was no sync state yet".into()),
        Opened::Recovered { moved_to, .. } => {
            return full(format!(
                "the sync state could not be read (moved to {})",
                moved_to.display()
            ));
        }
        Opened::Existing => {}
    }
    if i.new_destination {
        return full("the state holds nothing for this destination yet".into());
    }
    let days = |t: u64| i.now.saturating_sub(t) / 86_400;
    match (i.last_full, i.full_sync_days) {
        (None, 0) => Plan {
            kind: Kind::Delta,
            reason: "no full sync has completed yet, and full_sync_days is 0 (never)".into(),
        },
        (None, _) => full("no full sync has completed yet".into()),
        (Some(t), n) if n > 0 && i.now.saturating_sub(t) >= u64::from(n) * 86_400 => full(format!(
            "the last complete full sync was {} days ago (full_sync_days: {n})",
            days(t)
        )),
        (Some(t), _) => Plan {
            kind: Kind::Delta,
            reason: format!(
                "the last complete full sync was {} days ago{}",
                days(t),
                match i.full_sync_days {
                    0 => " (full_sync_days: 0, never by age)".to_string(),
                    n => format!(" (full_sync_days: {n})"),
                }
            ),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decisions() {
        let now = 100 * 86_400;
        let existing = Opened::Existing;
        let recovered = Opened::Recovered {
            moved_to: "s.db.corrupt-x".into(),
            why: "not a database".into(),
        };
        // (forced, days, opened, new destination, last full, kind, words in the reason)
        let cases = [
            (true, 7, &existing, false, Some(now), Kind::Full, "-full"),
            (
                false,
                7,
                &Opened::Created,
                false,
                None,
                Kind::Full,
                "no sync state yet",
            ),
            (
                false,
                7,
                &recovered,
                false,
                Some(now),
                Kind::Full,
                "s.db.corrupt-x",
            ),
            (
                false,
                7,
                &existing,
                true,
                None,
                Kind::Full,
                "nothing for this destination",
            ),
            (
                false,
                7,
                &existing,
                false,
                None,
                Kind::Full,
                "no full sync has completed",
            ),
            (false, 0, &existing, false, None, Kind::Delta, "never"),
            (
                false,
                7,
                &existing,
                false,
                Some(now - 7 * 86_400),
                Kind::Full,
                "7 days ago",
            ),
            (
                false,
                7,
                &existing,
                false,
                Some(now - 6 * 86_400),
                Kind::Delta,
                "6 days ago",
            ),
            (
                false,
                0,
                &existing,
                false,
                Some(0),
                Kind::Delta,
                "never by age",
            ),
        ];
        for (forced, days, opened, new_destination, last_full, kind, words) in cases {
            let plan = decide(&Inputs {
                forced,
                full_sync_days: days,
                opened,
                new_destination,
                last_full,
                now,
            });
            assert_eq!(plan.kind, kind, "{plan:?}");
            assert!(plan.reason.contains(words), "{plan:?}");
        }
    }
}
