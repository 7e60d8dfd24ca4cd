//! `powerstack site serve` as a process, and its reports.

use std::process::Stdio;
use std::time::{Duration, Instant};

use powerstack_client::site::Site;

use super::{Proc, bin, stderr_until};

/// Starts `site serve` (SQLite in `state`); the process and its URL.
pub fn serve(state: &std::path::Path) -> (Proc, String) {
    serve_with(&["--listen", "127.0.0.1:0", "--state-dir", state.to_str().unwrap()])
}

/// Starts `site serve` with `args`; the process and its URL.
pub fn serve_with(args: &[&str]) -> (Proc, String) {
    let mut child = bin()
        .args(["site", "serve"])
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let lines = stderr_until(&mut child, "powerstack site on http://");
    let line = lines.last().unwrap();
    let addr =
        line.split("http://").nth(1).unwrap().split(':').take(2).collect::<Vec<_>>().join(":");
    (Proc(child), format!("http://{addr}"))
}

/// Job `id`'s report once it is settled (within 30 s).
pub fn settled_report(s: &Site, id: &str) -> powerstack_api::site::SiteJobReportV1 {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let r = s.job_report(id).unwrap();
        if r.job.settled {
            return r;
        }
        assert!(Instant::now() < deadline, "not settled: {r:?}");
        std::thread::sleep(Duration::from_millis(300));
    }
}
