//! The C tests (`tests/c/*.c`) compiled with gcc against `include/powerstack.h` and the library
//! cargo built (the shared one, and once the static one), run on simulated nodes; the JSON
//! documents they receive are parsed here as the native types. Skipped, with a message, where
//! gcc is missing.

use std::path::{Path, PathBuf};
use std::process::Command;

use powerstack_api::cap::{CapResultV1, CapsV1};
use powerstack_api::v1::{DomainsV1, EnergyV1, PowerV1};

/// `target/debug` (or the profile directory): the test executable is in its `deps/`.
fn target_dir() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    exe.parent().and_then(Path::parent).unwrap().to_path_buf()
}

/// Where cargo builds the library: `deps/`, which `cargo test` rebuilds (`cargo build` then copies
/// it up into `target/debug`, which `cargo test` alone leaves as it was).
fn library_dir() -> PathBuf {
    target_dir().join("deps")
}

fn crate_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn have_gcc() -> bool {
    let found = Command::new("gcc").arg("--version").output().is_ok_and(|o| o.status.success());
    if !found {
        eprintln!("skipped: gcc is not installed, so the C tests of libpowerstack cannot run");
    }
    found
}

/// Compiles `tests/c/test_powerstack.c` into `dir`, linked to the shared library (`static_lib`
/// false) or the static one.
fn compile(dir: &Path, static_lib: bool) -> PathBuf {
    let target = library_dir();
    let exe = dir.join(if static_lib { "test_static" } else { "test_shared" });
    let mut gcc = Command::new("gcc");
    gcc.args(["-Wall", "-Wextra", "-Werror", "-std=c11", "-D_POSIX_C_SOURCE=200809L", "-I"])
        .arg(crate_dir().join("include"))
        .arg(crate_dir().join("tests/c/test_powerstack.c"))
        .arg("-o")
        .arg(&exe);
    if static_lib {
        gcc.arg(target.join("libpowerstack.a")).args([
            "-Wl,--gc-sections",
            "-lgcc_s",
            "-lutil",
            "-lrt",
            "-lpthread",
            "-lm",
            "-ldl",
        ]);
    } else {
        gcc.arg("-L").arg(&target).args(["-lpowerstack", "-lpthread", "-lm"]);
        gcc.arg(format!("-Wl,-rpath,{}", target.display()));
    }
    let out = gcc.output().unwrap();
    assert!(out.status.success(), "gcc failed:\n{}", String::from_utf8_lossy(&out.stderr));
    exe
}

/// The mock NVML library cargo built (a dev-dependency), for the GPU profile.
fn mock_nvml() -> PathBuf {
    let target = target_dir();
    let name = "libpowerstack_mock_nvml.so";
    [target.join(name), target.join("deps").join(name)]
        .into_iter()
        .find(|p| p.is_file())
        .unwrap_or_else(|| panic!("{name} not found in {}", target.display()))
}

/// Runs the C test in `mode`; its output.
fn run(exe: &Path, mode: &str, out_dir: &Path) -> String {
    let out = Command::new(exe)
        .arg(mode)
        .arg(out_dir)
        .env("POWERSTACK_MOCK_NVML", mock_nvml())
        // cargo's own LD_LIBRARY_PATH would win over the executable's run path, and it may
        // name a `target/debug` holding an older library.
        .env("LD_LIBRARY_PATH", library_dir())
        .env_remove("POWERSTACK_ROOT")
        .env_remove("POWERSTACK_SOURCE")
        .env_remove("POWERSTACK_SIMULATE")
        .env_remove("POWERSTACK_STATE_DIR")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        out.status.success(),
        "the C test ({mode}) failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains(&format!("PASS {mode}")), "{stdout}");
    stdout
}

/// A document the C test received parses as its native type and says nothing that type does not.
fn parses_as<T: serde::de::DeserializeOwned + serde::Serialize>(dir: &Path, name: &str) {
    let text = std::fs::read_to_string(dir.join(format!("{name}.json"))).unwrap();
    let value: serde_json::Value = serde_json::from_str(&text).unwrap();
    let doc: T = serde_json::from_value(value.clone()).unwrap();
    assert_eq!(serde_json::to_value(&doc).unwrap(), value, "{name}.json round trip");
}

#[test]
fn the_c_api_reads_caps_and_refuses_bad_input_on_simulated_nodes() {
    if !have_gcc() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let exe = compile(dir.path(), false);
    let said = run(&exe, "full", dir.path());
    eprint!("{said}");
    parses_as::<PowerV1>(dir.path(), "power");
    parses_as::<EnergyV1>(dir.path(), "energy");
    parses_as::<DomainsV1>(dir.path(), "domains");
    parses_as::<CapResultV1>(dir.path(), "cap");
    parses_as::<CapResultV1>(dir.path(), "reset");
    parses_as::<CapResultV1>(dir.path(), "cap_node");
    parses_as::<CapsV1>(dir.path(), "caps");
    let power: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.path().join("power.json")).unwrap())
            .unwrap();
    assert_eq!(power["simulated_profile"], "intel-2s");
    eprint!("{}", run(&exe, "gpu", dir.path()));
}

#[test]
fn the_c_api_links_statically() {
    if !have_gcc() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let exe = compile(dir.path(), true);
    eprint!("{}", run(&exe, "quick", dir.path()));
}
