//! What to do about a Qualys error (qualys.md §3, the guide's Troubleshooting): one table
//! of hints by CODE and HTTP status, shared by a failed download and by `-report` of a
//! saved error document, so both say the same thing.

/// What is known about a Qualys error, for choosing its hint.
#[derive(Debug, Clone, Copy, Default)]
pub struct Facts<'a> {
    /// CODE of SIMPLE_RETURN, `number` of GENERIC_RETURN's RETURN or SCAN's ERROR.
    pub code: Option<&'a str>,
    /// The HTTP status it came with (`None` for a file).
    pub status: Option<u16>,
    /// TEXT and ITEM_LIST values, searched for known phrases.
    pub texts: &'a [&'a str],
    /// The API limits as last stated (409 answers), to say when to run again.
    pub limits: Limits,
}

/// The limit headers of the last answer (qualys.md §3), when it carried them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Limits {
    /// `X-RateLimit-ToWait-Sec` or `X-Concurrency-Limit-ToWait-Sec`, or the seconds the
    /// TEXT asks to wait.
    pub to_wait_sec: Option<u64>,
    /// `X-RateLimit-Window-Sec`.
    pub window_sec: Option<u64>,
    /// `X-RateLimit-Limit`: calls allowed per window.
    pub calls: Option<u64>,
}

const BAD_LOGIN: &str = "check user_id and password in the YAML file; put a password with punctuation in single quotes, e.g. password: 'p@ss,w0rd'; check that url names your account's platform (each Qualys platform has its own API host, e.g. https://qualysapi.qg2.apps.qualys.eu)";

/// The hint for a Qualys error, when there is something specific to say.
pub fn hint(facts: &Facts<'_>) -> Option<String> {
    let mentions = |needle: &str| {
        facts
            .texts
            .iter()
            .any(|t| t.to_ascii_lowercase().contains(needle))
    };
    let by_code = match facts.code {
        // 2000 is what the EU platforms answer a bad login with (HTTP 401).
        Some("2010" | "2000") => Some(BAD_LOGIN.to_string()),
        Some("999") if mentions("invalid report") => Some("check template_id: log into Qualys, open Report Templates and read the ID from the template's Info link".into()),
        Some("2001") => Some("the Qualys account has expired: contact your Qualys administrator".into()),
        Some("2007") => Some("this host's address is not in the account's secure IP list: ask your Qualys administrator to add it".into()),
        Some("1960" | "1965") => Some(limits_hint(facts.code, &facts.limits)),
        // SIMPLE_RETURN's four-digit parameter codes, not the scan API's 19001.
        Some(c) if c.len() == 4 && c.starts_with("19") => Some("a request parameter was refused: check template_id and api_path".into()),
        _ => None,
    };
    by_code.or_else(|| match facts.status {
        // The credentials are wrong whatever the document says (qualys.md §3).
        Some(401) => Some(BAD_LOGIN.to_string()),
        Some(409) => Some(limits_hint(None, &facts.limits)),
        _ => None,
    })
}

/// The API limits were hit and the retries ran out: say which limit and when to run
/// again, from the last ToWait and window values when the answer gave them.
fn limits_hint(code: Option<&str>, limits: &Limits) -> String {
    let which = match code {
        Some("1960") => "the subscription's limit of concurrent API calls was reached (CODE 1960)",
        Some("1965") => "the subscription's API rate limit was reached (CODE 1965)",
        _ => "the subscription's API limits were reached (HTTP 409)",
    };
    let window = match (limits.calls, limits.window_sec) {
        (Some(calls), Some(secs)) => format!(" (it allows {calls} calls per {secs} s)"),
        (None, Some(secs)) => format!(" (its window is {secs} s)"),
        _ => String::new(),
    };
    let when = match (limits.to_wait_sec, limits.window_sec) {
        (Some(secs), _) => format!("Qualys asked to wait {secs} s: run again after that"),
        (None, Some(secs)) => format!("run again when the {secs} s window has passed"),
        (None, None) => "run again later (a typical window is one hour)".to_string(),
    };
    format!(
        "{which}{window}; {when}; other scripts using the same Qualys account share these limits, and qualys_retries sets how often a refused call is tried again"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hints_table() {
        let limits = Limits {
            to_wait_sec: Some(37),
            window_sec: Some(3600),
            calls: Some(300),
        };
        let window_only = Limits {
            window_sec: Some(3600),
            ..Limits::default()
        };
        let facts = |code, status, texts, limits| Facts {
            code,
            status,
            texts,
            limits,
        };
        let none = Limits::default();
        let cases: [(Facts<'_>, Option<&[&str]>); 14] = [
            (
                facts(Some("2010"), None, &[], none),
                Some(&["single quotes"]),
            ),
            (
                facts(Some("2000"), Some(401), &["Bad Login/Password"], none),
                Some(&["single quotes", "platform"]),
            ),
            // A 401 keeps its hint whatever CODE the document has.
            (
                facts(Some("4711"), Some(401), &[], none),
                Some(&["password"]),
            ),
            (facts(None, Some(401), &[], none), Some(&["password"])),
            (
                facts(
                    Some("999"),
                    None,
                    &["Tried to launch invalid report."],
                    none,
                ),
                Some(&["check template_id"]),
            ),
            (facts(Some("999"), None, &["other"], none), None),
            (facts(Some("2001"), None, &[], none), Some(&["expired"])),
            (
                facts(Some("2007"), None, &[], none),
                Some(&["secure IP list"]),
            ),
            (facts(Some("1905"), None, &[], none), Some(&["parameter"])),
            (facts(Some("19001"), None, &["Scan not found"], none), None),
            (
                facts(Some("1965"), Some(409), &[], limits),
                Some(&["rate limit", "wait 37 s", "300 calls per 3600 s"]),
            ),
            (
                facts(Some("1960"), Some(409), &[], window_only),
                Some(&["concurrent", "3600 s window"]),
            ),
            (
                facts(None, Some(409), &[], none),
                Some(&["API limits", "later"]),
            ),
            (facts(None, Some(500), &[], none), None),
        ];
        for (facts, want) in cases {
            let got = hint(&facts);
            match (want, &got) {
                (Some(words), Some(h)) => {
                    for w in words {
                        assert!(h.contains(w), "{facts:?}: {h}");
                    }
                    assert!(
                        !h.contains("check template_id and api_path") || facts.code == Some("1905"),
                        "{h}"
                    );
                }
                (None, None) => {}
                _ => panic!("{facts:?}: {got:?} vs {want:?}"),
            }
        }
    }
}
