//! Strict parser for the Host Input command language (host-input.md §4): one command per
//! line, comma-separated fields, text fields in double quotes. A line that does not
//! follow the spec exactly is reported with the reason, so the simulator can count and
//! log it (the real FMC silently discards it, §4).

use std::net::IpAddr;

/// One finding of `AddScanResult` (host-input.md §4, "AddScanResult fields"), without
/// the source, which comes from the preceding `SetSource`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ScanFields {
    pub ip: IpAddr,
    pub scanner_id: String,
    pub vuln_id: u64,
    pub port: Option<u16>,
    pub proto: Option<u8>,
    pub name: String,
    pub description: String,
    pub cve_ids: Vec<String>,
    pub bugtraq_ids: Vec<String>,
}

/// A parsed command line (host-input.md §4, "Commands the connector uses").
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Command {
    SetSource(String),
    AddHost {
        ip: IpAddr,
        mac: Option<String>,
    },
    DeleteHost(IpAddr),
    AddScanResult(ScanFields),
    ScanFlush,
    ScanUpdate,
    SetAttributeValue {
        ip: IpAddr,
        attribute: String,
        value: String,
    },
}

/// What one line of a data block is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Line {
    /// Empty line: not a command, not counted.
    Blank,
    /// `#` comment: not a command, not counted.
    Comment,
    /// A command (counted in `Done processing N commands.`).
    Command(Command),
    /// A line that is meant as a command but does not parse: counted too, then
    /// discarded (or the block refused in strict mode).
    Bad(String),
}

/// Classifies and parses one line (without its `\n`).
pub fn parse_line(line: &[u8]) -> Line {
    if line.is_empty() {
        return Line::Blank;
    }
    if line.first() == Some(&b'#') {
        return Line::Comment;
    }
    match parse_command(line) {
        Ok(cmd) => Line::Command(cmd),
        Err(reason) => Line::Bad(reason),
    }
}

fn parse_command(line: &[u8]) -> Result<Command, String> {
    // §4: "Send ASCII"; "Field contents must not contain `"`, `,`, `\r` or `\n`".
    if let Some(pos) = line.iter().position(|b| !b.is_ascii()) {
        return Err(format!(
            "non-ASCII byte 0x{:02x} at column {}",
            line[pos],
            pos + 1
        ));
    }
    if line.contains(&b'\r') {
        return Err("carriage return in the line (lines end with \\n only)".into());
    }
    if line.contains(&0) {
        return Err("NUL byte in the line".into());
    }
    let text = std::str::from_utf8(line).map_err(|_| "not ASCII".to_string())?;
    let fields: Vec<&str> = text.split(',').collect();
    let name = fields[0];
    let args = &fields[1..];
    let want = |n: usize| -> Result<(), String> {
        if args.len() == n {
            Ok(())
        } else {
            Err(format!(
                "{name} takes {n} field(s) after the command, found {}",
                args.len()
            ))
        }
    };
    match name {
        "SetSource" => {
            want(1)?;
            let source = args[0];
            if source.is_empty() || source.contains('"') {
                return Err("SetSource needs a plain, non-empty source name".into());
            }
            Ok(Command::SetSource(source.to_string()))
        }
        "AddHost" => {
            if args.len() != 1 && args.len() != 2 {
                return Err(format!(
                    "AddHost takes an address and an optional MAC, found {} field(s)",
                    args.len()
                ));
            }
            let ip = ip(args[0])?;
            let mac = match args.get(1) {
                Some(m) => Some(mac(m)?),
                None => None,
            };
            Ok(Command::AddHost { ip, mac })
        }
        "DeleteHost" => {
            want(1)?;
            Ok(Command::DeleteHost(ip(args[0])?))
        }
        "AddScanResult" => {
            want(9)?;
            add_scan_result(args).map(Command::AddScanResult)
        }
        "ScanFlush" => {
            want(0)?;
            Ok(Command::ScanFlush)
        }
        "ScanUpdate" => {
            want(0)?;
            Ok(Command::ScanUpdate)
        }
        "SetAttributeValue" => {
            want(3)?;
            let ip = ip(args[0])?;
            let attribute = maybe_quoted(args[1], "attribute")?;
            if attribute.is_empty() {
                return Err("SetAttributeValue needs an attribute name".into());
            }
            let value = maybe_quoted(args[2], "value")?;
            Ok(Command::SetAttributeValue {
                ip,
                attribute,
                value,
            })
        }
        other => Err(format!("unknown command {other:?}")),
    }
}

