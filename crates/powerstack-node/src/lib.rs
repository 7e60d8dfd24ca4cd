//! The node's use cases, shared by the `powerstack` CLI and the agent (and the C library and the
//! Python bindings): where the hardware crates (`powerstack-hw`, `powerstack-cap`,
//! `powerstack-freq`) meet the wire types (`powerstack-api`). The hardware crates know nothing of
//! documents; the binary and the agent only parse, call and print.
//!
//! - [`cap_report`]: the capping documents (`powerstack.cap.v1`, `powerstack.caps.v1`) built from
//!   a catalog and the journal.
//! - [`cap_session`]: one cap session (set, reset, show), with one mapping of its errors to a
//!   status.
//! - [`measure`]: a span of time measured (`powerstack measure -- COMMAND`): energy, mean and
//!   peak power of every domain and of the node, and its document (`powerstack.measure.v1`).
//! - [`open`]: opening the node (root, sources, simulation) as the CLI and the bindings do.
//! - [`read`]: power over an interval and energy now, as values and documents.
//! - [`pools`]: the frequency pools documents (`powerstack.pools.v1`,
//!   `powerstack.pools-change.v1`) built from a pools session.
//! - [`topology`]: the topology document (`powerstack.topology.v1`) of a discovered node.
//! - [`variorum`]: what Variorum's documents need from an opened node (the domain information).

pub mod cap_report;
pub mod cap_session;
pub mod measure;
pub mod open;
pub mod pools;
pub mod read;
pub mod topology;
pub mod variorum;
