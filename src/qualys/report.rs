//! Streaming parser for the Qualys `ASSET_DATA_REPORT` (qualys.md §5).
//!
//! The document is read once, event by event, with memory bounded by the largest single
//! host: each `HOST` is handed to a [`ReportVisitor`] as soon as it closes, and each
//! glossary entry as soon as its `VULN_DETAILS` closes. Joining findings with glossary
//! details (which normally come after the hosts) is the caller's business.
//!
//! What the parser tolerates and what it rejects is the contract of qualys.md §5: comments
//! anywhere, CDATA with whitespace around it, no XML declaration, an external DOCTYPE that
//! is never fetched (entities are never expanded), a HOST holding only an ERROR, missing
//! optional elements, the same QID on several ports, invalid UTF-8 (repaired and counted).
//! Qualys error documents (SIMPLE_RETURN, GENERIC_RETURN), other report formats and
//! truncated documents are errors that say what was received.

use std::collections::HashMap;
use std::fmt;
use std::io::{self, BufRead, Read};
use std::net::IpAddr;

use quick_xml::Reader;
use quick_xml::events::{BytesRef, BytesStart, Event};

use super::html;
use super::lossy::{LossyUtf8, UnsupportedEncoding};
use super::readahead::Utf8Source;
use crate::model::{Finding, FindingType, Host, Protocol, VulnDetails, VulnStatus};
use crate::servertext;

/// The most text kept of one element (a title, a THREAT, an IP...).
pub const MAX_FIELD: usize = 1024 * 1024;

/// Receives the report's content as it streams past.
pub trait ReportVisitor {
    /// One host with all its findings, in report order. An error stops the parse.
    fn host(&mut self, host: &Host) -> io::Result<()>;
    /// One glossary entry.
    fn vuln_details(&mut self, qid: u32, details: VulnDetails);
}

#[derive(Debug, Clone, Copy)]
pub struct ParseOptions {
    /// Descriptions are cut to this many characters while parsing, which also bounds the
    /// memory the glossary takes.
    pub description_length: usize,
}

/// What the parser saw, for the run summary.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReportStats {
    pub hosts: u64,
    /// HOST elements holding an ERROR instead of data, skipped.
    pub host_errors: u64,
    /// HOST elements skipped because their IP was missing or not an address.
    pub bad_hosts: u64,
    /// VULN_INFO elements skipped because a field could not be read (warned each).
    pub bad_findings: u64,
    pub glossary_entries: u64,
    /// Invalid UTF-8 sequences replaced with U+FFFD.
    pub replaced_utf8: u64,
    /// Entity references left as written because they are not XML's predefined ones.
    pub unexpanded_entities: u64,
    /// Text fields cut at `MAX_FIELD` bytes.
    pub oversized_fields: u64,
    /// Findings merged into an identical one of the same host: the same QID and type
    /// without a port (a PORT whose PROTOCOL is not tcp or udp is sent without it).
    pub merged_findings: u64,
    pub bytes: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    #[error("cannot read the report: {0}")]
    Io(#[source] io::Error),
    #[error("the report is empty: no XML element found")]
    Empty,
    #[error("the input is not XML: it starts with text ({snippet:?}) instead of an element")]
    NotXml { snippet: String },
    #[error("malformed XML at byte {offset}: {message}")]
    Malformed { offset: u64, message: String },
    #[error(
        "the report is incomplete: it ends at byte {offset} inside <{open}> (the document was cut short; nothing was processed)"
    )]
    Incomplete { offset: u64, open: String },
    #[error("unexpected content after the end of the report at byte {offset}")]
    TrailingContent { offset: u64 },
    #[error("Qualys returned an error instead of a report: {0}")]
    Qualys(QualysError),
    /// A Qualys API answer that is no error (`New report launched`) and no report.
    #[error("a Qualys API reply, not a report: {0}; {NEEDED}")]
    ApiReply(QualysError),
    #[error("unsupported document: {root} is {what}, not an ASSET_DATA_REPORT; {hint}")]
    Unsupported {
        root: String,
        what: &'static str,
        hint: &'static str,
    },
    #[error(
        "not a Qualys report: the root element is <{root}>, expected <ASSET_DATA_REPORT>{hint}"
    )]
    NotAReport { root: String, hint: &'static str },
    #[error("cannot store parsed hosts: {0}")]
    Visitor(#[source] io::Error),
    /// The XML declaration names an encoding other than UTF-8, US-ASCII, ISO-8859-1 or
    /// Windows-1252 (read as UTF-8, its letters would be lost).
    #[error("{0}")]
    Encoding(UnsupportedEncoding),
}

impl ReportError {
    /// Byte offset in the input the error points at, when it points anywhere.
    pub fn offset(&self) -> Option<u64> {
        match self {
            ReportError::Malformed { offset, .. }
            | ReportError::Incomplete { offset, .. }
            | ReportError::TrailingContent { offset } => Some(*offset),
            _ => None,
        }
    }
}

/// What the connector needs, said wherever another document was given.
pub const NEEDED: &str = "the connector needs the ASSET_DATA_REPORT of a scan report template, in XML (in Qualys: Reports, Templates, a Scan Report template; report format XML)";

/// An error document from Qualys, in any of its shapes (qualys.md §2, §3): SIMPLE_RETURN,
/// GENERIC_RETURN, or the scan API's `<SCAN><ERROR number="…">`. Its text is the
/// server's: [`fmt::Display`] escapes it (servertext).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct QualysError {
    /// `SIMPLE_RETURN` (API v2) or `GENERIC_RETURN` (API v1).
    pub root: String,
    /// `CODE` of SIMPLE_RETURN, `number` attribute of GENERIC_RETURN's RETURN.
    pub code: Option<String>,
    pub text: String,
    /// ITEM_LIST values (for example "Tried to launch invalid report.").
    pub items: Vec<String>,
}

