//! The Host Input command language (host-input.md §4): encoding commands as the exact
//! bytes the FMC reads, over the wire and in the `-csvfile` output alike.
//!
//! The server silently discards lines it cannot parse, so every text field is made safe
//! here: no `"`, `,`, CR or LF inside a field (Cisco's clients replace `,` with a space,
//! `"` with `'`, line breaks with spaces) and ASCII only (common punctuation and accented
//! Latin letters are transliterated, anything else dropped).

use std::io::Write;
use std::net::IpAddr;

/// Closes a host's staged results (host-input.md §4): `ScanFlush` replaces the host's
/// existing results, `ScanUpdate` merges with them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Commit {
    Flush,
    Update,
}

impl Commit {
    pub fn keyword(self) -> &'static str {
        match self {
            Commit::Flush => "ScanFlush",
            Commit::Update => "ScanUpdate",
        }
    }
}

/// One AddScanResult line's fields, borrowed from the data model.
#[derive(Debug, Clone, Copy)]
pub struct ScanResult<'a> {
    pub ip: IpAddr,
    pub scanner_id: &'a str,
    pub vuln_id: u32,
    pub port: Option<u16>,
    /// IP protocol number, present exactly when `port` is (6 tcp, 17 udp).
    pub protocol: Option<u8>,
    pub name: &'a str,
    pub description: &'a str,
    pub cve_ids: &'a [String],
    pub bugtraq_ids: &'a [String],
}

/// Appends `SetSource,<source>\n`.
pub fn set_source(out: &mut Vec<u8>, source: &str) {
    out.extend_from_slice(b"SetSource,");
    sanitize_into(out, source, usize::MAX);
    out.push(b'\n');
}

/// Appends `AddHost,<ip>\n`.
pub fn add_host(out: &mut Vec<u8>, ip: IpAddr) {
    // Writing into a Vec cannot fail.
    let _ = writeln!(out, "AddHost,{ip}");
}

/// Appends `ScanFlush\n` or `ScanUpdate\n`.
pub fn commit(out: &mut Vec<u8>, commit: Commit) {
    out.extend_from_slice(commit.keyword().as_bytes());
    out.push(b'\n');
}

/// Appends one AddScanResult line. `description_length` caps the description in
/// characters after sanitising; the name is never cut.
pub fn add_scan_result(out: &mut Vec<u8>, r: &ScanResult<'_>, description_length: usize) {
    let scanner = Field::new(r.scanner_id);
    let tail = ResultTail::new(
        r.name,
        r.description,
        r.cve_ids,
        r.bugtraq_ids,
        description_length,
    );
    add_scan_result_with(out, r.ip, &scanner, r.vuln_id, r.port, r.protocol, &tail);
}

/// A text field, sanitised once and reused for every line that carries it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Field(Box<[u8]>);

impl Field {
    pub fn new(text: &str) -> Field {
        let mut out = Vec::with_capacity(text.len());
        sanitize_into(&mut out, text, usize::MAX);
        Field(out.into_boxed_slice())
    }
}

/// The part of an AddScanResult line that depends only on the vulnerability (name,
/// description, references), encoded once per QID: a report repeats each QID on many
/// hosts, and sanitising its texts again for every line would dominate the run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResultTail {
    bytes: Box<[u8]>,
    /// Characters of the name and description dropped for want of a transliteration.
    untransliterated: usize,
}

impl ResultTail {
    pub fn new(
        name: &str,
        description: &str,
        cve_ids: &[String],
        bugtraq_ids: &[String],
        description_length: usize,
    ) -> ResultTail {
        let mut out =
            Vec::with_capacity(name.len() + description.len().min(description_length) + 64);
        out.extend_from_slice(b",\"");
        let mut untransliterated = sanitize_into(&mut out, name, usize::MAX);
        out.extend_from_slice(b"\",\"");
        untransliterated += sanitize_into(&mut out, description, description_length);
        out.extend_from_slice(b"\",\"cve_ids: ");
        id_list(&mut out, cve_ids);
        out.extend_from_slice(b"\",\"bugtraq_ids: ");
        id_list(&mut out, bugtraq_ids);
        out.extend_from_slice(b"\"\n");
        ResultTail {
            bytes: out.into_boxed_slice(),
            untransliterated,
        }
    }

