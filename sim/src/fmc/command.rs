//! Parser for the Host Input command language (host-input.md §4) as Cisco's Host Input
//! API Guide writes it: one command per line, comma-separated fields (spaces after a
//! comma allowed), text fields in double quotes, a CRLF ending accepted, protocols as
//! `6`/`17` or `tcp`/`udp`, ID lists with or without the space after their colon, `CVE-`
//! and `CAN-` IDs, and the language's other commands (SetSourceType, SetMap, SetOS,
//! UnsetOS, AddService, DeleteHost and AddHost by MAC, and DeleteScanResult in its
//! probable form). A line that is really invalid is reported with the reason, so the
//! simulator can count and log it (the real FMC silently discards it, §4).
//!
//! The lines the connector writes take the fast path (`split_fields` and the canonical
//! checks); only a line that fails it is parsed again with its fields trimmed.

use std::net::IpAddr;

/// One finding of `AddScanResult` (host-input.md §4, "AddScanResult fields"), without
/// the source, which comes from the preceding `SetSource`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ScanFields {
    pub ip: IpAddr,
    pub scanner_id: String,
    /// `None` for a generic result (host-input.md §4: empty vuln_id, port, proto and ID
    /// lists): it shows on the host but maps to no vulnerability.
    pub vuln_id: Option<u64>,
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
    /// `AddHost,,<mac>`: a host known by its MAC address only.
    AddHostByMac(String),
    /// `DeleteHost,,<mac>`.
    DeleteHostByMac(String),
    /// `SetSourceType, 2|3`: 2 scanner, 3 application.
    SetSourceType(u8),
    /// `SetMap, <product map set>`.
    SetMap(String),
    /// `SetOS,ip,vendor,product,version[,…]`: the first four fields (the others are
    /// checked for count only).
    SetOs {
        ip: IpAddr,
        vendor: String,
        product: String,
        version: String,
    },
    UnsetOs(IpAddr),
    /// `AddService,ip,port,proto[,server,vendor,version,…]`.
    AddService {
        ip: IpAddr,
        port: u16,
        proto: u8,
        server: String,
        vendor: String,
        version: String,
    },
    /// `DeleteScanResult,ip,scanner_id[,vuln_id[,port,proto]]`: the probable form
    /// (host-input.md §4: the guide's syntax line is not public; uncertain).
    DeleteScanResult(Deletion),
}

/// What a `DeleteScanResult` line names: empty fields match any value.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Deletion {
    pub ip: IpAddr,
    pub vuln_id: Option<u64>,
    pub port: Option<u16>,
    pub proto: Option<u8>,
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

