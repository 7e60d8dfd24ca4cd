//! The agent client against tiny in-test HTTP servers (TCP on 127.0.0.1:0 and a Unix socket),
//! and hostlist expressions.

use std::io::{Read, Write};
use std::net::TcpListener;
use std::os::unix::net::UnixListener;
use std::sync::mpsc;
use std::thread::{self, JoinHandle};
use std::time::Duration;

use powerstack_client::fanout::{Target, send_all};
use powerstack_client::hostlist::{self, HostlistError};
use powerstack_client::{self as client, Addr, ClientError, Response};
use proptest::prelude::*;

const T: Duration = Duration::from_secs(5);

/// Reads one request (headers and a Content-Length body) and returns it as text.
fn read_request(s: &mut impl Read) -> String {
    let mut buf = Vec::new();
    let mut byte = [0u8; 1];
    while !buf.ends_with(b"\r\n\r\n") {
        match s.read(&mut byte) {
            Ok(1) => buf.push(byte[0]),
            _ => break,
        }
    }
    let head = String::from_utf8_lossy(&buf).to_string();
    let len = head
        .lines()
        .find_map(|l| {
            l.to_ascii_lowercase().strip_prefix("content-length:").map(|v| v.trim().to_string())
        })
        .and_then(|v| v.parse::<usize>().ok())
        .unwrap_or(0);
    let mut body = vec![0u8; len];
    let _ = s.read_exact(&mut body);
    head + &String::from_utf8_lossy(&body)
}

/// Serves one canned response per connection, each written in the given pieces (with a short
/// pause between pieces), and returns the requests it saw.
fn serve_tcp(replies: Vec<Vec<&'static [u8]>>) -> (Addr, JoinHandle<Vec<String>>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = Addr::Tcp(listener.local_addr().unwrap().to_string());
    let h = thread::spawn(move || {
        let mut seen = Vec::new();
        for pieces in replies {
            let (mut s, _) = listener.accept().unwrap();
            seen.push(read_request(&mut s));
            for p in pieces {
                let _ = s.write_all(p);
                let _ = s.flush();
                thread::sleep(Duration::from_millis(10));
            }
        }
        seen
    });
    (addr, h)
}

fn get(addr: &Addr) -> Result<Response, ClientError> {
    client::request(addr, "GET", "/v1/jobs/42", None, None, T)
}

#[test]
fn content_length_response() {
    let (addr, h) = serve_tcp(vec![vec![
        b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 11\r\n\r\n",
        b"{\"a\":",
        b"\"xyz\"}",
    ]]);
    let r = get(&addr).unwrap();
    assert_eq!(r.status, 200);
    assert_eq!(r.body, "{\"a\":\"xyz\"}");
    assert!(r.is_success());
    let seen = h.join().unwrap();
    assert!(seen[0].starts_with("GET /v1/jobs/42 HTTP/1.1\r\n"), "{}", seen[0]);
    assert!(seen[0].contains("Connection: close\r\n"));
    assert!(!seen[0].contains("Authorization"));
}

#[test]
fn content_length_stops_reading_without_waiting_for_close() {
    // The server keeps the connection open after the body until the client says it is done (or
    // 10 s pass): a client that waited for EOF would only return after the server gave up.
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = Addr::Tcp(listener.local_addr().unwrap().to_string());
    let (done, client_done) = mpsc::channel::<()>();
    let h = thread::spawn(move || {
        let (mut s, _) = listener.accept().unwrap();
        read_request(&mut s);
        s.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok").unwrap();
        client_done.recv_timeout(Duration::from_secs(10)).is_ok()
    });
    let r = client::request(&addr, "GET", "/", None, None, Duration::from_secs(30)).unwrap();
    let _ = done.send(());
    assert_eq!(r.body, "ok");
    assert!(h.join().unwrap(), "the client returned only after the server closed");
}

#[test]
fn chunked_response_in_pieces() {
    let (addr, h) = serve_tcp(vec![vec![
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n",
        b"5\r\nhel",
        b"lo\r\n6;ext=1\r\n world\r\n",
        b"0\r\n",
        b"\r\n",
    ]]);
    let r = get(&addr).unwrap();
    assert_eq!((r.status, r.body.as_str()), (200, "hello world"));
    h.join().unwrap();
}