    /// The tail of a QID the glossary does not describe: empty texts and references.
    pub fn empty() -> ResultTail {
        ResultTail::new("", "", &[], &[], 0)
    }

    pub fn len(&self) -> usize {
        self.bytes.len()
    }

    pub fn is_empty(&self) -> bool {
        self.bytes.is_empty()
    }

    /// Characters of the name and description that had no ASCII transliteration and
    /// were dropped.
    pub fn untransliterated(&self) -> usize {
        self.untransliterated
    }
}

/// Appends one AddScanResult line from its parts (host-input.md §4).
pub fn add_scan_result_with(
    out: &mut Vec<u8>,
    ip: IpAddr,
    scanner: &Field,
    vuln_id: u32,
    port: Option<u16>,
    protocol: Option<u8>,
    tail: &ResultTail,
) {
    let _ = write!(out, "AddScanResult,{ip},\"");
    out.extend_from_slice(&scanner.0);
    let _ = write!(out, "\",{vuln_id},");
    if let (Some(port), Some(proto)) = (port, protocol) {
        let _ = write!(out, "{port},{proto}");
    } else {
        out.push(b',');
    }
    out.extend_from_slice(&tail.bytes);
}

/// The name of the generic result that stands for "nothing open" on a host.
pub const NOTHING_OPEN_NAME: &str = "No open Qualys findings";
/// Its description.
pub const NOTHING_OPEN_DESCRIPTION: &str =
    "The latest Qualys report lists no open finding of the types sent on this host.";

/// Appends a generic result (host-input.md §4, p.3-22): an AddScanResult with empty
/// vuln_id, port, protocol and ID lists. It maps to no vulnerability; followed by
/// `ScanFlush` it replaces a host's earlier results with nothing open, where a
/// `ScanFlush` with nothing staged would commit nothing for the host.
pub fn generic_result(out: &mut Vec<u8>, ip: IpAddr, scanner: &Field, tail: &ResultTail) {
    let _ = write!(out, "AddScanResult,{ip},\"");
    out.extend_from_slice(&scanner.0);
    out.extend_from_slice(b"\",,,");
    out.extend_from_slice(&tail.bytes);
}

fn id_list(out: &mut Vec<u8>, ids: &[String]) {
    let mut first = true;
    for id in ids {
        let start = out.len();
        if !first {
            out.push(b' ');
        }
        let before = out.len();
        // IDs are separated by spaces: an ID can hold none.
        for c in id.chars() {
            if c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | ':') {
                out.push(c as u8);
            }
        }
        if out.len() == before {
            out.truncate(start);
        } else {
            first = false;
        }
    }
}

/// Appends `text` made safe for a quoted Host Input field, at most `max_chars`
/// characters, with runs of spaces collapsed and no leading or trailing space. Returns
/// how many characters were dropped for want of an ASCII transliteration.
pub fn sanitize_into(out: &mut Vec<u8>, text: &str, max_chars: usize) -> usize {
    let start = out.len();
    let mut pending_space = false;
    let mut written = 0usize;
    let mut dropped = 0usize;
    let bytes = text.as_bytes();
    let mut at = 0;
    'chars: while at < bytes.len() {
        // Printable ASCII other than ',' and '"', with single spaces between, stands for
        // itself: copied a run at a time (this ran for every glossary entry and showed in the profile).
        // Never look further than what can still fit.
        let end = at
            .saturating_add(max_chars.saturating_sub(written).saturating_add(1))
            .min(bytes.len());
        let run = crate::model::plain_run(&bytes[at..end], |b| {
            matches!(b, 0x21..=0x7e) && b != b',' && b != b'"'
        });
        if run > 0 {
            let room = max_chars.saturating_sub(written + usize::from(pending_space));
            let mut take = run.min(room);
            // A space is kept only once the character after it fits.
            if take < run && take > 0 && bytes[at + take - 1] == b' ' {
                take -= 1;
            }
            if take > 0 {
                if pending_space {
                    out.push(b' ');
                    written += 1;
                    pending_space = false;
                }
                out.extend_from_slice(&bytes[at..at + take]);
                written += take;
            }
            if take < run {
                break;
            }
            at += run;
            continue;
        }
        let Some(c) = text[at..].chars().next() else {
            break;
        };
        at += c.len_utf8();
        dropped += usize::from(untransliterable(c));
        let mut buf = [0u8; 4];
        for b in replacement(c, &mut buf).bytes() {
            if b == b' ' {
                pending_space = out.len() > start;
                continue;
            }
            let needed = usize::from(pending_space) + 1;
            if written + needed > max_chars {
                break 'chars;
            }
            if pending_space {
                out.push(b' ');
                written += 1;
                pending_space = false;
            }
            out.push(b);
            written += 1;
        }
    }
    dropped
}