/// A parsed command borrowing its text from the line, as the server applies it: a
/// 100,000-host replay is over a million lines, and a `String` per field was most of
/// the server's work. [`CommandRef::to_owned`] gives the public [`Command`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum CommandRef<'a> {
    SetSource(&'a str),
    /// `mac` is checked but not yet lower-cased.
    AddHost {
        ip: IpAddr,
        mac: Option<&'a str>,
    },
    DeleteHost(IpAddr),
    AddScanResult(ScanRef<'a>),
    ScanFlush,
    ScanUpdate,
    SetAttributeValue {
        ip: IpAddr,
        attribute: &'a str,
        value: &'a str,
    },
    AddHostByMac(&'a str),
    DeleteHostByMac(&'a str),
    SetSourceType(u8),
    SetMap(&'a str),
    SetOs {
        ip: IpAddr,
        vendor: &'a str,
        product: &'a str,
        version: &'a str,
    },
    UnsetOs(IpAddr),
    AddService {
        ip: IpAddr,
        port: u16,
        proto: u8,
        server: &'a str,
        vendor: &'a str,
        version: &'a str,
    },
    DeleteScanResult(Deletion),
}

/// [`ScanFields`] borrowed from the line.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct ScanRef<'a> {
    pub(crate) ip: IpAddr,
    pub(crate) scanner_id: &'a str,
    /// `None` for a generic result.
    pub(crate) vuln_id: Option<u64>,
    pub(crate) port: Option<u16>,
    pub(crate) proto: Option<u8>,
    /// The last four fields as written, `"name","description","cve_ids: …","bugtraq_ids: …"`,
    /// all checked: what a finding shares with every other finding of the same
    /// vulnerability, in one piece. [`tail_fields`] splits it.
    pub(crate) tail: &'a str,
}

/// [`Line`] with a borrowed command.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum LineRef<'a> {
    Blank,
    Comment,
    Command(CommandRef<'a>),
    Bad(String),
}

impl CommandRef<'_> {
    /// The owned form, as [`parse_line`] returns it.
    pub(crate) fn to_owned(self) -> Command {
        match self {
            CommandRef::SetSource(s) => Command::SetSource(s.to_string()),
            CommandRef::AddHost { ip, mac } => Command::AddHost {
                ip,
                mac: mac.map(str::to_ascii_lowercase),
            },
            CommandRef::DeleteHost(ip) => Command::DeleteHost(ip),
            CommandRef::AddScanResult(f) => {
                let [name, description, cve_ids, bugtraq_ids] = tail_fields(f.tail);
                Command::AddScanResult(ScanFields {
                    ip: f.ip,
                    scanner_id: f.scanner_id.to_string(),
                    vuln_id: f.vuln_id,
                    port: f.port,
                    proto: f.proto,
                    name: name.to_string(),
                    description: description.to_string(),
                    cve_ids: split_ids(cve_ids).map(str::to_string).collect(),
                    bugtraq_ids: split_ids(bugtraq_ids).map(str::to_string).collect(),
                })
            }
            CommandRef::ScanFlush => Command::ScanFlush,
            CommandRef::ScanUpdate => Command::ScanUpdate,
            CommandRef::SetAttributeValue {
                ip,
                attribute,
                value,
            } => Command::SetAttributeValue {
                ip,
                attribute: attribute.to_string(),
                value: value.to_string(),
            },
            CommandRef::AddHostByMac(mac) => Command::AddHostByMac(mac.to_ascii_lowercase()),
            CommandRef::DeleteHostByMac(mac) => Command::DeleteHostByMac(mac.to_ascii_lowercase()),
            CommandRef::SetSourceType(t) => Command::SetSourceType(t),
            CommandRef::SetMap(m) => Command::SetMap(m.to_string()),
            CommandRef::SetOs {
                ip,
                vendor,
                product,
                version,
            } => Command::SetOs {
                ip,
                vendor: vendor.to_string(),
                product: product.to_string(),
                version: version.to_string(),
            },
            CommandRef::UnsetOs(ip) => Command::UnsetOs(ip),
            CommandRef::AddService {
                ip,
                port,
                proto,
                server,
                vendor,
                version,
            } => Command::AddService {
                ip,
                port,
                proto,
                server: server.to_string(),
                vendor: vendor.to_string(),
                version: version.to_string(),
            },
            CommandRef::DeleteScanResult(d) => Command::DeleteScanResult(d),
        }
    }
}

/// The IDs of a `cve_ids: ` / `bugtraq_ids: ` field after its prefix: space-separated,
/// runs of spaces allowed (§4).
pub(crate) fn split_ids(list: &str) -> impl Iterator<Item = &str> {
    list.split(' ').filter(|s| !s.is_empty())
}

/// Splits the [`ScanRef::tail`] of a parsed line back into name, description and the
/// two ID lists after their prefixes. Only for a tail the parser accepted,
/// `"name","description","cve_ids: …","bugtraq_ids: …"` with no `"` inside a field:
/// the fields are every other piece between double quotes.
pub(crate) fn tail_fields(tail: &str) -> [&str; 4] {
    let mut fields = [""; 4];
    for (field, piece) in fields.iter_mut().zip(tail.split('"').skip(1).step_by(2)) {
        *field = piece;
    }
    let [name, description, cves, bugtraqs] = fields;
    [
        name,
        description,
        cves.strip_prefix(CVE_PREFIX).unwrap_or_default(),
        bugtraqs.strip_prefix(BUGTRAQ_PREFIX).unwrap_or_default(),
    ]
}

/// The ID lists' prefixes; the space after the colon is optional (host-input.md §4).
const CVE_PREFIX: &str = "cve_ids:";
const BUGTRAQ_PREFIX: &str = "bugtraq_ids:";

/// Classifies and parses one line (without its `\n`).
pub fn parse_line(line: &[u8]) -> Line {
    match parse_line_ref(line) {
        LineRef::Blank => Line::Blank,
        LineRef::Comment => Line::Comment,
        LineRef::Command(cmd) => Line::Command(cmd.to_owned()),
        LineRef::Bad(reason) => Line::Bad(reason),
    }
}

/// [`parse_line`] without copying the fields: the same checks, the same reasons.
pub(crate) fn parse_line_ref(line: &[u8]) -> LineRef<'_> {
    // A CRLF ending (a command file written on Windows).
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    if line.is_empty() {
        return LineRef::Blank;
    }
    if line.first() == Some(&b'#') {
        return LineRef::Comment;
    }
    let parsed = check_bytes(line).and_then(|()| {
        // check_bytes lets only ASCII through: this cannot fail.
        let text = std::str::from_utf8(line).map_err(|_| "not ASCII".to_string())?;
        parse_command(text)
    });
    match parsed {
        Ok(cmd) => LineRef::Command(cmd),
        Err(reason) => LineRef::Bad(reason),
    }
}

/// [`parse_line_ref`] of a line already known to be UTF-8 (as a whole block usually
/// is), which spares checking it again.
pub(crate) fn parse_text_ref(line: &str) -> LineRef<'_> {
    let line = line.strip_suffix('\r').unwrap_or(line);
    if line.is_empty() {
        return LineRef::Blank;
    }
    if line.starts_with('#') {
        return LineRef::Comment;
    }
    match check_bytes(line.as_bytes()).and_then(|()| parse_command(line)) {
        Ok(cmd) => LineRef::Command(cmd),
        Err(reason) => LineRef::Bad(reason),
    }
}