#[test]
fn close_delimited_response() {
    let (addr, h) = serve_tcp(vec![vec![b"HTTP/1.0 200 OK\r\n\r\nuntil ", b"the end"]]);
    let r = get(&addr).unwrap();
    assert_eq!(r.body, "until the end");
    h.join().unwrap();
}

#[test]
fn error_status_is_a_response_with_a_message() {
    let (addr, h) = serve_tcp(vec![vec![
        b"HTTP/1.1 404 Not Found\r\nContent-Length: 27\r\n\r\n{\"error\":\"no such job 42\"}\n",
    ]]);
    let r = get(&addr).unwrap();
    assert_eq!(r.status, 404);
    assert!(!r.is_success());
    assert_eq!(r.message(), "no such job 42");
    h.join().unwrap();
}

#[test]
fn post_sends_body_and_bearer_token() {
    let (addr, h) = serve_tcp(vec![vec![b"HTTP/1.1 201 Created\r\nContent-Length: 0\r\n\r\n"]]);
    let body = r#"{"user":"alice","app":"lammps"}"#;
    let r =
        client::request(&addr, "POST", "/v1/jobs/7/begin", Some(body), Some("s3cret"), T).unwrap();
    assert_eq!((r.status, r.body.as_str()), (201, ""));
    let seen = h.join().unwrap();
    let req = &seen[0];
    assert!(req.starts_with("POST /v1/jobs/7/begin HTTP/1.1\r\n"), "{req}");
    assert!(req.contains("Authorization: Bearer s3cret\r\n"));
    assert!(req.contains(&format!("Content-Length: {}\r\n", body.len())));
    assert!(req.contains("Content-Type: application/json\r\n"));
    assert!(req.ends_with(body));
}

#[test]
fn send_all_posts_to_every_agent_and_answers_in_order() {
    let ok: &'static [u8] = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}";
    let (a, ha) = serve_tcp(vec![vec![ok]]);
    let dead = {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        Addr::Tcp(l.local_addr().unwrap().to_string())
    };
    let (b, hb) = serve_tcp(vec![vec![b"HTTP/1.1 409 Conflict\r\nContent-Length: 0\r\n\r\n"]]);
    let targets: Vec<Target> = [&a, &dead, &b]
        .into_iter()
        .map(|addr| Target { label: addr.to_string(), addr: addr.clone() })
        .collect();
    let body = r#"{"user":"alice","app":null}"#;
    let answers = send_all(&targets, "POST", "/v1/jobs/42/begin", Some(body), Some("t"), T);
    assert_eq!(answers.len(), 3);
    assert_eq!(answers[0].as_ref().unwrap().status, 200);
    assert!(matches!(answers[1], Err(ClientError::Refused { .. })), "{:?}", answers[1]);
    assert_eq!(answers[2].as_ref().unwrap().status, 409);
    for seen in [ha.join().unwrap(), hb.join().unwrap()] {
        assert!(seen[0].starts_with("POST /v1/jobs/42/begin HTTP/1.1\r\n"), "{}", seen[0]);
        assert!(seen[0].ends_with(body));
    }
}

#[test]
fn unix_socket_round_trip() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("agent.sock");
    let listener = UnixListener::bind(&path).unwrap();
    let h = thread::spawn(move || {
        let (mut s, _) = listener.accept().unwrap();
        let req = read_request(&mut s);
        s.write_all(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n")
            .unwrap();
        req
    });
    let addr = Addr::parse(path.to_str().unwrap()).unwrap();
    assert!(matches!(addr, Addr::Unix(_)));
    let r = client::request(&addr, "POST", "/v1/jobs/1/end", None, None, T).unwrap();
    assert_eq!(r.body, "ok");
    let req = h.join().unwrap();
    assert!(req.contains("Host: localhost\r\n"));
    assert!(req.contains("Content-Length: 0\r\n"));
}

#[test]
fn missing_unix_socket_says_agent_is_not_running() {
    let dir = tempfile::tempdir().unwrap();
    let addr = Addr::Unix(dir.path().join("nope.sock"));
    let e = get(&addr).unwrap_err().to_string();
    assert!(e.contains("nope.sock"), "{e}");
    assert!(e.contains("is `powerstack agent` running?"), "{e}");
    assert!(!e.contains('\n'));
}

#[test]
fn refused_unix_socket() {
    // A socket file nobody accepts on: bound, then the listener closed.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("agent.sock");
    drop(UnixListener::bind(&path).unwrap());
    let e = get(&Addr::Unix(path.clone())).unwrap_err().to_string();
    assert_eq!(
        e,
        format!("connection refused by {}: is `powerstack agent` running?", path.display())
    );
}