fn add_scan_result(f: &[&str]) -> Result<ScanFields, String> {
    let ip = ip(f[0])?;
    let scanner_id = quoted(f[1], "scanner_id")?;
    if scanner_id.is_empty() {
        return Err("scanner_id is empty".into());
    }
    let vuln_id = decimal(f[2], "vuln_id")?;
    let port = if f[3].is_empty() {
        None
    } else {
        let p = decimal(f[3], "port")?;
        match u16::try_from(p) {
            Ok(p) if p >= 1 => Some(p),
            _ => return Err(format!("port {p} is not in 1-65535")),
        }
    };
    let proto = match f[4] {
        "" => None,
        "6" => Some(6),
        "17" => Some(17),
        other => return Err(format!("proto {other:?} is not 6, 17 or empty")),
    };
    if port.is_some() != proto.is_some() {
        return Err("port and proto must be both set or both empty".into());
    }
    let name = quoted(f[5], "name")?;
    let description = quoted(f[6], "description")?;
    let cve_ids = id_list(f[7], "cve_ids: ", is_cve)?;
    let bugtraq_ids = id_list(f[8], "bugtraq_ids: ", |s| {
        s.bytes().all(|b| b.is_ascii_digit())
    })?;
    Ok(ScanFields {
        ip,
        scanner_id,
        vuln_id,
        port,
        proto,
        name,
        description,
        cve_ids,
        bugtraq_ids,
    })
}

fn ip(field: &str) -> Result<IpAddr, String> {
    field
        .parse()
        .map_err(|_| format!("{field:?} is not an IPv4 or IPv6 address"))
}

fn mac(field: &str) -> Result<String, String> {
    let parts: Vec<&str> = field.split(':').collect();
    let ok = parts.len() == 6
        && parts
            .iter()
            .all(|p| p.len() == 2 && p.bytes().all(|b| b.is_ascii_hexdigit()));
    if ok {
        Ok(field.to_ascii_lowercase())
    } else {
        Err(format!(
            "{field:?} is not a MAC address (xx:xx:xx:xx:xx:xx)"
        ))
    }
}

/// A canonical non-negative decimal: digits only, no sign, no leading zero.
fn decimal(field: &str, what: &str) -> Result<u64, String> {
    let canonical = !field.is_empty()
        && field.bytes().all(|b| b.is_ascii_digit())
        && (field == "0" || !field.starts_with('0'));
    if !canonical {
        return Err(format!("{what} {field:?} is not a decimal integer"));
    }
    field
        .parse()
        .map_err(|_| format!("{what} {field:?} is out of range"))
}

/// A text field: `"..."` with no `"` inside (§4).
fn quoted(field: &str, what: &str) -> Result<String, String> {
    match field
        .strip_prefix('"')
        .and_then(|rest| rest.strip_suffix('"'))
    {
        Some(inner) if !inner.contains('"') => Ok(inner.to_string()),
        _ => Err(format!(
            "{what} {field:?} is not a double-quoted text field"
        )),
    }
}

/// SetAttributeValue's fields: the spec does not say whether they are quoted.
fn maybe_quoted(field: &str, what: &str) -> Result<String, String> {
    if field.starts_with('"') {
        quoted(field, what)
    } else if field.contains('"') {
        Err(format!("{what} {field:?} has a stray double quote"))
    } else {
        Ok(field.to_string())
    }
}

/// `"cve_ids: CVE-1 CVE-2"`: a literal prefix, then space-separated IDs (§4).
fn id_list(field: &str, prefix: &str, valid: impl Fn(&str) -> bool) -> Result<Vec<String>, String> {
    let what = prefix.trim_end_matches([':', ' ']);
    let inner = quoted(field, what)?;
    let Some(rest) = inner.strip_prefix(prefix) else {
        return Err(format!(
            "{what} field {field:?} does not start with {prefix:?}"
        ));
    };
    let ids: Vec<String> = rest
        .split(' ')
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .collect();
    if let Some(bad) = ids.iter().find(|id| !valid(id)) {
        return Err(format!("{what}: {bad:?} is not a valid ID"));
    }
    Ok(ids)
}

