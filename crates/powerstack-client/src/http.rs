//! A small blocking HTTP/1.1 client for talking to node agents (`powerstack job ...`) and the
//! site service.
//!
//! One request per connection (`Connection: close`) over a Unix socket, TCP, or TLS over TCP
//! ([`crate::tls`]), with one deadline covering connect, handshake, write and read. Responses framed by `Content-Length`, by chunked transfer
//! coding, or by the end of the connection are all understood. Errors are one line and name the
//! agent's address.

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::os::unix::net::UnixStream;
use std::time::{Duration, Instant};

use rustls::{ClientConnection, StreamOwned};

use crate::addr::Addr;
use crate::error::ClientError;
use crate::tls::{Failure, Trust, looks_like_tls};

/// The largest response accepted, in bytes.
pub const MAX_RESPONSE_BYTES: usize = 16 << 20;
/// An agent's answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    /// HTTP status code.
    pub status: u16,
    /// The body (invalid UTF-8 replaced).
    pub body: String,
}

impl Response {
    /// Whether the status is 2xx.
    pub fn is_success(&self) -> bool {
        (200..300).contains(&self.status)
    }

    /// A one-line message for an error answer: the `error` (or `message`) field of a JSON body,
    /// else the body's first line, else the status.
    pub fn message(&self) -> String {
        if let Ok(serde_json::Value::Object(map)) = serde_json::from_str(&self.body) {
            for key in ["error", "message", "detail"] {
                match map.get(key) {
                    Some(serde_json::Value::String(s)) if !s.trim().is_empty() => {
                        return one_line(s);
                    }
                    Some(serde_json::Value::Object(inner)) => {
                        if let Some(serde_json::Value::String(s)) = inner.get("message") {
                            return one_line(s);
                        }
                    }
                    _ => {}
                }
            }
        }
        let line = one_line(&self.body);
        if line.is_empty() { format!("HTTP status {}", self.status) } else { line }
    }
}

/// Text on one line, at most 300 characters.
fn one_line(s: &str) -> String {
    let joined = s.split_whitespace().collect::<Vec<_>>().join(" ");
    if joined.chars().count() > 300 {
        let mut t: String = joined.chars().take(300).collect();
        t.push('…');
        t
    } else {
        joined
    }
}

/// A connected stream of any kind.
enum Stream {
    Unix(UnixStream),
    Tcp(TcpStream),
    Tls(Box<StreamOwned<ClientConnection, TcpStream>>),
}

impl Stream {
    fn set_timeouts(&self, t: Duration) -> io::Result<()> {
        match self {
            Stream::Unix(s) => {
                s.set_read_timeout(Some(t))?;
                s.set_write_timeout(Some(t))
            }
            Stream::Tcp(s) => {
                s.set_read_timeout(Some(t))?;
                s.set_write_timeout(Some(t))
            }
            Stream::Tls(s) => {
                s.sock.set_read_timeout(Some(t))?;
                s.sock.set_write_timeout(Some(t))
            }
        }
    }
}

impl Read for Stream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Stream::Unix(s) => s.read(buf),
            Stream::Tcp(s) => s.read(buf),
            Stream::Tls(s) => s.read(buf),
        }
    }
}

impl Write for Stream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Stream::Unix(s) => s.write(buf),
            Stream::Tcp(s) => s.write(buf),
            Stream::Tls(s) => s.write(buf),
        }
    }
    fn flush(&mut self) -> io::Result<()> {
        match self {
            Stream::Unix(s) => s.flush(),
            Stream::Tcp(s) => s.flush(),
            Stream::Tls(s) => s.flush(),
        }
    }
}

/// Deadline bookkeeping for one request.
struct Clock {
    deadline: Instant,
    timeout: Duration,
    addr: String,
}

impl Clock {
    fn left(&self) -> Result<Duration, ClientError> {
        let left = self.deadline.saturating_duration_since(Instant::now());
        if left.is_zero() { Err(self.timeout()) } else { Ok(left) }
    }
    fn timeout(&self) -> ClientError {
        ClientError::Timeout { addr: self.addr.clone(), after: self.timeout }
    }
    fn io(&self, e: io::Error) -> ClientError {
        match e.kind() {
            io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut => self.timeout(),
            io::ErrorKind::ConnectionRefused => ClientError::Refused { addr: self.addr.clone() },
            _ => ClientError::Io { addr: self.addr.clone(), source: e },
        }
    }
}

