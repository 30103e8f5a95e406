//! Strict validation of a Host Input command file (host-input.md §4), for the `csv`
//! plugin: a file written earlier with `-csvfile` (and perhaps reviewed or edited by
//! hand) is checked line by line before anything is sent, because the FMC silently
//! discards lines it cannot parse. Any bad line stops the run before the first byte goes
//! out.
//!
//! The file is read twice, streaming: once to validate, once to send, so memory does not
//! grow with its size.

use std::io::{self, BufRead, BufReader};
use std::net::IpAddr;
use std::path::{Path, PathBuf};

/// What a valid line is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LineKind {
    /// Blank or `#` comment: not sent.
    Skip,
    SetSource,
    /// A command about one host (AddHost, AddScanResult, DeleteHost, SetAttributeValue).
    Host(IpAddr),
    /// ScanFlush or ScanUpdate: closes a block of host commands.
    Commit,
}

/// Checks one line (without its newline).
pub fn check_line(line: &str) -> Result<LineKind, String> {
    if line.trim().is_empty() || line.starts_with('#') {
        return Ok(LineKind::Skip);
    }
    if !line.is_ascii() {
        return Err("contains non-ASCII characters".into());
    }
    if line.contains('\r') {
        return Err("contains a carriage return (CRLF line endings?)".into());
    }
    // The report path never writes control characters (commands.rs turns tabs into
    // spaces and drops the rest); a NUL or escape inside a field would reach the FMC,
    // which ends or garbles the field there.
    if let Some((column, byte)) = line.bytes().enumerate().find(|(_, b)| b.is_ascii_control()) {
        return Err(format!(
            "contains the control character {} at column {}; remove it (the FMC would cut or garble the field)",
            control_name(byte),
            column + 1
        ));
    }
    let (command, rest) = line.split_once(',').unwrap_or((line, ""));
    match command {
        "ScanFlush" | "ScanUpdate" => {
            if line.len() == command.len() {
                Ok(LineKind::Commit)
            } else {
                Err(format!("{command} takes no fields"))
            }
        }
        "SetSource" => {
            if rest.is_empty() || rest.contains(['"', ',']) {
                Err("SetSource needs one source name without quotes or commas".into())
            } else {
                Ok(LineKind::SetSource)
            }
        }
        "AddHost" => {
            let mut fields = rest.split(',');
            let ip = ip_field(fields.next())?;
            if let Some(mac) = fields.next()
                && !is_mac(mac)
            {
                return Err(format!("AddHost: {mac:?} is not a MAC address"));
            }
            if fields.next().is_some() {
                return Err("AddHost takes an IP address and an optional MAC address".into());
            }
            Ok(LineKind::Host(ip))
        }
        "DeleteHost" => {
            if rest.contains(',') {
                return Err("DeleteHost takes one IP address".into());
            }
            Ok(LineKind::Host(ip_field(Some(rest))?))
        }
        "SetAttributeValue" => {
            let fields: Vec<&str> = rest.split(',').collect();
            if fields.len() != 3 || fields[1].is_empty() {
                return Err(
                    "SetAttributeValue takes an IP address, an attribute and a value".into(),
                );
            }
            Ok(LineKind::Host(ip_field(Some(fields[0]))?))
        }
        "AddScanResult" => check_scan_result(rest),
        other => Err(format!("unknown command {other:?}")),
    }
}

/// How a control byte is named in messages: `NUL (0x00)`, `tab (0x09)`, `0x1b`.
fn control_name(byte: u8) -> String {
    match byte {
        0 => "NUL (0x00)".into(),
        b'\t' => "tab (0x09)".into(),
        0x7f => "DEL (0x7f)".into(),
        b => format!("0x{b:02x}"),
    }
}

