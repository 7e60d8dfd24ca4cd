//! The `powerstack-mock-bmc` program as `scripts/redfish-peers.sh` runs it: it prints its URL,
//! serves the tree it was given behind the credentials it was given, and ends cleanly on SIGINT.
//! (Building this test also makes `cargo test` build the program, with the workspace's features,
//! so that the script does not build it again with others.)

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Command, Stdio};
use std::time::Duration;

/// The status and body of a GET, with basic credentials when given.
fn get(url: &str, path: &str, basic: Option<&str>) -> (u16, String) {
    let host = url.trim_start_matches("http://").trim_end_matches('/');
    let mut stream = TcpStream::connect(host).unwrap();
    stream.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let auth = basic.map(|b| format!("Authorization: Basic {b}\r\n")).unwrap_or_default();
    write!(stream, "GET {path} HTTP/1.1\r\nHost: {host}\r\n{auth}Connection: close\r\n\r\n")
        .unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).unwrap();
    let status = answer.split(' ').nth(1).and_then(|s| s.parse().ok()).unwrap();
    let body = answer.split_once("\r\n\r\n").map(|(_, b)| b.to_string()).unwrap_or_default();
    (status, body)
}

#[test]
fn the_program_serves_a_builtin_tree_behind_its_credentials_and_ends_on_sigint() {
    let mut child = Command::new(env!("CARGO_BIN_EXE_powerstack-mock-bmc"))
        .args(["--builtin", "legacy-power", "root", "pw"])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut url = String::new();
    BufReader::new(child.stdout.take().unwrap()).read_line(&mut url).unwrap();
    let url = url.trim().to_string();
    assert!(url.starts_with("http://127.0.0.1:"), "{url}");

    // "root:pw" in base64.
    let (status, body) = get(&url, "/redfish/v1/Chassis/1/Power", Some("cm9vdDpwdw=="));
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("\"PowerControl\""), "{body}");
    let (status, _) = get(&url, "/redfish/v1/Chassis/1/Power", None);
    assert_eq!(status, 401, "no credentials");
    // "root:wrong".
    let (status, _) = get(&url, "/redfish/v1/Chassis/1/Power", Some("cm9vdDp3cm9uZw=="));
    assert_eq!(status, 401, "wrong password");

    let killed = Command::new("kill").args(["-INT", &child.id().to_string()]).status().unwrap();
    assert!(killed.success());
    let status = child.wait().unwrap();
    assert!(status.success(), "{status:?}");
}

#[test]
fn a_bad_argument_is_refused_with_the_usage() {
    let out = Command::new(env!("CARGO_BIN_EXE_powerstack-mock-bmc"))
        .args(["--builtin", "dell"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("no built-in tree \"dell\""), "{err}");
}
