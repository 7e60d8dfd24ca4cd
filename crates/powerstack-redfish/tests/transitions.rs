//! Power transitions against the mock BMC's power state machine: each type confirmed, a reset
//! the BMC does not allow refused before sending, a graceful request that never finishes with
//! and without escalation, a restart that cannot be confirmed.

mod common;

use common::{block_on, fast};
use powerstack_mock_bmc::{MockBmc, Options, Tree};
use powerstack_redfish::{
    Bmc, Error, PowerState, ResetType, TRANSITIONS, Transition, TransitionOptions,
};
use serde_json::json;

/// Two reads in each of PoweringOn/PoweringOff, whatever the time.
fn machine() -> Options {
    Options { transition_reads: 2, ..Options::default() }
}

/// A deadline far away: confirmed transitions end as soon as they are confirmed.
fn patient() -> TransitionOptions {
    TransitionOptions { deadline_ms: 60_000, poll_interval_ms: 1, escalate: false }
}

fn resets(mock: &MockBmc) -> Vec<String> {
    let posts = mock.recorded_matching("POST", "/Actions/ComputerSystem.Reset");
    posts.into_iter().map(|r| r.body["ResetType"].as_str().unwrap().to_string()).collect()
}

#[test]
fn every_transition_is_confirmed_by_the_state_machine() {
    block_on(async {
        for transition in TRANSITIONS {
            let mock = MockBmc::start(Tree::dmtf_controls(), machine()).await.unwrap();
            if transition == Transition::On {
                mock.edit_tree(|t| {
                    let mut doc = t.get("/redfish/v1/Systems/1").unwrap().clone();
                    doc["PowerState"] = json!("Off");
                    t.insert("/redfish/v1/Systems/1", doc);
                });
            }
            let bmc = Bmc::new(&fast(mock.url())).unwrap();
            let outcome = bmc.transition("1", transition, &patient()).await.unwrap();
            assert!(outcome.confirmed, "{transition}: {}", outcome.note);
            assert!(!outcome.escalated);
            let expected = match transition {
                Transition::ForceOff | Transition::GracefulShutdown => PowerState::Off,
                _ => PowerState::On,
            };
            assert_eq!(outcome.final_state, Some(expected.clone()), "{transition}");
            let between = if expected == PowerState::Off { "PoweringOff" } else { "PoweringOn" };
            assert!(outcome.note.contains(between), "{transition}: {}", outcome.note);
            assert_eq!(resets(&mock), [transition.to_string()], "one POST");
            assert_eq!(bmc.power_state("1").await.unwrap(), expected);
        }
    });
}

#[test]
fn a_reset_the_bmc_does_not_allow_is_refused_before_sending() {
    block_on(async {
        let mock = MockBmc::start(Tree::hpe_cray_ex(), machine()).await.unwrap();
        let bmc = Bmc::new(&fast(mock.url())).unwrap();
        let systems = bmc.systems().await.unwrap();
        assert_eq!(systems.len(), 1);
        assert_eq!(systems[0].id, "Node0");
        assert_eq!(
            systems[0].allowed_resets,
            [ResetType::On, ResetType::ForceOff, ResetType::Other("Off".into())],
            "from the ResetActionInfo"
        );
        let err = bmc.transition("Node0", Transition::GracefulShutdown, &patient()).await;
        assert!(
            matches!(err, Err(Error::Refused(ref m)) if m.contains("GracefulShutdown")),
            "{err:?}"
        );
        let err = bmc.send_reset("Node0", ResetType::PowerCycle).await.unwrap_err();
        assert!(err.to_string().contains("allows: On, ForceOff, Off"), "{err}");
        assert!(matches!(bmc.power_state("Node9").await, Err(Error::Refused(_))));
        assert_eq!(mock.recorded(), []);
        // What it allows goes through.
        let outcome = bmc.transition("Node0", Transition::ForceOff, &patient()).await.unwrap();
        assert!(outcome.confirmed);
        assert_eq!(resets(&mock), ["ForceOff"]);
    });
}

