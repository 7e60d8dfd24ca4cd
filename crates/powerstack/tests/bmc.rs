//! `powerstack bmc` end to end against the mock BMC (served from this test process): power,
//! limits, cap (set, off, refused), state, transitions, credentials.

mod common;

use common::bin;
use powerstack_mock_bmc::{Background, Options, SESSIONS, Tree};
use serde_json::Value;

fn serve(tree: Tree, options: Options) -> Background {
    Background::start(tree, options).unwrap()
}

/// Runs `powerstack bmc --url URL ARGS...`; stdout, stderr and the exit code.
fn bmc(served: &Background, args: &[&str]) -> (String, String, i32) {
    let out = bin()
        .env_remove("POWERSTACK_BMC_PASSWORD")
        .env_remove("POWERSTACK_BMC_URL")
        .env_remove("POWERSTACK_BMC_USER")
        .args(["bmc", "--url", &served.url()])
        .args(args)
        .output()
        .unwrap();
    let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
    (text(&out.stdout), text(&out.stderr), out.status.code().unwrap_or(-1))
}

fn json(text: &str) -> Value {
    serde_json::from_str(text).unwrap_or_else(|e| panic!("{e}: {text}"))
}

#[test]
fn power_limits_and_state_read() {
    let served = serve(Tree::dmtf_controls(), Options::default());
    let (out, err, code) = bmc(&served, &["--format", "json", "power"]);
    assert_eq!(code, 0, "{err}");
    let doc = json(&out);
    assert_eq!(doc["chassis"][0]["power_watts"], 374.5);
    assert_eq!(doc["chassis"][0]["energy"]["joules"], 1_000_000.0);
    let (out, _, code) = bmc(&served, &["--format", "json", "limits"]);
    assert_eq!(code, 0);
    let doc = json(&out);
    assert_eq!(doc["limits"][0]["dialect"], "DmtfControls");
    assert_eq!(doc["limits"][0]["set_point_watts"], 500.0);
    assert_eq!(doc["limits"][0]["max_watts"], 1000.0);
    let (out, _, _) = bmc(&served, &["--format", "table", "limits"]);
    assert!(out.contains("System Power Limit") && out.contains("150-1000 W"), "{out}");
    let (out, _, code) = bmc(&served, &["--format", "json", "state"]);
    assert_eq!(code, 0);
    let doc = json(&out);
    assert_eq!(doc["systems"][0]["power_state"], "On");
    assert_eq!(doc["systems"][0]["allowed_resets"][1], "ForceOff");
}

#[test]
fn cap_sets_turns_off_and_refuses_out_of_range() {
    let served = serve(Tree::hpe_cray_ex(), Options::default());
    let (out, err, code) = bmc(&served, &["--format", "json", "cap", "1500"]);
    assert_eq!(code, 0, "{err}");
    let doc = json(&out);
    assert_eq!(doc["set_point_watts"], 1500.0);
    assert_eq!(doc["enforced"], true);
    assert_eq!(doc["takes_effect_after_reset"], false);
    let (out, _, code) = bmc(&served, &["--format", "json", "cap", "off"]);
    assert_eq!(code, 0);
    assert_eq!(json(&out)["enforced"], false);
    let before = served.recorded().len();
    let (_, err, code) = bmc(&served, &["cap", "5000"]);
    assert_ne!(code, 0);
    assert!(err.contains("outside the range") && err.contains("nothing was sent"), "{err}");
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    let (_, err, code) = bmc(&served, &["cap", "lots"]);
    assert_ne!(code, 0);
    assert!(err.contains("give watts"), "{err}");
    assert_eq!(served.recorded().len(), before, "nothing sent for refused caps");
    let gpu = [
        "--format",
        "json",
        "cap",
        "300",
        "--chassis",
        "Node0",
        "--control",
        "Accelerator0PowerLimit",
    ];
    let (out, err, code) = bmc(&served, &gpu);
    assert_eq!(code, 0, "{err}");
    assert_eq!(json(&out)["name"], "Accelerator0PowerLimit");
}

