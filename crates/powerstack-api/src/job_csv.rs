//! `powerstack job query --format csv`: a [`JobQueryV1`] as the Flux Power Monitor's
//! `power_query.py` writes its CSV files, so their consumers read ours, with powerstack's figures
//! after its columns.
//!
//! Columns, in this order:
//!
//! 1. Flux's: `hostname`, `node_power`, `result_start_time`, `result_end_time`, `data_presence`,
//!    then `cpu_power_N` for every N, `gpu_power_N` for every N, `mem_power_N` for every N: the
//!    devices of the nodes that answered (the union over them, by index).
//! 2. powerstack's: `energy_joules`, `peak_node_power`, `peak_window_s` (the window the peak is
//!    taken over), `samples`, `status`.
//!
//! Powers are mean watts, times µs since the Unix epoch, `data_presence` as the documents spell it
//! ([`DataPresence::as_str`]). A figure that cannot be given is `-1`, never 0: a device a node does
//! not have, one it could not measure, every figure of a node that gave no result. The last row,
//! `TOTAL`, is the query's [`JobTotalV1`](crate::job::JobTotalV1): each figure summed over the
//! nodes that gave it (`-1` when none did), the earliest start and latest end, and no peak (`-1`:
//! the nodes' peaks fall at different times).

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;

use crate::job::{DataPresence, DeviceKey, JobQueryNodeV1, JobQueryV1, NOT_MEASURED, known};

/// The query as CSV: a header, one row per node asked (in the order asked) and the `TOTAL` row.
pub fn job_query_csv(q: &JobQueryV1) -> String {
    job_query_csv_with(q, &[], &|_| Vec::new())
}

/// [`job_query_csv`] with columns of the caller's after `status`: their names, and their values
/// for each node (`Some`) and for the `TOTAL` row (`None`), one value per name, written as given
/// (use [`field`] for text, [`num`] for figures).
pub fn job_query_csv_with(
    q: &JobQueryV1,
    extra_names: &[&str],
    extra: &dyn Fn(Option<&JobQueryNodeV1>) -> Vec<String>,
) -> String {
    let devices = device_columns(q);
    let mut out =
        String::from("hostname,node_power,result_start_time,result_end_time,data_presence");
    for d in &devices {
        let _ = write!(out, ",{d}");
    }
    out.push_str(",energy_joules,peak_node_power,peak_window_s,samples,status");
    for name in extra_names {
        let _ = write!(out, ",{name}");
    }
    out.push('\n');
    for node in &q.nodes {
        let r = &node.result;
        let row = Row {
            hostname: &r.hostname,
            node_power: r.node_power,
            start: r.result_start_time,
            end: r.result_end_time,
            presence: r.data_presence,
            domain_power: &r.domain_power,
            energy_joules: r.energy_joules,
            peak_node_power: r.peak_node_power,
            peak_window_s: r.peak_window_s,
            samples: r.samples,
            status: &node.status,
        };
        row.write(&mut out, &devices, &extra(Some(node)));
    }
    let t = &q.total;
    let status = t.status();
    let total = Row {
        hostname: &t.hostname,
        node_power: t.node_power,
        start: t.result_start_time,
        end: t.result_end_time,
        presence: t.data_presence,
        domain_power: &t.domain_power,
        energy_joules: t.energy_joules,
        peak_node_power: NOT_MEASURED,
        peak_window_s: NOT_MEASURED,
        samples: t.samples,
        status: &status,
    };
    total.write(&mut out, &devices, &extra(None));
    out
}

/// The figures of one row, a node's or the total's.
struct Row<'a> {
    hostname: &'a str,
    node_power: f64,
    start: u64,
    end: u64,
    presence: DataPresence,
    domain_power: &'a BTreeMap<String, f64>,
    energy_joules: f64,
    peak_node_power: f64,
    peak_window_s: f64,
    samples: u64,
    status: &'a str,
}

impl Row<'_> {
    fn write(&self, out: &mut String, devices: &[String], extra: &[String]) {
        let _ = write!(
            out,
            "{},{},{},{},{}",
            field(self.hostname),
            num(self.node_power),
            self.start,
            self.end,
            self.presence.as_str()
        );
        for d in devices {
            let watts = self.domain_power.get(d).copied().unwrap_or(NOT_MEASURED);
            let _ = write!(out, ",{}", num(watts));
        }
        let _ = write!(
            out,
            ",{},{},{},{},{}",
            num(self.energy_joules),
            num(self.peak_node_power),
            num(self.peak_window_s),
            self.samples,
            field(self.status)
        );
        for value in extra {
            let _ = write!(out, ",{value}");
        }
        out.push('\n');
    }
}

