//! Who may have written a file powerstack trusts: the agent's token and configuration, the state
//! directory and its files (journal, job windows, pools in force, lock).
//!
//! One rule for the CLI and the agent: such a file, and the directory it lives in, is owned by
//! the effective user of the process reading it or by root, and is not writable by group or
//! others (a sticky, world-writable directory such as `/tmp` is refused too: anyone could have
//! created the file there first). A secret (the bearer token) is not readable by group or others
//! either. Anything else is refused with one line naming the file, the owner found and the fix.

use std::os::unix::fs::MetadataExt as _;
use std::path::Path;

/// A file or directory powerstack will not trust: one line with the fix.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct Untrusted(pub String);

/// What a trusted path holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// A file others may read (configuration, state files).
    File,
    /// A file only its owner may read (the bearer token).
    Secret,
    /// A directory.
    Dir,
}

/// The effective user id of this process.
pub fn effective_uid() -> u32 {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() }
}

/// The owner a trusted file should have, as `chown` takes it.
fn owner_to_give() -> String {
    match effective_uid() {
        0 => "root:".to_string(),
        uid => format!("{uid}"),
    }
}

/// Checks `path` (which must exist) against the rule of this module; `what` names it in the
/// message (`token file`, `state directory`).
pub fn check(path: &Path, kind: Kind, what: &str) -> Result<(), Untrusted> {
    let shown = path.display();
    let meta = std::fs::symlink_metadata(path)
        .map_err(|e| Untrusted(format!("cannot check {what} {shown}: {e}")))?;
    let uid = meta.uid();
    let mode = meta.mode() & 0o7777;
    let euid = effective_uid();
    let (chmod, fits) = match kind {
        Kind::Secret => ("600", meta.is_file()),
        Kind::File => ("go-w", meta.is_file()),
        Kind::Dir => ("go-w", meta.is_dir()),
    };
    if !fits {
        let expected = if kind == Kind::Dir { "a directory" } else { "a regular file" };
        return Err(Untrusted(format!(
            "{what} {shown} is not {expected} (symbolic links are not followed): give the path of {expected}"
        )));
    }
    let owned = uid == euid || uid == 0;
    let forbidden = if kind == Kind::Secret { 0o077 } else { 0o022 };
    if owned && mode & forbidden == 0 {
        return Ok(());
    }
    let problem = if owned {
        let who = if kind == Kind::Secret { "accessible" } else { "writable" };
        format!("is {who} by group or others (mode {mode:04o})")
    } else {
        format!(
            "is owned by uid {uid}, not by root or this process's user (uid {euid}), so that user could change it"
        )
    };
    let chown = owner_to_give();
    Err(Untrusted(format!(
        "{what} {shown} {problem}: chown {chown} {shown} && chmod {chmod} {shown}"
    )))
}

/// Checks a file and the directory it is in (see [`check`]); the file must exist.
pub fn check_with_dir(path: &Path, kind: Kind, what: &str) -> Result<(), Untrusted> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => std::path::PathBuf::from("."),
    };
    let dir = std::fs::canonicalize(&dir).unwrap_or(dir);
    check(&dir, Kind::Dir, &format!("{what} {}: its directory", path.display()))?;
    check(path, kind, what)
}

/// The files of a state directory powerstack reads and writes.
pub const STATE_FILES: &[&str] =
    &["lock", "journal.json", "jobs.json", "pools.toml", "node-cap.json"];

/// Checks a state directory and the files of [`STATE_FILES`] it holds; one that does not exist
/// yet passes (it is created by this process, with the right owner).
pub fn check_state_dir(dir: &Path) -> Result<(), Untrusted> {
    match std::fs::symlink_metadata(dir) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        _ => check(dir, Kind::Dir, "state directory")?,
    }
    for name in STATE_FILES {
        let path = dir.join(name);
        if std::fs::symlink_metadata(&path).is_ok() {
            check(&path, Kind::File, "state file")?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt as _;

    fn chown(path: &Path, uid: u32) {
        let c = std::ffi::CString::new(path.as_os_str().as_encoded_bytes()).unwrap();
        // SAFETY: a valid C string; lchown does not follow links.
        assert_eq!(unsafe { libc::lchown(c.as_ptr(), uid, uid) }, 0);
    }

    fn mode(path: &Path, mode: u32) {
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
    }

    #[test]
    fn files_of_another_user_or_writable_by_others_are_refused_naming_the_fix() {
        if effective_uid() != 0 {
            eprintln!("skipped: giving a file to another user needs root");
            return;
        }
        let dir = tempfile::tempdir().unwrap();
        let token = dir.path().join("token");
        std::fs::write(&token, "secret").unwrap();
        mode(&token, 0o600);
        check_with_dir(&token, Kind::Secret, "token file").unwrap();

        chown(&token, 65534);
        let e = check_with_dir(&token, Kind::Secret, "token file").unwrap_err().to_string();
        let shown = token.display();
        assert!(e.contains("owned by uid 65534"), "{e}");
        assert!(e.ends_with(&format!("chown root: {shown} && chmod 600 {shown}")), "{e}");
        assert_eq!(e.lines().count(), 1);
        chown(&token, 0);

        mode(&token, 0o640);
        let e = check(&token, Kind::Secret, "token file").unwrap_err().to_string();
        assert!(e.contains("accessible by group or others (mode 0640)"), "{e}");
        // Readable by others is fine for a configuration file, writable is not.
        check(&token, Kind::File, "configuration file").unwrap();
        mode(&token, 0o664);
        let e = check(&token, Kind::File, "configuration file").unwrap_err().to_string();
        assert!(e.contains("writable by group or others (mode 0664)") && e.contains("go-w"), "{e}");
        mode(&token, 0o600);

        // A sticky, world-writable directory is no place for a trusted file.
        mode(dir.path(), 0o1777);
        let e = check_with_dir(&token, Kind::Secret, "token file").unwrap_err().to_string();
        assert!(e.starts_with(&format!("token file {shown}: its directory")), "{e}");
        mode(dir.path(), 0o700);
        chown(dir.path(), 65534);
        let e = check_with_dir(&token, Kind::Secret, "token file").unwrap_err().to_string();
        assert!(e.contains("owned by uid 65534"), "{e}");
        chown(dir.path(), 0);
    }

    #[test]
    fn a_state_directory_is_checked_with_its_files() {
        let dir = tempfile::tempdir().unwrap();
        let state = dir.path().join("state");
        check_state_dir(&state).unwrap();
        std::fs::create_dir(&state).unwrap();
        mode(&state, 0o755);
        std::fs::write(state.join("journal.json"), "{}").unwrap();
        mode(&state.join("journal.json"), 0o644);
        std::fs::write(state.join("other"), "").unwrap();
        mode(&state.join("other"), 0o666);
        check_state_dir(&state).unwrap();
        mode(&state.join("journal.json"), 0o666);
        let e = check_state_dir(&state).unwrap_err().to_string();
        assert!(e.starts_with("state file ") && e.contains("journal.json"), "{e}");
        mode(&state.join("journal.json"), 0o644);
        mode(&state, 0o777);
        let e = check_state_dir(&state).unwrap_err().to_string();
        assert!(e.starts_with("state directory "), "{e}");
    }
}