/// Connects to `addr`; with `tls`, a TCP address is then spoken to in TLS (the handshake within
/// the deadline). A Unix socket is always plain.
fn connect(addr: &Addr, tls: Option<&Trust>, clock: &Clock) -> Result<Stream, ClientError> {
    let (trust, tcp) = match (tls, connect_plain(addr, clock)?) {
        (Some(trust), Stream::Tcp(tcp)) => (trust, tcp),
        (_, plain) => return Ok(plain),
    };
    let left = clock.left()?;
    tcp.set_read_timeout(Some(left)).map_err(|e| clock.io(e))?;
    tcp.set_write_timeout(Some(left)).map_err(|e| clock.io(e))?;
    match trust.handshake(&addr.host(), tcp) {
        Ok(s) => Ok(Stream::Tls(Box::new(s))),
        Err(Failure::Tls(why)) => Err(ClientError::Tls { addr: clock.addr.clone(), why }),
        Err(Failure::Io(e)) => Err(clock.io(e)),
    }
}

fn connect_plain(addr: &Addr, clock: &Clock) -> Result<Stream, ClientError> {
    match addr {
        Addr::Unix(path) => match UnixStream::connect(path) {
            Ok(s) => Ok(Stream::Unix(s)),
            Err(e) => Err(match e.kind() {
                io::ErrorKind::NotFound => ClientError::NoSocket { addr: clock.addr.clone() },
                io::ErrorKind::PermissionDenied => {
                    ClientError::Permission { addr: clock.addr.clone() }
                }
                _ => clock.io(e),
            }),
        },
        Addr::Tcp(hp) => {
            let addrs: Vec<SocketAddr> = hp
                .to_socket_addrs()
                .map_err(|e| ClientError::Resolve { addr: clock.addr.clone(), why: e.to_string() })?
                .collect();
            if addrs.is_empty() {
                return Err(ClientError::Resolve {
                    addr: clock.addr.clone(),
                    why: "no address found".into(),
                });
            }
            let mut last = None;
            for sa in &addrs {
                let left = clock.left()?;
                match TcpStream::connect_timeout(sa, left) {
                    Ok(s) => {
                        let _ = s.set_nodelay(true);
                        return Ok(Stream::Tcp(s));
                    }
                    Err(e) => last = Some(e),
                }
            }
            Err(last.map_or_else(|| clock.timeout(), |e| clock.io(e)))
        }
    }
}

/// What is left to send after the request line, when it is safe to send.
fn check_field(addr: &Addr, what: &str, value: &str) -> Result<(), ClientError> {
    if value.bytes().any(|b| b == b'\r' || b == b'\n' || b == 0) {
        return Err(ClientError::InvalidRequest {
            addr: addr.to_string(),
            why: format!("{what} contains a line break"),
        });
    }
    Ok(())
}

/// Sends one request and reads the whole answer, all within `timeout`.
///
/// `path` is the request target (`/v1/jobs/42`), sent as given. A body is sent as
/// `application/json`; `token` becomes `Authorization: Bearer <token>`.
pub fn request(
    addr: &Addr,
    method: &str,
    path: &str,
    body: Option<&str>,
    token: Option<&str>,
    timeout: Duration,
) -> Result<Response, ClientError> {
    send(addr, None, method, path, body, token, timeout)
}

/// [`request`] in TLS, trusting `trust` (a TCP address only).
pub fn request_tls(
    addr: &Addr,
    trust: &Trust,
    method: &str,
    path: &str,
    body: Option<&str>,
    token: Option<&str>,
    timeout: Duration,
) -> Result<Response, ClientError> {
    if matches!(addr, Addr::Unix(_)) {
        return Err(ClientError::InvalidRequest {
            addr: addr.to_string(),
            why: "TLS needs host:port, not a Unix socket".into(),
        });
    }
    send(addr, Some(trust), method, path, body, token, timeout)
}

