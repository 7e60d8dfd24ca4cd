//! Job windows (being written).
/// Job windows.
#[derive(Debug, Default)]
pub struct Jobs;