impl fmt::Display for QualysError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let items = self.items.iter().map(String::as_str);
        write_error_doc(f, &self.root, self.code.as_deref(), &self.text, items)
    }
}

/// An error document as one line, `ROOT CODE c: text (item)...`, every part escaped (it
/// is the server's text); a SCAN's number is its ERROR's.
pub fn write_error_doc<'a>(
    f: &mut fmt::Formatter<'_>,
    root: &str,
    code: Option<&str>,
    text: &str,
    items: impl Iterator<Item = &'a str>,
) -> fmt::Result {
    let escaped = |text: &str| servertext::escape(text.as_bytes(), servertext::MAX_TEXT_CHARS);
    write!(f, "{}", escaped(root))?;
    match code {
        Some(code) if root == "SCAN" => write!(f, " ERROR {}", escaped(code))?,
        Some(code) => write!(f, " CODE {}", escaped(code))?,
        None => {}
    }
    write!(f, ": {}", escaped(text))?;
    for item in items {
        write!(f, " ({})", escaped(item))?;
    }
    Ok(())
}

/// Parses a whole report from `input`, calling `visitor` for each host and glossary entry.
pub fn parse<R: Read>(
    input: R,
    options: ParseOptions,
    visitor: &mut dyn ReportVisitor,
) -> Result<ReportStats, ReportError> {
    parse_source(LossyUtf8::new(input), options, visitor)
}

/// `parse`, from a source that already delivers valid UTF-8 (for example a `ReadAhead`
/// that repairs it on another thread).
pub fn parse_source<S: Utf8Source>(
    input: S,
    options: ParseOptions,
    visitor: &mut dyn ReportVisitor,
) -> Result<ReportStats, ReportError> {
    let mut reader = Reader::from_reader(input);
    {
        // Text is not trimmed by the reader: that would also eat the spaces around entity
        // references ("AT &amp; T"). Each field trims or collapses its own text instead.
        reader.config_mut().check_end_names = true;
    }
    let mut parser = Parser {
        options,
        stats: ReportStats::default(),
        stack: Vec::with_capacity(16),
        text: String::new(),
        capture: None,
        host: HostState::default(),
        finding: FindingState::default(),
        details: DetailsState::default(),
        error_doc: QualysError::default(),
    };
    let result = parser.run(&mut reader, visitor);
    parser.stats.replaced_utf8 = reader.get_ref().replaced();
    parser.stats.bytes = reader.buffer_position();
    result.map(|()| parser.stats)
}

/// Elements the parser cares about; everything else is `Other`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Tag {
    Report,
    HostList,
    Host,
    Ip,
    VulnInfo,
    Qid,
    Type,
    Port,
    Protocol,
    VulnStatus,
    Error,
    Glossary,
    VulnDetails,
    Title,
    Threat,
    CveIdList,
    BugtraqIdList,
    Id,
    // Error documents.
    Response,
    Code,
    Text,
    Value,
    Return,
    Other,
}

