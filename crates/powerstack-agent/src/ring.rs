//! The sample ring (being written).
/// Samples.
#[derive(Debug)]
pub struct Ring;