/// [`request`], in TLS trusting `tls` when given (TCP addresses only).
pub(crate) fn send(
    addr: &Addr,
    tls: Option<&Trust>,
    method: &str,
    path: &str,
    body: Option<&str>,
    token: Option<&str>,
    timeout: Duration,
) -> Result<Response, ClientError> {
    let invalid =
        |why: &str| ClientError::InvalidRequest { addr: addr.to_string(), why: why.to_string() };
    if method.is_empty() || !method.bytes().all(|b| b.is_ascii_uppercase()) {
        return Err(invalid("the method must be upper-case letters"));
    }
    if !path.starts_with('/') || path.bytes().any(|b| b <= b' ' || b == 0x7f) {
        return Err(invalid("the path must start with '/' and contain no spaces"));
    }
    if let Some(t) = token {
        check_field(addr, "the token", t)?;
    }
    let clock = Clock { deadline: Instant::now() + timeout, timeout, addr: addr.to_string() };
    let mut stream = connect(addr, tls, &clock)?;

    let host = match addr {
        Addr::Unix(_) => "localhost",
        Addr::Tcp(hp) => hp.as_str(),
    };
    let mut head = format!(
        "{method} {path} HTTP/1.1\r\nHost: {host}\r\nUser-Agent: powerstack/{}\r\nAccept: application/json\r\nConnection: close\r\n",
        env!("CARGO_PKG_VERSION")
    );
    if let Some(t) = token {
        head.push_str(&format!("Authorization: Bearer {t}\r\n"));
    }
    let body = body.unwrap_or("");
    if !body.is_empty() {
        head.push_str("Content-Type: application/json\r\n");
    }
    if !body.is_empty() || !matches!(method, "GET" | "HEAD" | "DELETE" | "OPTIONS") {
        head.push_str(&format!("Content-Length: {}\r\n", body.len()));
    }
    head.push_str("\r\n");
    let mut out = head.into_bytes();
    out.extend_from_slice(body.as_bytes());

    stream.set_timeouts(clock.left()?).map_err(|e| clock.io(e))?;
    stream.write_all(&out).map_err(|e| clock.io(e))?;
    stream.flush().map_err(|e| clock.io(e))?;

    read_response(&mut stream, &clock, method == "HEAD")
}