/// The device columns: every `cpu_power_N`, `gpu_power_N` and `mem_power_N` key a node has, by
/// class in Flux's order, then by index (numerically: `cpu_power_2` before `cpu_power_10`).
fn device_columns(q: &JobQueryV1) -> Vec<String> {
    let found: BTreeSet<DeviceKey> = q
        .nodes
        .iter()
        .flat_map(|n| n.result.domain_power.keys())
        .filter_map(|k| DeviceKey::parse(k))
        .collect();
    found.into_iter().map(|d| d.to_string()).collect()
}

/// A figure: at most three decimals, no trailing zeros; `-1` when it cannot be given.
pub fn num(x: f64) -> String {
    num_digits(x, 3)
}

/// A figure: at most `digits` decimals, no trailing zeros; `-1` when it cannot be given.
pub fn num_digits(x: f64, digits: usize) -> String {
    match known(x) {
        None => "-1".into(),
        Some(v) => {
            let s = format!("{v:.digits$}");
            if !s.contains('.') {
                return s;
            }
            let s = s.trim_end_matches('0').trim_end_matches('.');
            if s.is_empty() { "0".into() } else { s.to_string() }
        }
    }
}

/// A text field, quoted when it holds a comma, a quote or a line break.
pub fn field(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::job::{JobResultV1, JobTotalV1};

    #[test]
    fn numbers_and_fields() {
        assert_eq!(num(410.5), "410.5");
        assert_eq!(num(4105.0), "4105");
        assert_eq!(num(0.0), "0");
        assert_eq!(num(0.0001), "0");
        assert_eq!(num(-1.0), "-1");
        assert_eq!(num(f64::NAN), "-1");
        assert_eq!(num(1.23456), "1.235");
        assert_eq!(num_digits(4100.0, 0), "4100");
        assert_eq!(num_digits(0.0012346, 6), "0.001235");
        assert_eq!(field("ok"), "ok");
        assert_eq!(field("a,b"), "\"a,b\"");
        assert_eq!(field("say \"hi\""), "\"say \"\"hi\"\"\"");
        assert_eq!(field("x\"y,"), "\"x\"\"y,\"");
    }

    #[test]
    fn device_columns_go_by_class_then_by_index_as_a_number() {
        let mut r = JobResultV1::unanswered("n1", "j");
        for k in ["mem_power_0", "cpu_power_10", "gpu_power_1", "cpu_power_2", "cpu_power_02"] {
            r.domain_power.insert(k.into(), 1.0);
        }
        // A figure of another kind (from a newer agent) is not a device column.
        r.domain_power.insert("peak_window_s".into(), 1.0);
        let q = JobQueryV1 {
            job_id: "j".into(),
            total: JobTotalV1::of(&[Some(&r)]),
            nodes: vec![JobQueryNodeV1 { result: r, agent: "a".into(), status: "ok".into() }],
        };
        assert_eq!(
            device_columns(&q),
            ["cpu_power_2", "cpu_power_10", "gpu_power_1", "mem_power_0"]
        );
    }

    #[test]
    fn the_total_gpu_figure_follows_one_rule_in_the_table_and_the_csv() {
        use crate::job::DeviceClass;
        let node = |name: &str, gpu: Option<f64>| {
            let mut r = JobResultV1::unanswered(name, "j");
            r.data_presence = DataPresence::Complete;
            r.node_power = 300.0;
            r.domain_power.insert("cpu_power_0".into(), 200.0);
            if let Some(w) = gpu {
                r.domain_power.insert("gpu_power_0".into(), w);
            }
            r
        };
        let query = |rs: Vec<JobResultV1>| JobQueryV1 {
            job_id: "j".into(),
            total: JobTotalV1::of(&rs.iter().map(Some).collect::<Vec<_>>()),
            nodes: rs
                .into_iter()
                .map(|result| JobQueryNodeV1 { result, agent: "a".into(), status: "ok".into() })
                .collect(),
        };
        let total_gpu_csv = |q: &JobQueryV1| {
            let csv = job_query_csv(q);
            let header: Vec<&str> = csv.lines().next().unwrap().split(',').collect();
            let total: Vec<&str> = csv.lines().last().unwrap().split(',').collect();
            header.iter().position(|h| *h == "gpu_power_0").map(|i| total[i].to_string())
        };
        // A GPU that could not be measured: no figure in either (the table's `-`, the CSV's -1),
        // never a measured 0.
        let q = query(vec![node("a", None), node("b", Some(NOT_MEASURED))]);
        assert_eq!(q.total.class_watts(DeviceClass::Gpu), None);
        assert_eq!(total_gpu_csv(&q).as_deref(), Some("-1"));
        // No GPU at all: no column, and no figure in the table.
        let q = query(vec![node("a", None), node("b", None)]);
        assert_eq!(q.total.class_watts(DeviceClass::Gpu), None);
        assert_eq!(total_gpu_csv(&q), None);
        // Measured: the same sum in both.
        let q = query(vec![node("a", None), node("b", Some(412.5))]);
        assert_eq!(q.total.class_watts(DeviceClass::Gpu), Some(412.5));
        assert_eq!(total_gpu_csv(&q).as_deref(), Some("412.5"));
    }
}
