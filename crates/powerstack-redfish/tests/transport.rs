//! Sessions, TLS, retries (of writes refused with 503 too) and lost answers, against the mock
//! BMC.

mod common;

use std::net::SocketAddr;
use std::sync::Arc;

use common::{block_on, fast};
use powerstack_mock_bmc::{Hang, MockBmc, Options, SESSIONS, Tree};
use powerstack_redfish::{
    Auth, Bmc, BmcConfig, Error, LimitRequest, MAX_BACKOFF_MS, MAX_RETRY_AFTER_S, PowerState,
    ResetType, retry_wait_ms,
};
use rustls::ServerConfig;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

fn credentials() -> Options {
    Options { credentials: Some(("admin".into(), "pw".into())), ..Options::default() }
}

fn session(user: &str, password: &str) -> Auth {
    Auth::Session { user: user.into(), password: password.into() }
}

fn logins(mock: &MockBmc) -> usize {
    mock.recorded_matching("POST", SESSIONS).len()
}

#[test]
fn a_session_logs_in_once_and_logs_out_on_close() {
    block_on(async {
        let mock = MockBmc::start(Tree::dmtf_controls(), credentials()).await.unwrap();
        let bmc =
            Bmc::new(&BmcConfig { auth: session("admin", "pw"), ..fast(mock.url()) }).unwrap();
        assert!(bmc.readings().await.unwrap().chassis("1").is_some());
        assert!(bmc.readings().await.unwrap().chassis("1").is_some());
        assert_eq!(logins(&mock), 1);
        assert_eq!(mock.open_sessions(), 1);
        bmc.close().await;
        assert_eq!(mock.open_sessions(), 0);
        assert_eq!(mock.recorded_matching("DELETE", "/Sessions/1").len(), 1);
    });
}

#[test]
fn an_expired_session_logs_in_again_once() {
    block_on(async {
        let options = Options { session_max_requests: Some(2), ..credentials() };
        let mock = MockBmc::start(Tree::legacy_power(), options).await.unwrap();
        let bmc =
            Bmc::new(&BmcConfig { auth: session("admin", "pw"), ..fast(mock.url()) }).unwrap();
        for _ in 0..5 {
            assert!(bmc.get_json("/redfish/v1/Chassis/1").await.unwrap().is_some());
        }
        assert_eq!(logins(&mock), 3, "requests 1-2, 3-4, 5");
        mock.expire_sessions();
        bmc.send_reset("1", ResetType::ForceOff).await.unwrap();
        assert_eq!(mock.recorded_matching("POST", "ComputerSystem.Reset").len(), 1);
        // Root, Systems (a new session after the expiry), the system (401: another), the POST.
        assert_eq!(logins(&mock), 5);
    });
}

#[test]
fn wrong_credentials_are_unauthorized() {
    block_on(async {
        let mock = MockBmc::start(Tree::dmtf_controls(), credentials()).await.unwrap();
        let bmc =
            Bmc::new(&BmcConfig { auth: session("admin", "no"), ..fast(mock.url()) }).unwrap();
        assert!(matches!(bmc.readings().await, Err(Error::Unauthorized { .. })));
        let basic = Auth::Basic { user: "admin".into(), password: "no".into() };
        let bmc = Bmc::new(&BmcConfig { auth: basic, ..fast(mock.url()) }).unwrap();
        assert!(matches!(bmc.readings().await, Err(Error::Unauthorized { .. })));
        let basic = Auth::Basic { user: "admin".into(), password: "pw".into() };
        let bmc = Bmc::new(&BmcConfig { auth: basic, ..fast(mock.url()) }).unwrap();
        assert!(bmc.readings().await.is_ok());
    });
}