/// What a character becomes in a quoted field: separators a space, `"` a `'`, control
/// characters nothing, other non-ASCII its transliteration (spaces are collapsed by the
/// caller).
fn replacement(c: char, buf: &mut [u8; 4]) -> &str {
    match c {
        ',' | '\r' | '\n' | '\t' => " ",
        '"' => "'",
        c if c.is_ascii_control() => "",
        c if c.is_ascii() => c.encode_utf8(buf),
        c => transliterate(c).unwrap_or(""),
    }
}

/// Whether `c` is dropped for want of a transliteration (counted for the summary).
fn untransliterable(c: char) -> bool {
    !c.is_ascii() && transliterate(c).is_none()
}

/// Shortens an AddScanResult line (with its newline) to at most `max_len` bytes, for a
/// server whose block limit is smaller than the line (host-input.md §3: "shorten its text
/// fields (the description first) rather than failing the host"). Then the name, then the
/// reference lists lose their tail. `None` when even that cannot make it fit, or the line
/// is not an AddScanResult line of this encoder.
pub fn shorten_scan_result(line: &[u8], max_len: usize) -> Option<Vec<u8>> {
    if line.len() <= max_len {
        return Some(line.to_vec());
    }
    // Text fields hold no '"', so the quotes split the line into its fields:
    // [prefix, scanner, numbers, name, ",", description, ",", cves, ",", bugtraqs, "\n"]
    let mut parts: Vec<Vec<u8>> = line.split(|&b| b == b'"').map(<[u8]>::to_vec).collect();
    if parts.len() != 11 || !parts[0].starts_with(b"AddScanResult,") {
        return None;
    }
    let mut excess = line.len() - max_len;
    for index in [5, 3] {
        excess = cut_text(&mut parts[index], excess);
        if excess == 0 {
            return Some(parts.join(&b'"'));
        }
    }
    for (index, prefix) in [(7, &b"cve_ids: "[..]), (9, &b"bugtraq_ids: "[..])] {
        while excess > 0 && parts[index].len() > prefix.len() {
            let field = &mut parts[index];
            let cut = field
                .iter()
                .rposition(|&b| b == b' ')
                .filter(|&i| i >= prefix.len())
                .unwrap_or(prefix.len());
            let removed = field.len() - cut;
            field.truncate(cut);
            if cut < prefix.len() {
                field.extend_from_slice(prefix);
            }
            excess = excess.saturating_sub(removed);
        }
        if excess == 0 {
            return Some(parts.join(&b'"'));
        }
    }
    None
}

/// Removes `excess` bytes from the end of a text field, marking the cut with "...";
/// returns what is still to remove when the field ran out.
fn cut_text(field: &mut Vec<u8>, excess: usize) -> usize {
    if field.is_empty() {
        return excess;
    }
    if field.len() > excess + 3 {
        field.truncate(field.len() - excess - 3);
        while field.last() == Some(&b' ') {
            field.pop();
        }
        field.extend_from_slice(b"...");
        // Trailing spaces removed above only made it shorter: still within the limit.
        0
    } else {
        let removed = field.len();
        field.clear();
        excess.saturating_sub(removed)
    }
}

