//! What the control tasks' tests share: a client of a started service, a transition request,
//! and waiting for a task (read every 20 ms, for at most a minute: no test depends on timing).

use std::time::{Duration, Instant};

use powerstack_api::site_tasks::{
    TaskKindV1, TaskNodeV1, TaskStateV1, TaskV1, TransitionOperationV1, TransitionRequestV1,
};
use powerstack_client::site::{Site, SiteError};
use powerstack_site::Running;

/// A client of `r`.
pub fn site(r: &Running) -> Site {
    Site::new(&format!("http://{}", r.ready().addr), None, Duration::from_secs(30)).unwrap()
}

/// A transition of `nodes` (a name or hostlist).
pub fn transition(
    op: TransitionOperationV1,
    nodes: &str,
    deadline_s: u64,
    escalate: bool,
) -> TransitionRequestV1 {
    TransitionRequestV1 {
        operation: op,
        nodes: vec![nodes.into()],
        deadline_s: Some(deadline_s),
        escalate: Some(escalate),
    }
}

/// Task `id` once `done` says so (read every 20 ms, for at most a minute).
pub fn wait(s: &Site, kind: TaskKindV1, id: &str, done: impl Fn(&TaskV1) -> bool) -> TaskV1 {
    let until = Instant::now() + Duration::from_secs(60);
    loop {
        let t = s.task(kind, id).unwrap();
        if done(&t) {
            return t;
        }
        assert!(Instant::now() < until, "task {id} never got there: {t:#?}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Task `id` once it is no longer running.
pub fn finished(kind: TaskKindV1, s: &Site, id: &str) -> TaskV1 {
    wait(s, kind, id, |t| t.state != TaskStateV1::Running)
}

/// Node `n` of task `t`.
pub fn node<'a>(t: &'a TaskV1, n: &str) -> &'a TaskNodeV1 {
    t.nodes.iter().find(|x| x.node == n).unwrap()
}

/// An error's status and message.
pub fn status(e: SiteError) -> (u16, String) {
    (e.status().unwrap_or(0), e.to_string())
}

/// A runtime for a test's own async calls (databases).
pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap()
}