/// §4: "Send ASCII"; "Field contents must not contain `"`, `,`, `\r` or `\n`".
fn check_bytes(line: &[u8]) -> Result<(), String> {
    // One branch-free pass over the line (it vectorises) clears the usual line; only
    // a suspicious one goes through the checks that name the first problem.
    let suspicious = line
        .iter()
        .fold(false, |acc, &b| acc | (b >= 0x80) | (b == b'\r') | (b == 0));
    if suspicious {
        if let Some(pos) = line.iter().position(|b| !b.is_ascii()) {
            let byte = line.get(pos).copied().unwrap_or_default();
            return Err(format!("non-ASCII byte 0x{byte:02x} at column {}", pos + 1));
        }
        if line.contains(&b'\r') {
            return Err("carriage return inside the line".into());
        }
        if line.contains(&0) {
            return Err("NUL byte in the line".into());
        }
    }
    Ok(())
}

/// The most fields after the command name that a command takes (AddScanResult).
const MAX_ARGS: usize = 9;
/// Where [`ScanRef::tail`] starts: AddScanResult's sixth field after the name.
const TAIL_ARG: usize = 5;

/// A line split at its commas, as `str::split(',')` would.
#[derive(Debug, PartialEq, Eq)]
struct Fields<'a> {
    /// The first field: the command.
    name: &'a str,
    /// The fields after it, as many as fit.
    args: [&'a str; MAX_ARGS],
    /// How many fields follow the name, for the arity checks and their messages.
    count: usize,
    /// The line from the start of `args[TAIL_ARG]` on (empty if there is none).
    tail: &'a str,
}