impl Tag {
    fn name(self) -> Option<&'static str> {
        Some(match self {
            Tag::Report => "ASSET_DATA_REPORT",
            Tag::HostList => "HOST_LIST",
            Tag::Host => "HOST",
            Tag::Ip => "IP",
            Tag::VulnInfo => "VULN_INFO",
            Tag::Qid => "QID",
            Tag::Type => "TYPE",
            Tag::Port => "PORT",
            Tag::Protocol => "PROTOCOL",
            Tag::VulnStatus => "VULN_STATUS",
            Tag::Error => "ERROR",
            Tag::Glossary => "GLOSSARY",
            Tag::VulnDetails => "VULN_DETAILS",
            Tag::Title => "TITLE",
            Tag::Threat => "THREAT",
            Tag::CveIdList => "CVE_ID_LIST",
            Tag::BugtraqIdList => "BUGTRAQ_ID_LIST",
            Tag::Id => "ID",
            Tag::Response => "RESPONSE",
            Tag::Code => "CODE",
            Tag::Text => "TEXT",
            Tag::Value => "VALUE",
            Tag::Return => "RETURN",
            Tag::Other => return None,
        })
    }

    fn of(name: &str) -> Tag {
        match name {
            "ASSET_DATA_REPORT" => Tag::Report,
            "HOST_LIST" => Tag::HostList,
            "HOST" => Tag::Host,
            "IP" => Tag::Ip,
            "VULN_INFO" => Tag::VulnInfo,
            "QID" => Tag::Qid,
            "TYPE" => Tag::Type,
            "PORT" => Tag::Port,
            "PROTOCOL" => Tag::Protocol,
            "VULN_STATUS" => Tag::VulnStatus,
            "ERROR" => Tag::Error,
            "GLOSSARY" => Tag::Glossary,
            "VULN_DETAILS" => Tag::VulnDetails,
            "TITLE" => Tag::Title,
            "THREAT" => Tag::Threat,
            "CVE_ID_LIST" => Tag::CveIdList,
            "BUGTRAQ_ID_LIST" => Tag::BugtraqIdList,
            "ID" => Tag::Id,
            "RESPONSE" => Tag::Response,
            "CODE" => Tag::Code,
            "TEXT" => Tag::Text,
            "VALUE" => Tag::Value,
            "RETURN" => Tag::Return,
            _ => Tag::Other,
        }
    }
}

/// The text fields the parser collects; which one the current text belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Field {
    HostIp,
    HostError,
    Qid,
    Type,
    Port,
    Protocol,
    Status,
    DetailsQid,
    Title,
    Threat,
    CveId,
    BugtraqId,
    ErrCode,
    ErrText,
    ErrItem,
    ErrReturn,
}

#[derive(Debug, Default)]
struct HostState {
    ip: Option<String>,
    /// The `v6` attribute of IP, used when the text is not an address.
    ip_v6: Option<String>,
    error: Option<String>,
    host: Option<Host>,
    ordinal: u64,
    /// Where each host-level finding (no port) is in `host.findings`, by QID and type:
    /// a second one is the same result, merged into the first.
    host_level: HashMap<(u32, FindingType), usize>,
    /// The QIDs of findings whose PORT went for want of a protocol, for one warning per
    /// host.
    portless: Vec<u32>,
}

#[derive(Debug, Default)]
struct FindingState {
    qid: String,
    kind: String,
    port: String,
    protocol: String,
    status: String,
}

#[derive(Debug, Default)]
struct DetailsState {
    id_attr: Option<u32>,
    qid: String,
    details: VulnDetails,
}

#[derive(Debug)]
struct Parser {
    options: ParseOptions,
    stats: ReportStats,
    stack: Vec<Tag>,
    text: String,
    capture: Option<(Field, usize)>,
    host: HostState,
    finding: FindingState,
    details: DetailsState,
    error_doc: QualysError,
}

/// The root element decides what kind of document this is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Doc {
    Report,
    SimpleReturn,
    GenericReturn,
    /// A v1 scan report, or the scan API's error document when its first child is ERROR.
    Scan,
}