#[test]
fn refused_tcp_connection_names_the_address() {
    let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let addr = Addr::parse(&format!("127.0.0.1:{port}")).unwrap();
    let e = get(&addr).unwrap_err();
    assert!(matches!(e, ClientError::Refused { .. }), "{e:?}");
    assert_eq!(
        e.to_string(),
        format!("connection refused by 127.0.0.1:{port}: is `powerstack agent` running there?")
    );
}

#[test]
fn silent_agent_times_out() {
    // The server never answers; it holds the connection until the client has given up (or 10 s
    // pass), so the error must come from the client's own deadline.
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = Addr::Tcp(listener.local_addr().unwrap().to_string());
    let (done, client_done) = mpsc::channel::<()>();
    let h = thread::spawn(move || {
        let (s, _) = listener.accept().unwrap();
        let gave_up = client_done.recv_timeout(Duration::from_secs(10)).is_ok();
        drop(s);
        gave_up
    });
    let e = client::request(&addr, "GET", "/", None, None, Duration::from_millis(300)).unwrap_err();
    let _ = done.send(());
    assert_eq!(e.to_string(), format!("agent {addr} did not answer within 300ms"));
    assert!(h.join().unwrap(), "the client gave up only when the server closed");
}

#[test]
fn slow_drip_is_bounded_by_the_whole_deadline() {
    // Every byte arrives well within the per-read timeout and the whole answer does arrive (in
    // about 4 s), but later than the 500 ms deadline: a client that timed reads one by one would
    // succeed.
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = Addr::Tcp(listener.local_addr().unwrap().to_string());
    let h = thread::spawn(move || {
        let (mut s, _) = listener.accept().unwrap();
        read_request(&mut s);
        let _ = s.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 40\r\n\r\n");
        for _ in 0..40 {
            if s.write_all(b"x").is_err() {
                break;
            }
            thread::sleep(Duration::from_millis(100));
        }
    });
    let r = client::request(&addr, "GET", "/", None, None, Duration::from_millis(500));
    assert!(matches!(r, Err(ClientError::Timeout { .. })), "{r:?}");
    h.join().unwrap();
}

