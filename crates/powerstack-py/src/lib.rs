//! `powerstack._powerstack`, the native module of the powerstack Python package
//! (`bindings/python/`): the node's use cases of `powerstack-node` and the job queries of
//! `powerstack-client`, each answering the native JSON documents (`powerstack-api`) or the CLI's
//! CSV, which the pure-Python layer (`bindings/python/powerstack/`) turns into dicts and
//! dataclasses. Nothing is measured, validated or written here that the CLI does not do the same
//! way: this crate only converts arguments and errors.
//!
//! - [`errors`]: the one mapping of the libraries' errors to the package's exceptions
//!   (`powerstack.errors`).
//! - [`node`]: `NativeNode`, an opened node: power, energy, domains, caps.
//! - [`jobs`]: `job_query` over agents, and the site's jobs and job reports.
//!
//! Every call that measures, waits or talks to the network releases the GIL.

mod errors;
mod jobs;
mod node;

use std::time::Duration;

use pyo3::prelude::*;

/// A duration given in seconds (an interval, a timeout), as the CLI takes one: 1 ms to 1 h.
fn seconds(value: f64, what: &str) -> Result<Duration, errors::Failure> {
    if !value.is_finite() || !(0.001..=3600.0).contains(&value) {
        let why = format!("{what} {value}: must be between 0.001 and 3600 seconds");
        return Err(errors::Failure::invalid(why));
    }
    Ok(Duration::from_secs_f64(value))
}

/// The native module: `NativeNode`, `job_query`, `site_jobs`, `site_job_report`.
#[pymodule]
fn _powerstack(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<node::NativeNode>()?;
    m.add_function(wrap_pyfunction!(jobs::job_query, m)?)?;
    m.add_function(wrap_pyfunction!(jobs::site_jobs, m)?)?;
    m.add_function(wrap_pyfunction!(jobs::site_job_report, m)?)?;
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    Ok(())
}