/// Splits a line at its commas in one pass over 8-byte words. `str::split` runs a
/// byte search per field, whose start-up cost was most of the parsing of the
/// short fields of AddScanResult.
fn split_fields(text: &str) -> Fields<'_> {
    let bytes = text.as_bytes();
    // Where the first commas are: the one before each of `args` and the one after.
    let mut commas = [bytes.len(); MAX_ARGS + 1];
    let mut count = 0usize;
    let mut found = |pos: usize| {
        if let Some(slot) = commas.get_mut(count) {
            *slot = pos;
        }
        count += 1;
    };
    let (words, rest) = bytes.as_chunks::<8>();
    for (i, word) in words.iter().enumerate() {
        let mut hits = zero_bytes(u64::from_le_bytes(*word) ^ REPEATED_COMMA);
        while hits != 0 {
            found(i * 8 + hits.trailing_zeros() as usize / 8);
            hits &= hits - 1;
        }
    }
    let words_len = bytes.len() - rest.len();
    for (i, &b) in rest.iter().enumerate() {
        if b == b',' {
            found(words_len + i);
        }
    }
    let field = |start: usize, end: usize| text.get(start..end).unwrap_or_default();
    let mut args = [""; MAX_ARGS];
    // Each field runs from the comma before it to the next (or the end: the slots
    // of missing commas hold the length).
    let bounds = commas.iter().zip(commas.iter().skip(1));
    for (arg, (&before, &after)) in args.iter_mut().zip(bounds).take(count) {
        *arg = field(before + 1, after);
    }
    let tail = match commas.get(TAIL_ARG) {
        Some(&before) if count > TAIL_ARG => field(before + 1, bytes.len()),
        _ => "",
    };
    let name_end = commas.first().copied().unwrap_or(bytes.len());
    Fields {
        name: field(0, name_end),
        args,
        count,
        tail,
    }
}

const REPEATED_COMMA: u64 = u64::from_le_bytes([b','; 8]);

/// The high bit of every zero byte of `x`, exactly (no carry crosses bytes).
fn zero_bytes(x: u64) -> u64 {
    const LOW7: u64 = u64::from_le_bytes([0x7f; 8]);
    !(((x & LOW7) + LOW7) | x) & !LOW7
}

/// Parses a line that passed [`check_bytes`], its fields without the spaces around them
/// (Cisco's guide writes `AddHost, 10.9.9.1`; a quoted field keeps its inner spaces).
fn parse_command(text: &str) -> Result<CommandRef<'_>, String> {
    let fields = split_fields(text);
    let trimmed = fields.trimmed();
    parse_fields(text, &trimmed)
}

impl<'a> Fields<'a> {
    /// The same fields without the spaces around them.
    fn trimmed(&self) -> Fields<'a> {
        let mut args = self.args;
        for arg in &mut args {
            *arg = arg.trim_matches(' ');
        }
        Fields {
            name: self.name.trim_matches(' '),
            args,
            count: self.count,
            tail: self.tail.trim_matches(' '),
        }
    }
}

