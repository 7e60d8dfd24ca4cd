use super::*;

#[test]
fn watts_in_messages_are_short() {
    assert_eq!(watts_text(87.5), "87.5");
    assert_eq!(watts_text(0.0), "0");
    assert_eq!(watts_text(0.0001), "0.0001");
    assert_eq!(watts_text(-3.0), "-3");
    assert_eq!(watts_text(1e308), "1e308");
    assert_eq!(watts_text(1e-300), "1e-300");
    let e = CapError::OutOfRange {
        what: "package-0 long_term".into(),
        value: 1e308,
        range: "[1 W .. 2 W]".into(),
    };
    assert_eq!(
        e.to_string(),
        "package-0 long_term: 1e308 W is outside the allowed range [1 W .. 2 W]"
    );
}

#[test]
fn a_control_whose_limits_cannot_be_read_names_the_file() {
    let missing = || CapError::NoSuchControl {
        what: "package-0 long_term".into(),
        available: "it has no power limit".into(),
    };
    let warnings = vec![
        "powercap: package-1: limits not reported: other".to_string(),
        "powercap: package-0: limits not refreshed, keeping the last known values: malformed content in /r/constraint_0_power_limit_uw: expected an unsigned integer".to_string(),
    ];
    assert_eq!(
        unreadable_limits(missing(), &warnings).to_string(),
        "package-0 long_term cannot be changed: its limits cannot be read: malformed content in /r/constraint_0_power_limit_uw: expected an unsigned integer"
    );
    // Without a warning about that domain, it is as it was.
    let e = unreadable_limits(missing(), &warnings[..1]).to_string();
    assert_eq!(e, "package-0 long_term does not exist on this node; it has no power limit");
}

#[test]
fn state_errors_name_the_file_or_the_directory_once() {
    let e = CapError::State { path: "st/lock".into(), detail: "cannot lock it: busy".into() };
    assert_eq!(e.to_string(), "state file st/lock: cannot lock it: busy");
    let e = CapError::State { path: "st".into(), detail: "cannot create it: denied".into() };
    assert_eq!(e.to_string(), "state directory st: cannot create it: denied");
    // An untrusted file is said once, not again as its own cause.
    let e = CapError::from(trust::Untrusted("state directory st is writable".into()));
    assert!(std::error::Error::source(&e).is_none());

    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("passwd");
    std::fs::write(&file, "").unwrap();
    let e = state::StateLock::acquire(&file, &state::Holder::command("t"), LOCK_WAIT_FOR_TESTS)
        .unwrap_err()
        .to_string();
    assert_eq!(
        e,
        format!(
            "state directory {}: exists and is not a directory: give the path of a directory",
            file.display()
        )
    );
}

const LOCK_WAIT_FOR_TESTS: std::time::Duration = std::time::Duration::from_millis(10);
