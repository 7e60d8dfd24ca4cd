//! The powerstack node agent.
//!
//! A sampler on its own plain thread reads every domain at a fixed rate (absolute deadlines) into
//! a compact [`ring::Ring`] of extended energy counters; slow sources (NVML, HPE Cray pm_counters)
//! are read on a second thread at their own rate so they never stall the fast ones. Job windows
//! ([`job`]) turn ring contents into per-job power and energy. The HTTP API ([`http`]) and the
//! Prometheus exposition ([`metrics`]) read the buffers, never sysfs; writes (job marks, caps) are
//! checked by [`access`] (SO_PEERCRED on the Unix socket, a bearer token on TCP), which also
//! decides what a read shows: callers not allowed to write get [`coarse`] figures; [`serve`]
//! accepts connections under timeouts and connection limits. When a site service is configured,
//! [`push`] sends the counters to it from a thread of its own, through a write-ahead spool. A node cap
//! written through the API is kept standing by [`standing`]: split again, from the ring, when the
//! power that cannot be capped moves.

pub mod access;
pub mod coarse;
pub mod config;
pub mod http;
pub mod job;
pub mod place;
pub mod push;
pub mod record;
pub mod resplit;
pub mod ring;
pub mod run;
pub mod sampler;
pub mod serve;
pub mod standing;
pub mod state;
pub mod stop;

pub use state::{Clock, DomainMeta, SamplerStats, Shared, SiteStats};
pub use stop::Stop;