/// Parses split fields (`text` is the whole line).
fn parse_fields<'a>(text: &'a str, fields: &Fields<'a>) -> Result<CommandRef<'a>, String> {
    let &Fields {
        name,
        args,
        count,
        tail,
    } = fields;
    let want = |n: usize| -> Result<(), String> {
        if count == n {
            Ok(())
        } else {
            Err(format!(
                "{name} takes {n} field(s) after the command, found {count}"
            ))
        }
    };
    let [a0, a1, a2, ..] = args;
    match name {
        "SetSource" => {
            want(1)?;
            if a0.is_empty() || a0.contains('"') {
                return Err("SetSource needs a plain, non-empty source name".into());
            }
            Ok(CommandRef::SetSource(a0))
        }
        "AddHost" | "DeleteHost" => {
            if count != 1 && count != 2 {
                return Err(format!(
                    "{name} takes an address and an optional MAC, found {count} field(s)"
                ));
            }
            let mac = if count == 2 && !a1.is_empty() {
                Some(mac(a1)?)
            } else {
                None
            };
            match (a0, mac, name) {
                ("", Some(mac), "AddHost") => Ok(CommandRef::AddHostByMac(mac)),
                ("", Some(mac), _) => Ok(CommandRef::DeleteHostByMac(mac)),
                ("", None, _) => Err(format!("{name} needs an address or a MAC address")),
                (a0, mac, "AddHost") => Ok(CommandRef::AddHost { ip: ip(a0)?, mac }),
                (a0, _, _) => Ok(CommandRef::DeleteHost(ip(a0)?)),
            }
        }
        "AddScanResult" => {
            want(MAX_ARGS)?;
            // A valid line has exactly its five text fields' ten double quotes. When
            // the line has ten, a field that starts and ends with one (so holds two)
            // has none inside, so that search can be skipped. Any failure is parsed
            // again in full, for the reason the complete checks give first.
            let quotes = count_quotes(text.as_bytes());
            if quotes == 2 * QUOTED_FIELDS
                && let Ok(fields) = add_scan_result(args, tail, Quotes::AtEdgesOnly)
            {
                return Ok(CommandRef::AddScanResult(fields));
            }
            add_scan_result(args, tail, Quotes::Check).map(CommandRef::AddScanResult)
        }
        "ScanFlush" => {
            want(0)?;
            Ok(CommandRef::ScanFlush)
        }
        "ScanUpdate" => {
            want(0)?;
            Ok(CommandRef::ScanUpdate)
        }
        "SetAttributeValue" => {
            want(3)?;
            let ip = ip(a0)?;
            let attribute = maybe_quoted(a1, "attribute")?;
            if attribute.is_empty() {
                return Err("SetAttributeValue needs an attribute name".into());
            }
            let value = maybe_quoted(a2, "value")?;
            Ok(CommandRef::SetAttributeValue {
                ip,
                attribute,
                value,
            })
        }
        _ => other_command(name, &args[..count.min(MAX_ARGS)], count),
    }
}

/// The language's other commands (host-input.md §4, second table).
fn other_command<'a>(name: &str, args: &[&'a str], count: usize) -> Result<CommandRef<'a>, String> {
    let arity = |range: std::ops::RangeInclusive<usize>, what: &str| {
        if range.contains(&count) {
            Ok(())
        } else {
            Err(format!("{name} takes {what}, found {count} field(s)"))
        }
    };
    match name {
        "SetSourceType" => match args {
            ["2"] => Ok(CommandRef::SetSourceType(2)),
            ["3"] => Ok(CommandRef::SetSourceType(3)),
            _ => Err("SetSourceType takes 2 (scanner) or 3 (application)".into()),
        },
        "SetMap" => match args {
            [set] if !set.is_empty() => Ok(CommandRef::SetMap(maybe_quoted(set, "map set")?)),
            _ => Err("SetMap takes the name of a product map set".into()),
        },
        "SetOS" => {
            arity(
                4..=16,
                "an address, a vendor, a product, a version and at most 12 more",
            )?;
            Ok(CommandRef::SetOs {
                ip: ip(args[0])?,
                vendor: maybe_quoted(args[1], "vendor")?,
                product: maybe_quoted(args[2], "product")?,
                version: maybe_quoted(args[3], "version")?,
            })
        }
        "UnsetOS" => {
            arity(1..=1, "one address")?;
            Ok(CommandRef::UnsetOs(ip(args[0])?))
        }
        "AddService" => add_service(args, count),
        "DeleteScanResult" => delete_scan_result(args, count),
        other => Err(format!("unknown command {other:?}")),
    }
}

/// `AddService, ip, port, proto, server, vendor, version, …` (at most 14 fields).
fn add_service<'a>(args: &[&'a str], count: usize) -> Result<CommandRef<'a>, String> {
    if !(3..=MAX_ARGS).contains(&count) {
        return Err(format!(
            "AddService takes an address, a port, a protocol and at most 6 more fields here, found {count}"
        ));
    }
    let port = match decimal(args[1], "port")? {
        p @ 1..=65535 => p as u16,
        p => return Err(format!("port {p} is not in 1-65535")),
    };
    let text = |i: usize, what: &str| -> Result<&'a str, String> {
        args.get(i).map_or(Ok(""), |f| maybe_quoted(f, what))
    };
    Ok(CommandRef::AddService {
        ip: ip(args[0])?,
        port,
        proto: protocol(args[2])?.ok_or("AddService needs a protocol")?,
        server: text(3, "server")?,
        vendor: text(4, "vendor")?,
        version: text(5, "version")?,
    })
}

