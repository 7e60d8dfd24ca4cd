//! The site over TLS (a test CA from rcgen): clients that trust the site CA are served by IP
//! address and by name; the others are told, in one line, what is wrong; a silent client holds
//! nothing; the settings are checked at start; failed handshakes are counted in /metrics.

mod common;

use std::io::Read;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::Duration;

use common::pki::{Ca, ServerCert};
use common::{TestDb, batch, registration};
use powerstack_api::job::DataPresence;
use powerstack_api::site::SiteJobBeginV1;
use powerstack_client::site::{Site, SiteError};
use powerstack_client::tls::Trust;
use powerstack_client::{Addr, request_tls};
use powerstack_site::{Running, SiteConfig};

const TIMEOUT: Duration = Duration::from_secs(10);

fn config(db: &TestDb, cert: Option<&ServerCert>) -> SiteConfig {
    SiteConfig {
        listen: "127.0.0.1:0".into(),
        database: db.url_text(),
        tls_cert_file: cert.map(|c| c.cert_file.clone()),
        tls_key_file: cert.map(|c| c.key_file.clone()),
        ..SiteConfig::default()
    }
}

fn start(db: &TestDb, cert: &ServerCert) -> Running {
    powerstack_site::start(&config(db, Some(cert))).unwrap()
}

/// A client of `url` trusting the CA file `ca` (`None`: the system's trust store).
fn client(url: &str, ca: Option<&Path>) -> Site {
    Site::new(url, None, TIMEOUT).unwrap().with_ca_file(ca).unwrap()
}

fn now_us() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_micros() as u64
}

/// The failure's line, checked to be one line naming the site.
fn line(e: SiteError, url: &str) -> String {
    let m = e.to_string();
    assert_eq!(m.lines().count(), 1, "{m}");
    assert!(m.contains(url), "{m} does not name {url}");
    m
}

/// The site's /metrics over TLS.
fn metrics(r: &Running, ca: &Path) -> String {
    let addr = Addr::parse(&r.ready().addr.to_string()).unwrap();
    let trust = Trust::ca_file(ca).unwrap();
    let m = request_tls(&addr, &trust, "GET", "/metrics", None, None, TIMEOUT).unwrap();
    assert_eq!(m.status, 200, "{}", m.body);
    m.body
}

fn handshake_failures(r: &Running, ca: &Path) -> u64 {
    let text = metrics(r, ca);
    let line = text
        .lines()
        .find(|l| l.starts_with("powerstack_site_tls_handshake_failures_total "))
        .unwrap_or_else(|| panic!("no handshake failures counter in\n{text}"));
    line.rsplit(' ').next().unwrap().parse::<f64>().unwrap() as u64
}

#[test]
fn a_client_with_the_site_ca_writes_and_reads_a_job_by_ip_address_and_by_name() {
    let dir = tempfile::tempdir().unwrap();
    let ca = Ca::new(dir.path(), "ca");
    let cert = ca.server(dir.path(), "site", &["127.0.0.1", "localhost"]);
    let db = TestDb::sqlite();
    let r = start(&db, &cert);
    assert!(r.ready().https && r.ready().scheme() == "https");
    let url = r.ready().url();
    assert_eq!(url, format!("https://{}", r.ready().addr));
    let site = client(&url, Some(&ca.cert_file));
    // Samples from 10 s ago to 110 s ahead, over the job (begun and ended in between).
    let t0 = now_us() - 10_000_000;
    let stream = "00000000000000a1";
    site.register("n01", stream, &registration(t0)).unwrap();
    let job = SiteJobBeginV1 { id: "t1".into(), nodes: vec!["n01".into()], ..Default::default() };
    let began = site.begin_job(&job).unwrap();
    let stored = site.push("n01", stream, &batch(1, t0, (0..60).map(|k| t0 + k * 2_000_000)));
    assert_eq!(stored.unwrap().stored, 60);
    site.end_job("t1").unwrap();
    let report = site.job_report("t1").unwrap();
    assert_eq!(report.job.id, began.id);
    assert_eq!(report.report.total.data_presence, DataPresence::Complete, "{report:?}");
    // By name: the certificate lists localhost too.
    let by_name =
        client(&format!("https://localhost:{}", r.ready().addr.port()), Some(&ca.cert_file));
    assert_eq!(by_name.nodes().unwrap().nodes.len(), 1);
    assert_eq!(handshake_failures(&r, &ca.cert_file), 0);
    r.stop().unwrap();
}

