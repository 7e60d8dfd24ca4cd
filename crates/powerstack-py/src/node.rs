//! `NativeNode`: an opened node (`powerstack_node::open`), its readings as documents and its
//! caps through the one cap session (`powerstack_node::cap_session`), as `powerstack cap` runs
//! it.

use std::path::PathBuf;
use std::sync::Mutex;
use std::time::Duration;

use powerstack_cap::{DEFAULT_STATE_DIR, Policy};
use powerstack_model::DomainKind;
use powerstack_node::cap_session::{
    CapChange, DomainTarget, LimitChange, Measurement, end_standing_cap,
};
use powerstack_node::open::{NodeOptions, OpenNode, open};
use pyo3::prelude::*;

use crate::errors::{Failure, Kind, json};
use crate::seconds;

/// How long `caps` measures the node for the node cap range's uncappable power, as `cap show`.
const SHOW_MEASURE: Duration = Duration::from_millis(200);

/// A node opened for Python: readings and caps, one call at a time (a lock, so that threads may
/// share it), each with the GIL released.
#[pyclass(module = "powerstack._powerstack")]
pub struct NativeNode {
    node: Mutex<Option<OpenNode>>,
    hostname: String,
    simulated: Option<String>,
    note: Option<String>,
}

/// The state directory asked for: `given`, else `POWERSTACK_STATE_DIR`, else the CLI's default.
fn state_dir(given: Option<PathBuf>) -> PathBuf {
    let env = || std::env::var_os("POWERSTACK_STATE_DIR").filter(|v| !v.is_empty());
    given.or_else(|| env().map(PathBuf::from)).unwrap_or_else(|| PathBuf::from(DEFAULT_STATE_DIR))
}

/// The node measured over `interval` for a node cap, with what the measurement could not read.
fn measure(node: &mut OpenNode, interval: Duration) -> Measurement {
    let platform = &mut node.discovery.platform;
    let report = platform.measure(interval);
    let warnings = platform.take_warnings().iter().map(ToString::to_string).collect();
    Measurement { report, warnings }
}

/// Plans `change` (a node cap measures the node over `measure_for` first) and, unless
/// `dry_run`, writes it: the `powerstack.cap.v1` document.
fn apply(
    node: &mut OpenNode,
    change: &CapChange,
    measure_for: Option<Duration>,
    dir: Option<PathBuf>,
    dry_run: bool,
) -> Result<String, Failure> {
    let state = node.state(&state_dir(dir));
    let measurement = measure_for.map(|d| measure(node, d));
    let mut session = node.cap_session(&state);
    let prepared = session.prepare(change, measurement)?;
    if dry_run {
        return json(&prepared.doc);
    }
    let via = format!("powerstack (Python) cap {}", change.command());
    let committed = session.commit(prepared, &via, &mut || false)?;
    json(&committed.doc)
}

impl NativeNode {
    /// Runs `body` on the open node with the GIL released.
    fn run<T: Send>(
        &self,
        py: Python<'_>,
        body: impl FnOnce(&mut OpenNode) -> Result<T, Failure> + Send,
    ) -> PyResult<T> {
        py.detach(|| {
            // A panic while the lock was held (raised in Python as PanicException) leaves the
            // node as the library left it: still usable.
            let mut guard = self.node.lock().unwrap_or_else(|p| p.into_inner());
            let node = guard.as_mut().ok_or_else(|| Failure::invalid("the node is closed"))?;
            body(node)
        })
        .map_err(PyErr::from)
    }
}

#[pymethods]
impl NativeNode {
    /// Opens the node: each argument when given, else `POWERSTACK_ROOT`, `POWERSTACK_SOURCE`,
    /// `POWERSTACK_SIMULATE`, else the real node (`/`, `auto`, `off`).
    #[new]
    #[pyo3(signature = (root=None, source=None, simulate=None))]
    fn new(
        py: Python<'_>,
        root: Option<String>,
        source: Option<String>,
        simulate: Option<String>,
    ) -> PyResult<NativeNode> {
        let node = py
            .detach(|| {
                let options = NodeOptions::from_env(root, source, simulate)?;
                open(&options)
            })
            .map_err(|e| PyErr::from(Failure::from(e)))?;
        Ok(NativeNode {
            hostname: node.origin.hostname.clone(),
            simulated: node.origin.simulated.clone(),
            note: node.simulated_note(),
            node: Mutex::new(Some(node)),
        })
    }

    /// The node's hostname.
    #[getter]
    fn hostname(&self) -> String {
        self.hostname.clone()
    }

    /// The simulator profile of a simulated node; `None` on real hardware.
    #[getter]
    fn simulated(&self) -> Option<String> {
        self.simulated.clone()
    }

    /// The `SIMULATED:` line when the node is simulated (started by opening, or a `sim create`
    /// root); `None` for real hardware.
    #[getter]
    fn simulated_note(&self) -> Option<String> {
        self.note.clone()
    }