/// `DeleteScanResult, ip, scanner_id[, vuln_id[, port, proto]]`: the probable form
/// (host-input.md §4: uncertain); empty fields match any value.
fn delete_scan_result<'a>(args: &[&'a str], count: usize) -> Result<CommandRef<'a>, String> {
    if !(2..=5).contains(&count) {
        return Err(format!(
            "DeleteScanResult takes an address, a scanner and at most a vuln_id, port and proto, found {count} field(s)"
        ));
    }
    let field = |i: usize| args.get(i).copied().unwrap_or_default();
    let port = match field(3) {
        "" => None,
        p => Some(
            u16::try_from(decimal(p, "port")?)
                .map_err(|_| format!("port {p} is not in 1-65535"))?,
        ),
    };
    Ok(CommandRef::DeleteScanResult(Deletion {
        ip: ip(args[0])?,
        vuln_id: vuln_id(field(2))?,
        port,
        proto: protocol(field(4))?,
    }))
}

/// `6`/`17` or `tcp`/`udp` in any case; `None` for an empty field.
fn protocol(field: &str) -> Result<Option<u8>, String> {
    match field {
        "" => Ok(None),
        "6" => Ok(Some(6)),
        "17" => Ok(Some(17)),
        p if p.eq_ignore_ascii_case("tcp") => Ok(Some(6)),
        p if p.eq_ignore_ascii_case("udp") => Ok(Some(17)),
        other => Err(format!("proto {other:?} is not 6, 17, tcp, udp or empty")),
    }
}

/// The number of `"` in `line`. Counted in byte-sized sums over runs that cannot
/// overflow one, which the compiler turns into 16 bytes per step (a plain count
/// widens every byte to 64 bits first).
fn count_quotes(line: &[u8]) -> usize {
    line.chunks(usize::from(u8::MAX))
        .map(|run| {
            let n = run
                .iter()
                .fold(0u8, |n, &b| n.wrapping_add(u8::from(b == b'"')));
            usize::from(n)
        })
        .sum()
}

/// AddScanResult's text fields: scanner_id, name, description and the two ID lists.
const QUOTED_FIELDS: usize = 5;

/// Whether [`quoted`] must look for a `"` inside the field.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Quotes {
    Check,
    /// The caller knows the line has no `"` but at the edges of its text fields.
    AtEdgesOnly,
}

fn add_scan_result<'a>(
    f: [&'a str; MAX_ARGS],
    tail: &'a str,
    quotes: Quotes,
) -> Result<ScanRef<'a>, String> {
    let [
        ip_field,
        scanner_field,
        vuln_field,
        port_field,
        proto_field,
        name,
        description,
        cves,
        bugtraqs,
    ] = f;
    let ip = ip(ip_field)?;
    let scanner_id = quoted(scanner_field, "scanner_id", quotes)?;
    if scanner_id.is_empty() {
        return Err("scanner_id is empty".into());
    }
    let vuln_id = vuln_id(vuln_field)?;
    let port = if port_field.is_empty() {
        None
    } else {
        let p = decimal(port_field, "port")?;
        match u16::try_from(p) {
            Ok(p) if p >= 1 => Some(p),
            _ => return Err(format!("port {p} is not in 1-65535")),
        }
    };
    let proto = protocol(proto_field)?;
    if port.is_some() != proto.is_some() {
        return Err("port and proto must be both set or both empty".into());
    }
    quoted(name, "name", quotes)?;
    quoted(description, "description", quotes)?;
    let cve_count = id_list(cves, CVE_PREFIX, quotes, is_cve)?;
    let bugtraq_count = id_list(bugtraqs, BUGTRAQ_PREFIX, quotes, |id| {
        id.iter().all(u8::is_ascii_digit)
    })?;
    generic_is_bare(vuln_id, port, cve_count + bugtraq_count)?;
    Ok(ScanRef {
        ip,
        scanner_id,
        vuln_id,
        port,
        proto,
        tail,
    })
}

