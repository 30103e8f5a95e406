//! The Host List's ID set (`HOST_LIST_OUTPUT`, `details=None`, qualys.md §7): the host IDs
//! in scope, as single IDs and `a-b` ranges, handed over one range at a time so that a
//! million IDs never sit in memory as a list.

use std::io::BufRead;

use super::walk::{self, DocError, Document, Warning};

/// IDs `first..=last`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IdRange {
    pub first: u64,
    pub last: u64,
}

impl IdRange {
    /// `"123"` or `"100-200"`.
    pub fn parse(text: &str) -> Option<IdRange> {
        let text = text.trim();
        let (first, last) = match text.split_once('-') {
            Some((a, b)) => (a.trim().parse().ok()?, b.trim().parse().ok()?),
            None => {
                let id = text.parse().ok()?;
                (id, id)
            }
        };
        (first <= last).then_some(IdRange { first, last })
    }

    pub fn len(&self) -> u64 {
        self.last - self.first + 1
    }

    pub fn is_empty(&self) -> bool {
        false
    }
}

/// What the answer held besides its IDs.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct IdsSummary {
    pub datetime: Option<String>,
    pub ranges: u64,
    pub ids: u64,
    /// ID or ID_RANGE elements that are no ID (warned).
    pub bad: u64,
    pub warning: Option<Warning>,
}

pub fn parse(
    input: impl BufRead,
    range: &mut dyn FnMut(IdRange) -> Result<(), String>,
) -> Result<IdsSummary, DocError> {
    let mut doc = Ids {
        range,
        summary: IdsSummary::default(),
    };
    let walked = walk::walk(input, &mut doc)?;
    doc.summary.datetime = walked.datetime;
    doc.summary.warning = walked.warning;
    Ok(doc.summary)
}

const ROOT: u16 = 1;
const RESPONSE: u16 = 2;
const ID_SET: u16 = 4;
const ID: u16 = 5;
const ID_RANGE: u16 = 6;

struct Ids<'a> {
    range: &'a mut dyn FnMut(IdRange) -> Result<(), String>,
    summary: IdsSummary,
}

impl Document for Ids<'_> {
    const ROOT: &'static str = "HOST_LIST_OUTPUT";
    const NAME: &'static str = "Host List answer";

    fn tag(name: &[u8]) -> u16 {
        match name {
            b"HOST_LIST_OUTPUT" => ROOT,
            b"RESPONSE" => RESPONSE,
            b"ID_SET" => ID_SET,
            b"ID" => ID,
            b"ID_RANGE" => ID_RANGE,
            _ => 0,
        }
    }

    fn open(&mut self, stack: &[u16]) -> bool {
        matches!(stack, [ROOT, RESPONSE, ID_SET, ID | ID_RANGE])
    }

    fn close(&mut self, stack: &[u16], text: Option<&str>) -> Result<(), DocError> {
        let t = text.map(str::trim).unwrap_or_default();
        if let [ROOT, RESPONSE, ID_SET, ID | ID_RANGE] = stack {
            match IdRange::parse(t) {
                Some(r) => {
                    self.summary.ranges += 1;
                    self.summary.ids += r.len();
                    (self.range)(r).map_err(DocError::Visitor)?;
                }
                None => {
                    self.summary.bad += 1;
                    log::warn!(
                        "Host List: {} is not a host ID or range: skipped",
                        crate::servertext::escape(t.as_bytes(), 80)
                    );
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests;