impl Parser {
    fn run<R: BufRead>(
        &mut self,
        reader: &mut Reader<R>,
        visitor: &mut dyn ReportVisitor,
    ) -> Result<(), ReportError> {
        let mut buf = Vec::with_capacity(64 * 1024);
        let mut doc: Option<Doc> = None;
        let mut finished = false;
        loop {
            buf.clear();
            let position = reader.buffer_position();
            let event = match reader.read_event_into(&mut buf) {
                Ok(event) => event,
                Err(e) => return Err(self.xml_error(e, reader)),
            };
            match event {
                Event::Start(e) => {
                    if finished {
                        return Err(ReportError::TrailingContent { offset: position });
                    }
                    let tag = Tag::of(e.name().as_ref());
                    if doc.is_none() {
                        let kind = root_kind(&e)?;
                        self.error_doc.root = e.name().as_ref().to_string();
                        doc = Some(kind);
                    } else if doc == Some(Doc::Scan) && self.stack.len() == 1 {
                        self.scan_child(tag, &e)?;
                    }
                    self.start(tag, &e);
                    self.stack.push(tag);
                }
                Event::Empty(e) => {
                    if finished {
                        return Err(ReportError::TrailingContent { offset: position });
                    }
                    let tag = Tag::of(e.name().as_ref());
                    if doc.is_none() {
                        // A self-closed root holds nothing: an empty report is still a
                        // report, anything else is rejected by root_kind.
                        match root_kind(&e)? {
                            Doc::Report => {}
                            Doc::Scan => return Err(scan_report()),
                            Doc::SimpleReturn | Doc::GenericReturn => {
                                return Err(ReportError::Qualys(QualysError {
                                    root: e.name().as_ref().to_string(),
                                    text: "(empty error document)".into(),
                                    ..QualysError::default()
                                }));
                            }
                        }
                        doc = Some(Doc::Report);
                        finished = true;
                        continue;
                    }
                    if doc == Some(Doc::Scan) && self.stack.len() == 1 {
                        self.scan_child(tag, &e)?;
                    }
                    self.start(tag, &e);
                    self.stack.push(tag);
                    self.end(visitor)?;
                }
                Event::End(_) => {
                    self.end(visitor)?;
                    if self.stack.is_empty() {
                        finished = true;
                        if let Some(kind) = doc {
                            self.not_a_report(kind)?;
                        }
                    }
                }
                Event::Text(t) => {
                    if (doc.is_none() || finished) && !t.trim().is_empty() {
                        if finished {
                            return Err(ReportError::TrailingContent { offset: position });
                        }
                        let snippet: String = t.chars().take(40).collect();
                        return Err(ReportError::NotXml { snippet });
                    }
                    if self.capture.is_some() {
                        self.push_text(&t);
                    }
                }
                Event::CData(t) => {
                    if self.capture.is_some() {
                        self.push_text(&t);
                    }
                }
                Event::GeneralRef(r) => {
                    if self.capture.is_some() {
                        self.push_ref(&r);
                    }
                }
                // The DOCTYPE is never fetched and its entities never expanded.
                Event::Comment(_) | Event::Decl(_) | Event::PI(_) | Event::DocType(_) => {}
                Event::Eof => break,
            }
        }
        if !self.stack.is_empty() {
            return Err(ReportError::Incomplete {
                offset: reader.buffer_position(),
                open: self.open_element_name(),
            });
        }
        match doc {
            None => Err(ReportError::Empty),
            Some(_) => Ok(()),
        }
    }

    /// At the end of the root element: an error document is the error it holds, an API
    /// reply without CODE is named as such, a SCAN without ERROR is a scan report.
    fn not_a_report(&mut self, kind: Doc) -> Result<(), ReportError> {
        let doc = std::mem::take(&mut self.error_doc);
        match kind {
            Doc::Report => Ok(()),
            Doc::SimpleReturn | Doc::GenericReturn if doc.code.is_none() => {
                Err(ReportError::ApiReply(doc))
            }
            Doc::SimpleReturn | Doc::GenericReturn => Err(ReportError::Qualys(doc)),
            Doc::Scan if doc.code.is_some() || !doc.text.is_empty() => {
                Err(ReportError::Qualys(doc))
            }
            Doc::Scan => Err(scan_report()),
        }
    }

    /// The first child of a SCAN decides: ERROR is the scan API's error document (its
    /// `number` and text are the error), anything else is a v1 scan report.
    fn scan_child(&mut self, tag: Tag, e: &BytesStart<'_>) -> Result<(), ReportError> {
        if tag != Tag::Error || self.error_doc.code.is_some() || !self.error_doc.text.is_empty() {
            return Err(scan_report());
        }
        self.error_doc.code = attribute(e, "number");
        Ok(())
    }

    /// The innermost open element the parser knows by name, for the "incomplete" message.
    fn open_element_name(&self) -> String {
        self.stack
            .iter()
            .rev()
            .find_map(|t| t.name())
            .unwrap_or("the document")
            .to_string()
    }

