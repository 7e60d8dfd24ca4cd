//! The trace: the node every simulated node is (its domains, their idle and highest draw, their
//! cap range) and the jobs (arrival, size, priority, power request, phases). TOML, described in
//! docs/budget.md; [`Trace::parse`] refuses a bad one with one line naming the file and the field.

use serde::Deserialize;

/// A trace that cannot be used: `file: field: what to do`.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
#[error("{file}: {field}: {what}")]
pub struct TraceError {
    /// The trace's file name (as given).
    pub file: String,
    /// The field, e.g. `jobs[3].phases[0].work_s`, or `toml` for a syntax error.
    pub field: String,
    /// What is wrong and what to do.
    pub what: String,
}

/// The kinds of domain a simulated node has.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DomainKindName {
    /// A CPU socket (RAPL package).
    Cpu,
    /// The memory of one socket (RAPL dram).
    Memory,
    /// An accelerator.
    Gpu,
}

/// One kind of domain of the node, `count` times.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DomainSpec {
    /// What the domain is.
    pub kind: DomainKindName,
    /// How many the node has (sockets, GPUs).
    #[serde(default = "one")]
    pub count: u32,
    /// Its draw with nothing to do, in watts.
    pub idle_watts: f64,
    /// Its draw at full load (and its highest limit), in watts.
    pub max_watts: f64,
    /// Its lowest limit, in watts; absent when the domain cannot be capped.
    pub min_cap_watts: Option<f64>,
}

fn one() -> u32 {
    1
}

/// The node every simulated node is.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NodeSpec {
    /// What the node draws besides its domains (board, fans, network), in watts; never capped.
    pub base_watts: f64,
    /// Its domains.
    pub domains: Vec<DomainSpec>,
}

/// One phase of a job: what bounds it and how long it takes at full speed.
#[derive(Clone, Copy, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PhaseSpec {
    /// What bounds the phase.
    pub kind: PhaseKind,
    /// Its length at full speed, in seconds.
    pub work_s: f64,
}

/// One job of the trace.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JobSpec {
    /// The job's identifier.
    pub id: String,
    /// When it is submitted, in seconds from the start.
    pub arrive_s: f64,
    /// How many nodes it needs on a cluster of the trace's `cluster_nodes`.
    pub nodes: u32,
    /// Its priority; higher goes first (for the `priority` policy).
    #[serde(default)]
    pub priority: i32,
    /// The power it asks for, all its nodes together, in watts (on `cluster_nodes` nodes; scaled
    /// with its node count).
    pub power_watts: Option<f64>,
    /// How many times its phases run, one after the other.
    #[serde(default = "one")]
    pub repeat: u32,
    /// Its phases, in order.
    pub phases: Vec<PhaseSpec>,
}

impl JobSpec {
    /// The job's work: its phases' lengths at full speed, repeats included, in seconds.
    pub fn work_s(&self) -> f64 {
        self.phases.iter().map(|p| p.work_s).sum::<f64>() * f64::from(self.repeat)
    }
}

/// A trace: the node and the jobs.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Trace {
    /// What the trace is, in a line.
    #[serde(default)]
    pub description: String,
    /// The cluster size the jobs' node counts are written for; `--nodes` scales them.
    pub cluster_nodes: u32,
    /// The node.
    pub node: NodeSpec,
    /// The jobs, in any order.
    pub jobs: Vec<JobSpec>,
}

impl Trace {
    /// Reads a trace from its text; `file` names it in errors.
    pub fn parse(file: &str, text: &str) -> Result<Trace, TraceError> {
        let trace: Trace = toml::from_str(text).map_err(|e| TraceError {
            file: file.to_string(),
            field: "toml".into(),
            what: e.to_string().replace('\n', " ").trim().to_string(),
        })?;
        trace.check().map_err(|(field, what)| TraceError {
            file: file.to_string(),
            field,
            what,
        })?;
        Ok(trace)
    }

    fn check(&self) -> Result<(), (String, String)> {
        let err = |field: String, what: &str| Err((field, what.to_string()));
        let watts = |w: f64| w.is_finite() && w >= 0.0;
        if self.cluster_nodes == 0 {
            return err("cluster_nodes".into(), "must be at least 1");
        }
        if !watts(self.node.base_watts) {
            return err("node.base_watts".into(), "must be a finite number of watts, 0 or more");
        }
        if self.node.domains.is_empty() {
            return err("node.domains".into(), "add at least one [[node.domains]] (a cpu)");
        }
        for (i, d) in self.node.domains.iter().enumerate() {
            let f = |name: &str| format!("node.domains[{i}].{name}");
            if d.count == 0 {
                return err(f("count"), "must be at least 1 (leave the domain out instead)");
            }
            if !watts(d.idle_watts) || !watts(d.max_watts) || d.idle_watts >= d.max_watts {
                return err(
                    f("max_watts"),
                    "idle_watts and max_watts: 0 <= idle_watts < max_watts",
                );
            }
            if let Some(min) = d.min_cap_watts
                && (!watts(min) || min > d.max_watts)
            {
                return err(f("min_cap_watts"), "must be between 0 and max_watts");
            }
        }
        if !self.node.domains.iter().any(|d| d.min_cap_watts.is_some()) {
            return err("node.domains".into(), "no domain can be capped: give one min_cap_watts");
        }
        let mut ids = std::collections::BTreeSet::new();
        for (i, job) in self.jobs.iter().enumerate() {
            self.check_job(i, job, &mut ids)?;
        }
        Ok(())
    }

