use super::*;

#[test]
fn a_control_url_is_an_http_or_https_url_with_a_host() {
    for good in ["http://n01:8080", "HTTPS://n01.example/agent", "http://[::1]:1"] {
        assert_eq!(control_url_problem(good), None, "{good}");
    }
    for (bad, says) in [
        ("ftp://n01", "http:// or https://"),
        ("n01:8080", "http:// or https://"),
        ("http://", "no host"),
        ("https:///x", "no host"),
        ("http://n 01", "no space"),
        ("http://n01/\u{7}", "control"),
    ] {
        let why = control_url_problem(bad).unwrap_or_default();
        assert!(why.contains(says), "{bad}: {why}");
    }
    let long = format!("http://{}", "a".repeat(MAX_CONTROL_URL));
    assert!(control_url_problem(&long).unwrap_or_default().contains("at most"));
}

#[test]
fn a_jobs_power_is_finite_and_above_zero() {
    let job = |w| SiteJobBeginV1 { power_watts: w, ..Default::default() };
    assert_eq!(job(None).power_problem(), None);
    assert_eq!(job(Some(4000.0)).power_problem(), None);
    for w in [0.0, -1.0, f64::NAN, f64::INFINITY, 2e12] {
        assert!(job(Some(w)).power_problem().is_some(), "{w}");
    }
}