    fn xml_error<R>(&self, e: quick_xml::Error, reader: &Reader<R>) -> ReportError {
        use quick_xml::errors::{IllFormedError, SyntaxError};
        let offset = reader.error_position();
        match e {
            quick_xml::Error::Io(io) => match io
                .get_ref()
                .and_then(|e| e.downcast_ref::<UnsupportedEncoding>())
            {
                Some(encoding) => ReportError::Encoding(encoding.clone()),
                None => ReportError::Io(io::Error::new(io.kind(), io.to_string())),
            },
            // The input ended inside markup: the document was cut short.
            quick_xml::Error::Syntax(
                SyntaxError::UnclosedTag
                | SyntaxError::UnclosedCData
                | SyntaxError::UnclosedComment
                | SyntaxError::UnclosedDoctype
                | SyntaxError::UnclosedPI
                | SyntaxError::UnclosedXmlDecl
                | SyntaxError::UnclosedSingleQuotedAttributeValue
                | SyntaxError::UnclosedDoubleQuotedAttributeValue
                | SyntaxError::InvalidBangMarkup,
            ) if !self.stack.is_empty() => ReportError::Incomplete {
                offset,
                open: self.open_element_name(),
            },
            quick_xml::Error::IllFormed(IllFormedError::MissingEndTag(_))
                if !self.stack.is_empty() =>
            {
                ReportError::Incomplete {
                    offset,
                    open: self.open_element_name(),
                }
            }
            other => ReportError::Malformed {
                offset,
                message: other.to_string(),
            },
        }
    }

    /// Appends text to the field being read, up to `MAX_FIELD`: no field the connector
    /// sends needs more, and a hostile report must not make one grow without bound.
    fn push_text(&mut self, text: &str) {
        let room = MAX_FIELD.saturating_sub(self.text.len());
        if text.len() <= room {
            self.text.push_str(text);
            return;
        }
        let mut cut = room;
        while !text.is_char_boundary(cut) {
            cut -= 1;
        }
        self.text.push_str(&text[..cut]);
        if self.stats.oversized_fields == 0 {
            log::warn!(
                "report: a text field longer than {MAX_FIELD} bytes was cut ({})",
                self.host_label()
            );
        }
        self.stats.oversized_fields += 1;
    }

    fn push_ref(&mut self, r: &BytesRef<'_>) {
        let mut utf8 = [0u8; 4];
        match r.resolve_char_ref() {
            Ok(Some(c)) => self.push_text(c.encode_utf8(&mut utf8)),
            _ => {
                let name: &str = r;
                let predefined = match name {
                    "lt" => Some('<'),
                    "gt" => Some('>'),
                    "amp" => Some('&'),
                    "apos" => Some('\''),
                    "quot" => Some('"'),
                    _ => None,
                };
                match predefined {
                    Some(c) => self.push_text(c.encode_utf8(&mut utf8)),
                    // HTML's names (&eacute;) from its fixed table, as the HTML step
                    // decodes them inside CDATA: titles and THREAT text alike.
                    None if let Some(text) = super::entities::resolve(name) => self.push_text(text),
                    None => {
                        // Entities a DOCTYPE might define are never expanded (no XXE, no
                        // entity bombs): the reference stays as written.
                        if self.stats.unexpanded_entities == 0 {
                            log::warn!(
                                "report: entity reference &{name}; is not expanded (entities from a DOCTYPE are never expanded)"
                            );
                        }
                        self.stats.unexpanded_entities += 1;
                        let literal = format!("&{name};");
                        self.push_text(&literal);
                    }
                }
            }
        }
    }

    fn parent(&self) -> Option<Tag> {
        self.stack.last().copied()
    }

    fn grandparent(&self) -> Option<Tag> {
        self.stack
            .len()
            .checked_sub(2)
            .and_then(|i| self.stack.get(i).copied())
    }

    fn begin_capture(&mut self, field: Field) {
        self.text.clear();
        // Called before the element is pushed: it closes at one level deeper.
        self.capture = Some((field, self.stack.len() + 1));
    }

