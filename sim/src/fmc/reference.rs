//! A straightforward version of the command parser and the map update (a `String` per
//! field, results rebuilt at every commit), kept for tests only: the fast code in
//! `command.rs` and `store.rs` must give the same result for every line and the same
//! map for every command stream, which the tests here check on generated input.

// Test code: failing loudly is what it should do.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use std::sync::Arc;

use super::command::{
    self, Command, CommandRef, Line, LineRef, ScanFields, decimal, generic_is_bare, ip, vuln_id,
};
use super::map::{FlushScope, HostEntry, NetworkMap, ScanResult};
use super::store::{Commit, CommitOutcome, Store};

/// The straightforward `command::parse_line`.
fn parse_line(line: &[u8]) -> Line {
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
    let vuln_id = vuln_id(f[2])?;
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
    generic_is_bare(vuln_id, port, cve_ids.len() + bugtraq_ids.len())?;
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

/// The straightforward `NetworkMap::add_host`.
fn add_host(map: &mut NetworkMap, ip: IpAddr, mac: Option<String>) {
    let entry = map.hosts.entry(ip).or_default();
    if mac.is_some() {
        entry.mac = mac;
    }
}

fn key(r: &ScanResult) -> (String, Option<u64>, Option<u16>, Option<u8>) {
    (r.source.clone(), r.vuln_id, r.port, r.proto)
}

/// The straightforward `NetworkMap::commit`: results rebuilt in a `BTreeMap` by key.
fn commit(map: &mut NetworkMap, staged: Vec<(IpAddr, ScanResult)>, how: Commit) -> CommitOutcome {
    let mut by_host: BTreeMap<IpAddr, Vec<ScanResult>> = BTreeMap::new();
    for (ip, r) in staged {
        by_host.entry(ip).or_default().push(r);
    }
    let mut outcome = CommitOutcome::default();
    for (ip, results) in by_host {
        let Some(host) = map.hosts.get_mut(&ip) else {
            outcome.ignored += results.len() as u64;
            outcome.ignored_hosts.insert(ip);
            continue;
        };
        outcome.applied += results.len() as u64;
        let mut kept: BTreeMap<_, ScanResult> = BTreeMap::new();
        let sources: BTreeSet<&str> = results.iter().map(|r| r.source.as_str()).collect();
        for r in std::mem::take(&mut host.results) {
            let keep = match how {
                Commit::Update => true,
                Commit::Flush(FlushScope::ThisSource) => !sources.contains(r.source.as_str()),
                Commit::Flush(FlushScope::AllSources) => false,
            };
            if keep {
                kept.insert(key(&r), r);
            }
        }
        for r in results {
            kept.insert(key(&r), r);
        }
        let mut list: Vec<ScanResult> = kept.into_values().collect();
        list.sort();
        host.results = list;
    }
    outcome
}

/// xorshift64*: reproducible pseudo-random input, no dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items[self.below(items.len())]
    }

    /// The first item (a valid one) four times in five, else any.
    fn mostly<'a>(&mut self, items: &[&'a str]) -> &'a str {
        if self.below(5) == 0 {
            self.pick(items)
        } else {
            items[0]
        }
    }
}

fn owned(line: LineRef<'_>) -> Line {
    match line {
        LineRef::Blank => Line::Blank,
        LineRef::Comment => Line::Comment,
        LineRef::Command(cmd) => Line::Command(cmd.to_owned()),
        LineRef::Bad(reason) => Line::Bad(reason),
    }
}