#[test]
fn clients_the_site_cannot_serve_are_told_what_to_do_and_the_failures_counted() {
    let dir = tempfile::tempdir().unwrap();
    let ca = Ca::new(dir.path(), "ca");
    let other_ca = Ca::new(dir.path(), "other");
    let cert = ca.server(dir.path(), "site", &["127.0.0.1", "localhost"]);
    let db = TestDb::sqlite();
    let r = start(&db, &cert);
    let url = r.ready().url();
    // A client that trusts another CA, or only the system's store.
    for trusting in [Some(other_ca.cert_file.as_path()), None] {
        let e = client(&url, trusting).nodes().unwrap_err();
        assert!(!e.is_transient(), "{e}");
        let m = line(e, &url);
        assert!(m.contains("give the site CA with --site-ca FILE"), "{m}");
        if trusting.is_some() {
            assert!(m.contains("is not signed by a CA this client trusts"), "{m}");
        }
    }
    // Plain HTTP to the TLS port.
    let plain_url = format!("http://{}", r.ready().addr);
    let m = line(client(&plain_url, None).nodes().unwrap_err(), &plain_url);
    assert!(m.contains("is it serving https"), "{m}");
    let failures = handshake_failures(&r, &ca.cert_file);
    assert!(failures >= 3, "{failures} handshake failures counted");
    let text = metrics(&r, &ca.cert_file);
    if let Some(out) = common::promtool(&text) {
        assert!(out.status.success(), "promtool: {}", String::from_utf8_lossy(&out.stderr));
    }
    r.stop().unwrap();

    // A certificate for another name.
    let elsewhere = ca.server(dir.path(), "elsewhere", &["site.example"]);
    let r = start(&db, &elsewhere);
    let url = r.ready().url();
    let e = client(&url, Some(&ca.cert_file)).nodes().unwrap_err();
    assert!(!e.is_transient(), "{e}");
    let m = line(e, &url);
    assert!(m.contains("not valid for the name 127.0.0.1") && m.contains("name mismatch"), "{m}");
    r.stop().unwrap();

    // https:// to a plain HTTP site.
    let r = powerstack_site::start(&config(&db, None)).unwrap();
    assert!(!r.ready().https && r.ready().url().starts_with("http://"));
    let url = format!("https://{}", r.ready().addr);
    let e = client(&url, Some(&ca.cert_file)).nodes().unwrap_err();
    assert!(!e.is_transient(), "{e}");
    let m = line(e, &url);
    assert!(m.contains("plain http"), "{m}");
    r.stop().unwrap();
}

#[test]
fn a_silent_client_holds_nothing_and_is_dropped_after_the_handshake_timeout() {
    let dir = tempfile::tempdir().unwrap();
    let ca = Ca::new(dir.path(), "ca");
    let cert = ca.server(dir.path(), "site", &["127.0.0.1"]);
    let db = TestDb::sqlite();
    let r = start(&db, &cert);
    let mut silent = std::net::TcpStream::connect(r.ready().addr).unwrap();
    // Served while the first connection says nothing.
    let site = client(&r.ready().url(), Some(&ca.cert_file));
    assert!(site.nodes().unwrap().nodes.is_empty());
    // The silent one is closed by the site (after its handshake timeout, 10 s).
    silent.set_read_timeout(Some(Duration::from_secs(120))).unwrap();
    let mut buf = [0u8; 64];
    match silent.read(&mut buf) {
        Ok(0) => {}
        Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => {}
        other => panic!("the silent connection was not closed by the site: {other:?}"),
    }
    assert_eq!(handshake_failures(&r, &ca.cert_file), 1);
    r.stop().unwrap();
}