    fn start(&mut self, tag: Tag, e: &BytesStart<'_>) {
        let parent = self.parent();
        let field = match (tag, parent) {
            (Tag::Host, Some(Tag::HostList)) => {
                self.host.ordinal += 1;
                self.host.ip = None;
                self.host.ip_v6 = None;
                self.host.error = None;
                let host = self.host.host.get_or_insert_with(|| Host {
                    ip: IpAddr::from([0, 0, 0, 0]),
                    findings: Vec::new(),
                });
                host.findings.clear();
                self.host.host_level.clear();
                self.host.portless.clear();
                None
            }
            (Tag::Ip, Some(Tag::Host)) => {
                self.host.ip_v6 = attribute(e, "v6");
                Some(Field::HostIp)
            }
            (Tag::Error, Some(Tag::Host)) => Some(Field::HostError),
            (Tag::Error, Some(Tag::Other)) if self.stack.len() == 1 => Some(Field::ErrReturn),
            (Tag::VulnInfo, _) if self.in_host() => {
                self.finding.qid.clear();
                self.finding.kind.clear();
                self.finding.port.clear();
                self.finding.protocol.clear();
                self.finding.status.clear();
                None
            }
            (Tag::Qid, Some(Tag::VulnInfo)) => Some(Field::Qid),
            (Tag::Type, Some(Tag::VulnInfo)) => Some(Field::Type),
            (Tag::Port, Some(Tag::VulnInfo)) => Some(Field::Port),
            (Tag::Protocol, Some(Tag::VulnInfo)) => Some(Field::Protocol),
            (Tag::VulnStatus, Some(Tag::VulnInfo)) => Some(Field::Status),
            (Tag::VulnDetails, _) => {
                self.details.id_attr = attribute(e, "id").and_then(|v| qid_from_id_attr(&v));
                self.details.qid.clear();
                self.details.details = VulnDetails::default();
                None
            }
            (Tag::Qid, Some(Tag::VulnDetails)) => Some(Field::DetailsQid),
            (Tag::Title, Some(Tag::VulnDetails)) => Some(Field::Title),
            (Tag::Threat, Some(Tag::VulnDetails)) => Some(Field::Threat),
            (Tag::Id, Some(Tag::Other)) => match self.grandparent() {
                Some(Tag::CveIdList) => Some(Field::CveId),
                Some(Tag::BugtraqIdList) => Some(Field::BugtraqId),
                _ => None,
            },
            (Tag::Code, Some(Tag::Response)) => Some(Field::ErrCode),
            (Tag::Text, Some(Tag::Response)) => Some(Field::ErrText),
            (Tag::Value, _) if self.stack.contains(&Tag::Response) => Some(Field::ErrItem),
            (Tag::Return, _) => {
                self.error_doc.code = attribute(e, "number");
                Some(Field::ErrReturn)
            }
            _ => None,
        };
        if let Some(field) = field {
            self.begin_capture(field);
        }
    }

    fn in_host(&self) -> bool {
        // HOST_LIST > HOST > VULN_INFO_LIST > VULN_INFO
        self.grandparent() == Some(Tag::Host)
    }

    fn end(&mut self, visitor: &mut dyn ReportVisitor) -> Result<(), ReportError> {
        let depth = self.stack.len();
        let Some(tag) = self.stack.pop() else {
            return Ok(());
        };
        if let Some((field, at)) = self.capture
            && at == depth
        {
            self.capture = None;
            self.store(field);
        }
        match (tag, self.parent()) {
            (Tag::VulnInfo, _) if self.grandparent() == Some(Tag::Host) => self.finish_finding(),
            (Tag::Host, Some(Tag::HostList)) => self.finish_host(visitor)?,
            (Tag::VulnDetails, _) => self.finish_details(visitor),
            _ => {}
        }
        Ok(())
    }

    fn store(&mut self, field: Field) {
        let text = std::mem::take(&mut self.text);
        let keep = |s: &mut String, t: String| *s = t;
        match field {
            Field::HostIp => self.host.ip = Some(text),
            Field::HostError => self.host.error = Some(text),
            Field::Qid => keep(&mut self.finding.qid, text),
            Field::Type => keep(&mut self.finding.kind, text),
            Field::Port => keep(&mut self.finding.port, text),
            Field::Protocol => keep(&mut self.finding.protocol, text),
            Field::Status => keep(&mut self.finding.status, text),
            Field::DetailsQid => keep(&mut self.details.qid, text),
            Field::Title => {
                // Entities in a CDATA title are decoded as in THREAT (its markup is kept:
                // a title is text).
                self.details.details.title = html::decode_text(&text);
            }
            Field::Threat => {
                self.details.details.description =
                    html::to_plain_text(&text, self.options.description_length);
            }
            Field::CveId => push_id(&mut self.details.details.cve_ids, &text),
            Field::BugtraqId => push_id(&mut self.details.details.bugtraq_ids, &text),
            Field::ErrCode => self.error_doc.code = Some(text.trim().to_string()),
            Field::ErrText => self.error_doc.text = collapse_whitespace(&text),
            Field::ErrItem => self.error_doc.items.push(collapse_whitespace(&text)),
            Field::ErrReturn => self.error_doc.text = collapse_whitespace(&text),
        }
        // Give the allocation back for the next field.
        if self.text.capacity() == 0 {
            self.text = String::with_capacity(256);
        }
    }

    fn host_label(&self) -> String {
        match &self.host.ip {
            Some(ip) if !ip.trim().is_empty() => format!("host {}", ip.trim()),
            _ => format!("host #{} (no IP)", self.host.ordinal),
        }
    }

