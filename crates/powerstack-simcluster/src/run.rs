//! One run of a trace in virtual time (nothing sleeps): ticks for the physics and the
//! measurement, and every control period the site's own step ([`Controller::step`]): the input
//! built from what was measured (each node's mean power over the period, its cap read back), the
//! plan's lowers written and read back, then the raises it allows. Jobs are placed first come,
//! first served on free nodes; a job's nodes advance together, at the pace of the slowest.

use std::collections::{BTreeMap, VecDeque};

use powerstack_bound::{Bound, Controller, Input, JobState, NodeState, PlanError, UnknownPolicy};

use crate::model::SimNode;
use crate::trace::PhaseKind;
use crate::trace::{JobSpec, Trace};

/// How a run goes.
#[derive(Clone, Debug, PartialEq)]
pub struct Config {
    /// Simulated nodes.
    pub nodes: usize,
    /// The horizon, in seconds.
    pub duration_s: f64,
    /// The control period, in seconds.
    pub period_s: f64,
    /// The physics and measurement step, in seconds.
    pub tick_s: f64,
    /// How long a written limit takes to be enforced, in seconds.
    pub lag_s: f64,
    /// The part of the bound kept for what cannot be capped; counted as drawn, in watts.
    pub reserve_watts: f64,
    /// Whether a node keeps its cap standing: split again when its uncappable draw moves
    /// (`false`: split once per write, as the agent does today).
    pub standing_split: bool,
    /// The bound over time: `(from_s, watts)`, sorted by time; empty for an uncapped run.
    pub bound: Vec<(f64, f64)>,
}

impl Config {
    /// A run of `nodes` nodes for `duration_s`, 5 s periods, 100 ms ticks, a 0.3 s lag,
    /// no reserve, standing node caps, uncapped.
    pub fn new(nodes: usize, duration_s: f64) -> Config {
        Config {
            nodes,
            duration_s,
            period_s: 5.0,
            tick_s: 0.1,
            lag_s: 0.3,
            reserve_watts: 0.0,
            standing_split: true,
            bound: Vec::new(),
        }
    }

    /// The bound at `t_s`, `None` when uncapped.
    pub fn bound_at(&self, t_s: f64) -> Option<f64> {
        self.bound
            .iter()
            .rev()
            .find(|(from, _)| *from <= t_s + 1e-9)
            .or(self.bound.first())
            .map(|b| b.1)
    }
}

/// Why a run could not be made.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum RunError {
    /// The policy's name is not known.
    #[error(transparent)]
    Policy(#[from] UnknownPolicy),
    /// The control step refused its input (a bound not a number).
    #[error("control step: {0}")]
    Plan(#[from] PlanError),
    /// A setting is out of range.
    #[error("{0}")]
    Config(String),
}

/// What a run measured.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Outcome {
    /// Work completed in the horizon, every job's finished phases and the part of its current
    /// one, in seconds at full speed.
    pub work_done_s: f64,
    /// Jobs that started.
    pub jobs_started: usize,
    /// Each finished job's run time (end less start), in seconds.
    pub runtimes_s: BTreeMap<String, f64>,
    /// Site power (nodes plus reserve) over each tick, in watts.
    pub power_watts: Vec<f64>,
    /// The bound over each tick, in watts (empty when uncapped).
    pub bound_watts: Vec<f64>,
    /// The highest mean site power over a control period, in watts.
    pub peak_period_watts: f64,
    /// Ticks at which the caps in force plus the reserve were checked against the bound: those
    /// of the periods whose plan could meet it.
    pub cap_checks: u64,
    /// Ticks at which they were above it (must be 0).
    pub cap_violations: u64,
    /// Control steps whose plan said the bound could not be met.
    pub shortfalls: u64,
}

#[derive(Clone, Debug)]
struct JobRun {
    nodes: Vec<usize>,
    phase: usize,
    progress_s: f64,
    done_s: f64,
    start_s: f64,
    finished: bool,
}

/// A run in progress.
struct Cluster<'a> {
    config: &'a Config,
    specs: Vec<JobSpec>,
    nodes: Vec<SimNode>,
    names: Vec<String>,
    index: BTreeMap<String, usize>,
    node_job: Vec<Option<usize>>,
    jobs: Vec<Option<JobRun>>,
    queue: VecDeque<usize>,
    arrived: usize,
    energy_j: Vec<f64>,
    measured_s: f64,
    /// Whether the last plan said the bound could not be met (every node at its minimum).
    short: bool,
    out: Outcome,
}

