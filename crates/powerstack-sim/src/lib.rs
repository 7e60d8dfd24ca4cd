//! Simulated hardware (stub: being written).
