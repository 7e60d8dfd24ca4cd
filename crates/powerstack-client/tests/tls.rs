//! The blocking client in TLS against a bare rustls server that closes without close_notify:
//! a complete Content-Length answer is an answer, a close-delimited one might be cut and is not.

use std::io::{Read, Write};
use std::net::TcpListener;
use std::sync::Arc;
use std::time::Duration;

use powerstack_client::tls::{Trust, provider};
use powerstack_client::{Addr, request_tls};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::{ServerConfig, ServerConnection, StreamOwned};

/// Serves one connection: reads the request's head, writes `answer`, then closes the TCP
/// connection, with close_notify first when `notify`.
fn serve_once(answer: &'static str, notify: bool) -> (String, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let key = rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_string()]).unwrap();
    let ca = dir.path().join("ca.pem");
    std::fs::write(&ca, key.cert.pem()).unwrap();
    let chain = vec![CertificateDer::from_pem_slice(key.cert.pem().as_bytes()).unwrap()];
    let private =
        PrivateKeyDer::from_pem_slice(key.signing_key.serialize_pem().as_bytes()).unwrap();
    let config = ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(chain, private)
        .unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    std::thread::spawn(move || {
        let (tcp, _) = listener.accept().unwrap();
        let conn = ServerConnection::new(Arc::new(config)).unwrap();
        let mut tls = StreamOwned::new(conn, tcp);
        let mut head = Vec::new();
        let mut byte = [0u8; 1];
        while !head.ends_with(b"\r\n\r\n") && tls.read(&mut byte).unwrap() == 1 {
            head.push(byte[0]);
        }
        tls.write_all(answer.as_bytes()).unwrap();
        if notify {
            tls.conn.send_close_notify();
        }
        tls.flush().unwrap();
        let _ = tls.sock.shutdown(std::net::Shutdown::Both);
    });
    (addr, dir)
}

fn get(addr: &str, dir: &tempfile::TempDir) -> Result<powerstack_client::Response, String> {
    let trust = Trust::ca_file(&dir.path().join("ca.pem")).unwrap();
    let addr = Addr::parse(addr).unwrap();
    request_tls(&addr, &trust, "GET", "/v1/health", None, None, Duration::from_secs(10))
        .map_err(|e| e.to_string())
}

#[test]
fn a_complete_answer_is_one_with_or_without_close_notify() {
    for notify in [false, true] {
        let (addr, dir) = serve_once("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok", notify);
        let r = get(&addr, &dir).unwrap();
        assert_eq!((r.status, r.body.as_str()), (200, "ok"), "close_notify {notify}");
    }
}

#[test]
fn a_close_delimited_answer_needs_close_notify() {
    let (addr, dir) = serve_once("HTTP/1.1 200 OK\r\n\r\nmaybe all", false);
    let e = get(&addr, &dir).unwrap_err();
    assert!(e.contains("no TLS close_notify"), "{e}");
    let (addr, dir) = serve_once("HTTP/1.1 200 OK\r\n\r\nall", true);
    assert_eq!(get(&addr, &dir).unwrap().body, "all");
}
