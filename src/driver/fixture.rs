//! A loopback HTTP fixture inside the target: the destination of HTTP ops, so network load never
//! leaves the target (127.0.0.1 only, an ephemeral port). Answers every request `200 ok`.

use std::io::{Read, Write};
use std::net::TcpListener;

use anyhow::Result;

pub struct Fixture {
    port: u16,
}

/// Accepting threads; each serves one connection at a time (HTTP/1.0, closed after the answer).
const THREADS: usize = 4;

impl Fixture {
    pub fn start() -> Result<Fixture> {
        let listener = TcpListener::bind("127.0.0.1:0")?;
        let port = listener.local_addr()?.port();
        for _ in 0..THREADS {
            let l = listener.try_clone()?;
            std::thread::spawn(move || {
                for mut conn in l.incoming().flatten() {
                    let mut buf = [0u8; 2048];
                    let mut seen = Vec::new();
                    // Read up to the end of the request head, then answer.
                    while let Ok(n) = conn.read(&mut buf) {
                        if n == 0 {
                            break;
                        }
                        seen.extend_from_slice(&buf[..n]);
                        if seen.windows(4).any(|w| w == b"\r\n\r\n") || seen.len() > 16 * 1024 {
                            break;
                        }
                    }
                    let _ = conn.write_all(b"HTTP/1.0 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok");
                }
            });
        }
        Ok(Fixture { port })
    }

    pub fn port(&self) -> u16 {
        self.port
    }
}