/// ASCII for a non-ASCII character: `Some("")` drops one that needs no ASCII (a
/// combining accent, a zero-width mark, U+FFFD which the report reader counted already);
/// `None` for one with no transliteration (CJK, emoji, most scripts), dropped and counted.
fn transliterate(c: char) -> Option<&'static str> {
    match u32::from(c) {
        0x80..=0xff => latin1(c),
        0x100..=0x17f => Some(latin_extended_a(c)),
        0x300..=0x36f | 0x200c..=0x200f | 0x2060 | 0xfe00..=0xfe0f | 0xfeff | 0xfffd => Some(""),
        0x3000 => Some(" "),
        0x2000..=0x2bff => punctuation(c),
        0xfb00..=0xff5e => forms(c),
        _ => None,
    }
}

/// U+0080-U+00FF.
fn latin1(c: char) -> Option<&'static str> {
    Some(match c {
        '\u{a0}' => " ",
        '\u{a1}' => "!",
        '\u{a2}' => "c",
        '\u{a3}' => "GBP",
        '\u{a5}' => "JPY",
        '\u{a6}' => "|",
        '\u{aa}' => "a",
        '\u{ba}' => "o",
        '\u{ab}' | '\u{bb}' => "'",
        '\u{ad}' => "",
        '\u{b4}' => "'",
        '\u{b0}' => "deg",
        '\u{b1}' => "+/-",
        '\u{b2}' => "2",
        '\u{b3}' => "3",
        '\u{b9}' => "1",
        '\u{b5}' => "u",
        '\u{b7}' => "*",
        '\u{bc}' => "1/4",
        '\u{bd}' => "1/2",
        '\u{be}' => "3/4",
        '\u{bf}' => "?",
        '\u{a9}' => "(c)",
        '\u{ae}' => "(R)",
        '\u{d7}' => "x",
        '\u{f7}' => "/",
        '\u{c0}'..='\u{c5}' => "A",
        '\u{c6}' => "AE",
        '\u{c7}' => "C",
        '\u{c8}'..='\u{cb}' => "E",
        '\u{cc}'..='\u{cf}' => "I",
        '\u{d0}' => "D",
        '\u{d1}' => "N",
        '\u{d2}'..='\u{d6}' | '\u{d8}' => "O",
        '\u{d9}'..='\u{dc}' => "U",
        '\u{dd}' => "Y",
        '\u{de}' => "Th",
        '\u{df}' => "ss",
        '\u{e0}'..='\u{e5}' => "a",
        '\u{e6}' => "ae",
        '\u{e7}' => "c",
        '\u{e8}'..='\u{eb}' => "e",
        '\u{ec}'..='\u{ef}' => "i",
        '\u{f0}' => "d",
        '\u{f1}' => "n",
        '\u{f2}'..='\u{f6}' | '\u{f8}' => "o",
        '\u{f9}'..='\u{fc}' => "u",
        '\u{fd}' | '\u{ff}' => "y",
        '\u{fe}' => "th",
        _ => return None,
    })
}

