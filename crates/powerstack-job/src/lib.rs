//! Job arithmetic, pure and shared: the node agent runs it over its ring, the site service over
//! the counters it stored, so that a job's figures mean the same wherever they are computed.
//!
//! [`figures`] holds the steps (coverage, exact counter differences, time-weighted means, the
//! peak over a stated window, the node figure's parts); [`rows::Rows`] is a [`figures::Series`]
//! held in two vectors, for a caller whose samples are not in a ring.

pub mod combine;
pub mod figures;
pub mod rows;
pub mod shares;

pub use figures::{Asked, Column, Series, figures};
pub use rows::Rows;
