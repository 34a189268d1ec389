//! A TCP proxy on 127.0.0.1 that injects network faults between filer-sync
//! and one server port: it cuts every open connection, stalls them (holds
//! the bytes in flight), adds latency to every segment, or refuses new
//! connections. It sees bytes only, so gRPC streams and HTTP chunk
//! transfers get the same faults.

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Pass,
    /// Every segment waits this long before it is forwarded.
    Latency(Duration),
    /// Bytes are held (connections stay open) until the mode changes.
    Stall,
    /// New connections are closed at once; open ones carry on.
    Refuse,
    /// HTTP/2 proxies (`start_h2`) only: the server's DATA frames are
    /// dropped, every other frame passes: the connection answers pings
    /// and settings, and no message arrives (a hung gRPC stream).
    HoldData,
}

struct Shared {
    mode: Mutex<Mode>,
    open: Mutex<Vec<TcpStream>>,
    stop: AtomicBool,
    bytes: AtomicU64,
}

pub struct FaultProxy {
    pub port: u16,
    shared: Arc<Shared>,
}

impl FaultProxy {
    /// Listens on a free port and forwards to 127.0.0.1:`target`.
    pub fn start(target: u16) -> FaultProxy {
        FaultProxy::listen(target, false)
    }

    /// `start` for an HTTP/2 server (gRPC): reads the server's frames, so
    /// that `Mode::HoldData` can hold back its messages alone.
    pub fn start_h2(target: u16) -> FaultProxy {
        FaultProxy::listen(target, true)
    }

    fn listen(target: u16, h2: bool) -> FaultProxy {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let shared = Arc::new(Shared {
            mode: Mutex::new(Mode::Pass),
            open: Mutex::new(Vec::new()),
            stop: AtomicBool::new(false),
            bytes: AtomicU64::new(0),
        });
        let s = shared.clone();
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                if s.stop.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(client) = conn else { continue };
                if *s.mode.lock().unwrap() == Mode::Refuse {
                    let _ = client.shutdown(Shutdown::Both);
                    continue;
                }
                let Ok(server) = TcpStream::connect(("127.0.0.1", target)) else {
                    continue;
                };
                let _ = client.set_nodelay(true);
                let _ = server.set_nodelay(true);
                {
                    let mut open = s.open.lock().unwrap();
                    open.push(client.try_clone().unwrap());
                    open.push(server.try_clone().unwrap());
                }
                pump(
                    s.clone(),
                    client.try_clone().unwrap(),
                    server.try_clone().unwrap(),
                    false,
                );
                pump(s.clone(), server, client, h2);
            }
        });
        FaultProxy { port, shared }
    }

    pub fn set(&self, mode: Mode) {
        *self.shared.mode.lock().unwrap() = mode;
    }

    /// Resets every open connection (both directions, both ends).
    pub fn cut(&self) {
        for c in self.shared.open.lock().unwrap().drain(..) {
            let _ = c.shutdown(Shutdown::Both);
        }
    }

    /// Bytes forwarded so far, both directions.
    pub fn bytes(&self) -> u64 {
        self.shared.bytes.load(Ordering::Relaxed)
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        self.cut();
        let _ = TcpStream::connect(("127.0.0.1", self.port));
    }
}

/// From an HTTP/2 server's bytes (`pending`, with what was just read),
/// takes the whole frames: those to forward, DATA frames left out while
/// `hold_data`. A partial frame stays pending.
fn frames(pending: &mut Vec<u8>, hold_data: bool) -> Vec<u8> {
    let mut out = Vec::new();
    let mut at = 0;
    while pending.len() - at >= 9 {
        let len = u32::from_be_bytes([0, pending[at], pending[at + 1], pending[at + 2]]) as usize;
        if pending.len() - at < 9 + len {
            break;
        }
        if !(hold_data && pending[at + 3] == 0) {
            out.extend_from_slice(&pending[at..at + 9 + len]);
        }
        at += 9 + len;
    }
    pending.drain(..at);
    out
}

/// Copies `from` → `to` segment by segment, obeying the mode for each one
/// (`h2`: `from` is an HTTP/2 server, forwarded frame by frame).
fn pump(s: Arc<Shared>, mut from: TcpStream, mut to: TcpStream, h2: bool) {
    std::thread::spawn(move || {
        let mut buf = vec![0u8; 64 * 1024];
        let mut pending = Vec::new();
        loop {
            let n = match from.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => n,
            };
            let data = if h2 {
                pending.extend_from_slice(&buf[..n]);
                let hold = *s.mode.lock().unwrap() == Mode::HoldData;
                frames(&mut pending, hold)
            } else {
                buf[..n].to_vec()
            };
            loop {
                let mode = *s.mode.lock().unwrap();
                match mode {
                    Mode::Stall if !s.stop.load(Ordering::SeqCst) => {
                        std::thread::sleep(Duration::from_millis(20))
                    }
                    Mode::Latency(d) => {
                        std::thread::sleep(d);
                        break;
                    }
                    _ => break,
                }
            }
            if to.write_all(&data).is_err() {
                break;
            }
            s.bytes.fetch_add(data.len() as u64, Ordering::Relaxed);
        }
        let _ = to.shutdown(Shutdown::Write);
    });
}

#[test]
fn the_proxy_forwards_stalls_delays_cuts_and_refuses() {
    // An echo server behind the proxy.
    let echo = TcpListener::bind("127.0.0.1:0").unwrap();
    let echo_port = echo.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for c in echo.incoming().flatten() {
            std::thread::spawn(move || {
                let mut r = c.try_clone().unwrap();
                let mut w = c;
                let _ = std::io::copy(&mut r, &mut w);
            });
        }
    });
    let p = FaultProxy::start(echo_port);
    let round_trip = |c: &mut TcpStream| -> std::io::Result<Duration> {
        let t = std::time::Instant::now();
        c.write_all(b"ping")?;
        let mut got = [0u8; 4];
        c.read_exact(&mut got)?;
        assert_eq!(&got, b"ping");
        Ok(t.elapsed())
    };
    let mut c = TcpStream::connect(("127.0.0.1", p.port)).unwrap();
    c.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    assert!(round_trip(&mut c).unwrap() < Duration::from_millis(200));
    p.set(Mode::Latency(Duration::from_millis(150)));
    assert!(round_trip(&mut c).unwrap() >= Duration::from_millis(300));
    p.set(Mode::Stall);
    let release = {
        let s = p.shared.clone();
        std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(500));
            *s.mode.lock().unwrap() = Mode::Pass;
        })
    };
    assert!(round_trip(&mut c).unwrap() >= Duration::from_millis(450));
    release.join().unwrap();
    p.cut();
    assert!(round_trip(&mut c).is_err(), "a cut connection still works");
    p.set(Mode::Refuse);
    let mut r = TcpStream::connect(("127.0.0.1", p.port)).unwrap();
    r.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    assert!(round_trip(&mut r).is_err(), "a refused connection works");
    p.set(Mode::Pass);
    let mut ok = TcpStream::connect(("127.0.0.1", p.port)).unwrap();
    ok.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    round_trip(&mut ok).unwrap();
    assert!(p.bytes() >= 16);
}