/// U+0100-U+017F: the letter without its accent (Unicode's decomposition), or its
/// usual spelling for the few that have none (Đ, Ł, Œ, ...).
fn latin_extended_a(c: char) -> &'static str {
    match c {
        '\u{100}' | '\u{102}' | '\u{104}' => "A",
        '\u{101}' | '\u{103}' | '\u{105}' => "a",
        '\u{106}' | '\u{108}' | '\u{10a}' | '\u{10c}' => "C",
        '\u{107}' | '\u{109}' | '\u{10b}' | '\u{10d}' => "c",
        '\u{10e}' | '\u{110}' => "D",
        '\u{10f}' | '\u{111}' => "d",
        '\u{112}' | '\u{114}' | '\u{116}' | '\u{118}' | '\u{11a}' => "E",
        '\u{113}' | '\u{115}' | '\u{117}' | '\u{119}' | '\u{11b}' => "e",
        '\u{11c}' | '\u{11e}' | '\u{120}' | '\u{122}' => "G",
        '\u{11d}' | '\u{11f}' | '\u{121}' | '\u{123}' => "g",
        '\u{124}' | '\u{126}' => "H",
        '\u{125}' | '\u{127}' => "h",
        '\u{128}' | '\u{12a}' | '\u{12c}' | '\u{12e}' | '\u{130}' => "I",
        '\u{129}' | '\u{12b}' | '\u{12d}' | '\u{12f}' | '\u{131}' => "i",
        '\u{132}' => "IJ",
        '\u{133}' => "ij",
        '\u{134}' => "J",
        '\u{135}' => "j",
        '\u{136}' => "K",
        '\u{137}'..='\u{138}' => "k",
        '\u{139}' | '\u{13b}' | '\u{13d}' | '\u{13f}' | '\u{141}' => "L",
        '\u{13a}' | '\u{13c}' | '\u{13e}' | '\u{140}' | '\u{142}' => "l",
        '\u{143}' | '\u{145}' | '\u{147}' | '\u{14a}' => "N",
        '\u{144}' | '\u{146}' | '\u{148}' | '\u{14b}' => "n",
        '\u{149}' => "'n",
        '\u{14c}' | '\u{14e}' | '\u{150}' => "O",
        '\u{14d}' | '\u{14f}' | '\u{151}' => "o",
        '\u{152}' => "OE",
        '\u{153}' => "oe",
        '\u{154}' | '\u{156}' | '\u{158}' => "R",
        '\u{155}' | '\u{157}' | '\u{159}' => "r",
        '\u{15a}' | '\u{15c}' | '\u{15e}' | '\u{160}' => "S",
        '\u{15b}' | '\u{15d}' | '\u{15f}' | '\u{161}' | '\u{17f}' => "s",
        '\u{162}' | '\u{164}' | '\u{166}' => "T",
        '\u{163}' | '\u{165}' | '\u{167}' => "t",
        '\u{168}' | '\u{16a}' | '\u{16c}' | '\u{16e}' | '\u{170}' | '\u{172}' => "U",
        '\u{169}' | '\u{16b}' | '\u{16d}' | '\u{16f}' | '\u{171}' | '\u{173}' => "u",
        '\u{174}' => "W",
        '\u{175}' => "w",
        '\u{176}' | '\u{178}' => "Y",
        '\u{177}' => "y",
        '\u{179}' | '\u{17b}' | '\u{17d}' => "Z",
        '\u{17a}' | '\u{17c}' | '\u{17e}' => "z",
        _ => "",
    }
}

/// General punctuation, super- and subscripts, currency, letterlike symbols, arrows and
/// mathematical operators (U+2000-U+2BFF).
fn punctuation(c: char) -> Option<&'static str> {
    Some(match c {
        '\u{2000}'..='\u{200b}' | '\u{2028}' | '\u{2029}' | '\u{202f}' | '\u{205f}' => " ",
        '\u{2018}' | '\u{2019}' | '\u{201a}' | '\u{201b}' | '\u{2032}' => "'",
        '\u{2039}' | '\u{203a}' => "'",
        '\u{201c}' | '\u{201d}' | '\u{201e}' | '\u{201f}' | '\u{2033}' => "'",
        '\u{2010}'..='\u{2015}' | '\u{2212}' => "-",
        '\u{2026}' => "...",
        '\u{2022}' | '\u{2219}' => "*",
        '\u{2044}' | '\u{2215}' => "/",
        '\u{2070}' => "0",
        '\u{2074}'..='\u{2079}' => digit(u32::from(c) - 0x2070),
        '\u{2080}'..='\u{2089}' => digit(u32::from(c) - 0x2080),
        '\u{20ac}' => "EUR",
        '\u{2122}' => "(TM)",
        '\u{2190}' => "<-",
        '\u{2192}' => "->",
        '\u{2194}' => "<->",
        '\u{21d2}' => "=>",
        '\u{2248}' => "~",
        '\u{2260}' => "!=",
        '\u{2264}' => "<=",
        '\u{2265}' => ">=",
        '\u{221e}' => "inf",
        _ => return None,
    })
}

