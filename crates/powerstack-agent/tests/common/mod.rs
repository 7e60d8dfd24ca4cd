//! Helpers shared by the agent's test files.

#[allow(dead_code)] // each test binary uses part of it
pub mod live;
