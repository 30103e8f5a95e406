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
    /// A command about the stream, not a host (`SetSourceType`, `SetMap`): before the
    /// first host command it joins the SetSource preamble every connection starts with.
    Stream,
    /// A command about one host (AddHost, AddScanResult, DeleteHost, SetOS, AddService,
    /// …), by its address; `None` for one that names the host by its MAC address only.
    Host(Option<IpAddr>),
    /// ScanFlush or ScanUpdate: closes a block of host commands.
    Commit,
}

/// Checks one line (without its newline, and without the `\r` of a CRLF ending). The
/// language is Cisco's Host Input API Guide's (host-input.md §4): fields separated by
/// commas, spaces after a comma allowed, text fields in double quotes.
pub fn check_line(line: &str) -> Result<LineKind, String> {
    if line.trim().is_empty() || line.starts_with('#') {
        return Ok(LineKind::Skip);
    }
    check_characters(line)?;
    let mut fields = line.split(',').map(|f| f.trim_matches(' '));
    let command = fields.next().unwrap_or_default();
    let args: Vec<&str> = fields.collect();
    match command {
        "ScanFlush" | "ScanUpdate" => {
            if line.trim_matches(' ') == command {
                Ok(LineKind::Commit)
            } else {
                Err(format!("{command} takes no fields"))
            }
        }
        "SetSource" => match args[..] {
            [name] if !name.is_empty() && !name.contains('"') => Ok(LineKind::SetSource),
            _ => Err("SetSource needs one source name without quotes or commas".into()),
        },
        "SetSourceType" => match args[..] {
            ["2" | "3"] => Ok(LineKind::Stream),
            _ => Err("SetSourceType takes 2 (scanner) or 3 (application)".into()),
        },
        "SetMap" => match args[..] {
            [name] if !name.is_empty() => Ok(LineKind::Stream),
            _ => Err("SetMap takes the name of a product map set".into()),
        },
        "AddScanResult" => check_scan_result(&args),
        _ => check_host_command(command, &args),
    }
}

