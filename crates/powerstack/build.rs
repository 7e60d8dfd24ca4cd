//! Puts the commit the binary is built from into `powerstack --version`: `POWERSTACK_COMMIT`
//! (`abc1234, 2026-12-06`: the short hash and the commit's date), or `unknown commit` where git
//! or the repository is not there (a build from a tarball). Never fails the build.

use std::process::Command;

/// Runs git with `args` in the crate's directory: its trimmed output, or `None` on any failure.
fn git(args: &[&str]) -> Option<String> {
    let out = Command::new("git").args(args).output().ok()?;
    if !out.status.success() {
        return None;
    }
    let text = String::from_utf8(out.stdout).ok()?.trim().to_string();
    (!text.is_empty()).then_some(text)
}

fn main() {
    let commit = match (git(&["rev-parse", "--short", "HEAD"]), git(&["log", "-1", "--format=%cs"]))
    {
        (Some(hash), Some(date)) => format!("commit {hash}, {date}"),
        (Some(hash), None) => format!("commit {hash}"),
        _ => "unknown commit".to_string(),
    };
    println!("cargo:rustc-env=POWERSTACK_COMMIT={commit}");
    // Built again when HEAD moves: HEAD itself (a branch switch), the branch's ref (a commit),
    // and packed-refs (a ref packed by git gc).
    println!("cargo:rerun-if-changed=build.rs");
    let mut watched = vec!["HEAD".to_string(), "packed-refs".to_string()];
    if let Some(branch) = git(&["symbolic-ref", "-q", "HEAD"]) {
        watched.push(branch);
    }
    for name in watched {
        // Only files that are there: a missing one would run this script at every build.
        let path = git(&["rev-parse", "--path-format=absolute", "--git-path", &name]);
        if let Some(path) = path.filter(|p| std::path::Path::new(p).exists()) {
            println!("cargo:rerun-if-changed={path}");
        }
    }
}