/// A TLS front for `backend` with a fresh self-signed certificate for 127.0.0.1; its address
/// and a directory holding the certificate as `ca.pem`.
async fn tls_front(backend: SocketAddr) -> (SocketAddr, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let key = rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_string()]).unwrap();
    std::fs::write(dir.path().join("ca.pem"), key.cert.pem()).unwrap();
    let chain = vec![CertificateDer::from_pem_slice(key.cert.pem().as_bytes()).unwrap()];
    let private =
        PrivateKeyDer::from_pem_slice(key.signing_key.serialize_pem().as_bytes()).unwrap();
    #[allow(deprecated)]
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(chain, private)
        .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                let Ok(mut tls) = acceptor.accept(tcp).await else { return };
                let Ok(mut plain) = tokio::net::TcpStream::connect(backend).await else { return };
                let _ = tokio::io::copy_bidirectional(&mut tls, &mut plain).await;
            });
        }
    });
    (addr, dir)
}

#[test]
fn https_with_the_site_ca_or_insecure() {
    block_on(async {
        let mock = MockBmc::start(Tree::dmtf_controls(), Options::default()).await.unwrap();
        let (front, dir) = tls_front(mock.addr()).await;
        let url = format!("https://{front}");
        let ca = BmcConfig { ca_file: Some(dir.path().join("ca.pem")), ..fast(url.clone()) };
        let readings = Bmc::new(&ca).unwrap().readings().await.unwrap();
        assert!(readings.chassis("1").is_some());
        let insecure = BmcConfig { insecure: true, ..fast(url.clone()) };
        assert!(Bmc::new(&insecure).unwrap().readings().await.is_ok());
        // Another CA: the certificate is refused, and the error says what to do.
        let (_, other) = tls_front(mock.addr()).await;
        let wrong = BmcConfig {
            ca_file: Some(other.path().join("ca.pem")),
            retries: 0,
            ..fast(url.clone())
        };
        let err = Bmc::new(&wrong).unwrap().readings().await.unwrap_err();
        assert!(err.to_string().contains("certificate"), "{err}");
        // Neither: refused before anything is sent.
        assert!(matches!(Bmc::new(&fast(url)), Err(Error::Url { .. })));
        let missing = BmcConfig {
            ca_file: Some(dir.path().join("none.pem")),
            ..fast(format!("https://{front}"))
        };
        assert!(
            matches!(Bmc::new(&missing), Err(Error::Url { ref reason, .. }) if reason.contains("none.pem"))
        );
    });
}

#[test]
fn gets_are_retried_after_503_and_500() {
    block_on(async {
        let mock = MockBmc::start(Tree::dmtf_controls(), Options::default()).await.unwrap();
        mock.faults().set_unavailable(2, 0);
        let bmc = Bmc::new(&fast(mock.url())).unwrap();
        assert!(bmc.get_json("/redfish/v1").await.unwrap().is_some());
        assert_eq!(mock.requests(), 3);
        mock.faults().set_server_errors(2);
        assert!(bmc.get_json("/redfish/v1").await.unwrap().is_some());
        assert_eq!(mock.requests(), 6);
        mock.faults().set_server_errors(5);
        let few = Bmc::new(&BmcConfig { retries: 1, ..fast(mock.url()) }).unwrap();
        let err = few.get_json("/redfish/v1").await.unwrap_err();
        assert!(matches!(err, Error::Status { status: 500, .. }), "{err}");
    });
}

#[test]
fn a_retry_after_is_honoured_and_capped() {
    block_on(async {
        let mock = MockBmc::start(Tree::dmtf_controls(), Options::default()).await.unwrap();
        mock.faults().set_unavailable(1, 1);
        let bmc = Bmc::new(&fast(mock.url())).unwrap();
        assert!(bmc.get_json("/redfish/v1").await.unwrap().is_some());
        assert_eq!(mock.requests(), 2, "retried after the BMC's Retry-After");
    });
    // The waits: the BMC's Retry-After in seconds, capped at 30 s; else the backoff doubling
    // up to 10 s.
    assert_eq!(retry_wait_ms(250, 0, Some(7)), 7_000);
    assert_eq!(retry_wait_ms(250, 0, Some(3_600)), MAX_RETRY_AFTER_S * 1000);
    assert_eq!(MAX_RETRY_AFTER_S, 30);
    let waits: Vec<u64> = (0..8).map(|n| retry_wait_ms(250, n, None)).collect();
    assert_eq!(waits, [250, 500, 1_000, 2_000, 4_000, 8_000, 10_000, 10_000]);
    assert_eq!(retry_wait_ms(250, u32::MAX, None), MAX_BACKOFF_MS);
}

