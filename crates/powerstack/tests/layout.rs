//! The size and import rules of ARCHITECTURE.md hold in every crate's `src/`: no production file
//! over 600 lines (unit tests live in `tests.rs` files beside the code, which do not count), and
//! no import loop: within a parent module, the children's `crate::`/`super::` paths to each other
//! form no cycle (a child may use its parent and a parent its child). Function length is checked
//! by clippy (`too_many_lines`, 100, in `clippy.toml` and the workspace lints).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// The most lines of a production source file.
const MAX_FILE_LINES: usize = 600;

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else { return };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// Each crate's `src/` directory.
fn crate_sources() -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = std::fs::read_dir(workspace_root().join("crates"))
        .expect("crates/")
        .flatten()
        .map(|e| e.path().join("src"))
        .filter(|p| p.is_dir())
        .collect();
    out.sort();
    out
}

/// Unit tests: a `tests.rs` file, or a file under a `tests/` directory of `src/`.
fn is_test_file(src: &Path, file: &Path) -> bool {
    let rel = file.strip_prefix(src).unwrap_or(file);
    file.file_name().is_some_and(|n| n == "tests.rs")
        || rel.components().any(|c| c.as_os_str() == "tests")
}

/// The module path of a source file (`a::b` for `src/a/b.rs` or `src/a/b/mod.rs`; empty for
/// the crate root).
fn module_of(src: &Path, file: &Path) -> Vec<String> {
    let rel = file.strip_prefix(src).unwrap_or(file).with_extension("");
    let mut parts: Vec<String> =
        rel.components().map(|c| c.as_os_str().to_string_lossy().into_owned()).collect();
    if matches!(parts.last().map(String::as_str), Some("mod" | "lib" | "main")) {
        parts.pop();
    }
    parts
}

/// The code of a file before its `#[cfg(test)]` part, without comment lines.
fn production_code(text: &str) -> String {
    let code = text.split("#[cfg(test)]").next().unwrap_or(text);
    code.lines().filter(|l| !l.trim_start().starts_with("//")).collect::<Vec<_>>().join("\n")
}

/// The module paths a piece of code names through `crate::` and `super::` (as far as they go:
/// identifiers joined by `::`; items are cut off later against the known modules). `use` groups
/// (`crate::a::{b, c}`) name `a`.
fn named_paths(code: &str, module: &[String]) -> Vec<Vec<String>> {
    let mut out = Vec::new();
    for (start, _) in code.match_indices("crate::").chain(code.match_indices("super::")) {
        let before = code[..start].chars().next_back();
        if before.is_some_and(|c| c.is_alphanumeric() || c == '_' || c == ':') {
            continue; // `powerstack_hw::crate::` cannot occur; `super::super::` starts at the first.
        }
        let mut base: Vec<String> = Vec::new();
        let mut rest = &code[start..];
        if let Some(r) = rest.strip_prefix("crate::") {
            rest = r;
        } else {
            base = module.to_vec();
            while let Some(r) = rest.strip_prefix("super::") {
                base.pop();
                rest = r;
            }
        }
        let path: String =
            rest.chars().take_while(|c| c.is_alphanumeric() || *c == '_' || *c == ':').collect();
        base.extend(path.split("::").filter(|s| !s.is_empty()).map(str::to_string));
        out.push(base);
    }
    out
}

/// The longest prefix of `path` that is a module.
fn resolve(path: &[String], modules: &BTreeSet<Vec<String>>) -> Vec<String> {
    (0..=path.len())
        .rev()
        .map(|n| path[..n].to_vec())
        .find(|p| modules.contains(p))
        .unwrap_or_default()
}

/// Edges between sibling modules: a use from `from` to `to` (neither inside the other) counts
/// as one from the child of their common parent holding `from` to the one holding `to`.
fn sibling_edges(src: &Path) -> BTreeMap<Vec<String>, BTreeSet<Vec<String>>> {
    let mut files = Vec::new();
    rust_files(src, &mut files);
    files.retain(|f| !is_test_file(src, f));
    let modules: BTreeSet<Vec<String>> = files.iter().map(|f| module_of(src, f)).collect();
    let mut edges: BTreeMap<Vec<String>, BTreeSet<Vec<String>>> = BTreeMap::new();
    for file in &files {
        let from = module_of(src, file);
        let text = std::fs::read_to_string(file).unwrap_or_default();
        for path in named_paths(&production_code(&text), &from) {
            let to = resolve(&path, &modules);
            let common = from.iter().zip(&to).take_while(|(a, b)| a == b).count();
            if common == from.len() || common == to.len() {
                continue; // one inside the other
            }
            edges.entry(from[..=common].to_vec()).or_default().insert(to[..=common].to_vec());
        }
    }
    edges
}