#[test]
fn a_graceful_shutdown_that_never_finishes_escalates_only_when_asked() {
    block_on(async {
        let options = Options { graceful_never_finishes: true, ..machine() };
        let short = TransitionOptions { deadline_ms: 200, poll_interval_ms: 5, escalate: false };
        let mock = MockBmc::start(Tree::dmtf_controls(), options.clone()).await.unwrap();
        let bmc = Bmc::new(&fast(mock.url())).unwrap();
        let outcome = bmc.transition("1", Transition::GracefulShutdown, &short).await.unwrap();
        assert!(!outcome.confirmed && !outcome.escalated, "{}", outcome.note);
        assert_eq!(outcome.final_state, Some(PowerState::On));
        assert!(outcome.note.contains("not confirmed"), "{}", outcome.note);
        assert_eq!(resets(&mock), ["GracefulShutdown"]);

        let mock = MockBmc::start(Tree::dmtf_controls(), options).await.unwrap();
        let bmc = Bmc::new(&fast(mock.url())).unwrap();
        let escalate =
            TransitionOptions { deadline_ms: 1_000, poll_interval_ms: 1, escalate: true };
        let outcome = bmc.transition("1", Transition::GracefulShutdown, &escalate).await.unwrap();
        assert!(outcome.escalated, "{}", outcome.note);
        assert_eq!(resets(&mock), ["GracefulShutdown", "ForceOff"]);
        assert!(outcome.confirmed, "{}", outcome.note);
        assert_eq!(outcome.final_state, Some(PowerState::Off));
        assert!(outcome.note.contains("escalated: ForceOff sent"), "{}", outcome.note);
    });
}

#[test]
fn a_restart_never_seen_is_sent_not_confirmable() {
    block_on(async {
        // No reads in between: the restart is over before anyone can see it.
        let options = Options { transition_reads: 0, ..Options::default() };
        let mock = MockBmc::start(Tree::legacy_power(), options).await.unwrap();
        let bmc = Bmc::new(&fast(mock.url())).unwrap();
        let short = TransitionOptions { deadline_ms: 30, poll_interval_ms: 5, escalate: false };
        let outcome = bmc.transition("", Transition::ForceRestart, &short).await.unwrap();
        assert!(!outcome.confirmed);
        assert!(outcome.note.contains("sent, not confirmable"), "{}", outcome.note);
        assert!(outcome.note.contains("seen: On"), "{}", outcome.note);
        assert_eq!(resets(&mock), ["ForceRestart"]);
    });
}

#[test]
fn a_restart_is_confirmed_by_the_bmcs_task() {
    block_on(async {
        // The restart is over before anyone can see it, but the BMC's task says it ran.
        let options =
            Options { transition_reads: 0, reset_task_polls: Some(2), ..Options::default() };
        let mock = MockBmc::start(Tree::dmtf_controls(), options).await.unwrap();
        let bmc = Bmc::new(&fast(mock.url())).unwrap();
        let outcome = bmc.transition("1", Transition::PowerCycle, &patient()).await.unwrap();
        assert!(outcome.confirmed, "{}", outcome.note);
        assert!(outcome.note.contains("task completed"), "{}", outcome.note);
        assert_eq!(outcome.final_state, Some(PowerState::On));
        assert_eq!(resets(&mock), ["PowerCycle"]);
        // send_reset does not follow the task.
        bmc.send_reset("1", ResetType::ForceRestart).await.unwrap();
        assert_eq!(resets(&mock), ["PowerCycle", "ForceRestart"]);
    });
}

