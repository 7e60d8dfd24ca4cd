//! The blocking client of powerstack node agents, for the CLI and any other client (a site
//! service): nothing of the agent's server side (no async runtime, no HTTP server).
//!
//! - [`request`]: one HTTP/1.1 request to an agent over its Unix socket or TCP ([`Addr`]), with
//!   one deadline over connect, write and read; errors are one line naming the agent
//!   ([`ClientError`]).
//! - [`hostlist`]: Slurm-style hostlist expressions (`node[01-04,07]`).
//! - [`fanout`]: one job asked of many agents at once, in parallel; a node that does not answer
//!   is an answer saying so, and the answers make a [`powerstack_api::job::JobQueryV1`].
//! - [`site`]: the site service's routes, one typed call each ([`site::Site`]), over plain HTTP
//!   or TLS ([`tls`]: a site CA bundle or the system's trust store).

mod addr;
mod error;
pub mod fanout;
pub mod hostlist;
mod http;
pub mod site;
pub mod tls;

pub use addr::{Addr, DEFAULT_SOCKET};
pub use error::{ClientError, fmt_duration};
pub use http::{MAX_RESPONSE_BYTES, Response, request, request_tls};