#[test]
fn garbage_and_truncated_answers_are_protocol_errors() {
    let (addr, h) = serve_tcp(vec![
        vec![b"SSH-2.0-OpenSSH_9.6\r\n\r\n"],
        vec![b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nshort"],
        vec![b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nab"],
        vec![],
    ]);
    for want in [
        "unexpected status line",
        "closed after 5 of 10 body bytes",
        "in the middle of a chunked body",
        "closed without an answer",
    ] {
        let e = get(&addr).unwrap_err();
        assert!(matches!(e, ClientError::Protocol { .. }), "{e:?}");
        let msg = e.to_string();
        assert!(msg.contains(want), "{msg}");
        assert!(msg.starts_with(&format!("agent {addr} sent an invalid HTTP response")), "{msg}");
    }
    h.join().unwrap();
}

#[test]
fn header_injection_is_refused_before_connecting() {
    let addr = Addr::Tcp("127.0.0.1:1".into());
    let e = client::request(&addr, "GET", "/", None, Some("tok\r\nX: y"), T).unwrap_err();
    assert!(matches!(e, ClientError::InvalidRequest { .. }), "{e:?}");
    let e = client::request(&addr, "GET", "/a b", None, None, T).unwrap_err();
    assert!(matches!(e, ClientError::InvalidRequest { .. }), "{e:?}");
}

#[test]
fn addresses() {
    assert_eq!(Addr::parse("node03:9464").unwrap(), Addr::Tcp("node03:9464".into()));
    assert_eq!(Addr::parse("[fe80::1]:9464").unwrap(), Addr::Tcp("[fe80::1]:9464".into()));
    assert_eq!(
        Addr::parse("/run/powerstack/agent.sock").unwrap(),
        Addr::Unix("/run/powerstack/agent.sock".into())
    );
    assert_eq!(Addr::default(), Addr::Unix(client::DEFAULT_SOCKET.into()));
    let e = Addr::parse("node03").unwrap_err().to_string();
    assert!(e.starts_with("invalid agent address \"node03\": expected host:port"), "{e}");
    assert!(Addr::parse("node03:http").is_err());
    assert!(Addr::parse("[nope]:80").is_err());
}

#[test]
fn hostlist_cases() {
    let ex = |s: &str| hostlist::expand(s).unwrap();
    assert_eq!(ex("node01"), ["node01"]);
    assert_eq!(ex("node[01-04,07]"), ["node01", "node02", "node03", "node04", "node07"]);
    assert_eq!(ex("node[1-3]-ib"), ["node1-ib", "node2-ib", "node3-ib"]);
    assert_eq!(ex("a,b[1-2]"), ["a", "b1", "b2"]);
    assert_eq!(
        ex("rack[1-2]-node[01-02]"),
        ["rack1-node01", "rack1-node02", "rack2-node01", "rack2-node02"]
    );
    assert_eq!(ex("n[098-101]"), ["n098", "n099", "n100", "n101"]);
    assert!(matches!(hostlist::expand("node[1-4"), Err(HostlistError::Unbalanced { .. })));
    assert!(matches!(hostlist::expand("node]1["), Err(HostlistError::Unbalanced { .. })));
    assert!(matches!(hostlist::expand("node[4-1]"), Err(HostlistError::Reversed { .. })));
    assert!(matches!(hostlist::expand("a,,b"), Err(HostlistError::EmptyItem { .. })));
    assert!(matches!(hostlist::expand("node[]"), Err(HostlistError::EmptyItem { .. })));
    assert!(matches!(hostlist::expand(""), Err(HostlistError::Empty)));
    // Refused before expanding: a million hosts are never built.
    assert!(matches!(hostlist::expand("a[0-999]b[0-999]"), Err(HostlistError::TooMany { .. })));
    assert!(matches!(
        hostlist::expand("a[0-18446744073709551615]"),
        Err(HostlistError::BadRange { .. })
    ));
    let msg = hostlist::expand("node[4-1]").unwrap_err().to_string();
    assert_eq!(msg, "invalid hostlist \"node[4-1]\": range 4-1 goes backwards");
    assert_eq!(
        hostlist::compress(&ex("node[01-04,07],login,gpu[9-11]-ib")),
        "node[01-04,07],login,gpu[9-11]-ib"
    );
}

/// A host name: letters, an optional padded number, an optional suffix.
fn host() -> impl Strategy<Value = String> {
    ("[a-z]{1,4}(-[a-z]{1,3})?", proptest::option::of((0u64..3000, 0usize..5)), "(-ib|-ib2|\\.x|)")
        .prop_map(|(p, n, s)| match n {
            Some((n, w)) => format!("{p}{n:0w$}{s}"),
            None => format!("{p}{s}"),
        })
}

proptest! {
    #[test]
    fn compress_then_expand_round_trips(hosts in proptest::collection::vec(host(), 1..40)) {
        let expr = hostlist::compress(&hosts);
        prop_assert_eq!(hostlist::expand(&expr).unwrap(), hosts);
    }

    #[test]
    fn formatted_ranges_expand_as_written(
        prefix in "[a-z]{1,5}",
        suffix in "(-ib|-[a-z]{1,2}|)",
        ranges in proptest::collection::vec((0u64..500, 0u64..20, 1usize..5), 1..5),
    ) {
        let mut want = Vec::new();
        let mut parts = Vec::new();
        for (lo, len, w) in &ranges {
            let (lo, hi, w) = (*lo, lo + len, *w);
            parts.push(if lo == hi { format!("{lo:0w$}") } else { format!("{lo:0w$}-{hi:0w$}") });
            // A bound wider than w sets the padding to its own width.
            let width = format!("{lo:0w$}").len();
            want.extend((lo..=hi).map(|v| format!("{prefix}{v:0width$}{suffix}")));
        }
        let expr = format!("{prefix}[{}]{suffix}", parts.join(","));
        prop_assert_eq!(hostlist::expand(&expr).unwrap(), want);
    }

    #[test]
    fn expand_never_panics(s in "\\PC{0,40}") {
        if let Ok(h) = hostlist::expand(&s) {
            prop_assert!(h.len() <= hostlist::MAX_HOSTS);
        }
    }

    #[test]
    fn expand_never_panics_on_bracket_soup(s in "[a-c0-9\\[\\],\\-]{0,30}") {
        if let Ok(h) = hostlist::expand(&s) {
            prop_assert!(!h.is_empty() && h.len() <= hostlist::MAX_HOSTS);
        }
    }
}
