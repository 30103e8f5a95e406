//! One page of Host List Detection (`HOST_LIST_VM_DETECTION_OUTPUT`, qualys.md §7): its
//! `DATETIME` (Qualys's clock, for the incremental checkpoint), each `HOST` with its
//! detections handed over as it closes, and the paging `WARNING` whose URL's `id_min`
//! says where the next page starts.
//!
//! A host's address is its `IP`, else its `IPV6`; a host with neither is skipped and
//! counted. `TYPE` Confirmed / Potential / Info are the report's Vuln / Practice / Ig.
//! Detections marked `IS_IGNORED` or `IS_DISABLED` are counted and dropped (the request
//! decides whether Qualys sends them). Fixed detections are kept, with their status: the
//! caller drops them, so that a host whose findings were all fixed still comes through.

use std::io::BufRead;
use std::net::IpAddr;

pub use super::walk::Warning;
use super::walk::{self, DocError, Document};
use crate::model::{Finding, FindingType, Host, Protocol, VulnStatus};

/// A host of the page: Qualys's host ID and the neutral host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DetectedHost {
    pub id: u64,
    pub host: Host,
}

/// What the page held besides its hosts.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PageSummary {
    /// `RESPONSE/DATETIME`, as written (ISO 8601 UTC).
    pub datetime: Option<String>,
    pub hosts: u64,
    pub detections: u64,
    /// Hosts skipped for want of an address.
    pub hosts_without_address: u64,
    /// Detections skipped: unreadable (warned), or ignored / disabled.
    pub bad_detections: u64,
    pub ignored_or_disabled: u64,
    pub warning: Option<Warning>,
    pub bytes: u64,
}

/// Reads one page, calling `host` for each host as it closes.
pub fn parse(
    input: impl BufRead,
    host: &mut dyn FnMut(DetectedHost) -> Result<(), String>,
) -> Result<PageSummary, DocError> {
    let mut page = Page {
        host,
        summary: PageSummary::default(),
        current: HostFields::default(),
        detection: DetectionFields::default(),
    };
    let walked = walk::walk(input, &mut page)?;
    page.summary.bytes = walked.bytes;
    page.summary.datetime = walked.datetime;
    page.summary.warning = walked.warning;
    Ok(page.summary)
}

// Tags (0: ignored).
const RESPONSE: u16 = 1;
const HOST_LIST: u16 = 3;
const HOST: u16 = 4;
const ID: u16 = 5;
const IP: u16 = 6;
const IPV6: u16 = 7;
const DETECTION_LIST: u16 = 8;
const DETECTION: u16 = 9;
const QID: u16 = 10;
const TYPE: u16 = 11;
const PORT: u16 = 12;
const PROTOCOL: u16 = 13;
const STATUS: u16 = 14;
const IS_IGNORED: u16 = 15;
const IS_DISABLED: u16 = 16;
const ROOT: u16 = 21;

#[derive(Debug, Default)]
struct HostFields {
    id: String,
    ip: String,
    ipv6: String,
    findings: Vec<Finding>,
}

#[derive(Debug, Default)]
struct DetectionFields {
    qid: String,
    kind: String,
    port: String,
    protocol: String,
    status: String,
    ignored: bool,
}

struct Page<'a> {
    host: &'a mut dyn FnMut(DetectedHost) -> Result<(), String>,
    summary: PageSummary,
    current: HostFields,
    detection: DetectionFields,
}

/// The element's path below the root, without the root: `[RESPONSE, HOST_LIST, HOST]`.
fn below_root(stack: &[u16]) -> &[u16] {
    stack.get(1..).unwrap_or_default()
}

