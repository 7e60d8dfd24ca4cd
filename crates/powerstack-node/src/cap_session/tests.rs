use powerstack_cap::CapError;
use powerstack_model::{DomainId, Measurement as Kind, PowerLimit};

use super::*;

fn limit(name: &str) -> PowerLimit {
    PowerLimit { name: name.into(), limit_watts: Some(100.0), ..PowerLimit::default() }
}

/// Two packages of two dies each (package-0-die-0 ...), a memory domain without a default
/// limit's kind, and a GPU.
fn catalog() -> Vec<DomainInfo> {
    let die = |index, die| DomainInfo {
        id: DomainId { kind: DomainKind::Package, index, die: Some(die) },
        provider: "powercap",
        source: format!("intel-rapl:{index}:{die}"),
        measurement: Kind::Power,
        limits: vec![limit("long_term"), limit("short_term")],
        socket: Some(index),
        label: None,
    };
    let gpu = DomainInfo {
        id: DomainId::new(DomainKind::Gpu, 0),
        provider: "nvml",
        limits: vec![limit("cap")],
        ..die(0, 0)
    };
    let core = DomainInfo { id: DomainId::new(DomainKind::Core, 0), limits: vec![], ..die(0, 0) };
    vec![die(0, 0), die(0, 1), die(1, 0), die(1, 1), gpu, core]
}

fn target(kind: DomainKind, index: Option<u32>, die: Option<u32>) -> DomainTarget {
    DomainTarget { kind, index, die }
}

#[test]
fn a_target_picks_every_domain_of_its_kind_or_one_index_or_one_die() {
    let c = catalog();
    assert_eq!(select(&c, &target(DomainKind::Package, None, None)).unwrap(), [0, 1, 2, 3]);
    assert_eq!(select(&c, &target(DomainKind::Package, Some(1), None)).unwrap(), [2, 3]);
    assert_eq!(select(&c, &target(DomainKind::Package, None, Some(1))).unwrap(), [1, 3]);
    assert_eq!(select(&c, &target(DomainKind::Package, Some(0), Some(1))).unwrap(), [1]);
    assert_eq!(select(&c, &target(DomainKind::Gpu, None, None)).unwrap(), [4]);
}

#[test]
fn a_target_the_node_does_not_have_is_named_with_what_it_has() {
    let c = catalog();
    let e = select(&c, &target(DomainKind::Package, Some(7), None)).unwrap_err();
    assert_eq!(
        e.to_string(),
        "package-7 does not exist on this node; it has package-0-die-0, package-0-die-1, \
         package-1-die-0, package-1-die-1"
    );
    assert_eq!(e.status(), 422);
    let e = select(&c, &target(DomainKind::Package, Some(0), Some(5))).unwrap_err();
    assert!(e.to_string().starts_with("package-0-die-5 does not exist on this node"), "{e}");
    let e = select(&c, &target(DomainKind::Memory, None, None)).unwrap_err();
    assert_eq!(e.to_string(), "this node has no memory domain that powerstack can see");
    let e = select(&[], &target(DomainKind::Package, None, None)).unwrap_err();
    assert_eq!(e.to_string(), "this node has no CPU package domain that powerstack can see");
}

#[test]
fn a_long_term_limit_written_is_also_enabled_and_no_other_is() {
    assert_eq!(limit_write("long_term", 90.0, Some(1.0)).enabled, Some(true));
    assert_eq!(limit_write("short_term", 120.0, None).enabled, None);
    assert_eq!(limit_write("cap", 300.0, None).enabled, None);
}

#[test]
fn each_limit_is_written_on_each_chosen_domain_in_order() {
    let c = catalog();
    let limits = [
        LimitChange {
            constraint: Some("long_term".into()),
            limit_watts: 90.0,
            time_window_s: None,
        },
        LimitChange {
            constraint: Some("short_term".into()),
            limit_watts: 120.0,
            time_window_s: None,
        },
    ];
    let r = domain_requests(&c, &target(DomainKind::Package, Some(1), None), &limits).unwrap();
    let got: Vec<(usize, &str)> =
        r.iter().map(|r| (r.index, r.write.constraint.as_str())).collect();
    assert_eq!(got, [(2, "long_term"), (2, "short_term"), (3, "long_term"), (3, "short_term")]);
    // Without a constraint, the one a node cap uses for the kind.
    let any = [LimitChange { constraint: None, limit_watts: 250.0, time_window_s: None }];
    let r = domain_requests(&c, &target(DomainKind::Gpu, None, None), &any).unwrap();
    assert_eq!(r[0].write.constraint, "cap");
    // A kind with no such limit names the limits its domains have.
    let e = domain_requests(&c, &target(DomainKind::Core, None, None), &any).unwrap_err();
    assert!(e.to_string().contains("core domains have no default limit"), "{e}");
}

#[test]
fn commands_are_named_as_the_cli_names_them() {
    let domain = |kind| CapChange::Domain {
        target: target(kind, None, None),
        limits: Vec::new(),
        clamp: false,
    };
    assert_eq!(domain(DomainKind::Package).command(), "socket");
    assert_eq!(domain(DomainKind::Memory).command(), "mem");
    assert_eq!(domain(DomainKind::Gpu).command(), "gpu");
    let node = CapChange::Node { node_watts: 500.0, policy: Policy::Uniform, clamp: false };
    assert_eq!(node.command(), "node");
}

#[test]
fn one_mapping_gives_each_error_its_status() {
    let state = CapError::State { path: "/x".into(), detail: "busy".into() };
    assert_eq!(SessionError::Cap(state).status(), 503);
    assert_eq!(SessionError::Unmeasured("too few samples".into()).status(), 503);
    assert_eq!(SessionError::NotOnNode("no".into()).status(), 422);
    assert_eq!(SessionError::Cap(CapError::Stopped { rollback: String::new() }).status(), 422);
    let doc = Box::new(result_doc(
        &Origin { hostname: "n1".into(), simulated: None },
        "reset".into(),
        false,
    ));
    let e = SessionError::NotRestored { failed: vec!["a: b".into(), "c: d".into()], doc };
    assert_eq!(e.status(), 422);
    assert_eq!(
        e.to_string(),
        "2 limit(s) could not be restored (a: b; c: d); they stay in the journal for the next reset"
    );
}