/// `CVE-YYYY-NNNN…` (at least four digits in the sequence number).
fn is_cve(id: &str) -> bool {
    let Some(rest) = id.strip_prefix("CVE-") else {
        return false;
    };
    let Some((year, seq)) = rest.split_once('-') else {
        return false;
    };
    year.len() == 4
        && year.bytes().all(|b| b.is_ascii_digit())
        && seq.len() >= 4
        && seq.bytes().all(|b| b.is_ascii_digit())
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"AddScanResult,192.0.2.10,"QualysGuard",38170,443,6,"SSL Certificate","The certificate's name.","cve_ids: CVE-2014-0160 CVE-2014-0346","bugtraq_ids: 66690""#;

    #[test]
    fn parses_good_lines() {
        let Line::Command(Command::AddScanResult(r)) = parse_line(GOOD.as_bytes()) else {
            panic!("not parsed");
        };
        assert_eq!(r.vuln_id, 38170);
        assert_eq!(r.port, Some(443));
        assert_eq!(r.proto, Some(6));
        assert_eq!(r.cve_ids, vec!["CVE-2014-0160", "CVE-2014-0346"]);
        assert_eq!(r.bugtraq_ids, vec!["66690"]);
        assert_eq!(r.description, "The certificate's name.");

        let cases: Vec<(&str, Line)> = vec![
            ("", Line::Blank),
            ("# SetSource,X", Line::Comment),
            (
                "SetSource,QualysGuard",
                Line::Command(Command::SetSource("QualysGuard".into())),
            ),
            (
                "AddHost,192.0.2.1",
                Line::Command(Command::AddHost {
                    ip: "192.0.2.1".parse().unwrap(),
                    mac: None,
                }),
            ),
            (
                "AddHost,2001:db8::1,00:1A:2b:3c:4d:5e",
                Line::Command(Command::AddHost {
                    ip: "2001:db8::1".parse().unwrap(),
                    mac: Some("00:1a:2b:3c:4d:5e".into()),
                }),
            ),
            (
                "DeleteHost,192.0.2.1",
                Line::Command(Command::DeleteHost("192.0.2.1".parse().unwrap())),
            ),
            ("ScanFlush", Line::Command(Command::ScanFlush)),
            ("ScanUpdate", Line::Command(Command::ScanUpdate)),
            (
                "SetAttributeValue,192.0.2.1,\"Host Criticality\",High",
                Line::Command(Command::SetAttributeValue {
                    ip: "192.0.2.1".parse().unwrap(),
                    attribute: "Host Criticality".into(),
                    value: "High".into(),
                }),
            ),
        ];
        for (line, want) in cases {
            assert_eq!(parse_line(line.as_bytes()), want, "{line}");
        }
        let no_port = r#"AddScanResult,192.0.2.10,"QualysGuard",82003,,,"ICMP","x","cve_ids: ","bugtraq_ids: ""#;
        assert!(matches!(parse_line(no_port.as_bytes()), Line::Command(_)));
    }

    #[test]
    fn rejects_bad_lines() {
        let r = |fields: [&str; 9]| format!("AddScanResult,{}", fields.join(","));
        let base = [
            "192.0.2.10",
            "\"QualysGuard\"",
            "38170",
            "443",
            "6",
            "\"Name\"",
            "\"Desc\"",
            "\"cve_ids: \"",
            "\"bugtraq_ids: \"",
        ];
        let with = |i: usize, v: &str| {
            let mut f = base;
            f[i] = v;
            r(f)
        };
        assert!(matches!(parse_line(r(base).as_bytes()), Line::Command(_)));
        let bad: Vec<String> = vec![
            with(0, "192.0.2.300"),
            with(0, "host.example"),
            with(1, "QualysGuard"),
            with(1, "\"\""),
            with(2, "-1"),
            with(2, "12a"),
            with(2, "0123"),
            with(3, "0"),
            with(3, "65536"),
            with(3, ""),
            with(4, "7"),
            with(4, ""),
            with(5, "Name"),
            with(5, "\"Na\"me\""),
            with(7, "\"CVE-2014-0160\""),
            with(7, "\"cve_ids:CVE-2014-0160\""),
            with(7, "\"cve_ids: CVE-14-1\""),
            with(8, "\"bugtraq_ids: abc\""),
            format!("{},extra", r(base)),
            r(base).replacen(",\"Desc\"", "", 1),
            format!("{}\r", r(base)),
            r(base).replace("Desc", "Dés"),
            "ScanFlush,".into(),
            "scanflush".into(),
            "SetSource".into(),
            "SetSource,".into(),
            "SetSource,\"Q\"".into(),
            "AddHost".into(),
            "AddHost,192.0.2.1,zz:zz:zz:zz:zz:zz".into(),
            "AddHost, 192.0.2.1".into(),
            "Frobnicate,1".into(),
            " ".into(),
        ];
        for line in bad {
            assert!(
                matches!(parse_line(line.as_bytes()), Line::Bad(_)),
                "should not parse: {line}"
            );
        }
        let Line::Bad(reason) = parse_line("AddScanResult,1.2.3.4".as_bytes()) else {
            panic!()
        };
        assert!(reason.contains("9 field"), "{reason}");
    }
}