/// An empty vuln_id is a generic result's (host-input.md §4).
pub(super) fn vuln_id(field: &str) -> Result<Option<u64>, String> {
    if field.is_empty() {
        Ok(None)
    } else {
        decimal(field, "vuln_id").map(Some)
    }
}

/// A generic result has an empty vuln_id, port, proto and ID lists (host-input.md §4,
/// p.3-22): one with a port or IDs is neither generic nor a vulnerability.
pub(super) fn generic_is_bare(
    vuln_id: Option<u64>,
    port: Option<u16>,
    ids: usize,
) -> Result<(), String> {
    if vuln_id.is_none() && (port.is_some() || ids > 0) {
        return Err(
            "a generic result (empty vuln_id) takes no port, proto, CVE or Bugtraq IDs".into(),
        );
    }
    Ok(())
}

pub(super) fn ip(field: &str) -> Result<IpAddr, String> {
    field
        .parse()
        .map_err(|_| format!("{field:?} is not an IPv4 or IPv6 address"))
}

/// A MAC address, returned as written (the caller lower-cases it).
fn mac(field: &str) -> Result<&str, String> {
    let mut parts = 0usize;
    let ok = field.split(':').all(|p| {
        parts += 1;
        p.len() == 2 && p.bytes().all(|b| b.is_ascii_hexdigit())
    }) && parts == 6;
    if ok {
        Ok(field)
    } else {
        Err(format!(
            "{field:?} is not a MAC address (xx:xx:xx:xx:xx:xx)"
        ))
    }
}

/// A canonical non-negative decimal: digits only, no sign, no leading zero.
pub(super) fn decimal(field: &str, what: &str) -> Result<u64, String> {
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
fn quoted<'a>(field: &'a str, what: &str, quotes: Quotes) -> Result<&'a str, String> {
    match field
        .strip_prefix('"')
        .and_then(|rest| rest.strip_suffix('"'))
    {
        Some(inner) if quotes == Quotes::AtEdgesOnly || !inner.contains('"') => Ok(inner),
        _ => Err(format!(
            "{what} {field:?} is not a double-quoted text field"
        )),
    }
}

/// SetAttributeValue's fields: the spec does not say whether they are quoted.
fn maybe_quoted<'a>(field: &'a str, what: &str) -> Result<&'a str, String> {
    if field.starts_with('"') {
        quoted(field, what, Quotes::Check)
    } else if field.contains('"') {
        Err(format!("{what} {field:?} has a stray double quote"))
    } else {
        Ok(field)
    }
}

/// `"cve_ids: CVE-1 CVE-2"`: a literal prefix, then space-separated IDs (§4). Returns
/// how many IDs it holds.
fn id_list(
    field: &str,
    prefix: &str,
    quotes: Quotes,
    valid: impl Fn(&[u8]) -> bool,
) -> Result<usize, String> {
    let what = prefix.trim_end_matches([':', ' ']);
    let inner = quoted(field, what, quotes)?;
    let Some(rest) = inner.strip_prefix(prefix) else {
        return Err(format!(
            "{what} field {field:?} does not start with {prefix:?}"
        ));
    };
    // The same IDs as split_ids gives, found by a byte loop: they are short, and a
    // byte search per ID cost more than the IDs' check.
    let ids = rest
        .as_bytes()
        .split(|&b| b == b' ')
        .filter(|id| !id.is_empty());
    let mut count = 0;
    for id in ids {
        if !valid(id) {
            // ASCII (check_bytes), so the text as it is.
            let bad = String::from_utf8_lossy(id);
            return Err(format!("{what}: {bad:?} is not a valid ID"));
        }
        count += 1;
    }
    Ok(count)
}

