//! What the CLI says about itself: `--version` with the commit, shell completions, man pages.

mod common;

use std::path::Path;
use std::process::Command;

use common::ps;

fn git_short_head() -> Option<String> {
    let out = Command::new("git").args(["rev-parse", "--short", "HEAD"]).output().ok()?;
    out.status.success().then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
}

#[test]
fn version_names_the_commit() {
    let out = ps(&["--version"]);
    assert_eq!(out.code, Some(0));
    let line = out.stdout.trim_end();
    let rest = line
        .strip_prefix(&format!("powerstack {} (", env!("CARGO_PKG_VERSION")))
        .unwrap_or_else(|| panic!("{line}"));
    match git_short_head() {
        // Built from this checkout: its commit and the commit's date (YYYY-MM-DD).
        Some(hash) => {
            let date =
                rest.strip_prefix(&format!("commit {hash}, ")).unwrap_or_else(|| panic!("{line}"));
            let date = date.strip_suffix(')').unwrap();
            assert!(date.len() == 10 && date.chars().filter(|c| *c == '-').count() == 2, "{line}");
        }
        None => assert_eq!(rest, "unknown commit)"),
    }
    assert_eq!(
        ps(&["power", "--version"]).stdout,
        out.stdout.replace("powerstack ", "powerstack-power ")
    );
}

fn completions(shell: &str) -> String {
    let out = ps(&["completions", shell]);
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    out.stdout
}

#[test]
fn bash_completion_is_valid_and_knows_the_subcommands() {
    let script = completions("bash");
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("powerstack.bash");
    std::fs::write(&file, &script).unwrap();
    let check = Command::new("bash").arg("-n").arg(&file).output().unwrap();
    assert!(check.status.success(), "{}", String::from_utf8_lossy(&check.stderr));
    for word in ["measure", "completions", "man", "cap", "socket", "--time-window"] {
        assert!(script.contains(word), "no {word} in the bash completion");
    }
    // Completing `powerstack mea` offers `measure`.
    let probe = format!(
        "source {}; COMP_WORDS=(powerstack mea); COMP_CWORD=1; _powerstack powerstack mea powerstack; echo \"${{COMPREPLY[@]}}\"",
        file.display()
    );
    let out = Command::new("bash").arg("-c").arg(probe).output().unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "measure");
}

#[test]
fn zsh_and_fish_completions_name_the_binary() {
    let zsh = completions("zsh");
    assert!(zsh.starts_with("#compdef powerstack"), "{}", &zsh[..zsh.len().min(200)]);
    let fish = completions("fish");
    assert!(fish.contains("complete -c powerstack"), "{}", &fish[..fish.len().min(200)]);
    assert_eq!(ps(&["completions", "tcsh"]).code, Some(2));
}

/// Renders a page with man (or groff where man is absent): its warnings, or `None` when neither
/// is installed.
fn render_warnings(page: &Path) -> Option<String> {
    let man =
        Command::new("man").args(["--warnings", "-l"]).arg(page).env("MANPAGER", "cat").output();
    let out = match man {
        Ok(out) => out,
        Err(_) => Command::new("groff")
            .args(["-k", "-man", "-Tutf8", "-ww", "-z"])
            .arg(page)
            .output()
            .ok()?,
    };
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    Some(String::from_utf8_lossy(&out.stderr).into_owned())
}

#[test]
fn man_page_of_the_whole_tree_renders_without_warnings() {
    let out = ps(&["man"]);
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    let page = out.stdout;
    assert!(page.contains(".TH powerstack 1"), "{}", &page[..300]);
    for part in ["POWERSTACK\\-MEASURE", "POWERSTACK\\-CAP\\-SOCKET", "\\-\\-time\\-window"] {
        assert!(page.contains(part), "no {part} in the page");
    }
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("powerstack.1");
    std::fs::write(&file, &page).unwrap();
    match render_warnings(&file) {
        Some(warnings) => assert_eq!(warnings, "", "man page warnings"),
        None => eprintln!("neither man nor groff is installed: the page is not rendered"),
    }
}

#[test]
fn man_dir_writes_a_page_per_command() {
    let dir = tempfile::tempdir().unwrap();
    let pages = dir.path().join("man1");
    let out = ps(&["man", "--dir", pages.to_str().unwrap()]);
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    let names: Vec<String> = std::fs::read_dir(&pages)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    for name in
        ["powerstack.1", "powerstack-measure.1", "powerstack-cap-socket.1", "powerstack-man.1"]
    {
        assert!(names.iter().any(|n| n == name), "no {name} in {names:?}");
    }
    assert_eq!(
        out.stdout.trim(),
        format!("wrote {} man pages into {}", names.len(), pages.display())
    );
    if let Some(warnings) = render_warnings(&pages.join("powerstack-cap-socket.1")) {
        assert_eq!(warnings, "");
    }
}