fn check_scan_result(rest: &str) -> Result<LineKind, String> {
    let fields: Vec<&str> = rest.split(',').collect();
    if fields.len() != 9 {
        return Err(format!(
            "AddScanResult needs 10 fields, found {} (a comma inside a text field?)",
            fields.len() + 1
        ));
    }
    let ip = ip_field(Some(fields[0]))?;
    quoted(fields[1], "scanner_id", "")?;
    // An empty vuln_id is a generic result (host-input.md §4): no port, no IDs.
    let generic = fields[2].is_empty();
    if !generic {
        fields[2]
            .parse::<u32>()
            .map_err(|_| format!("vuln_id {:?} is not a number", fields[2]))?;
    }
    match (fields[3], fields[4]) {
        (port, proto) if generic && !(port.is_empty() && proto.is_empty()) => {
            return Err(format!(
                "a generic result (empty vuln_id) has no port or protocol, found {port:?},{proto:?}"
            ));
        }
        ("", "") => {}
        (port, proto) => {
            match port.parse::<u16>() {
                Ok(p) if p > 0 => {}
                _ => return Err(format!("port {port:?} is not a port number (1-65535)")),
            }
            if proto != "6" && proto != "17" {
                return Err(format!(
                    "protocol {proto:?} must be 6 (tcp) or 17 (udp) with a port"
                ));
            }
        }
    }
    quoted(fields[5], "name", "")?;
    quoted(fields[6], "description", "")?;
    quoted(fields[7], "cve_ids", "cve_ids: ")?;
    quoted(fields[8], "bugtraq_ids", "bugtraq_ids: ")?;
    let no_ids = |field: &str, prefix: &str| {
        field
            .trim_matches('"')
            .strip_prefix(prefix)
            .is_some_and(|ids| ids.trim().is_empty())
    };
    if generic && !(no_ids(fields[7], "cve_ids: ") && no_ids(fields[8], "bugtraq_ids: ")) {
        return Err("a generic result (empty vuln_id) has no CVE or Bugtraq IDs".into());
    }
    Ok(LineKind::Host(ip))
}

fn ip_field(field: Option<&str>) -> Result<IpAddr, String> {
    let field = field.unwrap_or("");
    field
        .parse()
        .map_err(|_| format!("{field:?} is not an IP address"))
}

fn quoted(field: &str, name: &str, prefix: &str) -> Result<(), String> {
    let inner = field
        .strip_prefix('"')
        .and_then(|f| f.strip_suffix('"'))
        .ok_or_else(|| format!("{name} must be in double quotes"))?;
    if inner.contains('"') {
        return Err(format!("{name} contains a double quote"));
    }
    if !inner.starts_with(prefix) {
        return Err(format!("{name} must start with {prefix:?}"));
    }
    Ok(())
}

fn is_mac(s: &str) -> bool {
    let parts: Vec<&str> = s.split(':').collect();
    parts.len() == 6
        && parts
            .iter()
            .all(|p| p.len() == 2 && p.bytes().all(|b| b.is_ascii_hexdigit()))
}

/// A bad command file: every bad line (up to a limit) with its number.
#[derive(Debug, thiserror::Error)]
pub enum CommandFileError {
    #[error("cannot read command file {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("{path}: {count} invalid lines, nothing was sent:\n{lines}", lines = .lines.join("\n"))]
    Invalid {
        path: PathBuf,
        count: u64,
        lines: Vec<String>,
    },
}

const REPORTED_LINES: usize = 20;

/// Summary of a valid command file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checked {
    /// The SetSource line, with its newline.
    pub source_line: String,
    pub commands: u64,
    pub chunks: u64,
}