/// ASCII only, no carriage return inside the line, no control characters.
fn check_characters(line: &str) -> Result<(), String> {
    if !line.is_ascii() {
        return Err("contains non-ASCII characters".into());
    }
    if line.contains('\r') {
        return Err("contains a carriage return inside the line".into());
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
    Ok(())
}

/// The other commands about one host (host-input.md §4, both tables).
fn check_host_command(command: &str, args: &[&str]) -> Result<LineKind, String> {
    match command {
        "AddHost" | "DeleteHost" => {
            if args.is_empty() || args.len() > 2 {
                return Err(format!(
                    "{command} takes an IP address and an optional MAC address"
                ));
            }
            let ip = optional_ip(args[0])?;
            let mac = args.get(1).copied().unwrap_or_default();
            if !mac.is_empty() && !is_mac(mac) {
                return Err(format!("{command}: {mac:?} is not a MAC address"));
            }
            if ip.is_none() && mac.is_empty() {
                return Err(format!("{command} needs an IP address or a MAC address"));
            }
            Ok(LineKind::Host(ip))
        }
        "SetAttributeValue" => match args {
            [ip, attribute, _value] if !attribute.is_empty() => host(ip),
            _ => Err("SetAttributeValue takes an IP address, an attribute and a value".into()),
        },
        // SetOS, ip, vendor, product, version, then up to twelve numeric or text
        // fields (p.3-8); usually only the first four.
        "SetOS" if (4..=16).contains(&args.len()) => host(args[0]),
        "SetOS" => Err(
            "SetOS takes an IP address, a vendor, a product, a version and at most 12 more fields"
                .into(),
        ),
        "UnsetOS" => match args {
            [ip] => host(ip),
            _ => Err("UnsetOS takes one IP address".into()),
        },
        "AddService" if (3..=14).contains(&args.len()) => {
            let port = args[1];
            match port.parse::<u16>() {
                Ok(p) if p > 0 => {}
                _ => return Err(format!("AddService: port {port:?} is not 1-65535")),
            }
            protocol(args[2]).map_err(|e| format!("AddService: {e}"))?;
            host(args[0])
        }
        "AddService" => Err(
            "AddService takes an IP address, a port, a protocol and at most 11 more fields".into(),
        ),
        // The guide's syntax line for DeleteScanResult was not found; this is its
        // probable form, `DeleteScanResult, ip, scanner_id, vuln_id, port, proto`
        // (host-input.md §4: uncertain), checked no further than its address.
        "DeleteScanResult" if (1..=5).contains(&args.len()) => host(args[0]),
        "DeleteScanResult" => {
            Err("DeleteScanResult takes an IP address and at most 4 more fields".into())
        }
        other => Err(format!("unknown command {other:?}")),
    }
}

fn host(field: &str) -> Result<LineKind, String> {
    ip_field(Some(field)).map(|ip| LineKind::Host(Some(ip)))
}

fn optional_ip(field: &str) -> Result<Option<IpAddr>, String> {
    if field.is_empty() {
        Ok(None)
    } else {
        ip_field(Some(field)).map(Some)
    }
}

/// `6`/`17`, or `tcp`/`udp` in any case (the Host Input API Guide's examples use both).
fn protocol(field: &str) -> Result<(), String> {
    if matches!(field, "6" | "17")
        || field.eq_ignore_ascii_case("tcp")
        || field.eq_ignore_ascii_case("udp")
    {
        Ok(())
    } else {
        Err(format!("protocol {field:?} must be 6 or tcp, 17 or udp"))
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

fn check_scan_result(fields: &[&str]) -> Result<LineKind, String> {
    if fields.len() != 9 {
        return Err(format!(
            "AddScanResult needs 10 fields, found {} (a comma inside a text field?)",
            fields.len() + 1
        ));
    }
    let ip = ip_field(Some(fields[0]))?;
    quoted(fields[1], "scanner_id")?;
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
            if proto.is_empty() {
                return Err(format!(
                    "protocol {proto:?} must be 6 (tcp) or 17 (udp) with a port"
                ));
            }
            protocol(proto)?;
        }
    }
    quoted(fields[5], "name")?;
    quoted(fields[6], "description")?;
    let cves = id_list(fields[7], "cve_ids")?;
    let bugtraqs = id_list(fields[8], "bugtraq_ids")?;
    if generic && cves + bugtraqs > 0 {
        return Err("a generic result (empty vuln_id) has no CVE or Bugtraq IDs".into());
    }
    Ok(LineKind::Host(Some(ip)))
}

fn ip_field(field: Option<&str>) -> Result<IpAddr, String> {
    let field = field.unwrap_or("");
    field
        .parse()
        .map_err(|_| format!("{field:?} is not an IP address"))
}

/// A text field in double quotes, without one inside; returns its text.
fn quoted<'a>(field: &'a str, name: &str) -> Result<&'a str, String> {
    let inner = field
        .strip_prefix('"')
        .and_then(|f| f.strip_suffix('"'))
        .ok_or_else(|| format!("{name} must be in double quotes"))?;
    if inner.contains('"') {
        return Err(format!("{name} contains a double quote"));
    }
    Ok(inner)
}

/// `"cve_ids: CVE-1 CVE-2"`: the name and a colon, then IDs separated by spaces; with or
/// without a space after the colon, and with no ID at all (host-input.md §4). Returns
/// how many IDs it holds. The IDs themselves are not judged: `CVE-` and the older `CAN-`
/// forms are usual, but the connector writes what Qualys lists, and an ID the FMC does
/// not know only maps to nothing.
fn id_list(field: &str, name: &str) -> Result<usize, String> {
    let inner = quoted(field, name)?;
    let Some(ids) = inner
        .strip_prefix(name)
        .and_then(|rest| rest.strip_prefix(':'))
    else {
        return Err(format!("{name} must start with \"{name}:\""));
    };
    Ok(ids.split(' ').filter(|id| !id.is_empty()).count())
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
    /// The preamble every connection starts with: the SetSource line and any stream
    /// commands (SetSourceType, SetMap) before the first host command, each with its
    /// newline.
    pub source_line: String,
    pub commands: u64,
    pub chunks: u64,
    /// Lines that ended with CRLF; they are sent with LF.
    pub crlf_lines: u64,
}