fn start_error(c: &SiteConfig) -> String {
    let e = powerstack_site::start(c).unwrap_err().to_string();
    assert_eq!(e.lines().count(), 1, "{e}");
    e
}

#[test]
fn the_tls_settings_are_checked_at_start() {
    let dir = tempfile::tempdir().unwrap();
    let ca = Ca::new(dir.path(), "ca");
    let cert = ca.server(dir.path(), "site", &["127.0.0.1"]);
    let other = ca.server(dir.path(), "other", &["127.0.0.1"]);
    let db = TestDb::sqlite();
    let good = config(&db, Some(&cert));
    let key = cert.key_file.display().to_string();
    // Beyond loopback: TLS, or the explicit option.
    let tokens = dir.path().join("tokens.toml");
    std::fs::write(&tokens, "[[token]]\ntoken = \"admin-token-0123456789\"\nrole = \"admin\"\n")
        .unwrap();
    std::fs::set_permissions(&tokens, std::fs::Permissions::from_mode(0o600)).unwrap();
    let wide =
        SiteConfig { listen: "0.0.0.0:0".into(), tokens_file: Some(tokens), ..config(&db, None) };
    let e = start_error(&wide);
    assert!(e.contains("needs TLS") && e.contains("--insecure-plain-http"), "{e}");
    let r =
        powerstack_site::start(&SiteConfig { insecure_plain_http: true, ..wide.clone() }).unwrap();
    assert!(!r.ready().https);
    r.stop().unwrap();
    let r = powerstack_site::start(&SiteConfig {
        tls_cert_file: good.tls_cert_file.clone(),
        tls_key_file: good.tls_key_file.clone(),
        ..wide
    })
    .unwrap();
    assert!(r.ready().https);
    r.stop().unwrap();
    // The key readable by others.
    std::fs::set_permissions(&cert.key_file, std::fs::Permissions::from_mode(0o644)).unwrap();
    let e = start_error(&good);
    assert!(e.contains(&format!("chmod 600 {key}")), "{e}");
    std::fs::set_permissions(&cert.key_file, std::fs::Permissions::from_mode(0o600)).unwrap();
    // Another certificate's key.
    let e = start_error(&SiteConfig { tls_key_file: Some(other.key_file.clone()), ..good.clone() });
    assert!(e.contains("does not match the certificate") && e.contains("other.key"), "{e}");
    // One of the two alone.
    let e = start_error(&SiteConfig { tls_key_file: None, ..good.clone() });
    assert!(e.contains("without tls_key_file"), "{e}");
    let e = start_error(&SiteConfig { tls_cert_file: None, ..good.clone() });
    assert!(e.contains("without tls_cert_file"), "{e}");
    // Not PEM, no certificate, no key, missing.
    let junk = dir.path().join("junk.pem");
    std::fs::write(&junk, "not a PEM file\n").unwrap();
    std::fs::set_permissions(&junk, std::fs::Permissions::from_mode(0o600)).unwrap();
    let e = start_error(&SiteConfig { tls_cert_file: Some(junk.clone()), ..good.clone() });
    assert!(
        e.contains("TLS certificate file")
            && e.contains("junk.pem")
            && e.contains("no certificate"),
        "{e}"
    );
    let e = start_error(&SiteConfig { tls_key_file: Some(junk.clone()), ..good.clone() });
    assert!(
        e.contains("TLS key file") && e.contains("junk.pem") && e.contains("no private key"),
        "{e}"
    );
    std::fs::set_permissions(&cert.cert_file, std::fs::Permissions::from_mode(0o600)).unwrap();
    let e = start_error(&SiteConfig { tls_key_file: Some(cert.cert_file.clone()), ..good.clone() });
    assert!(e.contains("no private key"), "{e}");
    let e = start_error(&SiteConfig {
        tls_cert_file: Some(dir.path().join("nowhere.pem")),
        ..good.clone()
    });
    assert!(e.contains("nowhere.pem"), "{e}");
    // And the good ones serve.
    powerstack_site::start(&good).unwrap().stop().unwrap();
}