/// A line that is often valid and often wrong in one small way.
fn random_line(rng: &mut Rng) -> Vec<u8> {
    let long = "A description long enough to cross several 8-byte words of the line. ".repeat(3);
    let long = format!("\"{long}\"");
    let text = match rng.below(12) {
        0 => format!(
            "SetSource,{}",
            rng.pick(&["QualysGuard", "Other", "\"Q\"", ""])
        ),
        1 => format!(
            "AddHost,{}{}",
            rng.pick(&["192.0.2.1", "2001:db8::1", "10.0.0.300", ""]),
            rng.pick(&[
                "",
                ",00:1A:2b:3c:4d:5e",
                ",zz:00:00:00:00:00",
                ",00:11:22:33:44",
                ",,"
            ])
        ),
        2 => format!("DeleteHost,{}", rng.pick(&["192.0.2.1", "x", ""])),
        3 => rng
            .pick(&[
                "ScanFlush",
                "ScanUpdate",
                "ScanFlush,",
                "scanflush",
                "",
                "# note",
            ])
            .to_string(),
        4 => format!(
            "SetAttributeValue,{},{},{}",
            rng.pick(&["192.0.2.1", "192.0.2.999"]),
            rng.pick(&["\"Criticality\"", "Criticality", "\"\"", "Cri\"t"]),
            rng.pick(&["High", "\"High\"", "\"Hi\"gh\"", ""])
        ),
        _ => {
            let fields = [
                rng.mostly(&["192.0.2.10", "2001:db8::a", "192.0.2.300", "", "host"])
                    .to_string(),
                rng.mostly(&[
                    "\"QualysGuard\"",
                    "\"Other\"",
                    "QualysGuard",
                    "\"\"",
                    "\"Q\"x\"",
                    "\"",
                ])
                .to_string(),
                rng.mostly(&[
                    "38170",
                    "0",
                    "1",
                    "012",
                    "-1",
                    "18446744073709551616",
                    "9x",
                    "",
                ])
                .to_string(),
                rng.mostly(&["443", "", "0", "65535", "65536", "08"])
                    .to_string(),
                rng.mostly(&["6", "17", "", "7"]).to_string(),
                rng.mostly(&["\"Name\"", "\"\"", "\"Na\"me\"", "Name", "\"", "\"abc"])
                    .to_string(),
                if rng.below(2) == 0 {
                    long.clone()
                } else {
                    rng.mostly(&["\"d\"", "\"\"", "\"x\"y\"", "d"]).to_string()
                },
                rng.mostly(&[
                    "\"cve_ids: \"",
                    "\"cve_ids: CVE-2014-0160 CVE-2014-0346\"",
                    "\"cve_ids:  CVE-2014-0160   CVE-1999-0524 \"",
                    "\"cve_ids: CVE-14-1\"",
                    "\"cve_ids: CVE-2014-016\"",
                    "\"cve_ids: CVE-2014-0160-1\"",
                    "\"cve_ids: CVE-20a4-0160\"",
                    "\"CVE-2014-0160\"",
                    "\"cve_ids:CVE-2014-0160\"",
                ])
                .to_string(),
                rng.mostly(&[
                    "\"bugtraq_ids: \"",
                    "\"bugtraq_ids: 1 2\"",
                    "\"bugtraq_ids: 1a\"",
                    "\"bugtraq_ids\"",
                ])
                .to_string(),
            ];
            format!("AddScanResult,{}", fields.join(","))
        }
    };
    let mut line = text.into_bytes();
    // Now and then a stray byte, a missing one or a cut.
    for _ in 0..rng.below(4).saturating_sub(1) {
        let at = rng.below(line.len() + 1);
        match rng.below(3) {
            0 => {
                let byte = [
                    b',', b'"', b' ', b'\r', 0, 0xc3, 0xa9, b'#', b'-', b'a', b'0',
                ][rng.below(11)];
                line.insert(at, byte);
            }
            1 if at < line.len() => {
                line.remove(at);
            }
            _ => line.truncate(at),
        }
    }
    line
}