    fn finish_finding(&mut self) {
        match self.parse_finding() {
            Ok((finding, dropped_port)) => {
                if dropped_port {
                    self.host.portless.push(finding.qid);
                }
                self.add_finding(finding);
            }
            Err(reason) => {
                self.stats.bad_findings += 1;
                log::warn!("report: {}: finding skipped: {reason}", self.host_label());
            }
        }
    }

    /// Adds a finding to the host, merging a host-level one into an earlier one with the
    /// same QID and type: both would be the same AddScanResult line. The merged finding
    /// is open if either is.
    fn add_finding(&mut self, finding: Finding) {
        let Some(host) = self.host.host.as_mut() else {
            return;
        };
        if finding.port.is_none() {
            let key = (finding.qid, finding.kind);
            if let Some(earlier) = self
                .host
                .host_level
                .get(&key)
                .and_then(|&i| host.findings.get_mut(i))
            {
                if earlier.status == VulnStatus::Fixed {
                    earlier.status = finding.status;
                }
                self.stats.merged_findings += 1;
                return;
            }
            self.host.host_level.insert(key, host.findings.len());
        }
        host.findings.push(finding);
    }

    /// One warning per host for the findings whose port was dropped, naming their QIDs.
    fn warn_portless(&self, label: &str) {
        const NAMED: usize = 10;
        let portless = &self.host.portless;
        if portless.is_empty() {
            return;
        }
        let mut qids = portless.clone();
        qids.sort_unstable();
        qids.dedup();
        let named: Vec<String> = qids
            .iter()
            .take(NAMED)
            .map(|q| format!("QID {q}"))
            .collect();
        let more = match qids.len().checked_sub(NAMED) {
            Some(n) if n > 0 => format!(" and {n} more QIDs"),
            _ => String::new(),
        };
        log::warn!(
            "report: {label}: {} findings on a port have no PROTOCOL tcp or udp ({}{more}): sent without a port, one result per QID",
            portless.len(),
            named.join(", ")
        );
    }

    /// A finding, and whether its PORT was dropped for want of a PROTOCOL.
    fn parse_finding(&self) -> Result<(Finding, bool), String> {
        let f = &self.finding;
        let qid = f.qid.trim();
        let qid: u32 = qid
            .parse()
            .map_err(|_| format!("QID {qid:?} is not a number"))?;
        let kind = f
            .kind
            .parse::<FindingType>()
            .map_err(|_| format!("QID {qid}: TYPE {:?} is not Vuln, Practice or Ig", f.kind))?;
        let port = match f.port.trim() {
            "" => None,
            p => match p.parse::<u16>() {
                Ok(0) | Err(_) => {
                    return Err(format!(
                        "QID {qid}: PORT {p:?} is not a port number (1-65535)"
                    ));
                }
                Ok(n) => Some(n),
            },
        };
        let protocol = Protocol::parse(&f.protocol);
        let (port, protocol, dropped_port) = match (port, protocol) {
            (Some(port), Some(proto)) => (Some(port), Some(proto), false),
            (None, _) => (None, None, false),
            // Host Input needs 6 or 17 with a port; without one the finding is still
            // worth sending, at host level (warned once per host).
            (Some(_), None) => (None, None, true),
        };
        let status = VulnStatus::parse(&f.status).ok_or_else(|| {
            format!(
                "QID {qid}: VULN_STATUS {:?} is not New, Active, Re-Opened or Fixed",
                f.status.trim().to_ascii_lowercase()
            )
        })?;
        Ok((
            Finding {
                qid,
                kind,
                port,
                protocol,
                status,
            },
            dropped_port,
        ))
    }

    fn finish_host(&mut self, visitor: &mut dyn ReportVisitor) -> Result<(), ReportError> {
        self.stats.hosts += 1;
        let label = self.host_label();
        let ip_text = self.host.ip.as_deref().map(str::trim).unwrap_or("");
        let ip = ip_text.parse::<IpAddr>().ok().or_else(|| {
            self.host
                .ip_v6
                .as_deref()
                .and_then(|v| v.trim().parse().ok())
        });
        self.warn_portless(&label);
        let Some(host) = self.host.host.as_mut() else {
            return Ok(());
        };
        if let Some(error) = &self.host.error
            && host.findings.is_empty()
        {
            self.stats.host_errors += 1;
            log::warn!(
                "report: {label}: Qualys reported an error instead of data, host skipped: {}",
                collapse_whitespace(error)
            );
            return Ok(());
        }
        let Some(ip) = ip else {
            self.stats.bad_hosts += 1;
            let count = host.findings.len();
            if ip_text.is_empty() {
                log::warn!("report: {label}: no IP address, host and its {count} findings skipped");
            } else {
                log::warn!(
                    "report: host #{}: IP {ip_text:?} is not an IP address, host and its {count} findings skipped",
                    self.host.ordinal
                );
            }
            return Ok(());
        };
        host.ip = ip;
        visitor.host(host).map_err(ReportError::Visitor)
    }