fn read_response(
    stream: &mut Stream,
    clock: &Clock,
    head_only: bool,
) -> Result<Response, ClientError> {
    let mut buf: Vec<u8> = Vec::with_capacity(4096);
    let mut chunk = [0u8; 8192];
    let mut eof = false;
    loop {
        if let Some(r) = parse_response(&buf, eof, head_only)
            .map_err(|why| ClientError::Protocol { addr: clock.addr.clone(), why })?
        {
            return Ok(r);
        }
        if !matches!(stream, Stream::Tls(_)) && looks_like_tls(&buf) {
            return Err(ClientError::Tls {
                addr: clock.addr.clone(),
                why: "the server answered in TLS: is it serving https (then use https://)?".into(),
            });
        }
        if eof {
            return Err(ClientError::Protocol {
                addr: clock.addr.clone(),
                why: if buf.is_empty() {
                    "the connection closed without an answer".into()
                } else {
                    "the connection closed in the middle of the answer".into()
                },
            });
        }
        stream.set_timeouts(clock.left()?).map_err(|e| clock.io(e))?;
        match stream.read(&mut chunk) {
            Ok(0) => eof = true,
            Ok(n) => {
                if buf.len() + n > MAX_RESPONSE_BYTES {
                    return Err(ClientError::Protocol {
                        addr: clock.addr.clone(),
                        why: format!("answer larger than {} MiB", MAX_RESPONSE_BYTES >> 20),
                    });
                }
                buf.extend_from_slice(&chunk[..n]);
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            // A reset after a complete close-delimited answer is the end of it.
            Err(e) if e.kind() == io::ErrorKind::ConnectionReset && !buf.is_empty() => eof = true,
            // A TLS peer that closes without close_notify: the answer is complete only if its
            // framing says so, which was looked at before this read; a close-delimited body
            // might be cut, so it is refused too.
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => {
                return Err(ClientError::Protocol {
                    addr: clock.addr.clone(),
                    why: if buf.is_empty() {
                        "the connection closed without an answer".into()
                    } else {
                        "the connection closed in the middle of the answer (no TLS close_notify)"
                            .into()
                    },
                });
            }
            Err(e) => return Err(clock.io(e)),
        }
    }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// Tries to parse a complete response from `buf`. `Ok(None)`: more bytes are needed.
fn parse_response(buf: &[u8], eof: bool, head_only: bool) -> Result<Option<Response>, String> {
    let mut start = 0;
    loop {
        let rest = &buf[start..];
        let Some(end) = find(rest, b"\r\n\r\n") else {
            if rest.len() > 64 * 1024 {
                return Err("headers longer than 64 KiB".into());
            }
            return Ok(None);
        };
        let head = std::str::from_utf8(&rest[..end]).map_err(|_| "headers are not text")?;
        let mut lines = head.split("\r\n");
        let status_line = lines.next().unwrap_or("");
        let mut parts = status_line.splitn(3, ' ');
        let version = parts.next().unwrap_or("");
        if !version.starts_with("HTTP/1.") {
            return Err(format!("unexpected status line {:?}", one_line(status_line)));
        }
        let status: u16 = parts
            .next()
            .and_then(|s| s.parse().ok())
            .filter(|s| (100..1000).contains(s))
            .ok_or_else(|| format!("unexpected status line {:?}", one_line(status_line)))?;
        let body_at = start + end + 4;
        if (100..200).contains(&status) {
            // An interim answer (100 Continue): the real one follows.
            start = body_at;
            continue;
        }
        let mut length: Option<usize> = None;
        let mut chunked = false;
        for line in lines {
            let Some((name, value)) = line.split_once(':') else {
                return Err(format!("malformed header line {:?}", one_line(line)));
            };
            let value = value.trim();
            if name.eq_ignore_ascii_case("content-length") {
                let n: usize =
                    value.parse().map_err(|_| format!("invalid Content-Length {value:?}"))?;
                if length.is_some_and(|l| l != n) {
                    return Err("conflicting Content-Length headers".into());
                }
                length = Some(n);
            } else if name.eq_ignore_ascii_case("transfer-encoding") {
                let last = value.rsplit(',').next().unwrap_or("").trim();
                if last.eq_ignore_ascii_case("chunked") {
                    chunked = true;
                } else if !last.eq_ignore_ascii_case("identity") {
                    return Err(format!("unsupported Transfer-Encoding {value:?}"));
                }
            }
        }
        let body = &buf[body_at..];
        let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
        if head_only || status == 204 || status == 304 {
            return Ok(Some(Response { status, body: String::new() }));
        }
        if chunked {
            return match decode_chunked(body)? {
                Some(b) => Ok(Some(Response { status, body: text(&b) })),
                None if eof => Err("the connection closed in the middle of a chunked body".into()),
                None => Ok(None),
            };
        }
        if let Some(n) = length {
            if n > MAX_RESPONSE_BYTES {
                return Err(format!("answer larger than {} MiB", MAX_RESPONSE_BYTES >> 20));
            }
            if body.len() >= n {
                return Ok(Some(Response { status, body: text(&body[..n]) }));
            }
            if eof {
                return Err(format!(
                    "the connection closed after {} of {n} body bytes",
                    body.len()
                ));
            }
            return Ok(None);
        }
        // Neither: the body runs to the end of the connection.
        return Ok(if eof { Some(Response { status, body: text(body) }) } else { None });
    }
}

/// Decodes a chunked body. `Ok(None)`: incomplete.
fn decode_chunked(mut data: &[u8]) -> Result<Option<Vec<u8>>, String> {
    let mut out = Vec::new();
    loop {
        let Some(eol) = find(data, b"\r\n") else { return Ok(None) };
        let line = std::str::from_utf8(&data[..eol]).map_err(|_| "invalid chunk size line")?;
        let size_text = line.split(';').next().unwrap_or("").trim();
        let size = usize::from_str_radix(size_text, 16)
            .map_err(|_| format!("invalid chunk size {:?}", one_line(size_text)))?;
        if size > MAX_RESPONSE_BYTES || out.len() + size > MAX_RESPONSE_BYTES {
            return Err(format!("answer larger than {} MiB", MAX_RESPONSE_BYTES >> 20));
        }
        data = &data[eol + 2..];
        if size == 0 {
            // Trailers, then an empty line.
            loop {
                let Some(eol) = find(data, b"\r\n") else { return Ok(None) };
                if eol == 0 {
                    return Ok(Some(out));
                }
                data = &data[eol + 2..];
            }
        }
        if data.len() < size + 2 {
            return Ok(None);
        }
        if &data[size..size + 2] != b"\r\n" {
            return Err("chunk not followed by CRLF".into());
        }
        out.extend_from_slice(&data[..size]);
        data = &data[size + 2..];
    }
}

#[cfg(test)]
mod tests;
