//! What the site bound's tests share: waiting for a recorded decision.

use std::time::{Duration, Instant};

use powerstack_api::site_bound::BoundDecisionV1;
use powerstack_client::site::Site;

/// The newest of the last 100 decisions that `done` accepts, once there is one (read every
/// 20 ms, for at most a minute): periods go on while the test reads.
pub fn decision(s: &Site, done: impl Fn(&BoundDecisionV1) -> bool) -> BoundDecisionV1 {
    let until = Instant::now() + Duration::from_secs(60);
    loop {
        let found = s.bound_decisions(100).unwrap().decisions.into_iter().find(&done);
        if let Some(d) = found {
            return d;
        }
        assert!(Instant::now() < until, "no such decision came");
        std::thread::sleep(Duration::from_millis(20));
    }
}