#[test]
fn a_refused_connection_is_retried_then_an_error() {
    block_on(async {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        drop(listener);
        let bmc = Bmc::new(&BmcConfig { retries: 2, ..fast(format!("http://{addr}")) }).unwrap();
        assert!(matches!(bmc.get_json("/redfish/v1").await, Err(Error::Transport { .. })));
    });
}

#[test]
fn a_change_whose_answer_is_lost_is_not_resent() {
    block_on(async {
        let mock = MockBmc::start(Tree::dmtf_controls(), Options::default()).await.unwrap();
        let config = BmcConfig { timeout_ms: 300, retries: 3, ..fast(mock.url()) };
        let bmc = Bmc::new(&config).unwrap();
        mock.faults().set_hang(Hang::Writes);
        let err = bmc.send_reset("1", ResetType::ForceOff).await.unwrap_err();
        assert!(
            matches!(err, Error::OutcomeUnknown { ref method, .. } if method == "POST"),
            "{err}"
        );
        assert!(err.to_string().contains("read the state back"), "{err}");
        assert_eq!(mock.recorded_matching("POST", "ComputerSystem.Reset").len(), 1, "sent once");
        let request = LimitRequest { watts: Some(400.0), ..LimitRequest::default() };
        let err = bmc.set_power_limit(&request).await.unwrap_err();
        assert!(
            matches!(err, Error::OutcomeUnknown { ref method, .. } if method == "PATCH"),
            "{err}"
        );
        assert_eq!(mock.recorded_matching("PATCH", "").len(), 1, "sent once");
    });
}

#[test]
fn a_write_refused_with_503_is_sent_again_and_one_held_unprocessed_is_not() {
    block_on(async {
        let mock = MockBmc::start(Tree::dmtf_controls(), Options::default()).await.unwrap();
        let bmc = Bmc::new(&BmcConfig { timeout_ms: 300, ..fast(mock.url()) }).unwrap();
        // A 503 was not processed: the reset is sent again, and done once.
        mock.faults().set_unavailable_writes(2, 0);
        bmc.send_reset("1", ResetType::ForceOff).await.unwrap();
        let posts = mock.recorded_matching("POST", "ComputerSystem.Reset");
        let answered: Vec<Option<u16>> = posts.iter().map(|r| r.status).collect();
        assert_eq!(answered, [Some(503), Some(503), Some(204)]);
        assert_eq!(bmc.power_state("1").await.unwrap(), PowerState::Off);
        // Held on the wire and never processed: the outcome is unknown, nothing is resent, and
        // the BMC did nothing.
        mock.faults().set_hang(Hang::WritesUnprocessed);
        let err = bmc.send_reset("1", ResetType::On).await.unwrap_err();
        assert!(matches!(err, Error::OutcomeUnknown { .. }), "{err}");
        let posts = mock.recorded_matching("POST", "ComputerSystem.Reset");
        assert_eq!((posts.len(), posts[3].status), (4, None));
        mock.faults().set_hang(Hang::Nothing);
        assert_eq!(bmc.power_state("1").await.unwrap(), PowerState::Off);
    });
}

#[test]
fn a_bmc_that_never_answers_is_a_timeout() {
    block_on(async {
        let mock = MockBmc::start(Tree::dmtf_controls(), Options::default()).await.unwrap();
        mock.faults().set_hang(Hang::Everything);
        let bmc = Bmc::new(&BmcConfig { timeout_ms: 100, retries: 1, ..fast(mock.url()) }).unwrap();
        let err = bmc.get_json("/redfish/v1").await.unwrap_err();
        assert!(matches!(err, Error::Timeout { timeout_ms: 100, .. }), "{err}");
        assert_eq!(mock.requests(), 2, "one retry");
    });
}
