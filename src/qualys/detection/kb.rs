//! A KnowledgeBase answer (`KNOWLEDGE_BASE_VULN_LIST_OUTPUT`, qualys.md §7): each `VULN`
//! as the same `VulnDetails` the report's glossary gives: `TITLE`, `DIAGNOSIS` (the
//! report's THREAT) as plain text cut to the description length, and the CVE and Bugtraq
//! IDs; with its `LAST_SERVICE_MODIFICATION_DATETIME`, for refreshing a cache. QIDs the KB
//! does not know are simply absent (no VULN_LIST).

use std::io::BufRead;

use super::walk::{self, DocError, Document, Warning};
use crate::model::VulnDetails;
use crate::qualys::html;

/// One KB entry.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KbEntry {
    pub qid: u32,
    pub details: VulnDetails,
    /// As written (ISO 8601 UTC), if given.
    pub modified: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KbSummary {
    pub datetime: Option<String>,
    pub entries: u64,
    /// VULN elements without a readable QID (warned).
    pub bad: u64,
    pub warning: Option<Warning>,
}

pub fn parse(
    input: impl BufRead,
    description_length: usize,
    entry: &mut dyn FnMut(KbEntry) -> Result<(), String>,
) -> Result<KbSummary, DocError> {
    let mut doc = Kb {
        entry,
        description_length,
        summary: KbSummary::default(),
        current: KbEntry::default(),
        qid: String::new(),
    };
    let walked = walk::walk(input, &mut doc)?;
    doc.summary.datetime = walked.datetime;
    doc.summary.warning = walked.warning;
    Ok(doc.summary)
}

const ROOT: u16 = 1;
const RESPONSE: u16 = 2;
const VULN_LIST: u16 = 4;
const VULN: u16 = 5;
const QID: u16 = 6;
const TITLE: u16 = 7;
const DIAGNOSIS: u16 = 8;
const CVE_LIST: u16 = 9;
const CVE: u16 = 10;
const BUGTRAQ_LIST: u16 = 11;
const BUGTRAQ: u16 = 12;
const ID: u16 = 13;
const MODIFIED: u16 = 14;

struct Kb<'a> {
    entry: &'a mut dyn FnMut(KbEntry) -> Result<(), String>,
    description_length: usize,
    summary: KbSummary,
    current: KbEntry,
    qid: String,
}

/// The path below `RESPONSE/VULN_LIST/VULN`, if the element is inside one.
fn in_vuln(stack: &[u16]) -> Option<&[u16]> {
    stack.strip_prefix(&[ROOT, RESPONSE, VULN_LIST, VULN][..])
}

impl Document for Kb<'_> {
    const ROOT: &'static str = "KNOWLEDGE_BASE_VULN_LIST_OUTPUT";
    const NAME: &'static str = "KnowledgeBase answer";

    fn tag(name: &[u8]) -> u16 {
        match name {
            b"KNOWLEDGE_BASE_VULN_LIST_OUTPUT" => ROOT,
            b"RESPONSE" => RESPONSE,
            b"VULN_LIST" => VULN_LIST,
            b"VULN" => VULN,
            b"QID" => QID,
            b"TITLE" => TITLE,
            b"DIAGNOSIS" => DIAGNOSIS,
            b"CVE_LIST" => CVE_LIST,
            b"CVE" => CVE,
            b"BUGTRAQ_LIST" => BUGTRAQ_LIST,
            b"BUGTRAQ" => BUGTRAQ,
            b"ID" => ID,
            b"LAST_SERVICE_MODIFICATION_DATETIME" => MODIFIED,
            _ => 0,
        }
    }

    fn open(&mut self, stack: &[u16]) -> bool {
        if stack == [ROOT, RESPONSE, VULN_LIST, VULN] {
            self.current = KbEntry::default();
            self.qid.clear();
        }
        matches!(
            in_vuln(stack),
            Some(
                [QID | TITLE | DIAGNOSIS | MODIFIED]
                    | [CVE_LIST, CVE, ID]
                    | [BUGTRAQ_LIST, BUGTRAQ, ID]
            )
        )
    }

    fn close(&mut self, stack: &[u16], text: Option<&str>) -> Result<(), DocError> {
        let raw = text.unwrap_or_default();
        let t = raw.trim();
        let d = &mut self.current.details;
        match in_vuln(stack) {
            Some([QID]) => self.qid = t.to_string(),
            Some([TITLE]) => d.title = html::decode_text(t),
            Some([DIAGNOSIS]) => {
                d.description = html::to_plain_text(raw, self.description_length);
            }
            Some([CVE_LIST, CVE, ID]) if !t.is_empty() => d.cve_ids.push(t.to_string()),
            Some([BUGTRAQ_LIST, BUGTRAQ, ID]) if !t.is_empty() => {
                d.bugtraq_ids.push(t.to_string());
            }
            Some([MODIFIED]) => self.current.modified = Some(t.to_string()),
            Some([]) => self.finish()?,
            _ => {}
        }
        Ok(())
    }
}

impl Kb<'_> {
    fn finish(&mut self) -> Result<(), DocError> {
        let mut entry = std::mem::take(&mut self.current);
        match self.qid.parse::<u32>() {
            Ok(qid) => {
                entry.qid = qid;
                self.summary.entries += 1;
                (self.entry)(entry).map_err(DocError::Visitor)
            }
            Err(_) => {
                self.summary.bad += 1;
                log::warn!(
                    "KnowledgeBase: a VULN without a readable QID ({}) skipped",
                    crate::servertext::escape(self.qid.as_bytes(), 40)
                );
                Ok(())
            }
        }
    }
}

#[cfg(test)]
mod tests;
