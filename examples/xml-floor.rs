//! The benchmark floor (BENCHMARKS.md): a bare quick-xml event loop over a file that
//! does nothing but count elements, with the same reader and buffer sizes as the
//! connector's parser. Whatever the connector does costs at least this much.
//!
//! `cargo run --release --example xml-floor -- FILE`

use std::fs::File;
use std::io::BufReader;
use std::process::ExitCode;

use quick_xml::Reader;
use quick_xml::events::Event;

fn main() -> ExitCode {
    let Some(path) = std::env::args_os().nth(1) else {
        eprintln!("usage: xml-floor FILE");
        return ExitCode::from(2);
    };
    let file = match File::open(&path) {
        Ok(f) => f,
        Err(e) => {
            eprintln!("xml-floor: {}: {e}", path.to_string_lossy());
            return ExitCode::from(1);
        }
    };
    let mut reader = Reader::from_reader(BufReader::with_capacity(256 * 1024, file));
    let mut buf = Vec::with_capacity(64 * 1024);
    let mut elements = 0u64;
    loop {
        buf.clear();
        match reader.read_event_into(&mut buf) {
            Ok(Event::Start(_) | Event::Empty(_)) => elements += 1,
            Ok(Event::Eof) => break,
            Ok(_) => {}
            Err(e) => {
                eprintln!("xml-floor: {e}");
                return ExitCode::from(1);
            }
        }
    }
    println!("{elements} elements");
    ExitCode::SUCCESS
}
