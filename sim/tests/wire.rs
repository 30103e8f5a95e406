//! How fmc-sim puts messages on the wire (host-input.md §2, §6): the header and the
//! value of each message in TLS records of their own, as a real server most likely
//! writes them; `split_writes` cuts them further; `tls12_only` offers TLS 1.2 only.
//!
//! The client here reads the way Rapid7's plugin does (Python's `recv()` then
//! `recv(4)`: each call returns the plaintext of at most one TLS record): it hands rustls
//! one record at a time and takes the plaintext that record carried.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::io::{self, Read, Write};

use common::{Client, ClientOptions, fixture};

/// The plaintext of the next TLS record that carries any (records without application
/// data, such as TLS 1.3 session tickets, are skipped).
fn recv(client: &mut Client) -> Vec<u8> {
    loop {
        let mut buf = vec![0u8; 64 * 1024];
        match client.stream.conn.reader().read(&mut buf) {
            Ok(n) if n > 0 => {
                buf.truncate(n);
                return buf;
            }
            Ok(_) => panic!("connection closed"),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
            Err(e) => panic!("{e}"),
        }
        let mut header = [0u8; 5];
        client.stream.sock.read_exact(&mut header).unwrap();
        let len = usize::from(u16::from_be_bytes([header[3], header[4]]));
        let mut record = header.to_vec();
        record.resize(5 + len, 0);
        client.stream.sock.read_exact(&mut record[5..]).unwrap();
        let mut rest = &record[..];
        while !rest.is_empty() {
            client.stream.conn.read_tls(&mut rest).unwrap();
        }
        client.stream.conn.process_new_packets().unwrap();
    }
}

fn send(client: &mut Client, kind: u32, value: &[u8]) {
    client.send(kind, value).unwrap();
}

fn header(kind: u32, len: u32) -> Vec<u8> {
    [kind.to_be_bytes(), len.to_be_bytes()].concat()
}

/// Each message's header is one record and its value the next: a client that reads
/// the header with one `recv()` and the value with another gets both.
#[test]
fn header_and_value_arrive_in_records_of_their_own() {
    let fx = fixture();
    let server = fx.start(|_| {});
    let mut c = Client::connect(server.addr(), &fx.id, &ClientOptions::default()).unwrap();
    send(&mut c, 2, &1u32.to_be_bytes());
    assert_eq!(recv(&mut c), header(1, 4), "the max-size header alone");
    assert_eq!(recv(&mut c), 524_288u32.to_be_bytes(), "then its value");

    send(&mut c, 3, b"SetSource,QualysGuard\nAddHost,192.0.2.1\n");
    let reply = b"Done processing 2 commands.";
    assert_eq!(recv(&mut c), header(3, reply.len() as u32));
    assert_eq!(recv(&mut c), reply);

    // A type-4 error the same way.
    send(&mut c, 7, b"x");
    let head = recv(&mut c);
    assert_eq!(&head[..4], &4u32.to_be_bytes(), "{head:?}");
    assert_eq!(head.len(), 8);
    let len = u32::from_be_bytes(head[4..].try_into().unwrap()) as usize;
    let text = recv(&mut c);
    assert_eq!(text.len(), len);
    assert!(String::from_utf8_lossy(&text).contains("type 7"));
    server.stop();
}

/// `split_writes`: every message comes in several records, cut at random places, and
/// reads of exact lengths put it together again.
#[test]
fn split_writes_cut_every_message_and_exact_reads_reassemble_it() {
    let fx = fixture();
    let server = fx.start(|o| o.split_writes = true);
    let mut c = Client::connect(server.addr(), &fx.id, &ClientOptions::default()).unwrap();
    send(&mut c, 2, &1u32.to_be_bytes());
    // The 8-byte header alone takes at least two records.
    let first = recv(&mut c);
    assert!(first.len() < 8, "{first:?}");
    let mut got = first;
    while got.len() < 12 {
        got.extend(recv(&mut c));
    }
    assert_eq!(
        got,
        [header(1, 4), 524_288u32.to_be_bytes().to_vec()].concat()
    );
    // Exact reads (host-input.md §2) see whole messages, block after block.
    c.ok_block("SetSource,QualysGuard\n", 1);
    for i in 1..=20 {
        c.ok_block(&format!("AddHost,192.0.2.{i}\n"), 1);
    }
    c.close();
    server.stop();
}

/// `tls12_only`: a client offering only TLS 1.3 is refused; one offering both gets TLS 1.2.
#[test]
fn tls12_only_offers_tls_1_2_alone() {
    let fx = fixture();
    let server = fx.start(|o| o.tls12_only = true);
    let only13 = ClientOptions {
        tls13_only: Some(true),
        ..ClientOptions::default()
    };
    assert!(Client::connect(server.addr(), &fx.id, &only13).is_err());
    let mut c = Client::connect(server.addr(), &fx.id, &ClientOptions::default()).unwrap();
    assert_eq!(
        c.stream.conn.protocol_version(),
        Some(rustls::ProtocolVersion::TLSv1_2)
    );
    send(&mut c, 2, &1u32.to_be_bytes());
    assert_eq!(c.read_frame().unwrap().0, 1);
    c.stream.flush().unwrap();
    server.stop();
}
