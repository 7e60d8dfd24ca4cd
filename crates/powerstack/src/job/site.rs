//! `job begin --site` and `job end --site`: the job recorded at the site service, then marked on
//! each of its nodes' agents, all at once.
//!
//! The site's record is what counts: a node agent that cannot be reached, or refuses, is a
//! warning on stderr, and the command still succeeds. A site that cannot record the job fails the
//! command (exit status 1), after the agents were marked all the same, so that their figures
//! exist when the site comes back.

use anyhow::{Context, anyhow, bail};
use powerstack_api::site::{JobAllocationV1, MAX_JOB_NODES, SiteJobBeginV1, is_node_name};
use powerstack_client::fanout::{node_target, send_all};
use powerstack_client::hostlist;

use super::{begin_body, connect_site, job_segment, parse_timeout, read_token};
use crate::cli::{AgentConnArgs, JobBeginArgs, JobEndArgs, NodeAgentsArgs};
use crate::output::{self, emit};

/// The nodes of `--nodes`, expanded and checked as the site names nodes.
fn expand_nodes(expr: &str) -> anyhow::Result<Vec<String>> {
    let nodes = hostlist::expand(expr).context("--nodes")?;
    if nodes.is_empty() {
        bail!("--nodes {expr:?} names no node");
    }
    if nodes.len() > MAX_JOB_NODES {
        bail!("--nodes names {} nodes; a job may have at most {MAX_JOB_NODES}", nodes.len());
    }
    if let Some(bad) = nodes.iter().find(|n| !is_node_name(n)) {
        bail!("node {bad:?} in --nodes: a node name is 1 to 64 characters of A-Z a-z 0-9 . _ -");
    }
    Ok(nodes)
}

/// The allocations of `--alloc HOSTLIST[:cpus=N][:gpus=I,J,...]` options, one per node named.
fn allocations(specs: &[String]) -> anyhow::Result<Vec<JobAllocationV1>> {
    let mut out = Vec::new();
    for spec in specs {
        let bad =
            |why: &str| anyhow!("--alloc {spec:?}: {why}; write HOSTLIST[:cpus=N][:gpus=I,J,...]");
        // The hostlist may hold commas and brackets, never a colon.
        let mut fields = spec.split(':');
        let hosts = fields.next().unwrap_or_default();
        let (mut cpus, mut gpus) = (None, Vec::new());
        for f in fields {
            match f.split_once('=') {
                Some(("cpus", n)) => {
                    cpus = Some(n.parse::<u32>().map_err(|_| bad("cpus is a whole number"))?);
                }
                Some(("gpus", list)) => {
                    gpus = list
                        .split(',')
                        .filter(|g| !g.is_empty())
                        .map(|g| g.parse::<u32>().map_err(|_| bad("gpus are whole numbers")))
                        .collect::<anyhow::Result<_>>()?;
                }
                _ => return Err(bad(&format!("unknown field {f:?}"))),
            }
        }
        for node in expand_nodes(hosts).map_err(|e| bad(&format!("{e:#}")))? {
            out.push(JobAllocationV1 { node, cpus, gpus: gpus.clone() });
        }
    }
    Ok(out)
}

/// `job begin ID --site URL --nodes HOSTLIST`.
pub fn begin(a: &JobBeginArgs) -> anyhow::Result<()> {
    job_segment(&a.id)?;
    let Some(expr) = a.agents.nodes.as_deref() else {
        bail!("job begin --site needs --nodes HOSTLIST: the job's nodes");
    };
    let nodes = expand_nodes(expr)?;
    let timeout = parse_timeout(&a.conn.timeout)?;
    let site = connect_site(&a.site, timeout)?;
    let agent_body = begin_body(a.user.as_deref(), a.app.as_deref());
    let record = SiteJobBeginV1 {
        id: a.id.clone(),
        nodes: nodes.clone(),
        user: agent_body.user.clone(),
        account: a.account.clone(),
        app: a.app.clone(),
        allocations: allocations(&a.alloc)?,
        power_watts: a.power_watts,
        priority: a.priority,
    };
    if let Some(why) = record.allocation_problem() {
        bail!("--alloc: {why}");
    }
    if let Some(why) = record.power_problem() {
        bail!("--power-watts: {why}");
    }
    let recorded = site.begin_job(&record);
    if !a.agents.no_agents {
        let body = serde_json::to_string(&agent_body).context("encoding the begin body")?;
        mark_agents(&a.conn, &a.agents, &nodes, &a.id, "begin", Some(&body))?;
    }
    let job = recorded.with_context(|| format!("job begin {}", a.id))?;
    emit(&serde_json::to_string(&job).context("encoding the site's answer")?)
}