/// The cycles among sibling modules, each as `a -> b -> a`.
fn cycles(edges: &BTreeMap<Vec<String>, BTreeSet<Vec<String>>>) -> Vec<String> {
    fn reach(
        edges: &BTreeMap<Vec<String>, BTreeSet<Vec<String>>>,
        from: &Vec<String>,
        target: &Vec<String>,
        path: &mut Vec<Vec<String>>,
    ) -> bool {
        for next in edges.get(from).into_iter().flatten() {
            if next == target {
                return true;
            }
            if !path.contains(next) {
                path.push(next.clone());
                if reach(edges, next, target, path) {
                    return true;
                }
                path.pop();
            }
        }
        false
    }
    let mut out = BTreeSet::new();
    for start in edges.keys() {
        let mut path = vec![start.clone()];
        if reach(edges, start, start, &mut path) {
            let mut names: Vec<String> = path.iter().map(|m| m.join("::")).collect();
            // One line per cycle, whichever module it was found from.
            let first =
                names.iter().enumerate().min_by_key(|(_, n)| (*n).clone()).map_or(0, |(i, _)| i);
            names.rotate_left(first);
            names.push(names[0].clone());
            out.insert(names.join(" -> "));
        }
    }
    out.into_iter().collect()
}

#[test]
fn no_production_file_is_over_600_lines() {
    let mut over = Vec::new();
    for src in crate_sources() {
        let mut files = Vec::new();
        rust_files(&src, &mut files);
        for file in files.iter().filter(|f| !is_test_file(&src, f)) {
            let lines = std::fs::read_to_string(file).unwrap_or_default().lines().count();
            if lines > MAX_FILE_LINES {
                let rel = file.strip_prefix(workspace_root()).unwrap_or(file);
                over.push(format!("{} has {lines} lines", rel.display()));
            }
        }
    }
    assert!(over.is_empty(), "over {MAX_FILE_LINES} lines:\n{}", over.join("\n"));
}

#[test]
fn no_two_modules_import_each_other() {
    let mut found = Vec::new();
    for src in crate_sources() {
        let krate = src.parent().and_then(Path::file_name).unwrap_or_default().to_string_lossy();
        found.extend(cycles(&sibling_edges(&src)).into_iter().map(|c| format!("{krate}: {c}")));
    }
    assert!(found.is_empty(), "import loops:\n{}", found.join("\n"));
}

#[test]
fn the_checks_find_what_they_look_for() {
    let m =
        |s: &str| s.split("::").filter(|p| !p.is_empty()).map(str::to_string).collect::<Vec<_>>();
    let here = m("http::caps");
    let code = "use crate::state::{Shared, lock};\nuse super::openapi::WriteErrors;\nlet x = super::super::job::carry::answer();";
    let named = named_paths(code, &here);
    assert_eq!(named, [m("state::"), m("http::openapi::WriteErrors"), m("job::carry::answer")]);
    let modules: BTreeSet<Vec<String>> =
        ["", "http", "http::caps", "http::openapi", "state", "job", "job::carry"]
            .into_iter()
            .map(m)
            .collect();
    assert_eq!(resolve(&m("job::carry::answer"), &modules), m("job::carry"));
    assert_eq!(resolve(&m("state::Shared"), &modules), m("state"));
    let mut edges = BTreeMap::new();
    edges.insert(m("http"), BTreeSet::from([m("state")]));
    edges.insert(m("state"), BTreeSet::from([m("job")]));
    assert!(cycles(&edges).is_empty());
    edges.insert(m("job"), BTreeSet::from([m("http")]));
    assert_eq!(cycles(&edges), ["http -> state -> job -> http"]);
    assert_eq!(production_code("a\n// crate::x\n#[cfg(test)]\nmod tests { crate::y }"), "a");
    let src = Path::new("/w/src");
    assert_eq!(module_of(src, Path::new("/w/src/http/mod.rs")), m("http"));
    assert_eq!(module_of(src, Path::new("/w/src/lib.rs")), m(""));
    assert!(is_test_file(src, Path::new("/w/src/job/tests.rs")));
    assert!(!is_test_file(src, Path::new("/w/src/job/table.rs")));
}
