//! A streaming walk over one Qualys API document: the root checked, the open elements
//! kept as a stack of the caller's tags, and the text of the elements the caller asks
//! for handed over when they close (bounded by `report::MAX_FIELD`). A SIMPLE_RETURN
//! root is read here and returned as the Qualys error it is; so are the parts every
//! answer of the detection path shares: `RESPONSE/DATETIME` and the paging `WARNING`.

use std::io::BufRead;

use quick_xml::Reader;
use quick_xml::events::Event;

use crate::qualys::report::{MAX_FIELD, QualysError};

/// Why a document could not be used.
#[derive(Debug, thiserror::Error)]
pub enum DocError {
    #[error("cannot read the {doc}: {source}")]
    Io {
        doc: &'static str,
        #[source]
        source: std::io::Error,
    },
    #[error("the {doc} is empty: no XML element found")]
    Empty { doc: &'static str },
    #[error("malformed XML in the {doc} at byte {offset}: {message}")]
    Malformed {
        doc: &'static str,
        offset: u64,
        message: String,
    },
    #[error(
        "the {doc} is incomplete: it ends at byte {offset} inside <{open}> (cut short: not used)"
    )]
    Incomplete {
        doc: &'static str,
        offset: u64,
        open: String,
    },
    #[error("Qualys returned an error instead of the {doc}: {error}")]
    Qualys {
        doc: &'static str,
        error: QualysError,
    },
    #[error("not the {doc}: the root element is <{root}>, expected <{expected}>")]
    Unexpected {
        doc: &'static str,
        root: String,
        expected: &'static str,
    },
    /// The caller refused what it read (a host it could not store).
    #[error("{0}")]
    Visitor(String),
}

/// The paging WARNING (code 1980 when more hosts match than `truncation_limit`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Warning {
    pub code: Option<String>,
    pub text: String,
    pub url: Option<String>,
}

impl Warning {
    /// The `id_min` of the URL: the first host ID of the next page. Only this is taken
    /// from the URL; the next request is the connector's own, to the configured server.
    pub fn id_min(&self) -> Option<u64> {
        let url = self.url.as_deref()?;
        let query = url.split_once('?').map_or(url, |(_, q)| q);
        query
            .split('&')
            .filter_map(|pair| pair.split_once('='))
            .find(|(k, _)| *k == "id_min")
            .and_then(|(_, v)| v.trim().parse().ok())
    }
}

/// What the walk read besides the caller's elements.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Walked {
    pub bytes: u64,
    /// `RESPONSE/DATETIME`, as written (ISO 8601 UTC): Qualys's clock.
    pub datetime: Option<String>,
    pub warning: Option<Warning>,
}

/// The shared parts of an answer: which one an element is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Shared {
    Datetime,
    Code,
    Text,
    Url,
}

/// What a document reader tells the walk.
pub trait Document {
    /// The root element, and what the document is called in errors.
    const ROOT: &'static str;
    const NAME: &'static str;
    /// The caller's code for an element name; 0 for elements it ignores.
    fn tag(name: &[u8]) -> u16;
    /// An element opened, with its ancestors below it in `stack` (root first): whether
    /// its text is wanted.
    fn open(&mut self, stack: &[u16]) -> bool;
    /// An element closed; `text` is its text when it was wanted.
    fn close(&mut self, stack: &[u16], text: Option<&str>) -> Result<(), DocError>;
}

/// Tags of a SIMPLE_RETURN.
const SR_CODE: u16 = 1;
const SR_TEXT: u16 = 2;

/// Walks `input` to its end; returns the bytes read and the shared parts.
pub fn walk<R: BufRead, D: Document>(input: R, doc: &mut D) -> Result<Walked, DocError> {
    let mut reader = Reader::from_reader(input);
    reader.config_mut().check_end_names = true;
    let mut walker = Walker {
        stack: Vec::with_capacity(16),
        names: Vec::with_capacity(16),
        text: String::new(),
        capturing: None,
        error: None,
        rooted: false,
        shared: None,
        walked: Walked::default(),
    };
    let mut buf = Vec::with_capacity(64 * 1024);
    loop {
        buf.clear();
        let event = reader
            .read_event_into(&mut buf)
            .map_err(|e| DocError::Malformed {
                doc: D::NAME,
                offset: reader.buffer_position(),
                message: e.to_string(),
            })?;
        match event {
            Event::Start(e) => walker.open::<D>(e.name().as_ref().as_bytes(), doc)?,
            Event::Empty(e) => {
                walker.open::<D>(e.name().as_ref().as_bytes(), doc)?;
                walker.close::<D>(doc)?;
            }
            Event::End(_) => walker.close::<D>(doc)?,
            Event::Text(t) => walker.push(&t),
            Event::CData(t) => walker.push(&t),
            Event::GeneralRef(r) => {
                let name: String = r.to_string();
                let text = match name.as_str() {
                    "lt" => "<".to_string(),
                    "gt" => ">".to_string(),
                    "amp" => "&".to_string(),
                    "apos" => "'".to_string(),
                    "quot" => "\"".to_string(),
                    _ => match r.resolve_char_ref() {
                        Ok(Some(c)) => c.to_string(),
                        // Never expanded: the reference stays as written.
                        _ => format!("&{name};"),
                    },
                };
                walker.push(&text);
            }
            Event::Comment(_) | Event::Decl(_) | Event::PI(_) | Event::DocType(_) => {}
            Event::Eof => break,
        }
        if walker.names.is_empty() && walker.error.is_some() {
            break;
        }
    }
    if let Some(error) = walker.error {
        return Err(DocError::Qualys {
            doc: D::NAME,
            error,
        });
    }
    if !walker.names.is_empty() {
        return Err(DocError::Incomplete {
            doc: D::NAME,
            offset: reader.buffer_position(),
            open: walker.names.last().cloned().unwrap_or_default(),
        });
    }
    if !walker.rooted {
        return Err(DocError::Empty { doc: D::NAME });
    }
    walker.walked.bytes = reader.buffer_position();
    Ok(walker.walked)
}

