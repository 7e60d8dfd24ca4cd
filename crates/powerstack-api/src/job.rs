//! Job documents of the node agent: one node's power and energy over a job window
//! ([`JobResultV1`]) and the job listing ([`JobV1`]).
//!
//! [`JobResultV1`] keeps the field names of the Flux Power Monitor's per-host rows (`hostname`,
//! `node_power`, `cpu_power_N`, `mem_power_N`, `gpu_power_N`, `result_start_time`,
//! `result_end_time`, `data_presence`), so its clients read it unchanged, and adds the energy, the
//! peak, the sample count and the job's owner. Unlike that monitor, powers are time-weighted means
//! (energy over time, from the energy counters), not means of samples; a window that encloses the
//! whole buffer is `Partial`, not `None`. As in its rows, a figure that cannot be given is `-1.0`.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// How much of a job window the node's sample buffer covers.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum DataPresence {
    /// The buffer covers the whole window (a running job: from its beginning to the newest
    /// sample).
    Complete,
    /// The buffer covers part of the window (the job began before the oldest sample kept, or ended
    /// after the newest); the figures are those of the covered part.
    Partial,
    /// No sample overlaps the window; every figure is `-1.0`, `samples` is 0.
    None,
}

impl DataPresence {
    /// `Complete`, `Partial` or `None`, as serialized.
    pub fn as_str(self) -> &'static str {
        match self {
            DataPresence::Complete => "Complete",
            DataPresence::Partial => "Partial",
            DataPresence::None => "None",
        }
    }
}

/// One node's power and energy over a job window (`GET /v1/jobs/{id}` on the node agent).
///
/// Every figure covers the part of the window the node's buffer holds, `result_start_time` to
/// `result_end_time`. Powers are watts, energies joules, times µs since the Unix epoch.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct JobResultV1 {
    /// The node's hostname.
    pub hostname: String,
    /// The job's id.
    pub job_id: String,
    /// Who the job belongs to, when the job mark said.
    pub user: Option<String>,
    /// The job's application, when the job mark said.
    pub app: Option<String>,
    /// Whether the job had not ended when the figures were computed (they run to the newest
    /// sample).
    pub running: bool,
    /// Mean node power over the covered part: `energy_joules` / its duration (a time-weighted
    /// mean), W; `-1.0` when nothing is covered or the covered part has no duration.
    pub node_power: f64,
    /// Node energy over the covered part, J (the difference of the energy counters at its two
    /// ends); `-1.0` when nothing is covered.
    pub energy_joules: f64,
    /// Mean power of each CPU socket (`cpu_power_N`, the dies of package N summed), memory
    /// (`mem_power_N`) and GPU (`gpu_power_N`), W, flattened into the document. Every socket of
    /// the node has both its `cpu_power_N` and `mem_power_N` keys; one that cannot be measured
    /// (a socket without a memory domain, say) is `-1.0`. GPU keys exist for the node's GPUs.
    #[serde(flatten)]
    pub domain_power: BTreeMap<String, f64>,
    /// The highest node power over one sampling interval within the covered part (when a part
    /// of the node figure is updated less often than the node is sampled, as pm_counters and
    /// NVML are: over the stretches between its updates), W; never below `node_power`; `-1.0`
    /// when there is no such interval.
    pub peak_node_power: f64,
    /// Start of the covered part, µs since the Unix epoch (0 when nothing is covered).
    pub result_start_time: u64,
    /// End of the covered part, µs since the Unix epoch (0 when nothing is covered).
    pub result_end_time: u64,
    /// Samples taken within the covered part.
    pub samples: u64,
    /// Whether the buffer covers the whole window: `Complete`, `Partial` or `None`.
    pub data_presence: DataPresence,
}

/// One job window in a listing (`GET /v1/jobs` on the node agent).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobV1 {
    /// The job's id.
    pub id: String,
    /// Who the job belongs to, when the job mark said.
    pub user: Option<String>,
    /// The job's application, when the job mark said.
    pub app: Option<String>,
    /// When the job began, µs since the Unix epoch.
    pub begin_unix_us: u64,
    /// When the job ended, µs since the Unix epoch; `null` while it runs.
    pub end_unix_us: Option<u64>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn result() -> JobResultV1 {
        JobResultV1 {
            hostname: "nid001".into(),
            job_id: "f2Xy".into(),
            user: Some("alice".into()),
            app: None,
            running: false,
            node_power: 410.5,
            energy_joules: 4105.0,
            domain_power: [
                ("cpu_power_0".to_string(), 150.0),
                ("mem_power_0".to_string(), -1.0),
                ("gpu_power_1".to_string(), 80.25),
            ]
            .into_iter()
            .collect(),
            peak_node_power: 500.0,
            result_start_time: 1_795_000_000_000_000,
            result_end_time: 1_795_000_010_000_000,
            samples: 1001,
            data_presence: DataPresence::Partial,
        }
    }

    #[test]
    fn the_result_has_the_flux_field_names_flat_and_round_trips() {
        let r = result();
        let v = serde_json::to_value(&r).unwrap();
        let keys: Vec<&str> = v.as_object().unwrap().keys().map(String::as_str).collect();
        for k in [
            "hostname",
            "job_id",
            "user",
            "app",
            "running",
            "node_power",
            "energy_joules",
            "cpu_power_0",
            "mem_power_0",
            "gpu_power_1",
            "peak_node_power",
            "result_start_time",
            "result_end_time",
            "samples",
            "data_presence",
        ] {
            assert!(keys.contains(&k), "{k} missing from {keys:?}");
        }
        assert_eq!(keys.len(), 15);
        assert_eq!(v["data_presence"], "Partial");
        assert_eq!(v["mem_power_0"], -1.0);
        let back: JobResultV1 = serde_json::from_value(v).unwrap();
        assert_eq!(back, r);
    }

    #[test]
    fn presence_names_are_the_serialized_ones() {
        for p in [DataPresence::Complete, DataPresence::Partial, DataPresence::None] {
            assert_eq!(serde_json::to_value(p).unwrap(), p.as_str());
        }
    }

    #[test]
    fn a_running_job_lists_with_a_null_end() {
        let j = JobV1 {
            id: "42".into(),
            user: None,
            app: Some("lammps".into()),
            begin_unix_us: 5,
            end_unix_us: None,
        };
        let v = serde_json::to_value(&j).unwrap();
        assert!(v["end_unix_us"].is_null());
        assert_eq!(serde_json::from_value::<JobV1>(v).unwrap(), j);
    }
}