/// `CVE-YYYY-NNNN…` (at least four digits in the sequence number).
/// `CVE-2014-0160`, or the older candidate form `CAN-1999-0524`.
fn is_cve(id: &[u8]) -> bool {
    let Some(rest) = id
        .strip_prefix(b"CVE-")
        .or_else(|| id.strip_prefix(b"CAN-"))
    else {
        return false;
    };
    let Some((year, rest)) = rest.split_first_chunk::<4>() else {
        return false;
    };
    let Some((b'-', seq)) = rest.split_first() else {
        return false;
    };
    year.iter().all(u8::is_ascii_digit) && seq.len() >= 4 && seq.iter().all(u8::is_ascii_digit)
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
        assert_eq!(r.vuln_id, Some(38170));
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
        let generic = r#"AddScanResult,192.0.2.10,"QualysGuard",,,,"No open findings","","cve_ids: ","bugtraq_ids: ""#;
        let Line::Command(Command::AddScanResult(g)) = parse_line(generic.as_bytes()) else {
            panic!("a generic result parses");
        };
        assert_eq!((g.vuln_id, g.port, g.proto), (None, None, None));
        assert_eq!(g.name, "No open findings");
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
            // A generic result has no port, proto or IDs.
            with(2, ""),
            r(base).replacen(",38170,443,6,", ",,,,", 1).replacen(
                "cve_ids: ",
                "cve_ids: CVE-2014-0160",
                1,
            ),
            r(base).replacen(",38170,443,6,", ",,,,", 1).replacen(
                "bugtraq_ids: ",
                "bugtraq_ids: 1",
                1,
            ),
            with(3, "0"),
            with(3, "65536"),
            with(3, ""),
            with(4, "7"),
            with(4, ""),
            with(5, "Name"),
            with(5, "\"Na\"me\""),
            with(7, "\"CVE-2014-0160\""),
            with(7, "\"cve_ids: CVE-14-1\""),
            with(8, "\"bugtraq_ids: abc\""),
            format!("{},extra", r(base)),
            r(base).replacen(",\"Desc\"", "", 1),
            r(base).replace("Desc", "Dés"),
            "ScanFlush,".into(),
            "scanflush".into(),
            "SetSource".into(),
            "SetSource,".into(),
            "SetSource,\"Q\"".into(),
            "AddHost".into(),
            "AddHost,192.0.2.1,zz:zz:zz:zz:zz:zz".into(),
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

    #[test]
    fn split_fields_splits_like_str_split() {
        // Every mix of three kinds of byte up to 21 long crosses the 8-byte words in
        // every way, with up to 21 commas.
        for len in 0..=21u32 {
            for n in 0..3u64.pow(len.min(9)) {
                let mut k = n;
                let text: String = (0..len)
                    .map(|i| {
                        let c = [',', 'a', '"'][(k % 3) as usize];
                        k = if i < 9 { k / 3 } else { k.wrapping_mul(7) + 1 };
                        c
                    })
                    .collect();
                let mut pieces = text.split(',');
                let name = pieces.next().unwrap();
                let rest: Vec<&str> = pieces.collect();
                let got = split_fields(&text);
                assert_eq!(got.name, name, "{text:?}");
                assert_eq!(got.count, rest.len(), "{text:?}");
                for (i, arg) in got.args.iter().enumerate() {
                    assert_eq!(
                        *arg,
                        rest.get(i).copied().unwrap_or(""),
                        "{text:?} field {i}"
                    );
                }
                let tail = if rest.len() > TAIL_ARG {
                    rest[TAIL_ARG..].join(",")
                } else {
                    String::new()
                };
                assert_eq!(got.tail, tail, "{text:?}");
                let quotes = text.bytes().filter(|&b| b == b'"').count();
                assert_eq!(count_quotes(text.as_bytes()), quotes, "{text:?}");
            }
        }
        let long = format!("{}\"", "\"".repeat(600));
        assert_eq!(count_quotes(long.as_bytes()), 601);
    }
}