/// Pass one: validates the whole file. The stream must start with SetSource, and every
/// host command must be followed by a ScanFlush/ScanUpdate before the end.
pub fn check_file(path: &Path) -> Result<Checked, CommandFileError> {
    let io_err = |source| CommandFileError::Io {
        path: path.to_path_buf(),
        source,
    };
    // Only a regular file: a FIFO or device is refused instead of waited on.
    let reader = BufReader::new(crate::files::open_input(path).map_err(io_err)?);
    let mut bad = Vec::new();
    let mut count = 0u64;
    let mut source_line = None;
    let mut commands = 0u64;
    let mut chunks = 0u64;
    let mut open_chunk = false;
    let report = |number: u64, message: String, bad: &mut Vec<String>, count: &mut u64| {
        *count += 1;
        if bad.len() < REPORTED_LINES {
            bad.push(format!("  line {number}: {message}"));
        }
    };
    let mut number = 0u64;
    for line in reader.split(b'\n') {
        number += 1;
        let line = line.map_err(io_err)?;
        let Ok(text) = std::str::from_utf8(&line) else {
            report(number, "not valid UTF-8 text".into(), &mut bad, &mut count);
            continue;
        };
        match check_line(text) {
            Ok(LineKind::Skip) => {}
            Ok(LineKind::SetSource) => {
                if commands == 0 {
                    source_line = Some(format!("{text}\n"));
                } else {
                    report(
                        number,
                        "SetSource may only be the first command".into(),
                        &mut bad,
                        &mut count,
                    );
                }
                commands += 1;
            }
            Ok(kind) => {
                if commands == 0 {
                    report(
                        number,
                        "the stream must start with SetSource".into(),
                        &mut bad,
                        &mut count,
                    );
                }
                commands += 1;
                match kind {
                    LineKind::Commit => {
                        if open_chunk {
                            chunks += 1;
                        }
                        open_chunk = false;
                    }
                    _ => open_chunk = true,
                }
            }
            Err(message) => report(number, message, &mut bad, &mut count),
        }
    }
    if open_chunk {
        report(
            number,
            "the file ends with host commands not followed by ScanFlush or ScanUpdate".into(),
            &mut bad,
            &mut count,
        );
    }
    match source_line {
        Some(source_line) if count == 0 => Ok(Checked {
            source_line,
            commands,
            chunks,
        }),
        None if count == 0 => Err(CommandFileError::Invalid {
            path: path.to_path_buf(),
            count: 1,
            lines: vec!["  the file holds no SetSource line (is it a command file?)".into()],
        }),
        _ => {
            if count as usize > bad.len() {
                bad.push(format!("  ... and {} more", count as usize - bad.len()));
            }
            Err(CommandFileError::Invalid {
                path: path.to_path_buf(),
                count,
                lines: bad,
            })
        }
    }
}

