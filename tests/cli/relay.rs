//! A slow TCP relay for tests: accepts connections on a loopback port and passes every
//! byte on to the real server (and back) one byte per `pace`, like a choked link or a
//! hostile middlebox. It proves that a phase (a TLS handshake, a reply, a download) is
//! bounded as a whole, not only per read.

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;
use std::time::Duration;

/// A running relay; it stops (and drops its connections) when dropped.
pub struct Relay {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
}

impl Relay {
    /// Relays to `upstream`, one byte per `pace` in each direction.
    pub fn start(upstream: SocketAddr, pace: Duration) -> Relay {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let addr = listener.local_addr().unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&stop);
        thread::spawn(move || {
            while !flag.load(Ordering::SeqCst) {
                match listener.accept() {
                    Ok((client, _)) => {
                        let Ok(server) = TcpStream::connect(upstream) else {
                            continue;
                        };
                        pipe(&client, &server, pace, &flag);
                        pipe(&server, &client, pace, &flag);
                    }
                    Err(_) => thread::sleep(Duration::from_millis(20)),
                }
            }
        });
        Relay { addr, stop }
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
    }
}

/// Copies `from` to `to` a byte at a time on its own thread.
fn pipe(from: &TcpStream, to: &TcpStream, pace: Duration, stop: &Arc<AtomicBool>) {
    let (mut from, mut to) = (from.try_clone().unwrap(), to.try_clone().unwrap());
    from.set_read_timeout(Some(Duration::from_millis(100)))
        .unwrap();
    let stop = Arc::clone(stop);
    thread::spawn(move || {
        let mut byte = [0u8; 1];
        while !stop.load(Ordering::SeqCst) {
            match from.read(&mut byte) {
                Ok(0) => break,
                Ok(_) => {
                    if to.write_all(&byte).is_err() {
                        break;
                    }
                    thread::sleep(pace);
                }
                Err(e)
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                    ) => {}
                Err(_) => break,
            }
        }
        let _ = to.shutdown(Shutdown::Write);
        let _ = from.shutdown(Shutdown::Read);
    });
}
