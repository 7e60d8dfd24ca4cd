//! A TCP relay between clients and a server that a test can cut and restore, as a network that
//! drops would look to the clients: plain threads, one pair of pumps per connection.
//!
//! - [`Relay::drop_answers`]: requests still reach the server, its answers are lost (the client
//!   waits, as for an answer that never comes back);
//! - [`Relay::cut`]: every open relayed connection is shut down, new ones are accepted and held
//!   silent without forwarding (a black hole: the client's calls time out rather than fail);
//! - [`Relay::refuse`]: the listener is closed (calls are refused at once);
//! - [`Relay::restore`]: forwarding again (connections held by a cut are shut down).
//!
//! What each connection sent that was forwarded to the server is kept ([`Relay::forwarded`]).

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// What the relay does with connections.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// Forwards both ways.
    Open,
    /// Forwards requests, drops answers.
    DropAnswers,
    /// Accepts and holds connections silent.
    BlackHole,
    /// No listener.
    Refused,
}

#[derive(Default)]
struct Conns {
    /// Client sides of open or held connections, and their server sides.
    open: Vec<(TcpStream, Option<TcpStream>)>,
    /// What each forwarded connection sent to the server.
    forwarded: Vec<Arc<Mutex<Vec<u8>>>>,
    /// Connections whose answer was dropped.
    answers_dropped: u64,
}

struct Inner {
    target: SocketAddr,
    mode: Mutex<Mode>,
    conns: Mutex<Conns>,
    stop: AtomicBool,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Inner {
    fn mode(&self) -> Mode {
        *lock(&self.mode)
    }

    /// Shuts every open or held connection down.
    fn shut_all(&self) {
        for (client, server) in lock(&self.conns).open.drain(..) {
            let _ = client.shutdown(Shutdown::Both);
            if let Some(s) = server {
                let _ = s.shutdown(Shutdown::Both);
            }
        }
    }

    fn accept_loop(self: Arc<Self>, addr: SocketAddr) {
        let mut listener: Option<TcpListener> = None;
        while !self.stop.load(Ordering::Relaxed) {
            if self.mode() == Mode::Refused {
                listener = None;
                std::thread::sleep(Duration::from_millis(5));
                continue;
            }
            let l = match &listener {
                Some(l) => l,
                None => {
                    // The port again (a moment after it was closed).
                    let deadline = Instant::now() + Duration::from_secs(10);
                    let l = loop {
                        match TcpListener::bind(addr) {
                            Ok(l) => break l,
                            Err(e) => {
                                assert!(Instant::now() < deadline, "relay: bind {addr}: {e}");
                                std::thread::sleep(Duration::from_millis(20));
                            }
                        }
                    };
                    l.set_nonblocking(true).unwrap();
                    listener.insert(l)
                }
            };
            match l.accept() {
                Ok((client, _)) => {
                    client.set_nonblocking(false).unwrap();
                    self.clone().relay(client);
                }
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                    std::thread::sleep(Duration::from_millis(2));
                }
                Err(e) => panic!("relay: accept: {e}"),
            }
        }
    }

    /// Takes a new connection: held (a cut), or forwarded by two pumps.
    fn relay(self: Arc<Self>, client: TcpStream) {
        if self.mode() != Mode::Open && self.mode() != Mode::DropAnswers {
            lock(&self.conns).open.push((client, None));
            return;
        }
        let Ok(server) = TcpStream::connect(self.target) else {
            return;
        };
        let record = Arc::new(Mutex::new(Vec::new()));
        {
            let mut conns = lock(&self.conns);
            conns.forwarded.push(record.clone());
            conns.open.push((client.try_clone().unwrap(), Some(server.try_clone().unwrap())));
        }
        let (mut c_in, mut s_out) = (client.try_clone().unwrap(), server.try_clone().unwrap());
        std::thread::spawn(move || {
            let mut buf = [0u8; 16384];
            while let Ok(n @ 1..) = c_in.read(&mut buf) {
                lock(&record).extend_from_slice(&buf[..n]);
                if s_out.write_all(&buf[..n]).is_err() {
                    break;
                }
            }
        });
        let (mut s_in, mut c_out) = (server, client);
        std::thread::spawn(move || {
            let mut buf = [0u8; 16384];
            let mut dropped = false;
            while let Ok(n @ 1..) = s_in.read(&mut buf) {
                if self.mode() == Mode::DropAnswers {
                    if !dropped {
                        lock(&self.conns).answers_dropped += 1;
                    }
                    dropped = true;
                } else if dropped || c_out.write_all(&buf[..n]).is_err() {
                    break;
                }
            }
            // An answer that was dropped leaves the client waiting (until a cut shuts it).
            if !dropped {
                let _ = c_out.shutdown(Shutdown::Both);
            }
        });
    }
}

/// The relay: listening on a port of its own, forwarding to its target until dropped.
pub struct Relay {
    inner: Arc<Inner>,
    addr: SocketAddr,
    thread: Option<JoinHandle<()>>,
}

impl Relay {
    /// A relay to `target` (`host:port`), forwarding.
    pub fn start(target: &str) -> Relay {
        let target: SocketAddr = target.parse().unwrap();
        let addr = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
        let inner = Arc::new(Inner {
            target,
            mode: Mutex::new(Mode::Open),
            conns: Mutex::new(Conns::default()),
            stop: AtomicBool::new(false),
        });
        let i = inner.clone();
        let thread = Some(std::thread::spawn(move || i.accept_loop(addr)));
        Relay { inner, addr, thread }
    }

    /// Its address, `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    fn set(&self, mode: Mode) {
        *lock(&self.inner.mode) = mode;
    }

    /// Requests still go through; answers are lost.
    pub fn drop_answers(&self) {
        self.set(Mode::DropAnswers);
    }

    /// How many connections had their answer dropped.
    pub fn answers_dropped(&self) -> u64 {
        lock(&self.inner.conns).answers_dropped
    }

    /// The network drops: open connections shut down, new ones held silent.
    pub fn cut(&self) {
        self.set(Mode::BlackHole);
        self.inner.shut_all();
    }

    /// The listener closes: new connections are refused; open ones shut down.
    pub fn refuse(&self) {
        self.set(Mode::Refused);
        self.inner.shut_all();
    }

    /// Forwarding again; connections held by a cut are shut down.
    pub fn restore(&self) {
        self.inner.shut_all();
        self.set(Mode::Open);
    }

    /// What each forwarded connection sent to the server, in the order they were accepted.
    pub fn forwarded(&self) -> Vec<Vec<u8>> {
        lock(&self.inner.conns).forwarded.iter().map(|r| lock(r).clone()).collect()
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        self.inner.stop.store(true, Ordering::Relaxed);
        self.inner.shut_all();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