    /// Power over `interval_s` seconds: the `powerstack.power.v1` document as JSON.
    fn power_json(&self, py: Python<'_>, interval_s: f64) -> PyResult<String> {
        let d = seconds(interval_s, "interval_s")?;
        self.run(py, |node| json(&powerstack_node::read::power(node, d).1))
    }

    /// The energy counters now: the `powerstack.energy.v1` document as JSON.
    fn energy_json(&self, py: Python<'_>) -> PyResult<String> {
        self.run(py, |node| json(&powerstack_node::read::energy(node).1))
    }

    /// The domains and their limits: the `powerstack.domains.v1` document as JSON.
    fn domains_json(&self, py: Python<'_>) -> PyResult<String> {
        self.run(py, |node| json(&node.domains()))
    }

    /// Caps every domain of `kind` (`socket`, `memory`, `gpu`), or the one numbered `index`: the
    /// `powerstack.cap.v1` document as JSON.
    #[pyo3(signature = (kind, watts, index=None, time_window_s=None, state_dir=None, dry_run=false, clamp=false))]
    #[allow(clippy::too_many_arguments)] // Python's keyword arguments
    fn cap_json(
        &self,
        py: Python<'_>,
        kind: &str,
        watts: f64,
        index: Option<u32>,
        time_window_s: Option<f64>,
        state_dir: Option<PathBuf>,
        dry_run: bool,
        clamp: bool,
    ) -> PyResult<String> {
        let (kind, constraint) = match kind {
            "socket" => (DomainKind::Package, "long_term"),
            "memory" => (DomainKind::Memory, "long_term"),
            "gpu" => (DomainKind::Gpu, "cap"),
            other => {
                let why = format!("cap {other:?}: give socket, memory or gpu");
                return Err(Failure::invalid(why).into());
            }
        };
        let limit =
            LimitChange { constraint: Some(constraint.into()), limit_watts: watts, time_window_s };
        let target = DomainTarget { kind, index, die: None };
        let change = CapChange::Domain { target, limits: vec![limit], clamp };
        self.run(py, |node| apply(node, &change, None, state_dir, dry_run))
    }

    /// Caps the node at `watts`, split over its cappable domains by `policy` (`proportional`,
    /// `uniform`, `variorum`) from a measurement over `interval_s`: `powerstack.cap.v1` as JSON.
    #[pyo3(signature = (watts, policy="proportional", interval_s=0.5, state_dir=None, dry_run=false, clamp=false))]
    #[allow(clippy::too_many_arguments)] // Python's keyword arguments
    fn cap_node_json(
        &self,
        py: Python<'_>,
        watts: f64,
        policy: &str,
        interval_s: f64,
        state_dir: Option<PathBuf>,
        dry_run: bool,
        clamp: bool,
    ) -> PyResult<String> {
        if !watts.is_finite() || watts <= 0.0 {
            let why = format!(
                "node cap {watts} W is not a valid power limit: give a positive number of watts"
            );
            return Err(Failure::invalid(why).into());
        }
        let policy: Policy =
            policy.parse().map_err(|e: String| Failure::invalid(format!("policy: {e}")))?;
        let d = seconds(interval_s, "interval_s")?;
        let change = CapChange::Node { node_watts: watts, policy, clamp };
        self.run(py, |node| apply(node, &change, Some(d), state_dir, dry_run))
    }

    /// Puts back every limit powerstack changed (the journal): `powerstack.cap.v1` as JSON.
    #[pyo3(signature = (state_dir=None, dry_run=false))]
    fn reset_json(
        &self,
        py: Python<'_>,
        state_dir: Option<PathBuf>,
        dry_run: bool,
    ) -> PyResult<String> {
        self.run(py, |node| {
            let state = node.state(&self::state_dir(state_dir));
            let mut session = node.cap_session(&state);
            let done = session.reset(dry_run, "powerstack (Python) cap reset", &mut || false)?;
            let doc = done.into_result()?;
            if !dry_run {
                // As `powerstack cap reset`: an agent's standing node cap ends too.
                end_standing_cap(state.path()).map_err(|e| Failure::new(Kind::Hardware, e))?;
            }
            json(&doc)
        })
    }

    /// Every limit in force, with who set it, and the node cap range: `powerstack.caps.v1` as
    /// JSON.
    #[pyo3(signature = (state_dir=None))]
    fn caps_json(&self, py: Python<'_>, state_dir: Option<PathBuf>) -> PyResult<String> {
        self.run(py, |node| {
            let state = node.state(&self::state_dir(state_dir));
            let report = node.discovery.platform.measure(SHOW_MEASURE);
            let _ = node.discovery.platform.take_warnings();
            json(&node.cap_session(&state).show(Some(&report)))
        })
    }

    /// Closes the node (a simulated node stops); later calls raise `InvalidArgument`.
    fn close(&self, py: Python<'_>) {
        py.detach(|| {
            let node = self.node.lock().unwrap_or_else(|p| p.into_inner()).take();
            drop(node);
        });
    }
}
