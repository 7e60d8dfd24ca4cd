//! A fake site service: a std `TcpListener` thread answering the agent's routes as the site
//! would (registration, batches: duplicates by seq, times strictly after the stored ones, unknown
//! streams 404, another node's token 403), recording every request, and able to fail on demand.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use powerstack_api::site::{
    BatchStoredV1, BatchV1, StreamRegisterV1, StreamRegisteredV1, is_node_name, is_stream_id,
};
use serde_json::json;

/// How the site answers.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Mode {
    /// As the site does.
    #[default]
    Up,
    /// 503 to everything.
    Unavailable,
}

/// One request, as the site saw it.
#[derive(Clone, Debug, PartialEq)]
pub enum Event {
    /// A registration and its answer's status.
    Register { stream: String, body: StreamRegisterV1, status: u16 },
    /// A batch and its answer's status (`duplicate`: a resend, answered and not stored).
    Batch { stream: String, batch: BatchV1, status: u16, duplicate: bool },
}

/// A stream the site holds.
#[derive(Clone, Debug)]
pub struct Stored {
    pub register: StreamRegisterV1,
    pub last_seq: u64,
    pub samples: Vec<Vec<u64>>,
}

/// The site's state, and what the test asks of it.
#[derive(Debug, Default)]
pub struct State {
    pub mode: Mode,
    /// Store the next batch, then close the connection without answering.
    pub lose_next_answer: bool,
    /// Answer 422 to every batch with this seq.
    pub reject_seq: Option<u64>,
    /// Answer 409 (other columns) to the next registration.
    pub conflict_next_register: bool,
    /// The node the token is for (`None`: any).
    pub token_node: Option<String>,
    pub streams: BTreeMap<String, Stored>,
    pub events: Vec<Event>,
    /// Requests answered 503.
    pub refused: usize,
}

impl State {
    /// The batches stored of stream `id`'s (answered 2xx, not a resend), in order.
    pub fn stored_batches(&self, id: &str) -> Vec<&BatchV1> {
        self.events
            .iter()
            .filter_map(|e| match e {
                Event::Batch { stream, batch, status: 200, duplicate: false } if stream == id => {
                    Some(batch)
                }
                _ => None,
            })
            .collect()
    }

    /// Every sample stored, of every stream.
    pub fn stored_samples(&self) -> usize {
        self.streams.values().map(|s| s.samples.len()).sum()
    }
}

/// The fake site, answering on `addr` until dropped.
pub struct FakeSite {
    pub addr: String,
    state: Arc<Mutex<State>>,
    done: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl FakeSite {
    pub fn start() -> FakeSite {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let state = Arc::new(Mutex::new(State::default()));
        let done = Arc::new(AtomicBool::new(false));
        let thread = {
            let (state, done) = (state.clone(), done.clone());
            std::thread::spawn(move || {
                for conn in listener.incoming() {
                    if done.load(Ordering::Relaxed) {
                        break;
                    }
                    if let Ok(c) = conn {
                        serve(c, &state);
                    }
                }
            })
        };
        FakeSite { addr: format!("http://{addr}"), state, done, thread: Some(thread) }
    }

    pub fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap()
    }