    fn finish_details(&mut self, visitor: &mut dyn ReportVisitor) {
        let qid = self
            .details
            .qid
            .trim()
            .parse::<u32>()
            .ok()
            .or(self.details.id_attr);
        let details = std::mem::take(&mut self.details.details);
        match qid {
            Some(qid) => {
                self.stats.glossary_entries += 1;
                visitor.vuln_details(qid, details);
            }
            None => log::warn!(
                "report: glossary entry with QID {:?} skipped: not a number",
                self.details.qid
            ),
        }
    }
}

/// Decides from the root element whether this is a report, a Qualys error document, or
/// something else (rejected with the name of what it is).
fn root_kind(e: &BytesStart<'_>) -> Result<Doc, ReportError> {
    let name = e.name();
    let name = name.as_ref().to_string();
    match name.as_str() {
        "ASSET_DATA_REPORT" => return Ok(Doc::Report),
        "SIMPLE_RETURN" => return Ok(Doc::SimpleReturn),
        "GENERIC_RETURN" => return Ok(Doc::GenericReturn),
        "SCAN" => return Ok(Doc::Scan),
        "html" | "HTML" => {
            return Err(ReportError::NotAReport {
                root: name,
                hint: " (this is a web page: a proxy or login page answered instead of Qualys?)",
            });
        }
        _ => {}
    }
    match qualys_document(&name) {
        Some(what) => Err(ReportError::Unsupported {
            root: name,
            what,
            hint: NEEDED,
        }),
        None => Err(ReportError::NotAReport {
            root: name,
            hint: "",
        }),
    }
}

/// The Qualys documents users hand to the connector by mistake (qualys.md §5), by root.
fn qualys_document(root: &str) -> Option<&'static str> {
    Some(match root {
        "HOST_LIST_VM_DETECTION_OUTPUT" => "a host detection list (VM detection API)",
        "KNOWLEDGE_BASE_VULN_LIST_OUTPUT" => "a KnowledgeBase listing (it holds no hosts)",
        "HOST_LIST_OUTPUT" => "a host list (host API: it holds no findings)",
        "SCAN_LIST_OUTPUT" => "a list of scans (scan API)",
        "REPORT_LIST_OUTPUT" => "a list of reports (report API)",
        "REPORT_TEMPLATE_LIST" => "a list of report templates",
        "ServiceResponse" => "a web application scanning (WAS) API answer",
        r if r.starts_with("WAS_") => "a web application scan (WAS) report",
        _ => return None,
    })
}

/// A v1 scan report: root SCAN without an ERROR.
fn scan_report() -> ReportError {
    ReportError::Unsupported {
        root: "SCAN".into(),
        what: "a v1 scan report",
        hint: NEEDED,
    }
}

fn attribute(e: &BytesStart<'_>, key: &str) -> Option<String> {
    e.attributes()
        .flatten()
        .find(|a| a.key.as_ref() == key)
        .map(|a| a.value.into_owned())
}

/// `id="qid_82003"` → 82003.
fn qid_from_id_attr(value: &str) -> Option<u32> {
    value.strip_prefix("qid_").unwrap_or(value).parse().ok()
}

fn push_id(ids: &mut Vec<String>, text: &str) {
    let id = text.trim();
    if !id.is_empty() {
        ids.push(id.to_string());
    }
}

fn collapse_whitespace(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for word in s.split_whitespace() {
        if !out.is_empty() {
            out.push(' ');
        }
        out.push_str(word);
    }
    out
}

/// 1-based line and column of byte `offset` in `input`, for error messages.
pub fn locate(input: impl Read, offset: u64) -> io::Result<(u64, u64)> {
    let mut reader = io::BufReader::new(input.take(offset));
    let mut line = 1;
    let mut column = 1;
    loop {
        let buf = reader.fill_buf()?;
        if buf.is_empty() {
            break;
        }
        for &b in buf {
            if b == b'\n' {
                line += 1;
                column = 1;
            } else if b & 0xC0 != 0x80 {
                column += 1;
            }
        }
        let n = buf.len();
        reader.consume(n);
    }
    Ok((line, column))
}

#[cfg(test)]
mod tests;