impl Document for Page<'_> {
    const ROOT: &'static str = "HOST_LIST_VM_DETECTION_OUTPUT";
    const NAME: &'static str = "Host List Detection page";

    fn tag(name: &[u8]) -> u16 {
        match name {
            b"HOST_LIST_VM_DETECTION_OUTPUT" => ROOT,
            b"RESPONSE" => RESPONSE,
            b"HOST_LIST" => HOST_LIST,
            b"HOST" => HOST,
            b"ID" => ID,
            b"IP" => IP,
            b"IPV6" => IPV6,
            b"DETECTION_LIST" => DETECTION_LIST,
            b"DETECTION" => DETECTION,
            b"QID" => QID,
            b"TYPE" => TYPE,
            b"PORT" => PORT,
            b"PROTOCOL" => PROTOCOL,
            b"STATUS" => STATUS,
            b"IS_IGNORED" => IS_IGNORED,
            b"IS_DISABLED" => IS_DISABLED,
            _ => 0,
        }
    }

    fn open(&mut self, stack: &[u16]) -> bool {
        match below_root(stack) {
            [RESPONSE, HOST_LIST, HOST] => self.current = HostFields::default(),
            [RESPONSE, HOST_LIST, HOST, DETECTION_LIST, DETECTION] => {
                self.detection = DetectionFields::default();
            }
            _ => {}
        }
        matches!(
            below_root(stack),
            [RESPONSE, HOST_LIST, HOST, ID | IP | IPV6]
                | [
                    RESPONSE,
                    HOST_LIST,
                    HOST,
                    DETECTION_LIST,
                    DETECTION,
                    QID | TYPE | PORT | PROTOCOL | STATUS | IS_IGNORED | IS_DISABLED
                ]
        )
    }

    fn close(&mut self, stack: &[u16], text: Option<&str>) -> Result<(), DocError> {
        let t = text.map(str::trim).unwrap_or_default().to_string();
        match below_root(stack) {
            [RESPONSE, HOST_LIST, HOST, ID] => self.current.id = t,
            [RESPONSE, HOST_LIST, HOST, IP] => self.current.ip = t,
            [RESPONSE, HOST_LIST, HOST, IPV6] => self.current.ipv6 = t,
            [RESPONSE, HOST_LIST, HOST, DETECTION_LIST, DETECTION, field] => {
                self.detection_field(*field, t);
            }
            [RESPONSE, HOST_LIST, HOST, DETECTION_LIST, DETECTION] => self.finish_detection(),
            [RESPONSE, HOST_LIST, HOST] => self.finish_host()?,
            _ => {}
        }
        Ok(())
    }
}

impl Page<'_> {
    fn detection_field(&mut self, field: u16, text: String) {
        let d = &mut self.detection;
        match field {
            QID => d.qid = text,
            TYPE => d.kind = text,
            PORT => d.port = text,
            PROTOCOL => d.protocol = text,
            STATUS => d.status = text,
            IS_IGNORED | IS_DISABLED => d.ignored |= text == "1",
            _ => {}
        }
    }

    fn finish_detection(&mut self) {
        let d = std::mem::take(&mut self.detection);
        if d.ignored {
            self.summary.ignored_or_disabled += 1;
            return;
        }
        match detection(&d) {
            Ok(f) => {
                self.summary.detections += 1;
                self.current.findings.push(f);
            }
            Err(reason) => {
                self.summary.bad_detections += 1;
                log::warn!(
                    "Host List Detection: host ID {}: detection skipped: {reason}",
                    crate::servertext::escape(self.current.id.as_bytes(), 80)
                );
            }
        }
    }

    fn finish_host(&mut self) -> Result<(), DocError> {
        let h = std::mem::take(&mut self.current);
        let address = [&h.ip, &h.ipv6]
            .into_iter()
            .find_map(|a| a.parse::<IpAddr>().ok());
        let (Some(ip), Ok(id)) = (address, h.id.parse::<u64>()) else {
            self.summary.hosts_without_address += 1;
            log::warn!(
                "Host List Detection: host ID {} skipped: no usable ID and address (IP {}, IPV6 {})",
                crate::servertext::escape(h.id.as_bytes(), 80),
                crate::servertext::escape(h.ip.as_bytes(), 80),
                crate::servertext::escape(h.ipv6.as_bytes(), 80)
            );
            return Ok(());
        };
        self.summary.hosts += 1;
        (self.host)(DetectedHost {
            id,
            host: Host {
                ip,
                findings: h.findings,
            },
        })
        .map_err(DocError::Visitor)
    }
}

/// One detection as a finding, or why it cannot be one.
fn detection(d: &DetectionFields) -> Result<Finding, String> {
    let qid = d
        .qid
        .parse::<u32>()
        .map_err(|_| format!("QID {:?} is not a number", d.qid))?;
    let kind: FindingType = d.kind.parse()?;
    let port = match d.port.as_str() {
        "" => None,
        p => Some(
            p.parse::<u16>()
                .map_err(|_| format!("port {p:?} is not 0-65535"))?,
        ),
    };
    let protocol = Protocol::parse(&d.protocol);
    let status = VulnStatus::parse(&d.status).unwrap_or(VulnStatus::Unknown);
    Ok(Finding {
        qid,
        kind,
        // A port without a protocol cannot be sent with one (as in the report path).
        port: port.filter(|_| protocol.is_some()),
        protocol: protocol.filter(|_| port.is_some()),
        status,
    })
}

#[cfg(test)]
mod tests;
