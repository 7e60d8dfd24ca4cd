//! Helpers shared by the simulator's tests: reading and writing files of a simulated root.

use std::fs;
use std::path::Path;

/// The file `rel` under `root`, whole.
pub fn read(root: &Path, rel: &str) -> String {
    fs::read_to_string(root.join(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"))
}

/// The number in the file `rel` under `root`.
pub fn read_u64(root: &Path, rel: &str) -> u64 {
    read(root, rel).trim().parse().unwrap_or_else(|e| panic!("{rel}: {e}"))
}

/// Writes `content` into the file `rel` under `root`, as a user would.
pub fn write(root: &Path, rel: &str, content: &str) {
    fs::write(root.join(rel), content).unwrap_or_else(|e| panic!("{rel}: {e}"));
}