    fn check_job<'a>(
        &self,
        i: usize,
        job: &'a JobSpec,
        ids: &mut std::collections::BTreeSet<&'a str>,
    ) -> Result<(), (String, String)> {
        let err = |name: String, what: &str| Err((format!("jobs[{i}].{name}"), what.to_string()));
        if job.id.is_empty() || !ids.insert(job.id.as_str()) {
            return err("id".into(), "must be given and unique");
        }
        if !job.arrive_s.is_finite() || job.arrive_s < 0.0 {
            return err("arrive_s".into(), "must be a finite number of seconds, 0 or more");
        }
        if job.nodes == 0 || job.nodes > self.cluster_nodes {
            return err("nodes".into(), "must be between 1 and cluster_nodes");
        }
        if job.power_watts.is_some_and(|w| !w.is_finite() || w <= 0.0) {
            return err("power_watts".into(), "must be a positive number of watts, or left out");
        }
        if job.repeat == 0 {
            return err("repeat".into(), "must be at least 1");
        }
        if job.phases.is_empty() {
            return err("phases".into(), "give at least one phase {kind, work_s}");
        }
        let has_gpu = self.node.domains.iter().any(|d| d.kind == DomainKindName::Gpu);
        for (k, p) in job.phases.iter().enumerate() {
            if !p.work_s.is_finite() || p.work_s <= 0.0 {
                return err(format!("phases[{k}].work_s"), "must be a positive number of seconds");
            }
            if p.kind == PhaseKind::Gpu && !has_gpu {
                return err(format!("phases[{k}].kind"), "a gpu phase needs a gpu in node.domains");
            }
        }
        Ok(())
    }

    /// The jobs for a cluster of `nodes` nodes: each job's node count (and request) scaled by
    /// `nodes / cluster_nodes`, rounded, at least 1 and at most `nodes`; sorted by arrival.
    pub fn jobs_for(&self, nodes: usize) -> Vec<JobSpec> {
        let scale = nodes as f64 / f64::from(self.cluster_nodes);
        let mut jobs: Vec<JobSpec> = self
            .jobs
            .iter()
            .map(|j| {
                let n = ((f64::from(j.nodes) * scale).round() as u32).clamp(1, nodes as u32);
                let per_node = j.power_watts.map(|w| w / f64::from(j.nodes));
                JobSpec { nodes: n, power_watts: per_node.map(|w| w * f64::from(n)), ..j.clone() }
            })
            .collect();
        jobs.sort_by(|a, b| a.arrive_s.total_cmp(&b.arrive_s));
        jobs
    }
}

/// What bounds a phase of a job.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PhaseKind {
    /// Bound by the cores: draws the CPUs' whole range and slows with their frequency.
    Compute,
    /// Bound by memory bandwidth: the cores wait, draw less and barely slow when capped.
    Memory,
    /// Bound by the GPUs: the GPUs' whole range, the CPUs little.
    Gpu,
    /// Waiting (I/O, communication): every domain near idle, no speed to lose.
    Idle,
}

#[cfg(test)]
mod tests {
    use super::Trace;

    const GOOD: &str = r#"
cluster_nodes = 4
[node]
base_watts = 100
[[node.domains]]
kind = "cpu"
count = 2
idle_watts = 50
max_watts = 250
min_cap_watts = 70
[[jobs]]
id = "a"
arrive_s = 0
nodes = 2
phases = [{ kind = "compute", work_s = 60 }, { kind = "memory", work_s = 30 }]
repeat = 2
"#;

    #[test]
    fn a_good_trace_reads_and_scales() {
        let trace = Trace::parse("t.toml", GOOD).unwrap();
        assert_eq!(trace.jobs[0].work_s(), 180.0);
        assert_eq!(trace.jobs_for(16)[0].nodes, 8);
        assert_eq!(trace.jobs_for(1)[0].nodes, 1);
    }

    fn error(text: &str) -> String {
        Trace::parse("t.toml", text).unwrap_err().to_string()
    }

    #[test]
    fn a_bad_trace_is_one_line_naming_the_file_and_field() {
        let e = error(&GOOD.replace("work_s = 30", "work_s = -1"));
        assert_eq!(e, "t.toml: jobs[0].phases[1].work_s: must be a positive number of seconds");
        let e = error(&GOOD.replace("nodes = 2", "nodes = 9"));
        assert!(e.starts_with("t.toml: jobs[0].nodes: "), "{e}");
        let e = error(&GOOD.replace("\"memory\"", "\"gpu\""));
        assert!(e.contains("jobs[0].phases[1].kind: a gpu phase needs a gpu"), "{e}");
        let e = error(&GOOD.replace("\"memory\"", "\"disk\""));
        assert!(e.starts_with("t.toml: toml: ") && !e.contains('\n'), "{e}");
        let e = error(&GOOD.replace("min_cap_watts = 70", ""));
        assert!(e.contains("node.domains: no domain can be capped"), "{e}");
        let e = error(&GOOD.replace("max_watts = 250", "max_watts = 40"));
        assert!(e.starts_with("t.toml: node.domains[0].max_watts: "), "{e}");
    }
}
