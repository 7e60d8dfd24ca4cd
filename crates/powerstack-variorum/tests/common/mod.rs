//! Shared by the tests: C programs compiled with gcc against `include/` and linked with the
//! built `libvariorum.so`, run on simulated nodes; the `powerstack` binary to compare with.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// `target/debug` (or the profile's directory): where cargo put `libvariorum.so`.
pub fn target_dir() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    // target/debug/deps/TEST -> target/debug
    exe.parent().unwrap().parent().unwrap().to_path_buf()
}

/// Where `cargo test` builds `libvariorum.so`: `deps/` (only `cargo build` copies it up to
/// `target/debug`, where an older copy may stay).
pub fn lib_dir() -> PathBuf {
    target_dir().join("deps")
}

pub fn crate_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Whether gcc can be run; the tests skip (with a message) when it cannot.
pub fn have_gcc() -> bool {
    let ok = Command::new("gcc").arg("--version").output().is_ok_and(|o| o.status.success());
    if !ok {
        eprintln!("skipped: gcc is not installed (the C programs cannot be compiled)");
    }
    ok
}

/// Compiles `tests/c/NAME.c` against `include/` and `libvariorum.so` into `dir`, unchanged
/// (`-Wall -Werror`), and returns the program.
pub fn compile(name: &str, dir: &Path) -> PathBuf {
    let target = lib_dir();
    assert!(target.join("libvariorum.so").exists(), "libvariorum.so not built in {target:?}");
    let out = dir.join(name);
    let src = crate_dir().join("tests/c").join(format!("{name}.c"));
    let o = Command::new("gcc")
        .args(["-std=c99", "-D_POSIX_C_SOURCE=200809L", "-Wall", "-Werror", "-I"])
        .arg(crate_dir().join("include"))
        .arg(&src)
        .arg("-L")
        .arg(&target)
        .arg("-lvariorum")
        .arg(format!("-Wl,-rpath,{}", target.display()))
        .arg("-o")
        .arg(&out)
        .output()
        .unwrap();
    assert!(o.status.success(), "gcc {name}: {}", String::from_utf8_lossy(&o.stderr));
    out
}

/// Runs `program` with `args` and `env` (and neither POWERSTACK_ROOT nor POWERSTACK_SIMULATE
/// from the test's own environment unless given).
pub fn run(program: &Path, args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut c = Command::new(program);
    c.args(args).env_remove("POWERSTACK_ROOT").env_remove("POWERSTACK_SIMULATE");
    c.env_remove("POWERSTACK_STATE_DIR").env_remove("POWERSTACK_SOURCE");
    for (k, v) in env {
        c.env(k, v);
    }
    c.output().unwrap()
}

/// The `powerstack` binary, built when it is not there yet.
pub fn powerstack() -> PathBuf {
    let bin = target_dir().join("powerstack");
    if !bin.exists() {
        let s = Command::new(env!("CARGO"))
            .args(["build", "-p", "powerstack", "--bin", "powerstack"])
            .status()
            .unwrap();
        assert!(s.success(), "building powerstack");
    }
    bin
}

/// The mock NVML library the simulated NVIDIA profiles load, built when it is not there yet.
pub fn mock_nvml() -> PathBuf {
    let lib = target_dir().join("libpowerstack_mock_nvml.so");
    if !lib.exists() {
        let s = Command::new(env!("CARGO"))
            .args(["build", "-p", "powerstack-mock-nvml"])
            .status()
            .unwrap();
        assert!(s.success(), "building powerstack-mock-nvml");
    }
    lib
}

pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}