/// `job end ID --site URL`: the nodes marked are the site's record of the job's nodes, or
/// `--nodes` when the site does not answer.
pub fn end(a: &JobEndArgs) -> anyhow::Result<()> {
    job_segment(&a.id)?;
    let fallback = a.agents.nodes.as_deref().map(expand_nodes).transpose()?;
    let timeout = parse_timeout(&a.conn.timeout)?;
    let site = connect_site(&a.site, timeout)?;
    let ended = site.end_job(&a.id);
    let nodes = match (&ended, fallback) {
        (Ok(job), _) => Some(job.nodes.clone()),
        (Err(_), nodes) => nodes,
    };
    if let (Some(nodes), false) = (&nodes, a.agents.no_agents) {
        mark_agents(&a.conn, &a.agents, nodes, &a.id, "end", None)?;
    }
    let job = ended.with_context(|| format!("job end {}", a.id))?;
    emit(&serde_json::to_string(&job).context("encoding the site's answer")?)
}

/// Marks the job on every node's agent at NODE:PORT at once; each agent that fails is one
/// warning line on stderr.
fn mark_agents(
    conn: &AgentConnArgs,
    agents: &NodeAgentsArgs,
    nodes: &[String],
    id: &str,
    what: &str,
    body: Option<&str>,
) -> anyhow::Result<()> {
    let timeout = parse_timeout(&conn.timeout)?;
    let token = read_token(conn.token_file.as_deref())?;
    let mut targets = Vec::with_capacity(nodes.len());
    for node in nodes {
        match node_target(node, agents.port) {
            Ok(t) => targets.push(t),
            Err(e) => eprintln!("warning: job {what} {id} on node {node}: {e:#}"),
        }
    }
    let path = format!("/v1/jobs/{}/{what}", job_segment(id)?);
    let answers = send_all(&targets, "POST", &path, body, token.as_deref(), timeout);
    let mut marked = 0;
    for (t, answer) in targets.iter().zip(answers) {
        let failure = match answer {
            Ok(r) if r.is_success() => None,
            Ok(r) => Some(anyhow!("{} (HTTP {})", r.message(), r.status)),
            Err(e) => Some(e.into()),
        };
        match failure {
            None => marked += 1,
            Some(e) => eprintln!("warning: job {what} {id} on {}: {e:#}", t.addr),
        }
    }
    if output::verbose() {
        eprintln!("note: job {what} {id} marked on {marked} of {} node agents", nodes.len());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn alloc_options_expand_their_hostlists() {
        let a = allocations(&["node[01-02]:cpus=16:gpus=0,1".into(), "node03".into()]).unwrap();
        assert_eq!(a.len(), 3);
        assert_eq!(
            a[1],
            JobAllocationV1 { node: "node02".into(), cpus: Some(16), gpus: vec![0, 1] }
        );
        assert_eq!(a[2], JobAllocationV1 { node: "node03".into(), cpus: None, gpus: vec![] });
        for bad in ["node01:cpus=x", "node01:mem=4", "node01:gpus=a"] {
            let e = allocations(&[bad.into()]).unwrap_err().to_string();
            assert!(e.contains("HOSTLIST[:cpus=N]"), "{e}");
        }
    }
}