/// Where a valid line goes. Both passes place lines with it, so they agree.
#[derive(Debug, Default)]
struct Placer {
    commands: u64,
    /// Only SetSource and stream commands so far.
    in_preamble: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Place {
    Skip,
    Preamble,
    Chunk,
}

impl Placer {
    fn place(&mut self, kind: LineKind) -> Result<Place, &'static str> {
        if kind == LineKind::Skip {
            return Ok(Place::Skip);
        }
        self.commands += 1;
        match kind {
            LineKind::SetSource if self.commands == 1 => {
                self.in_preamble = true;
                Ok(Place::Preamble)
            }
            LineKind::SetSource => Err("SetSource may only be the first command"),
            _ if self.commands == 1 => Err("the stream must start with SetSource"),
            LineKind::Stream if self.in_preamble => Ok(Place::Preamble),
            _ => {
                self.in_preamble = false;
                Ok(Place::Chunk)
            }
        }
    }
}

/// A line without its CRLF's `\r`, and whether it had one.
fn without_cr(line: &[u8]) -> (&[u8], bool) {
    match line.strip_suffix(b"\r") {
        Some(line) => (line, true),
        None => (line, false),
    }
}

/// The command of a line: the text before the first comma, spaces trimmed.
fn command_name(line: &str) -> &str {
    line.split(',').next().unwrap_or_default().trim_matches(' ')
}

/// Bad lines, the first [`REPORTED_LINES`] of them with their numbers.
#[derive(Debug, Default)]
struct BadLines {
    count: u64,
    lines: Vec<String>,
}

impl BadLines {
    fn report(&mut self, number: u64, message: &str) {
        self.count += 1;
        if self.lines.len() < REPORTED_LINES {
            self.lines.push(format!("  line {number}: {message}"));
        }
    }

    fn into_error(mut self, path: &Path) -> CommandFileError {
        if self.count as usize > self.lines.len() {
            self.lines.push(format!(
                "  ... and {} more",
                self.count as usize - self.lines.len()
            ));
        }
        CommandFileError::Invalid {
            path: path.to_path_buf(),
            count: self.count,
            lines: self.lines,
        }
    }
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
    let mut bad = BadLines::default();
    let mut placer = Placer::default();
    let mut source_line = String::new();
    let (mut chunks, mut crlf_lines, mut open_chunk) = (0u64, 0u64, false);
    let mut number = 0u64;
    for line in reader.split(b'\n') {
        number += 1;
        let line = line.map_err(io_err)?;
        let (line, crlf) = without_cr(&line);
        crlf_lines += u64::from(crlf);
        let Ok(text) = std::str::from_utf8(line) else {
            bad.report(number, "not valid UTF-8 text");
            continue;
        };
        let kind = match check_line(text) {
            Ok(kind) => kind,
            Err(message) => {
                bad.report(number, &message);
                continue;
            }
        };
        match placer.place(kind) {
            Ok(Place::Skip) => {}
            Ok(Place::Preamble) => {
                source_line.push_str(text);
                source_line.push('\n');
            }
            Ok(Place::Chunk) if kind == LineKind::Commit => {
                chunks += u64::from(open_chunk);
                open_chunk = false;
            }
            Ok(Place::Chunk) => open_chunk = true,
            Err(message) => bad.report(number, message),
        }
    }
    if open_chunk {
        bad.report(
            number,
            "the file ends with host commands not followed by ScanFlush or ScanUpdate",
        );
    }
    if bad.count > 0 {
        return Err(bad.into_error(path));
    }
    if source_line.is_empty() {
        return Err(CommandFileError::Invalid {
            path: path.to_path_buf(),
            count: 1,
            lines: vec!["  the file holds no SetSource line (is it a command file?)".into()],
        });
    }
    Ok(Checked {
        source_line,
        commands: placer.commands,
        chunks,
        crlf_lines,
    })
}