#[test]
fn credentials_from_a_file_or_the_environment_and_sessions() {
    let options =
        Options { credentials: Some(("admin".into(), "pw".into())), ..Options::default() };
    let served = serve(Tree::legacy_power(), options);
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("password");
    std::fs::write(&file, "pw\n").unwrap();
    let file = file.to_str().unwrap();
    let (_, err, code) = bmc(&served, &["--format", "json", "state"]);
    assert_ne!(code, 0);
    assert!(err.contains("401"), "{err}");
    let (_, err, code) = bmc(&served, &["--user", "admin", "state"]);
    assert_ne!(code, 0);
    assert!(err.contains("POWERSTACK_BMC_PASSWORD"), "{err}");
    let (out, err, code) =
        bmc(&served, &["--user", "admin", "--password-file", file, "--format", "json", "state"]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(json(&out)["systems"][0]["id"], "1");
    let out = bin()
        .env("POWERSTACK_BMC_PASSWORD", "pw")
        .args(["bmc", "--url", &served.url(), "--user", "admin", "--session"])
        .args(["--format", "json", "limits"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(served.recorded_matching("POST", SESSIONS).len(), 1);
    assert_eq!(served.open_sessions(), 0, "the session was ended");
}

#[test]
fn transitions_confirmed_or_not() {
    let options =
        Options { transition_reads: 1, graceful_never_finishes: true, ..Options::default() };
    let served = serve(Tree::dmtf_controls(), options);
    let args =
        ["--format", "json", "transition", "force-off", "--poll", "1ms", "--deadline", "60s"];
    let (out, err, code) = bmc(&served, &args);
    assert_eq!(code, 0, "{err}");
    let doc = json(&out);
    assert_eq!(
        (doc["confirmed"].as_bool(), doc["final_state"].as_str()),
        (Some(true), Some("Off"))
    );
    let (out, _, code) =
        bmc(&served, &["--format", "table", "transition", "On", "--system", "1", "--poll", "1ms"]);
    assert_eq!(code, 0);
    assert!(out.contains("On: confirmed; power state On"), "{out}");
    // A graceful shutdown that never finishes: not confirmed, exit 3.
    let args = [
        "--format",
        "table",
        "transition",
        "GracefulShutdown",
        "--poll",
        "5ms",
        "--deadline",
        "100ms",
    ];
    let (out, _, code) = bmc(&served, &args);
    assert_eq!(code, 3);
    assert!(out.contains("NOT confirmed"), "{out}");
    let (_, err, code) = bmc(&served, &["transition", "Reboot"]);
    assert_ne!(code, 0);
    assert!(err.contains("give one of On, ForceOff"), "{err}");
    let posts = served.recorded_matching("POST", "ComputerSystem.Reset");
    assert_eq!(posts.len(), 3, "ForceOff, On, GracefulShutdown: once each");
}

#[test]
fn energy_is_integrated_from_power_without_a_counter_and_labelled() {
    let served = serve(Tree::legacy_power(), Options::default());
    let args = ["--format", "json", "energy", "--duration", "600ms", "--interval", "200ms"];
    let (out, err, code) = bmc(&served, &args);
    assert_eq!(code, 0, "{err}");
    let c = &json(&out)["chassis"][0];
    assert_eq!(c["method"], "integrated from power", "{out}");
    assert!(c["readings"].as_u64().unwrap() >= 2, "{out}");
    // The mock's power is a steady 344 W: whatever the timing, the mean is that.
    assert!((c["mean_watts"].as_f64().unwrap() - 344.0).abs() < 1e-9, "{out}");
    let seconds = c["seconds"].as_f64().unwrap();
    assert!((c["energy_joules"].as_f64().unwrap() - 344.0 * seconds).abs() < 1e-6, "{out}");
    let (_, err, code) = bmc(&served, &["energy", "--duration", "1s", "--interval", "0s"]);
    assert!(code != 0 && err.contains("--interval"), "{err}");
}

#[test]
fn energy_comes_from_the_counter_when_the_bmc_has_one() {
    let served = serve(Tree::dmtf_controls(), Options::default());
    let uri = "/redfish/v1/Chassis/1/EnvironmentMetrics";
    let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    std::thread::scope(|s| {
        // The counter advances by 100 J steps while the command measures.
        s.spawn(|| {
            let mut joules = 1_000_000u64;
            while !done.load(std::sync::atomic::Ordering::Relaxed) {
                joules += 100;
                let doc = serde_json::json!({"PowerWatts": {"Reading": 374.5},
                                             "EnergyJoules": {"Reading": joules}});
                served.edit_tree(|t| {
                    t.insert(uri, doc);
                });
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
        });
        let args = ["--format", "json", "energy", "--duration", "500ms", "--interval", "100ms"];
        let (out, err, code) = bmc(&served, &args);
        done.store(true, std::sync::atomic::Ordering::Relaxed);
        assert_eq!(code, 0, "{err}");
        let c = &json(&out)["chassis"][0];
        assert_eq!(c["method"], "counter", "{out}");
        let joules = c["energy_joules"].as_f64().unwrap();
        assert!(joules > 0.0 && joules % 100.0 == 0.0, "{out}");
    });
}
