//! The neutral data model between the Qualys side (which produces it) and the Host Input
//! side (which consumes it). Neither `qualys` nor `hostinput` imports the other; both
//! speak these types.

use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

/// Qualys finding TYPE (qualys.md §5): Vuln = confirmed, Practice = potential,
/// Ig = information gathered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum FindingType {
    Vuln,
    Practice,
    Ig,
}

impl FindingType {
    pub const ALL: [FindingType; 3] = [FindingType::Vuln, FindingType::Practice, FindingType::Ig];

    pub fn as_str(self) -> &'static str {
        match self {
            FindingType::Vuln => "Vuln",
            FindingType::Practice => "Practice",
            FindingType::Ig => "Ig",
        }
    }

    pub fn index(self) -> usize {
        self as usize
    }
}

impl fmt::Display for FindingType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for FindingType {
    type Err = String;

    /// Case-insensitive; "Potential" and "Information" are accepted as the names the
    /// Qualys UI shows for Practice and Ig.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "vuln" | "confirmed" => Ok(FindingType::Vuln),
            "practice" | "potential" => Ok(FindingType::Practice),
            "ig" | "information" | "info" => Ok(FindingType::Ig),
            other => Err(format!(
                "unknown finding type '{other}' (expected Vuln, Practice or Ig)"
            )),
        }
    }
}

/// Transport protocol of a finding's port. Host Input wants the IP protocol number
/// (host-input.md §4: 6 tcp, 17 udp).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Protocol {
    Tcp,
    Udp,
}

impl Protocol {
    pub fn number(self) -> u8 {
        match self {
            Protocol::Tcp => 6,
            Protocol::Udp => 17,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Protocol::Tcp => "tcp",
            Protocol::Udp => "udp",
        }
    }

    /// `tcp` or `udp` in any case, spaces around allowed; anything else is none (the
    /// report's PROTOCOL and the detection's alike).
    pub fn parse(text: &str) -> Option<Protocol> {
        match text.trim().to_ascii_lowercase().as_str() {
            "tcp" => Some(Protocol::Tcp),
            "udp" => Some(Protocol::Udp),
            _ => None,
        }
    }
}

/// Qualys VULN_STATUS. `Fixed` findings are no longer present and are not sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum VulnStatus {
    New,
    Active,
    ReOpened,
    Fixed,
    /// No VULN_STATUS element (older templates do not include it).
    Unknown,
}

impl VulnStatus {
    /// A report's VULN_STATUS or a detection's STATUS, in any case: empty is `Unknown`,
    /// a word that is no status is none.
    pub fn parse(text: &str) -> Option<VulnStatus> {
        match text.trim().to_ascii_lowercase().as_str() {
            "" => Some(VulnStatus::Unknown),
            "new" => Some(VulnStatus::New),
            "active" => Some(VulnStatus::Active),
            "re-opened" | "reopened" => Some(VulnStatus::ReOpened),
            "fixed" => Some(VulnStatus::Fixed),
            _ => None,
        }
    }
}

/// One finding on one host, as the report states it. Details that live in the glossary
/// (title, description, references) are joined later by QID.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Finding {
    pub qid: u32,
    pub kind: FindingType,
    /// `None` for host-level findings; when present, 1..=65535.
    pub port: Option<u16>,
    /// Present exactly when `port` is.
    pub protocol: Option<Protocol>,
    pub status: VulnStatus,
}

/// One host of the report with the findings kept for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Host {
    pub ip: IpAddr,
    pub findings: Vec<Finding>,
}

/// What the glossary says about one QID, already reduced to plain text.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct VulnDetails {
    pub title: String,
    /// Plain text (HTML removed, entities decoded, whitespace collapsed).
    pub description: String,
    pub cve_ids: Vec<String>,
    pub bugtraq_ids: Vec<String>,
}

/// A finding joined with its details, ready to be turned into a Host Input command.
#[derive(Debug, Clone, Copy)]
pub struct Vulnerability<'a> {
    pub finding: &'a Finding,
    /// `None` when the QID is missing from the glossary: the finding is still sent.
    pub details: Option<&'a VulnDetails>,
}

/// Length of the run at the start of `bytes` of `plain` bytes with single spaces between
/// them: text that collapsing whitespace leaves as it is. Both sides turn report text
/// into one line (HTML to text on the Qualys side, field sanitising on the Host Input
/// side) and copy such runs whole rather than a character at a time.
pub fn plain_run(bytes: &[u8], plain: impl Fn(u8) -> bool) -> usize {
    let mut n = 0;
    while let Some(&b) = bytes.get(n) {
        if plain(b) {
            n += 1;
        } else if b == b' ' && n > 0 && bytes.get(n + 1).is_some_and(|&c| plain(c)) {
            n += 2;
        } else {
            break;
        }
    }
    n
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finding_type_names() {
        let cases = [
            ("Vuln", Ok(FindingType::Vuln)),
            ("vuln", Ok(FindingType::Vuln)),
            (" Practice ", Ok(FindingType::Practice)),
            ("potential", Ok(FindingType::Practice)),
            ("IG", Ok(FindingType::Ig)),
            ("Information", Ok(FindingType::Ig)),
        ];
        for (input, want) in cases {
            assert_eq!(input.parse::<FindingType>(), want, "{input}");
        }
        assert!("Fixed".parse::<FindingType>().is_err());
    }

    #[test]
    fn plain_runs() {
        let plain = |b: u8| b.is_ascii_alphanumeric();
        let cases: [(&str, usize); 8] = [
            ("", 0),
            ("abc", 3),
            ("ab cd", 5),
            ("ab  cd", 2),
            ("ab cd ", 5),
            (" ab", 0),
            ("ab c,d", 4),
            ("ab ,", 2),
        ];
        for (text, want) in cases {
            assert_eq!(plain_run(text.as_bytes(), plain), want, "{text:?}");
        }
    }
}