/// Pass two: calls `chunk` with each run of host commands up to and including its
/// ScanFlush/ScanUpdate (lines as written, CRLF sent as LF), with the first IP address
/// in it (`None` when its hosts are named by MAC address only), the number of commands
/// and of AddScanResult lines. Only call after `check_file` succeeded.
pub fn for_each_chunk(
    path: &Path,
    mut chunk: impl FnMut(Option<IpAddr>, &[u8], usize, usize) -> Result<(), String>,
) -> Result<(), String> {
    let reader = BufReader::new(
        crate::files::open_input(path)
            .map_err(|e| format!("cannot read {}: {e}", path.display()))?,
    );
    let changed = |e: &dyn std::fmt::Display| {
        format!("{}: changed since it was checked: {e}", path.display())
    };
    let mut placer = Placer::default();
    let mut buf = Vec::new();
    let mut first_ip = None;
    let (mut commands, mut findings) = (0, 0);
    for line in reader.split(b'\n') {
        let line = line.map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        let (line, _) = without_cr(&line);
        let text = String::from_utf8_lossy(line);
        let kind = check_line(&text).map_err(|e| changed(&e))?;
        if placer.place(kind).map_err(|e| changed(&e))? != Place::Chunk {
            continue;
        }
        if let LineKind::Host(ip) = kind {
            first_ip = first_ip.or(ip);
        }
        if command_name(&text) == "AddScanResult" {
            findings += 1;
        }
        buf.extend_from_slice(line);
        buf.push(b'\n');
        commands += 1;
        if kind == LineKind::Commit {
            if commands > 1 {
                chunk(first_ip.take(), &buf, commands, findings)?;
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
        let ip = |s: &str| LineKind::Host(Some(s.parse().unwrap()));
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
            // Cisco's Host Input API Guide writes a space after each comma.
            ("AddHost, 10.9.9.1", ip("10.9.9.1")),
            ("SetSource, QualysGuard", LineKind::SetSource),
            ("SetSourceType, 2", LineKind::Stream),
            ("SetMap, Qualys map", LineKind::Stream),
            ("AddHost,,01:02:03:04:05:06", LineKind::Host(None)),
            ("DeleteHost, 10.1.1.1, 01:02:03:04:05:06", ip("10.1.1.1")),
            ("DeleteHost,,01:02:03:04:05:06", LineKind::Host(None)),
            ("SetOS,10.1.1.1,Microsoft,Windows,\"10\"", ip("10.1.1.1")),
            (
                "SetOS, 10.1.1.1, Microsoft, Windows, 10, 1, 2, 10, 0, 0, 19041, 1, x, desktop, 0, 0",
                ip("10.1.1.1"),
            ),
            ("UnsetOS, 10.1.1.1", ip("10.1.1.1")),
            (
                "AddService, 10.1.1.1, 22, tcp, ssh, OpenBSD, 8.9",
                ip("10.1.1.1"),
            ),
            ("AddService,10.1.1.1,53,17", ip("10.1.1.1")),
            (
                "SetAttributeValue, 10.1.1.1, criticality, High",
                ip("10.1.1.1"),
            ),
            // Probable form only (host-input.md §4: uncertain).
            (
                "DeleteScanResult, 10.1.1.1, 'QualysGuard', 38170, 443, 6",
                ip("10.1.1.1"),
            ),
            (
                "AddScanResult, 10.1.1.1, \"Q\", 1, 443, tcp, \"a\", \"d\", \"cve_ids:CVE-2014-0160\", \"bugtraq_ids:\"",
                ip("10.1.1.1"),
            ),
            (
                "AddScanResult,10.1.1.1,\"Q\",1,53,UDP,\"a\",\"d\",\"cve_ids: CAN-1999-0524 CVE-2014-0160\",\"bugtraq_ids: 66690\"",
                ip("10.1.1.1"),
            ),
            (
                "AddScanResult,10.1.1.1,\"Q\",1,,,\"a\",\"d\",\"cve_ids:\",\"bugtraq_ids:\"",
                ip("10.1.1.1"),
            ),
            ("ScanFlush ", LineKind::Commit),
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
                "cve_ids must start with \"cve_ids:\"",
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
            ("SetSourceType, 4", "SetSourceType takes 2 (scanner) or 3"),
            ("SetMap,", "SetMap takes the name"),
            ("AddHost,,", "needs an IP address or a MAC address"),
            (
                "SetOS,10.1.1.1,Microsoft",
                "SetOS takes an IP address, a vendor",
            ),
            ("UnsetOS,10.1.1.1,x", "UnsetOS takes one IP address"),
            ("AddService,10.1.1.1,0,tcp", "AddService: port \"0\""),
            (
                "AddService,10.1.1.1,22,icmp",
                "AddService: protocol \"icmp\"",
            ),
            ("DeleteScanResult", "takes an IP address"),
            (
                "AddScanResult,10.1.1.1,\"Q\",1,22,sctp,\"a\",\"d\",\"cve_ids: \",\"bugtraq_ids: \"",
                "protocol \"sctp\" must be 6 or tcp",
            ),
            (
                "AddScanResult,10.1.1.1,\"Q\",1,,,\"a\",\"d\",\"cves: \",\"bugtraq_ids: \"",
                "cve_ids must start with",
            ),
            ("SetOS\r,10.1.1.1", "carriage return inside the line"),
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
                ip.unwrap().to_string(),
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

    /// CRLF endings become LF; stream commands before the first host join the preamble,
    /// later ones travel with the hosts; a MAC-only host has no address.
    #[test]
    fn crlf_preamble_and_other_commands() {
        let text = "SetSource, QualysGuard\r\nSetSourceType, 2\r\nSetMap, Qualys\r\nAddHost,,01:02:03:04:05:06\r\nScanUpdate\r\nSetOS, 10.1.1.1, Microsoft, Windows, 10\r\nAddService, 10.1.1.1, 22, tcp\r\nSetMap, Other\r\nScanUpdate\r\n";
        let (_d, path) = file(text);
        let checked = check_file(&path).unwrap();
        assert_eq!(
            checked.source_line,
            "SetSource, QualysGuard\nSetSourceType, 2\nSetMap, Qualys\n"
        );
        assert_eq!(
            (checked.commands, checked.chunks, checked.crlf_lines),
            (9, 2, 9)
        );
        let mut chunks = Vec::new();
        for_each_chunk(&path, |ip, bytes, commands, findings| {
            chunks.push((
                ip,
                String::from_utf8(bytes.to_vec()).unwrap(),
                commands,
                findings,
            ));
            Ok(())
        })
        .unwrap();
        let ip = "10.1.1.1".parse().ok();
        assert_eq!(
            chunks,
            vec![
                (None, "AddHost,,01:02:03:04:05:06\nScanUpdate\n".to_string(), 2, 0),
                (
                    ip,
                    "SetOS, 10.1.1.1, Microsoft, Windows, 10\nAddService, 10.1.1.1, 22, tcp\nSetMap, Other\nScanUpdate\n".to_string(),
                    4,
                    0
                ),
            ]
        );
        // A carriage return that does not end the line is still refused.
        let (_d, path) = file("SetSource,Q\r\nAddHost,10.1.1.1\r\r\nScanFlush\n");
        let err = check_file(&path).unwrap_err().to_string();
        assert!(err.contains("line 2: contains a carriage return"), "{err}");
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