struct Walker {
    stack: Vec<u16>,
    /// The open elements' names, for the error of a cut document.
    names: Vec<String>,
    text: String,
    /// The depth of the element whose text is kept.
    capturing: Option<usize>,
    /// A SIMPLE_RETURN read instead of the document.
    error: Option<QualysError>,
    /// The root element was seen.
    rooted: bool,
    /// The shared part whose text is being read.
    shared: Option<Shared>,
    walked: Walked,
}

impl Walker {
    fn open<D: Document>(&mut self, name: &[u8], doc: &mut D) -> Result<(), DocError> {
        let text = String::from_utf8_lossy(name).into_owned();
        if self.names.is_empty() {
            self.rooted = true;
            if name == b"SIMPLE_RETURN" {
                self.error = Some(QualysError {
                    root: text.clone(),
                    ..QualysError::default()
                });
            } else if name != D::ROOT.as_bytes() {
                return Err(DocError::Unexpected {
                    doc: D::NAME,
                    root: text,
                    expected: D::ROOT,
                });
            }
        }
        let tag = match &self.error {
            Some(_) => match name {
                b"CODE" => SR_CODE,
                b"TEXT" => SR_TEXT,
                _ => 0,
            },
            None => D::tag(name),
        };
        self.stack.push(tag);
        self.names.push(text);
        self.shared = None;
        let wanted = match &self.error {
            Some(_) => tag != 0,
            None => {
                self.shared = self.shared_part();
                doc.open(&self.stack) | self.shared.is_some()
            }
        };
        if wanted {
            self.text.clear();
            self.capturing = Some(self.stack.len());
        }
        Ok(())
    }

    fn close<D: Document>(&mut self, doc: &mut D) -> Result<(), DocError> {
        let captured = self.capturing == Some(self.stack.len());
        if captured {
            self.capturing = None;
        }
        let text = captured.then_some(self.text.as_str());
        if let (Some(part), Some(t)) = (self.shared.take().filter(|_| captured), text) {
            let t = t.trim();
            match part {
                Shared::Datetime => self.walked.datetime = Some(t.to_string()),
                Shared::Code => self.warning().code = Some(t.to_string()),
                Shared::Text => {
                    self.warning().text = t.split_whitespace().collect::<Vec<_>>().join(" ");
                }
                Shared::Url => self.warning().url = Some(t.to_string()),
            }
        }
        let text = captured.then_some(self.text.as_str());
        match &mut self.error {
            Some(error) => match (self.stack.last(), text) {
                (Some(&SR_CODE), Some(t)) => error.code = Some(t.trim().to_string()),
                (Some(&SR_TEXT), Some(t)) => {
                    error.text = t.split_whitespace().collect::<Vec<_>>().join(" ");
                }
                _ => {}
            },
            None => doc.close(&self.stack, text)?,
        }
        self.stack.pop();
        self.names.pop();
        Ok(())
    }

    /// The shared part the open element is: `<root>/RESPONSE/DATETIME` and
    /// `<root>/RESPONSE/WARNING/{CODE,TEXT,URL}` (a WARNING is kept even when empty).
    fn shared_part(&mut self) -> Option<Shared> {
        let path: Vec<&str> = self.names.iter().skip(1).map(String::as_str).collect();
        match path.as_slice() {
            ["RESPONSE", "DATETIME"] => Some(Shared::Datetime),
            ["RESPONSE", "WARNING"] => {
                self.warning();
                None
            }
            ["RESPONSE", "WARNING", "CODE"] => Some(Shared::Code),
            ["RESPONSE", "WARNING", "TEXT"] => Some(Shared::Text),
            ["RESPONSE", "WARNING", "URL"] => Some(Shared::Url),
            _ => None,
        }
    }

    fn warning(&mut self) -> &mut Warning {
        self.walked.warning.get_or_insert_with(Warning::default)
    }

    fn push(&mut self, text: &str) {
        if self.capturing.is_none() {
            return;
        }
        let room = MAX_FIELD.saturating_sub(self.text.len());
        let mut cut = text.len().min(room);
        while !text.is_char_boundary(cut) {
            cut -= 1;
        }
        self.text.push_str(&text[..cut]);
    }
}