#[test]
fn the_parser_gives_what_it_gave_before_for_every_line() {
    let mut rng = Rng(0x5eed_1234_abcd_0001);
    let mut commands = 0;
    for _ in 0..200_000 {
        let line = random_line(&mut rng);
        let want = parse_line(&line);
        let got = command::parse_line(&line);
        if let Ok(text) = std::str::from_utf8(&line) {
            assert_eq!(owned(command::parse_text_ref(text)), got, "{text}");
        }
        // The language has grown since (Cisco's forms: spaces after commas, tcp/udp,
        // `cve_ids:` without its space, CAN- IDs, CRLF, other commands): a line this
        // parser refused may parse now (command.rs tests those). Every line it took
        // must give what it gave, and every line refused now was refused then.
        let lossy = String::from_utf8_lossy(&line);
        let padded = lossy
            .split(',')
            .any(|f| f.starts_with(' ') || f.ends_with(' '));
        match (&want, &got) {
            (Line::Bad(_), Line::Bad(_)) => {}
            // Fields are trimmed now: " QualysGuard" was a source name, it is "QualysGuard".
            _ if padded => {}
            (Line::Bad(_), _) => {
                let text = String::from_utf8_lossy(&line);
                assert!(
                    text.contains(' ')
                        || text.contains('\r')
                        || text.contains("cve_ids:")
                        || text.contains("bugtraq_ids:")
                        || text.contains("CAN-")
                        || text.contains(",,")
                        || text.ends_with(',')
                        || matches!(
                            got,
                            Line::Command(
                                Command::AddHostByMac(_)
                                    | Command::DeleteHostByMac(_)
                                    | Command::SetSourceType(_)
                                    | Command::SetMap(_)
                                    | Command::SetOs { .. }
                                    | Command::UnsetOs(_)
                                    | Command::AddService { .. }
                                    | Command::DeleteScanResult(_)
                            )
                        ),
                    "newly accepted: {text}"
                );
            }
            _ => assert_eq!(got, want, "{}", String::from_utf8_lossy(&line)),
        }
        if matches!(want, Line::Command(_)) {
            commands += 1;
        }
    }
    // Both kinds are well represented.
    assert!(
        (20_000..180_000).contains(&commands),
        "{commands} valid lines"
    );
}

/// The map both ways: the straightforward code with owned results, and the store.
struct Both {
    old: NetworkMap,
    old_staged: Vec<(IpAddr, ScanResult)>,
    old_source: Option<String>,
    new: Store,
    new_staged: Vec<(IpAddr, super::store::Finding)>,
    new_source: Option<Arc<str>>,
    scope: FlushScope,
}

impl Both {
    /// One line, applied as the server did and as it does.
    fn apply(&mut self, line: &str) {
        let Line::Command(cmd) = parse_line(line.as_bytes()) else {
            panic!("test lines are valid: {line}");
        };
        match cmd {
            Command::SetSource(s) => self.old_source = Some(s),
            Command::AddHost { ip, mac } => add_host(&mut self.old, ip, mac),
            Command::DeleteHost(ip) => {
                self.old.hosts.remove(&ip);
            }
            Command::AddScanResult(f) => {
                let r = ScanResult {
                    source: self.old_source.clone().unwrap(),
                    scanner_id: f.scanner_id,
                    vuln_id: f.vuln_id,
                    port: f.port,
                    proto: f.proto,
                    name: f.name,
                    description: f.description,
                    cve_ids: f.cve_ids,
                    bugtraq_ids: f.bugtraq_ids,
                };
                self.old_staged.push((f.ip, r));
            }
            Command::ScanFlush | Command::ScanUpdate => {}
            Command::SetAttributeValue {
                ip,
                attribute,
                value,
            } => {
                if let Some(host) = self.old.hosts.get_mut(&ip) {
                    host.attributes.insert(attribute, value);
                }
            }
            // The reference covers what the store's rewrite changed: results and hosts.
            other => panic!("not a line the reference compares: {other:?}"),
        }
        let LineRef::Command(cmd) = command::parse_text_ref(line) else {
            panic!("{line}");
        };
        let how = match cmd {
            CommandRef::SetSource(s) => {
                self.new_source = Some(self.new.name(s));
                None
            }
            CommandRef::AddHost { ip, mac } => {
                self.new.add_host(ip, mac);
                None
            }
            CommandRef::DeleteHost(ip) => {
                self.new.delete_host(ip);
                None
            }
            CommandRef::AddScanResult(f) => {
                let source = self.new_source.clone().unwrap();
                self.new.warm(&source, [&f].into_iter());
                let finding = self.new.finding(&source, &f);
                self.new_staged.push((f.ip, finding));
                None
            }
            CommandRef::ScanFlush => Some(Commit::Flush(self.scope)),
            CommandRef::ScanUpdate => Some(Commit::Update),
            CommandRef::SetAttributeValue {
                ip,
                attribute,
                value,
            } => {
                self.new.set_attribute(ip, attribute, value);
                None
            }
            other => panic!("not a line the reference compares: {other:?}"),
        };
        if let Some(how) = how {
            let staged = std::mem::take(&mut self.old_staged);
            let want = commit(&mut self.old, staged, how);
            assert_eq!(self.new.commit(&mut self.new_staged, how), want, "{line}");
            assert!(self.new_staged.is_empty());
        }
    }
}

