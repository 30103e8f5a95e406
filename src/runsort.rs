//! An external sort of fixed-size records, in bounded memory.
//!
//! Records are collected in memory up to a limit, then sorted and written as a run to an
//! anonymous temporary file; reading back merges the runs. When there are more runs than
//! can be merged at once they are first merged in groups into longer runs, so memory is
//! bounded however many records there are: at most `limit` records plus one read buffer
//! per merged run. Records compare as bytes, so a key written big-endian first sorts by
//! that key.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::fs::File;
use std::io::{self, BufReader, BufWriter, Read, Seek, SeekFrom, Write};

use crate::spill::temp_file;

/// One record.
pub type Record = [u8; RECORD];
pub const RECORD: usize = 32;

/// Records held in memory before a run is written (8 MiB).
const LIMIT: usize = 256 * 1024;
/// Runs merged at once.
const FAN_IN: usize = 32;
/// Read buffer per run while merging.
const RUN_BUFFER: usize = 64 * 1024;

#[derive(Debug)]
pub struct Sorter {
    buf: Vec<Record>,
    runs: Vec<File>,
    limit: usize,
    fan_in: usize,
}

impl Default for Sorter {
    fn default() -> Self {
        Sorter::with_limits(LIMIT, FAN_IN)
    }
}

impl Sorter {
    /// A sorter holding `limit` records in memory and merging `fan_in` runs at once.
    pub fn with_limits(limit: usize, fan_in: usize) -> Sorter {
        Sorter {
            buf: Vec::new(),
            runs: Vec::new(),
            limit: limit.max(1),
            fan_in: fan_in.max(2),
        }
    }

    pub fn push(&mut self, record: Record) -> io::Result<()> {
        self.buf.push(record);
        if self.buf.len() >= self.limit {
            self.write_run()?;
        }
        Ok(())
    }

    /// Every record pushed, in ascending order.
    pub fn into_sorted(mut self) -> io::Result<Sorted> {
        if self.runs.is_empty() {
            self.buf.sort_unstable();
            return Ok(Sorted::Memory(std::mem::take(&mut self.buf).into_iter()));
        }
        if !self.buf.is_empty() {
            self.write_run()?;
        }
        self.buf = Vec::new();
        while self.runs.len() > self.fan_in {
            let group: Vec<File> = self.runs.drain(..self.fan_in).collect();
            let mut merged = Merge::new(group)?;
            let mut out = BufWriter::with_capacity(RUN_BUFFER, temp_file()?);
            while let Some(record) = merged.next_record()? {
                out.write_all(&record)?;
            }
            self.runs.push(rewound(out)?);
        }
        Ok(Sorted::Merge(Merge::new(std::mem::take(&mut self.runs))?))
    }

    fn write_run(&mut self) -> io::Result<()> {
        self.buf.sort_unstable();
        let mut out = BufWriter::with_capacity(RUN_BUFFER, temp_file()?);
        for record in &self.buf {
            out.write_all(record)?;
        }
        self.runs.push(rewound(out)?);
        self.buf.clear();
        Ok(())
    }
}

/// The records in order.
#[derive(Debug)]
pub enum Sorted {
    Memory(std::vec::IntoIter<Record>),
    Merge(Merge),
}

impl Sorted {
    pub fn next_record(&mut self) -> io::Result<Option<Record>> {
        match self {
            Sorted::Memory(records) => Ok(records.next()),
            Sorted::Merge(merge) => merge.next_record(),
        }
    }
}

/// A k-way merge of sorted runs.
#[derive(Debug)]
pub struct Merge {
    runs: Vec<BufReader<File>>,
    heads: BinaryHeap<Reverse<(Record, usize)>>,
}

impl Merge {
    fn new(files: Vec<File>) -> io::Result<Merge> {
        let mut merge = Merge {
            runs: files
                .into_iter()
                .map(|f| BufReader::with_capacity(RUN_BUFFER, f))
                .collect(),
            heads: BinaryHeap::new(),
        };
        for i in 0..merge.runs.len() {
            merge.refill(i)?;
        }
        Ok(merge)
    }

    fn refill(&mut self, run: usize) -> io::Result<()> {
        let Some(input) = self.runs.get_mut(run) else {
            return Ok(());
        };
        if let Some(record) = read_record(input)? {
            self.heads.push(Reverse((record, run)));
        }
        Ok(())
    }

    pub fn next_record(&mut self) -> io::Result<Option<Record>> {
        let Some(Reverse((record, run))) = self.heads.pop() else {
            return Ok(None);
        };
        self.refill(run)?;
        Ok(Some(record))
    }
}

/// The next record of a run, `None` at its end; a partial record is an error.
fn read_record(input: &mut impl Read) -> io::Result<Option<Record>> {
    let mut record = [0u8; RECORD];
    let mut filled = 0;
    while filled < RECORD {
        match input.read(&mut record[filled..]) {
            Ok(0) if filled == 0 => return Ok(None),
            Ok(0) => {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "temporary sort file is truncated",
                ));
            }
            Ok(n) => filled += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(Some(record))
}

fn rewound(out: BufWriter<File>) -> io::Result<File> {
    let mut file = out.into_inner().map_err(io::IntoInnerError::into_error)?;
    file.seek(SeekFrom::Start(0))?;
    Ok(file)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(n: u64) -> Record {
        let mut r = [0u8; RECORD];
        r[..8].copy_from_slice(&n.to_be_bytes());
        r[31] = (n % 251) as u8;
        r
    }

    /// In memory, one run, several runs, and more runs than one merge takes.
    #[test]
    fn sorts_whatever_the_number_of_runs() {
        for (limit, fan_in, n) in [(1000, 4, 500), (500, 4, 500), (64, 4, 1000), (3, 2, 1000)] {
            let mut s = Sorter::with_limits(limit, fan_in);
            // A permutation of 0..n (7919 is prime, so coprime with n).
            let input: Vec<u64> = (0..n).map(|i| (i * 7919) % n).collect();
            for &i in &input {
                s.push(record(i)).unwrap();
            }
            let mut sorted = s.into_sorted().unwrap();
            let mut got = Vec::new();
            while let Some(r) = sorted.next_record().unwrap() {
                got.push(r);
            }
            let want: Vec<Record> = (0..n).map(record).collect();
            assert_eq!(got, want, "limit {limit}, fan-in {fan_in}");
        }
    }
}
