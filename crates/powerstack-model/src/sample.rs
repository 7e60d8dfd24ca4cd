//! Snapshots: one timestamped reading of every domain of a node.

/// The value of one domain in a [`Snapshot`].
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Value {
    /// A wrap-extended energy counter.
    Energy {
        /// The extended counter, in ticks of the domain's [`crate::CounterSpec`].
        total_ticks: u64,
        /// The same counter, in joules.
        joules: f64,
        /// The hardware's own timestamp of the value, in µs, when it provides one.
        hw_time_us: Option<u64>,
    },
    /// An instantaneous (or hardware-averaged) power figure.
    Power {
        /// Watts.
        watts: f64,
    },
    /// The domain could not be read this time.
    Missing,
}

/// One reading of every domain of a catalog, in catalog order, with the time it was taken.
#[derive(Clone, Debug, PartialEq)]
pub struct Snapshot {
    /// Monotonic time of the reading, in ns (any origin; only differences matter).
    pub mono_ns: u64,
    /// Wall-clock time of the reading, in µs since the Unix epoch.
    pub unix_us: i64,
    /// One value per catalog domain.
    pub values: Vec<Value>,
}

impl Snapshot {
    /// The energy of each domain in joules (catalog order): `None` for a domain measured as
    /// power only, or not read this time.
    pub fn joules(&self) -> Vec<Option<f64>> {
        self.values
            .iter()
            .map(|v| if let Value::Energy { joules, .. } = v { Some(*joules) } else { None })
            .collect()
    }
}