#[test]
fn send_reset_posts_once_and_does_not_poll() {
    block_on(async {
        let mock = MockBmc::start(Tree::dmtf_controls(), machine()).await.unwrap();
        let bmc = Bmc::new(&fast(mock.url())).unwrap();
        bmc.send_reset("1", ResetType::Nmi).await.unwrap();
        assert_eq!(resets(&mock), ["Nmi"]);
        assert_eq!("force-off".parse::<Transition>(), Ok(Transition::ForceOff));
        assert_eq!("PowerCycle".parse::<Transition>(), Ok(Transition::PowerCycle));
        assert!("Nmi".parse::<Transition>().unwrap_err().contains("give one of On, ForceOff"));
    });
}

#[test]
fn a_restart_of_a_system_that_was_off_is_confirmed_only_once_on() {
    block_on(async {
        let off = |mock: &MockBmc| {
            mock.edit_tree(|t| {
                let mut doc = t.get("/redfish/v1/Systems/1").unwrap().clone();
                doc["PowerState"] = json!("Off");
                t.insert("/redfish/v1/Systems/1", doc);
            })
        };
        // The BMC takes the graceful restart and nothing happens: Off is not a restart seen.
        let options = Options { graceful_never_finishes: true, ..machine() };
        let mock = MockBmc::start(Tree::dmtf_controls(), options).await.unwrap();
        off(&mock);
        let bmc = Bmc::new(&fast(mock.url())).unwrap();
        let short = TransitionOptions { deadline_ms: 30, poll_interval_ms: 5, escalate: false };
        let outcome = bmc.transition("1", Transition::GracefulRestart, &short).await.unwrap();
        assert!(!outcome.confirmed, "{}", outcome.note);
        assert_eq!(outcome.final_state, Some(PowerState::Off));
        assert!(outcome.note.contains("was Off before"), "{}", outcome.note);
        assert!(!outcome.note.contains("left On"), "{}", outcome.note);
        // A restart that powers it on is confirmed once On, and says it was Off.
        let mock = MockBmc::start(Tree::dmtf_controls(), machine()).await.unwrap();
        off(&mock);
        let bmc = Bmc::new(&fast(mock.url())).unwrap();
        let outcome = bmc.transition("1", Transition::ForceRestart, &patient()).await.unwrap();
        assert!(outcome.confirmed, "{}", outcome.note);
        assert_eq!(outcome.final_state, Some(PowerState::On));
        assert!(outcome.note.contains("was Off before"), "{}", outcome.note);
        assert!(!outcome.note.contains("left On"), "{}", outcome.note);
    });
}

#[test]
fn a_system_found_once_is_read_directly_and_looked_for_again_when_it_moves() {
    block_on(async {
        let mock = MockBmc::start(Tree::dmtf_controls(), Options::default()).await.unwrap();
        let bmc = Bmc::new(&fast(mock.url())).unwrap();
        assert_eq!(bmc.power_state("1").await.unwrap(), PowerState::On);
        assert_eq!(mock.requests(), 3, "the service root, Systems, the system");
        assert_eq!(bmc.power_state("1").await.unwrap(), PowerState::On);
        assert_eq!(mock.requests(), 4, "the system's document alone");
        // The system moves to another URI (same Id): the old one answers 404, so it is found
        // again from the service root, and then read directly at its new URI.
        mock.edit_tree(|t| {
            let mut doc = t.remove("/redfish/v1/Systems/1").unwrap();
            doc["@odata.id"] = json!("/redfish/v1/Systems/Node1");
            doc["PowerState"] = json!("Off");
            t.insert("/redfish/v1/Systems/Node1", doc);
            t.insert(
                "/redfish/v1/Systems",
                json!({"Members": [{"@odata.id": "/redfish/v1/Systems/Node1"}]}),
            );
        });
        assert_eq!(bmc.power_state("1").await.unwrap(), PowerState::Off);
        assert_eq!(mock.requests(), 8, "the old URI, then the root, Systems, the system");
        assert_eq!(bmc.power_state("1").await.unwrap(), PowerState::Off);
        assert_eq!(mock.requests(), 9);
    });
}