fn phase_of(spec: &JobSpec, k: usize) -> PhaseKind {
    spec.phases[k % spec.phases.len()].kind
}

impl<'a> Cluster<'a> {
    fn new(trace: &Trace, config: &'a Config) -> Cluster<'a> {
        let specs = trace.jobs_for(config.nodes);
        let names: Vec<String> = (0..config.nodes).map(|i| format!("n{i:05}")).collect();
        Cluster {
            config,
            jobs: vec![None; specs.len()],
            specs,
            nodes: vec![SimNode::new(&trace.node); config.nodes],
            index: names.iter().cloned().zip(0..).collect(),
            names,
            node_job: vec![None; config.nodes],
            queue: VecDeque::new(),
            arrived: 0,
            energy_j: vec![0.0; config.nodes],
            measured_s: 0.0,
            short: false,
            out: Outcome::default(),
        }
    }

    /// Queues the jobs arrived by `t_s` and starts those at the head that fit.
    fn schedule(&mut self, t_s: f64) {
        while self.arrived < self.specs.len() && self.specs[self.arrived].arrive_s <= t_s {
            self.queue.push_back(self.arrived);
            self.arrived += 1;
        }
        while let Some(&j) = self.queue.front() {
            let want = self.specs[j].nodes as usize;
            let free: Vec<usize> =
                (0..self.nodes.len()).filter(|&i| self.node_job[i].is_none()).take(want).collect();
            if free.len() < want {
                break;
            }
            self.queue.pop_front();
            for &i in &free {
                self.node_job[i] = Some(j);
                self.nodes[i].set_phase(Some(phase_of(&self.specs[j], 0)));
            }
            let run = JobRun {
                nodes: free,
                phase: 0,
                progress_s: 0.0,
                done_s: 0.0,
                start_s: t_s,
                finished: false,
            };
            self.jobs[j] = Some(run);
            self.out.jobs_started += 1;
        }
    }

    /// Advances every running job by one tick at the pace of its slowest node.
    fn progress(&mut self, t_s: f64) {
        let dt = self.config.tick_s;
        for j in 0..self.jobs.len() {
            let spec = &self.specs[j];
            let Some(run) = self.jobs[j].as_mut().filter(|r| !r.finished) else {
                continue;
            };
            let rate = run.nodes.iter().map(|&i| self.nodes[i].rate()).fold(1.0, f64::min);
            let phases = spec.phases.len() * spec.repeat as usize;
            let mut gain = rate * dt;
            while gain > 0.0 && run.phase < phases {
                let left = spec.phases[run.phase % spec.phases.len()].work_s - run.progress_s;
                let step = gain.min(left);
                run.progress_s += step;
                run.done_s += step;
                gain -= step;
                if run.progress_s >= spec.phases[run.phase % spec.phases.len()].work_s - 1e-12 {
                    run.phase += 1;
                    run.progress_s = 0.0;
                }
            }
            let next = (run.phase < phases).then(|| phase_of(spec, run.phase));
            for &i in &run.nodes {
                self.nodes[i].set_phase(next);
            }
            if next.is_none() {
                run.finished = true;
                self.out.runtimes_s.insert(spec.id.clone(), t_s + dt - run.start_s);
                for &i in &run.nodes {
                    self.node_job[i] = None;
                }
            }
        }
    }

    /// What the site service would see now.
    fn input(&self, bound: Bound) -> Input {
        let nodes = (0..self.nodes.len())
            .map(|i| NodeState {
                node: self.names[i].clone(),
                job: self.node_job[i].map(|j| self.specs[j].id.clone()),
                min_cap_watts: self.nodes[i].min_cap_watts(),
                max_cap_watts: self.nodes[i].max_cap_watts(),
                cap_in_force_watts: self.nodes[i].cap_watts(),
                power_watts: (self.measured_s > 0.0).then(|| self.energy_j[i] / self.measured_s),
                responsive: true,
            })
            .collect();
        let jobs = self
            .jobs
            .iter()
            .enumerate()
            .filter_map(|(j, r)| r.as_ref().filter(|r| !r.finished).map(|r| (j, r)))
            .map(|(j, r)| JobState {
                id: self.specs[j].id.clone(),
                priority: self.specs[j].priority,
                request_watts: self.specs[j].power_watts,
                nodes: r.nodes.iter().map(|&i| self.names[i].clone()).collect(),
            })
            .collect();
        Input { bound, nodes, jobs }
    }

    /// One control period: decide, write the lowers, read back, write the raises allowed.
    fn control(
        &mut self,
        controller: &mut Controller,
        bound: Bound,
        t_s: f64,
    ) -> Result<(), RunError> {
        let step = controller.step(&self.input(bound))?;
        self.energy_j.iter_mut().for_each(|e| *e = 0.0);
        self.measured_s = 0.0;
        self.short = step.plan.shortfall.is_some();
        if self.short {
            self.out.shortfalls += 1;
        }
        // The cluster was under the bound before the trace began: the first caps are in force.
        let lag_s = if t_s > 0.0 { self.config.lag_s } else { 0.0 };
        let mut read_back = Vec::with_capacity(step.plan.lower.len());
        for (node, watts) in &step.plan.lower {
            if let Some(&i) = self.index.get(node) {
                read_back.push((node.clone(), self.nodes[i].write_cap(*watts, t_s, lag_s)));
            }
        }
        for (node, watts) in step.plan.raises_allowed(&read_back) {
            if let Some(&i) = self.index.get(node) {
                self.nodes[i].write_cap(*watts, t_s, lag_s);
            }
        }
        Ok(())
    }

    /// Measures the tick just simulated and checks the caps in force against the bound.
    fn measure(&mut self, bound_watts: Option<f64>) {
        let dt = self.config.tick_s;
        let mut site = self.config.reserve_watts;
        for (i, node) in self.nodes.iter().enumerate() {
            let p = node.power_watts();
            self.energy_j[i] += p * dt;
            site += p;
        }
        self.measured_s += dt;
        self.out.power_watts.push(site);
        if let Some(bound) = bound_watts {
            self.out.bound_watts.push(bound);
            if self.short {
                return;
            }
            let caps: f64 =
                self.nodes.iter().map(|n| n.cap_watts().unwrap_or(n.max_cap_watts())).sum();
            self.out.cap_checks += 1;
            if caps + self.config.reserve_watts > bound * (1.0 + 1e-9) + 1e-6 {
                self.out.cap_violations += 1;
            }
        }
    }
}

fn check(config: &Config) -> Result<(), RunError> {
    let bad = |what: &str| Err(RunError::Config(what.to_string()));
    let positive = |v: f64| v.is_finite() && v > 0.0;
    if config.nodes == 0 {
        return bad("--nodes: at least 1");
    }
    if !positive(config.duration_s) || !positive(config.tick_s) || !positive(config.period_s) {
        return bad("the duration, the tick and the period must be positive numbers of seconds");
    }
    if config.period_s < config.tick_s {
        return bad("--period-s: at least one tick (0.1 s)");
    }
    if !(config.lag_s.is_finite() && config.lag_s >= 0.0) {
        return bad("the lag must be 0 s or more");
    }
    Ok(())
}

/// Runs `trace` under `config`, with the policy called `policy` (`None`: uncapped, no control).
pub fn run(trace: &Trace, config: &Config, policy: Option<&str>) -> Result<Outcome, RunError> {
    check(config)?;
    let mut controller = policy.map(Controller::new).transpose()?;
    let mut cluster = Cluster::new(trace, config);
    let ticks = (config.duration_s / config.tick_s).round() as usize;
    let period_ticks = ((config.period_s / config.tick_s).round() as usize).max(1);
    let mut period_sum = 0.0;
    let mut last_bound = None;
    for k in 0..ticks {
        let t_s = k as f64 * config.tick_s;
        cluster.schedule(t_s);
        let bound_watts = config.bound_at(t_s);
        if let (Some(c), Some(watts)) = (controller.as_mut(), bound_watts)
            && (k % period_ticks == 0 || last_bound != Some(watts))
        {
            cluster.control(c, Bound { watts, reserve_watts: config.reserve_watts }, t_s)?;
        }
        last_bound = bound_watts;
        for node in &mut cluster.nodes {
            node.tick(t_s, config.standing_split, config.lag_s);
        }
        cluster.measure(bound_watts.filter(|_| controller.is_some()));
        cluster.progress(t_s);
        period_sum += cluster.out.power_watts[k];
        if (k + 1) % period_ticks == 0 {
            let mean = period_sum / period_ticks as f64;
            cluster.out.peak_period_watts = cluster.out.peak_period_watts.max(mean);
            period_sum = 0.0;
        }
    }
    cluster.out.work_done_s = cluster.jobs.iter().flatten().map(|r| r.done_s).sum();
    Ok(cluster.out)
}