/// Ligatures and the fullwidth forms of ASCII (U+FB00-U+FF5E).
fn forms(c: char) -> Option<&'static str> {
    const PRINTABLE: &str = "!\"#$%&'()*+,-./0123456789:;<=>?@ABCDEFGHIJKLMNOPQRSTUVWXYZ[\\]^_`abcdefghijklmnopqrstuvwxyz{|}~";
    Some(match c {
        '\u{fb00}' => "ff",
        '\u{fb01}' => "fi",
        '\u{fb02}' => "fl",
        '\u{fb03}' => "ffi",
        '\u{fb04}' => "ffl",
        // The separators of the format get the treatment of their ASCII forms.
        '\u{ff02}' => "'",
        '\u{ff0c}' => " ",
        '\u{ff01}'..='\u{ff5e}' => {
            let at = (u32::from(c) - 0xff01) as usize;
            PRINTABLE.get(at..=at)?
        }
        _ => return None,
    })
}

/// The decimal digit `n` (0-9) as text.
fn digit(n: u32) -> &'static str {
    let n = n as usize;
    "0123456789".get(n..=n).unwrap_or("")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sanitized(text: &str, max: usize) -> String {
        let mut out = Vec::new();
        sanitize_into(&mut out, text, max);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn sanitize_table() {
        let cases = [
            ("plain", usize::MAX, "plain"),
            ("a,b", usize::MAX, "a b"),
            ("say \"hi\"", usize::MAX, "say 'hi'"),
            ("line\r\nbreak", usize::MAX, "line break"),
            ("tab\there", usize::MAX, "tab here"),
            ("  lead and trail  ", usize::MAX, "lead and trail"),
            ("a , , b", usize::MAX, "a b"),
            (
                "caf\u{e9} na\u{ef}ve \u{c5}ngstr\u{f6}m",
                usize::MAX,
                "cafe naive Angstrom",
            ),
            (
                "\u{201c}quoted\u{201d} \u{2014} it\u{2019}s\u{2026}",
                usize::MAX,
                "'quoted' - it's...",
            ),
            ("\u{4e2d}\u{6587} dropped", usize::MAX, "dropped"),
            (
                "\u{bd} \u{bc}\u{b0}C \u{b1}1 \u{b2}",
                usize::MAX,
                "1/2 1/4degC +/-1 2",
            ),
            (
                "\u{141}\u{f3}d\u{17a} \u{152}uvre \u{10d}",
                usize::MAX,
                "Lodz OEuvre c",
            ),
            (
                "e\u{301}t\u{e9} \u{fb01}n \u{2264}",
                usize::MAX,
                "ete fin <=",
            ),
            ("\u{ff21}\u{ff0c}\u{ff02}\u{ff42}", usize::MAX, "A 'b"),
            ("x\u{2028}y\u{3000}z\u{200b}w", usize::MAX, "x y z w"),
            ("\u{1F600}\u{fffd}", usize::MAX, ""),
            ("bell\u{7}char", usize::MAX, "bellchar"),
            ("0123456789", 5, "01234"),
            ("ab cd ef", 5, "ab cd"),
            ("ab cd", 3, "ab"),
            ("", 10, ""),
        ];
        for (input, max, want) in cases {
            assert_eq!(sanitized(input, max), want, "input {input:?}");
        }
    }

    #[test]
    fn untransliterable_characters_are_counted() {
        let cases = [
            ("plain, \"ascii\"", usize::MAX, 0),
            ("caf\u{e9} \u{bd} \u{2014} \u{ff21} e\u{301}", usize::MAX, 0),
            // U+FFFD: counted by the report reader as a repaired sequence already.
            ("\u{fffd}", usize::MAX, 0),
            ("\u{4e2d}\u{6587} \u{1F600} \u{3b1}", usize::MAX, 4),
            // Text past the limit is not looked at.
            ("abc \u{4e2d}", 2, 0),
            ("ab\u{4e2d}", 2, 1),
        ];
        for (text, max, want) in cases {
            let mut out = Vec::new();
            assert_eq!(sanitize_into(&mut out, text, max), want, "{text:?}");
        }
        let tail = ResultTail::new("\u{4e2d}", "\u{1F600} x \u{1F600}", &[], &[], 512);
        assert_eq!(tail.untransliterated(), 3);
    }

    /// The char-at-a-time definition `sanitize_into` must keep matching (it copies runs
    /// of plain ASCII whole for speed).
    fn sanitized_slowly(text: &str, max_chars: usize) -> (String, usize) {
        let mut out = String::new();
        let mut pending_space = false;
        let mut dropped = 0;
        'chars: for c in text.chars() {
            if !c.is_ascii() && transliterate(c).is_none() {
                dropped += 1;
            }
            let mut buf = [0u8; 4];
            for ch in replacement(c, &mut buf).chars() {
                if ch == ' ' {
                    pending_space = !out.is_empty();
                    continue;
                }
                if out.len() + usize::from(pending_space) + 1 > max_chars {
                    break 'chars;
                }
                if pending_space {
                    out.push(' ');
                    pending_space = false;
                }
                out.push(ch);
            }
        }
        (out, dropped)
    }

    proptest::proptest! {
        #[test]
        fn sanitize_matches_its_definition(
            text in "[a-c ,\"\t\r\n\u{1}\u{7f}\u{e9}\u{2014}\u{201c}\u{4e2d}\u{a0}\u{bd}\u{2026}\u{ff0c}\u{ff02}\u{301}\u{1F600}\u{fffd}]{0,40}",
            max in 0usize..45,
        ) {
            let mut out = Vec::new();
            let dropped = sanitize_into(&mut out, &text, max);
            let got = (String::from_utf8(out).unwrap(), dropped);
            proptest::prop_assert_eq!(got, sanitized_slowly(&text, max));
        }
    }

    #[test]
    fn sanitized_fields_never_break_the_line() {
        let nasty = "x,\"y\"\r\n\u{2028}\u{1F600},,\"\"\u{ff0c}\u{ff02}\u{ff3c}";
        let out = sanitized(nasty, usize::MAX);
        assert!(out.is_ascii());
        assert!(!out.contains([',', '"', '\r', '\n']), "{out:?}");
    }

    #[test]
    fn scan_result_lines() {
        let cves = vec!["CVE-1999-0524".to_string()];
        let bids = vec![
            "66690".to_string(),
            "bad id,\"x".to_string(),
            " ".to_string(),
        ];
        let cases: Vec<(ScanResult<'_>, &str)> = vec![
            (
                ScanResult {
                    ip: "192.0.2.10".parse().unwrap(),
                    scanner_id: "QualysGuard",
                    vuln_id: 38170,
                    port: Some(443),
                    protocol: Some(6),
                    name: "SSL Certificate - Subject Common Name Does Not Match",
                    description: "The certificate's common name does not match the host name.",
                    cve_ids: &[],
                    bugtraq_ids: &[],
                },
                "AddScanResult,192.0.2.10,\"QualysGuard\",38170,443,6,\"SSL Certificate - Subject Common Name Does Not Match\",\"The certificate's common name does not match the host name.\",\"cve_ids: \",\"bugtraq_ids: \"\n",
            ),
            (
                ScanResult {
                    ip: "192.0.2.10".parse().unwrap(),
                    scanner_id: "QualysGuard",
                    vuln_id: 82003,
                    port: None,
                    protocol: None,
                    name: "ICMP Timestamp Request",
                    description: "The host answered, an \"ICMP\" timestamp request.",
                    cve_ids: &cves,
                    bugtraq_ids: &bids,
                },
                "AddScanResult,192.0.2.10,\"QualysGuard\",82003,,,\"ICMP Timestamp Request\",\"The host answered an 'ICMP' timestamp request.\",\"cve_ids: CVE-1999-0524\",\"bugtraq_ids: 66690 badidx\"\n",
            ),
            (
                ScanResult {
                    ip: "2001:db8::1".parse().unwrap(),
                    scanner_id: "Scanner,One",
                    vuln_id: 1,
                    port: Some(53),
                    protocol: Some(17),
                    name: "",
                    description: "",
                    cve_ids: &[],
                    bugtraq_ids: &[],
                },
                "AddScanResult,2001:db8::1,\"Scanner One\",1,53,17,\"\",\"\",\"cve_ids: \",\"bugtraq_ids: \"\n",
            ),
        ];
        for (result, want) in cases {
            let mut out = Vec::new();
            add_scan_result(&mut out, &result, 512);
            assert_eq!(String::from_utf8(out).unwrap(), want);
        }
    }

    #[test]
    fn generic_result_line() {
        let mut out = Vec::new();
        let tail = ResultTail::new("No open, \"findings\"", "none", &[], &[], 512);
        generic_result(
            &mut out,
            "192.0.2.7".parse().unwrap(),
            &Field::new("QualysGuard"),
            &tail,
        );
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "AddScanResult,192.0.2.7,\"QualysGuard\",,,,\"No open 'findings'\",\"none\",\"cve_ids: \",\"bugtraq_ids: \"\n"
        );
    }

    #[test]
    fn other_commands() {
        let mut out = Vec::new();
        set_source(&mut out, "QualysGuard");
        add_host(&mut out, "192.0.2.11".parse().unwrap());
        commit(&mut out, Commit::Flush);
        commit(&mut out, Commit::Update);
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "SetSource,QualysGuard\nAddHost,192.0.2.11\nScanFlush\nScanUpdate\n"
        );
    }

    #[test]
    fn long_lines_are_shortened_description_first() {
        let cves: Vec<String> = (0..50).map(|i| format!("CVE-2020-{i:04}")).collect();
        let r = ScanResult {
            ip: "192.0.2.1".parse().unwrap(),
            scanner_id: "QualysGuard",
            vuln_id: 7,
            port: Some(80),
            protocol: Some(6),
            name: "A fairly long vulnerability title",
            description: &"lorem ipsum ".repeat(40),
            cve_ids: &cves,
            bugtraq_ids: &[],
        };
        let mut line = Vec::new();
        add_scan_result(&mut line, &r, usize::MAX);
        let full = line.len();
        for max in [
            full,
            full - 1,
            full - 100,
            full - 470,
            full - 480,
            full - 600,
            200,
        ] {
            let short = shorten_scan_result(&line, max).unwrap();
            let text = String::from_utf8(short.clone()).unwrap();
            assert!(short.len() <= max, "max {max}: {} bytes", short.len());
            assert!(text.starts_with("AddScanResult,192.0.2.1,\"QualysGuard\",7,80,6,\""));
            assert!(text.ends_with("\"\n"), "{text}");
            assert_eq!(text.matches('"').count(), 10, "{text}");
            if max >= full - 470 {
                assert!(
                    text.contains("A fairly long vulnerability title"),
                    "name kept: {text}"
                );
                assert!(text.contains("CVE-2020-0049"), "references kept: {text}");
            }
        }
        assert!(shorten_scan_result(&line, 60).is_none(), "cannot fit");
        assert!(shorten_scan_result(b"ScanFlush\n", 3).is_none());
    }

    #[test]
    fn description_is_capped() {
        let mut out = Vec::new();
        let r = ScanResult {
            ip: "192.0.2.1".parse().unwrap(),
            scanner_id: "QualysGuard",
            vuln_id: 7,
            port: None,
            protocol: None,
            name: "n",
            description: "abcdefghij",
            cve_ids: &[],
            bugtraq_ids: &[],
        };
        add_scan_result(&mut out, &r, 4);
        assert!(String::from_utf8(out).unwrap().contains(",\"abcd\","));
    }
}