    /// Waits (at most 60 s) until `cond` holds of the state.
    pub fn wait(&self, what: &str, cond: impl Fn(&State) -> bool) {
        let deadline = Instant::now() + Duration::from_secs(60);
        while !cond(&self.state()) {
            assert!(
                Instant::now() < deadline,
                "the site never saw {what}: {:#?}",
                self.state().events
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for FakeSite {
    fn drop(&mut self) {
        self.done.store(true, Ordering::Relaxed);
        let _ = TcpStream::connect(self.addr.trim_start_matches("http://"));
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// A request: method, path, bearer token, body.
fn read_request(conn: &TcpStream) -> Option<(String, String, Option<String>, Vec<u8>)> {
    let mut r = BufReader::new(conn);
    let mut line = String::new();
    r.read_line(&mut line).ok()?;
    let mut parts = line.split_whitespace();
    let (method, path) = (parts.next()?.to_string(), parts.next()?.to_string());
    let (mut length, mut token) = (0usize, None);
    loop {
        let mut h = String::new();
        r.read_line(&mut h).ok()?;
        let h = h.trim_end();
        if h.is_empty() {
            break;
        }
        let (name, value) = h.split_once(':')?;
        match name.trim().to_ascii_lowercase().as_str() {
            "content-length" => length = value.trim().parse().ok()?,
            "authorization" => token = value.trim().strip_prefix("Bearer ").map(str::to_string),
            _ => {}
        }
    }
    let mut body = vec![0; length];
    r.read_exact(&mut body).ok()?;
    Some((method, path, token, body))
}

fn answer(mut conn: &TcpStream, status: u16, body: &serde_json::Value) {
    let text = body.to_string();
    let _ = write!(
        conn,
        "HTTP/1.1 {status} X\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{text}",
        text.len()
    );
}

fn error(status: u16, message: &str) -> (u16, serde_json::Value) {
    (status, json!({"error": {"status": status, "message": message}}))
}

fn serve(conn: TcpStream, state: &Mutex<State>) {
    conn.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let Some((method, path, token, body)) = read_request(&conn) else { return };
    let mut s = state.lock().unwrap();
    if s.mode == Mode::Unavailable {
        s.refused += 1;
        let (status, body) = error(503, "the site is down for the test");
        return answer(&conn, status, &body);
    }
    let parts: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    let (status, reply) = match (method.as_str(), parts.as_slice()) {
        (_, ["v1", "nodes", node, "streams", stream, ..])
            if !is_node_name(node) || !is_stream_id(stream) =>
        {
            error(400, "bad node or stream")
        }
        (_, ["v1", "nodes", node, ..])
            if s.token_node.as_ref().is_some_and(|n| token.as_deref() != Some(n) || n != node) =>
        {
            error(403, "the token is another node's")
        }
        ("PUT", ["v1", "nodes", node, "streams", stream]) => register(&mut s, node, stream, &body),
        ("POST", ["v1", "nodes", _, "streams", stream, "batches"]) => {
            let lose = s.lose_next_answer;
            let (status, reply) = batch(&mut s, stream, &body);
            if lose && status == 200 {
                s.lose_next_answer = false;
                return; // stored, and the answer lost
            }
            (status, reply)
        }
        _ => error(404, "no such route"),
    };
    drop(s);
    answer(&conn, status, &reply);
}

fn register(s: &mut State, node: &str, stream: &str, body: &[u8]) -> (u16, serde_json::Value) {
    let Ok(reg) = serde_json::from_slice::<StreamRegisterV1>(body) else {
        return error(400, "not a registration");
    };
    let status = match s.streams.get(stream) {
        _ if std::mem::take(&mut s.conflict_next_register) => 409,
        Some(old) if old.register.domains != reg.domains => 409,
        _ => 200,
    };
    s.events.push(Event::Register { stream: stream.into(), body: reg.clone(), status });
    if status == 409 {
        return error(409, "the stream has other columns");
    }
    let stored = s.streams.entry(stream.into()).or_insert(Stored {
        register: reg,
        last_seq: 0,
        samples: Vec::new(),
    });
    let answer = StreamRegisteredV1 {
        node: node.into(),
        stream: stream.into(),
        last_unix_us: stored.samples.last().map(|r| r[0]),
    };
    (200, serde_json::to_value(answer).unwrap())
}

fn batch(s: &mut State, stream: &str, body: &[u8]) -> (u16, serde_json::Value) {
    let Ok(b) = serde_json::from_slice::<BatchV1>(body) else {
        return error(400, "not a batch");
    };
    let reject = s.reject_seq == Some(b.seq);
    let (status, duplicate, reply) = match s.streams.get_mut(stream) {
        None => (404, false, error(404, "unknown stream").1),
        Some(_) if reject => (422, false, error(422, "refused for the test").1),
        Some(st) if b.seq <= st.last_seq => {
            let r = BatchStoredV1 { stored: 0, duplicate: true };
            (200, true, serde_json::to_value(r).unwrap())
        }
        Some(st) => {
            let width = st.register.domains.len() + 1;
            let mut last = st.samples.last().map_or(0, |r| r[0]);
            let mut ok = !b.samples.is_empty();
            for r in &b.samples {
                ok &= r.len() == width && r[0] > last;
                last = r[0];
            }
            if ok {
                st.samples.extend(b.samples.iter().cloned());
                st.last_seq = b.seq;
                let r = BatchStoredV1 { stored: b.samples.len() as u64, duplicate: false };
                (200, false, serde_json::to_value(r).unwrap())
            } else {
                (409, false, error(409, "samples not after the stored ones").1)
            }
        }
    };
    s.events.push(Event::Batch { stream: stream.into(), batch: b, status, duplicate });
    (status, reply)
}
