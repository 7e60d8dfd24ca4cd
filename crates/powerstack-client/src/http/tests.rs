//! The client's parsing of addresses, durations and answers.

use super::*;
use crate::{DEFAULT_SOCKET, fmt_duration};

#[test]
fn parse_addresses() {
    assert_eq!(Addr::parse("node03:9464").unwrap(), Addr::Tcp("node03:9464".into()));
    assert_eq!(Addr::parse("[::1]:80").unwrap(), Addr::Tcp("[::1]:80".into()));
    assert_eq!(Addr::parse("/run/x.sock").unwrap(), Addr::Unix("/run/x.sock".into()));
    assert_eq!(Addr::parse("./x.sock").unwrap(), Addr::Unix("./x.sock".into()));
    assert_eq!(Addr::parse("unix:x.sock").unwrap(), Addr::Unix("x.sock".into()));
    for bad in ["", "node03", "node03:", ":80", "node:0", "node:70000", "::1:80", "[::1]80"] {
        assert!(Addr::parse(bad).is_err(), "{bad}");
    }
    assert_eq!(Addr::default().to_string(), DEFAULT_SOCKET);
    assert_eq!(Addr::parse("[::1]:80").unwrap().host(), "::1");
    assert_eq!(Addr::parse("n1:80").unwrap().host(), "n1");
}

#[test]
fn durations() {
    assert_eq!(fmt_duration(Duration::from_secs(2)), "2s");
    assert_eq!(fmt_duration(Duration::from_millis(1500)), "1.5s");
    assert_eq!(fmt_duration(Duration::from_millis(250)), "250ms");
    assert_eq!(fmt_duration(Duration::from_millis(1234)), "1.234s");
}

#[test]
fn responses() {
    let r = parse_response(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nhi", false, false);
    assert_eq!(r.unwrap().unwrap().body, "hi");
    let partial = parse_response(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhi", false, false);
    assert_eq!(partial.unwrap(), None);
    let c = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2;x=y\r\nab\r\n3\r\ncde\r\n0\r\nX: y\r\n\r\n";
    assert_eq!(parse_response(c, false, false).unwrap().unwrap().body, "abcde");
    let cont = b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 404 Not Found\r\n\r\nnope";
    assert_eq!(parse_response(cont, false, false).unwrap(), None);
    let r = parse_response(cont, true, false).unwrap().unwrap();
    assert_eq!((r.status, r.body.as_str()), (404, "nope"));
    assert!(parse_response(b"SSH-2.0\r\n\r\n", false, false).is_err());
    assert!(
        parse_response(
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
            false,
            false
        )
        .is_err()
    );
}

#[test]
fn messages() {
    let r = Response { status: 404, body: r#"{"error":"no such job 42"}"#.into() };
    assert_eq!(r.message(), "no such job 42");
    let r = Response { status: 500, body: "boom\nline2".into() };
    assert_eq!(r.message(), "boom line2");
    let r = Response { status: 502, body: String::new() };
    assert_eq!(r.message(), "HTTP status 502");
}
