//! The node's use cases, shared by the `powerstack` CLI and the agent (and the C library and the
//! Python bindings): where the hardware crates (`powerstack-hw`, `powerstack-cap`,
//! `powerstack-freq`) meet the wire types (`powerstack-api`). The hardware crates know nothing of
//! documents; the binary and the agent only parse, call and print.
//!
//! - [`cap_report`]: the capping documents (`powerstack.cap.v1`, `powerstack.caps.v1`) built from
//!   a catalog and the journal.
//! - [`cap_session`]: one cap session (set, reset, show), with one mapping of its errors to a
//!   status.
//! - [`open`]: opening the node (root, sources, simulation) as the CLI and the bindings do.
//! - [`reading`]: one-shot power and energy documents of an opened node.
//! - [`pools`]: the frequency pools documents (`powerstack.pools.v1`,
//!   `powerstack.pools-change.v1`) built from a pools session.
//! - [`topology`]: the topology document (`powerstack.topology.v1`) of a discovered node.

pub mod cap_report;
pub mod cap_session;
pub mod open;
pub mod pools;
pub mod reading;
pub mod topology;