/// Pass two: calls `chunk` with each run of host commands up to and including its
/// ScanFlush/ScanUpdate, with the first IP address in it, the number of commands and of
/// AddScanResult lines. Only call after `check_file` succeeded.
pub fn for_each_chunk(
    path: &Path,
    mut chunk: impl FnMut(IpAddr, &[u8], usize, usize) -> Result<(), String>,
) -> Result<(), String> {
    let reader = BufReader::new(
        crate::files::open_input(path)
            .map_err(|e| format!("cannot read {}: {e}", path.display()))?,
    );
    let mut buf = Vec::new();
    let mut first_ip = None;
    let mut commands = 0;
    let mut findings = 0;
    for line in reader.split(b'\n') {
        let line = line.map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        let text = String::from_utf8_lossy(&line);
        match check_line(&text) {
            Ok(LineKind::Host(ip)) => {
                first_ip.get_or_insert(ip);
                if text.starts_with("AddScanResult,") {
                    findings += 1;
                }
            }
            Ok(LineKind::Commit) => {}
            Ok(LineKind::Skip | LineKind::SetSource) => continue,
            Err(e) => {
                return Err(format!(
                    "{}: changed since it was checked: {e}",
                    path.display()
                ));
            }
        }
        buf.extend_from_slice(&line);
        buf.push(b'\n');
        commands += 1;
        if text.starts_with("ScanFlush") || text.starts_with("ScanUpdate") {
            if let Some(ip) = first_ip.take() {
                chunk(ip, &buf, commands, findings)?;
            }
            buf.clear();
            commands = 0;
            findings = 0;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines() {
        let ok = |s: &str| check_line(s).unwrap_or_else(|e| panic!("{s}: {e}"));
        let ip = |s: &str| LineKind::Host(s.parse().unwrap());
        let good = [
            ("SetSource,QualysGuard", LineKind::SetSource),
            ("AddHost,192.0.2.10", ip("192.0.2.10")),
            ("AddHost,192.0.2.10,00:1a:2B:3c:4d:5e", ip("192.0.2.10")),
            ("DeleteHost,2001:db8::1", ip("2001:db8::1")),
            (
                "SetAttributeValue,192.0.2.1,Criticality,High",
                ip("192.0.2.1"),
            ),
            (
                "AddScanResult,192.0.2.10,\"QualysGuard\",38170,443,6,\"SSL\",\"desc\",\"cve_ids: \",\"bugtraq_ids: \"",
                ip("192.0.2.10"),
            ),
            (
                "AddScanResult,2001:db8::20,\"Q\",82003,,,\"\",\"\",\"cve_ids: CVE-1999-0524\",\"bugtraq_ids: 1 2\"",
                ip("2001:db8::20"),
            ),
            (
                "AddScanResult,192.0.2.7,\"QualysGuard\",,,,\"No open Qualys findings\",\"\",\"cve_ids: \",\"bugtraq_ids: \"",
                ip("192.0.2.7"),
            ),
            ("ScanFlush", LineKind::Commit),
            ("ScanUpdate", LineKind::Commit),
            ("# a comment", LineKind::Skip),
            ("", LineKind::Skip),
        ];
        for (line, want) in good {
            assert_eq!(ok(line), want, "{line}");
        }
        let bad = [
            (
                "AddScanResult,192.0.2.10,\"Q\",1,443,6,\"a,b\",\"d\",\"cve_ids: \",\"bugtraq_ids: \"",
                "needs 10 fields, found 11",
            ),
            (
                "AddScanResult,192.0.2.999,\"Q\",1,,,\"a\",\"d\",\"cve_ids: \",\"bugtraq_ids: \"",
                "not an IP address",
            ),
            (
                "AddScanResult,192.0.2.1,\"Q\",x1,,,\"a\",\"d\",\"cve_ids: \",\"bugtraq_ids: \"",
                "vuln_id \"x1\"",
            ),
            (
                "AddScanResult,192.0.2.1,\"Q\",1,70000,6,\"a\",\"d\",\"cve_ids: \",\"bugtraq_ids: \"",
                "port \"70000\"",
            ),
            (
                "AddScanResult,192.0.2.1,\"Q\",1,80,,\"a\",\"d\",\"cve_ids: \",\"bugtraq_ids: \"",
                "protocol \"\"",
            ),
            (
                "AddScanResult,192.0.2.1,\"Q\",1,,6,\"a\",\"d\",\"cve_ids: \",\"bugtraq_ids: \"",
                "port \"\"",
            ),
            (
                "AddScanResult,192.0.2.1,Q,1,,,\"a\",\"d\",\"cve_ids: \",\"bugtraq_ids: \"",
                "scanner_id must be in double quotes",
            ),
            (
                "AddScanResult,192.0.2.1,\"Q\",1,,,\"a\"b\",\"d\",\"cve_ids: \",\"bugtraq_ids: \"",
                "name contains a double quote",
            ),
            (
                "AddScanResult,192.0.2.1,\"Q\",1,,,\"a\",\"d\",\"CVE-1\",\"bugtraq_ids: \"",
                "must start with \"cve_ids: \"",
            ),
            (
                "AddScanResult,192.0.2.1,\"Q\",1,,,\"caf\u{e9}\",\"d\",\"cve_ids: \",\"bugtraq_ids: \"",
                "non-ASCII",
            ),
            (
                "AddScanResult,192.0.2.1,\"Q\",,80,6,\"a\",\"d\",\"cve_ids: \",\"bugtraq_ids: \"",
                "generic result (empty vuln_id) has no port",
            ),
            (
                "AddScanResult,192.0.2.1,\"Q\",,,,\"a\",\"d\",\"cve_ids: CVE-2014-0160\",\"bugtraq_ids: \"",
                "has no CVE or Bugtraq IDs",
            ),
            ("ScanFlush,now", "takes no fields"),
            ("ScanFlush\r", "carriage return"),
            (
                "SetSource,Qualys\u{0}Guard",
                "control character NUL (0x00) at column 17",
            ),
            ("AddHost,192.0.2.1\t", "control character tab (0x09)"),
            (
                "AddScanResult,192.0.2.1,\"Q\",1,,,\"a\u{1b}[31m\",\"d\",\"cve_ids: \",\"bugtraq_ids: \"",
                "control character 0x1b at column 35",
            ),
            ("ScanFlush\u{7f}", "DEL (0x7f)"),
            ("AddHost,192.0.2.1,zz", "not a MAC address"),
            ("AddHost,host.example", "not an IP address"),
            ("Frobnicate,1", "unknown command \"Frobnicate\""),
            ("SetSource,", "SetSource needs one source name"),
        ];
        for (line, want) in bad {
            let err = check_line(line).unwrap_err();
            assert!(err.contains(want), "{line}: {err}");
        }
    }

    fn file(text: &str) -> (tempfile::TempDir, PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("Output.csv");
        std::fs::write(&path, text).unwrap();
        (dir, path)
    }

    #[test]
    fn whole_files() {
        let good = "SetSource,QualysGuard\nAddHost,192.0.2.1\nAddScanResult,192.0.2.1,\"Q\",1,,,\"a\",\"d\",\"cve_ids: \",\"bugtraq_ids: \"\nScanFlush\n# note\nAddScanResult,192.0.2.2,\"Q\",2,22,6,\"a\",\"d\",\"cve_ids: \",\"bugtraq_ids: \"\nScanFlush\n";
        let (_d, path) = file(good);
        let checked = check_file(&path).unwrap();
        assert_eq!(checked.source_line, "SetSource,QualysGuard\n");
        assert_eq!((checked.commands, checked.chunks), (6, 2));
        let mut chunks = Vec::new();
        for_each_chunk(&path, |ip, bytes, commands, findings| {
            chunks.push((
                ip.to_string(),
                String::from_utf8_lossy(bytes).into_owned(),
                commands,
                findings,
            ));
            Ok(())
        })
        .unwrap();
        assert_eq!(chunks.len(), 2);
        assert_eq!(chunks[0].0, "192.0.2.1");
        assert_eq!((chunks[0].2, chunks[0].3), (3, 1));
        assert!(chunks[1].1.starts_with("AddScanResult,192.0.2.2,"));

        let cases = [
            (
                "AddHost,192.0.2.1\nScanFlush\n",
                "line 1: the stream must start with SetSource",
            ),
            (
                "SetSource,Q\nAddHost,192.0.2.1\n",
                "line 2: the file ends with host commands",
            ),
            (
                "SetSource,Q\nScanFlush\nSetSource,Q\n",
                "line 3: SetSource may only be the first",
            ),
            (
                "SetSource,Q\nAddHost,x\nAddHost,y\nScanFlush\n",
                "2 invalid lines",
            ),
            ("hello\n", "line 1: unknown command"),
            (
                "SetSource,Q\nAddHost,192.0.2.1\nAddScanResult,192.0.2.1,\"Q\",1,,,\"a\0b\",\"d\",\"cve_ids: \",\"bugtraq_ids: \"\nScanFlush\n",
                "line 3: contains the control character NUL",
            ),
            ("", "no SetSource line"),
        ];
        for (text, want) in cases {
            let (_d, path) = file(text);
            let err = check_file(&path).unwrap_err().to_string();
            assert!(err.contains(want), "{text:?}: {err}");
            assert!(err.contains("Output.csv"), "{err}");
        }
    }

    #[test]
    fn many_bad_lines_are_summarised() {
        let mut text = String::from("SetSource,Q\n");
        for _ in 0..50 {
            text.push_str("AddHost,bad\n");
        }
        text.push_str("ScanFlush\n");
        let (_d, path) = file(&text);
        let err = check_file(&path).unwrap_err().to_string();
        assert!(err.contains("50 invalid lines"), "{err}");
        assert!(err.contains("... and 30 more"), "{err}");
        assert_eq!(err.matches("  line ").count(), 20);
    }
}