fn random_command(rng: &mut Rng, vulns: usize) -> String {
    let ip = rng.pick(&["192.0.2.1", "192.0.2.2", "192.0.2.3", "2001:db8::1"]);
    match rng.below(20) {
        0 => format!("SetSource,{}", rng.pick(&["QualysGuard", "Other"])),
        1 | 2 => format!("AddHost,{ip}"),
        3 => format!(
            "AddHost,{ip},{}",
            rng.pick(&["00:1A:2b:3c:4d:5e", "aa:bb:cc:dd:ee:ff"])
        ),
        4 => format!("DeleteHost,{ip}"),
        5 | 6 => "ScanFlush".into(),
        7 => "ScanUpdate".into(),
        8 => format!(
            "SetAttributeValue,{ip},{},{}",
            rng.pick(&["\"Criticality\"", "Owner"]),
            rng.pick(&["High", "\"Low\""])
        ),
        9 => format!(
            "AddScanResult,{ip},\"{}\",,,,\"No open findings{}\",\"\",\"cve_ids: \",\"bugtraq_ids: \"",
            rng.pick(&["QualysGuard", "Other"]),
            rng.pick(&["", " (revised)"]),
        ),
        _ => {
            let vuln = 1 + rng.below(vulns);
            let (port, proto) = [("", ""), ("80", "6"), ("443", "6"), ("53", "17")][rng.below(4)];
            format!(
                "AddScanResult,{ip},\"{}\",{vuln},{port},{proto},\"Title {vuln}{}\",\"Text of {vuln}.\",\"cve_ids: {}\",\"bugtraq_ids: {}\"",
                rng.pick(&["QualysGuard", "QualysGuard", "Other", "Third"]),
                rng.pick(&["", "", "", " (revised)"]),
                rng.pick(&["", "CVE-2014-0160", " CVE-2014-0160  CVE-1999-0524"]),
                rng.pick(&["", "1 2", "66690"]),
            )
        }
    }
}

#[test]
fn the_store_builds_the_map_the_network_map_code_built() {
    for (seed, scope, vulns, lines) in [
        (1, FlushScope::ThisSource, 6, 30_000),
        (2, FlushScope::AllSources, 6, 30_000),
        // Enough different texts for the store to sweep its tables several times.
        (3, FlushScope::ThisSource, 20_000, 60_000),
    ] {
        let mut rng = Rng(0x9e37_79b9_7f4a_7c15 ^ seed);
        let mut both = Both {
            old: NetworkMap::default(),
            old_staged: Vec::new(),
            old_source: None,
            new: Store::default(),
            new_staged: Vec::new(),
            new_source: None,
            scope,
        };
        both.apply("SetSource,QualysGuard");
        for i in 0..lines {
            let line = random_command(&mut rng, vulns);
            both.apply(&line);
            if i % 1000 == 0 {
                assert_eq!(both.new.snapshot(), both.old, "seed {seed}, line {i}");
            }
        }
        both.apply("ScanUpdate");
        assert_eq!(both.new.snapshot(), both.old, "seed {seed}");
        let results: usize = both
            .old
            .hosts
            .values()
            .map(|h: &HostEntry| h.results.len())
            .sum();
        assert!(results > 0, "seed {seed}: something was committed");
    }
}
