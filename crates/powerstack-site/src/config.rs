//! The site service's configuration (TOML; every key in docs/site.md). Command-line flags
//! override the file.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

pub mod bound;

use crate::db::DatabaseUrl;
use crate::error::StoreError;

/// Default listen address (loopback).
pub const DEFAULT_LISTEN: &str = "127.0.0.1:9465";

/// The site service's settings.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SiteConfig {
    /// TCP listen address (`host:port`).
    pub listen: String,
    /// `sqlite:PATH` or `postgres://...`; empty: `sqlite:STATE_DIR/site.db`.
    pub database: String,
    /// The state directory (the default SQLite file lives there).
    pub state_dir: PathBuf,
    /// The tokens file (roles); none: every caller is an administrator, and only a loopback
    /// address may be listened on.
    pub tokens_file: Option<PathBuf>,
    /// The server's certificate chain (PEM, leaf first); with `tls_key_file`, the service speaks
    /// only TLS.
    pub tls_cert_file: Option<PathBuf>,
    /// The certificate's private key (PEM: PKCS#8, PKCS#1 or SEC1; readable by its owner only).
    pub tls_key_file: Option<PathBuf>,
    /// Allows plain HTTP on a non-loopback address (a site behind a TLS-terminating proxy).
    pub insecure_plain_http: bool,
    /// How old a node's newest sample may be and still count in the site's power, s.
    pub stale_after_s: f64,
    /// How long raw samples are kept, days.
    pub raw_retention_days: u64,
    /// How long per-minute rollups are kept, days.
    pub rollup_retention_days: u64,
    /// How far ahead of the site's clock a pushed sample may be, s.
    pub max_clock_ahead_s: u64,
    /// The window a job node's peak power is taken over, ms.
    pub peak_window_ms: u64,
    /// How long after a job's end a node's samples may still arrive (agents' spools), s.
    pub settle_after_s: u64,
    /// The nodes with a BMC (`[[bmc]]`), the ones control tasks may name.
    pub bmc: Vec<BmcEntry>,
    /// A TOML file of more `[[bmc]]` entries.
    pub bmc_file: Option<PathBuf>,
    /// The most control tasks kept; a new one beyond is refused (429).
    pub tasks_max: u64,
    /// How long a control task is kept after its creation, s.
    pub task_expiry_s: u64,
    /// How many node operations this replica runs at once.
    pub task_concurrency: usize,
    /// A transition's deadline per node when the request gives none, s.
    pub transition_deadline_s: u64,
    /// How often a transition's power state is read, and pending work looked for, ms.
    pub task_poll_ms: u64,
    /// How long a replica's claim on a node operation lasts unless renewed, s: after a crash,
    /// another replica (or the restarted one) takes its operations over after this long.
    pub task_lease_s: u64,
    /// How long one call to a BMC may take, s; a request not answered by then is settled by
    /// reading the node.
    pub task_call_timeout_s: u64,
    /// How often the BMCs of `[[bmc]]` entries with `telemetry = true` are read, s.
    pub bmc_telemetry_interval_s: u64,
    /// The site power bound (`[bound]`).
    pub bound: bound::BoundConfig,
}

/// A node's BMC (`[[bmc]]`): where its Redfish service is and how to log in.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BmcEntry {
    /// The node's name at the site.
    pub node: String,
    /// The BMC's Redfish service (`https://HOST[:PORT]`).
    pub url: String,
    /// The user to log in as.
    #[serde(default)]
    pub user: Option<String>,
    /// A file holding the password (readable by its owner only).
    #[serde(default)]
    pub password_file: Option<PathBuf>,
    /// Whether to log in with a Redfish session (`X-Auth-Token`) rather than basic auth.
    #[serde(default)]
    pub session: Option<bool>,
    /// The CA certificates (PEM) the BMC's certificate is checked against.
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
    /// Whether the BMC's certificate goes unchecked (never by default).
    #[serde(default)]
    pub insecure: bool,
    /// The `ComputerSystem` id (default: the only one).
    #[serde(default)]
    pub system: Option<String>,
    /// The `Chassis` id (default: the system's).
    #[serde(default)]
    pub chassis: Option<String>,
    /// Whether the site reads the node's power through this BMC and stores it as a stream of
    /// its own (a node without an agent).
    #[serde(default)]
    pub telemetry: bool,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct BmcFile {
    #[serde(default)]
    bmc: Vec<BmcEntry>,
}

impl Default for SiteConfig {
    fn default() -> Self {
        SiteConfig {
            listen: DEFAULT_LISTEN.into(),
            database: String::new(),
            state_dir: PathBuf::from("/var/lib/powerstack"),
            tokens_file: None,
            tls_cert_file: None,
            tls_key_file: None,
            insecure_plain_http: false,
            stale_after_s: 10.0,
            raw_retention_days: 30,
            rollup_retention_days: 400,
            max_clock_ahead_s: 300,
            peak_window_ms: 1000,
            settle_after_s: 7 * 86_400,
            bmc: Vec::new(),
            bmc_file: None,
            tasks_max: 10_000,
            task_expiry_s: 86_400,
            task_concurrency: 256,
            transition_deadline_s: 120,
            task_poll_ms: 2000,
            task_lease_s: 30,
            task_call_timeout_s: 60,
            bmc_telemetry_interval_s: 10,
            bound: bound::BoundConfig::default(),
        }
    }
}

impl SiteConfig {
    /// Reads a configuration file.
    pub fn load(path: &Path) -> Result<SiteConfig, StoreError> {
        let text = powerstack_file::read_to_string(
            path,
            "configuration file",
            powerstack_file::TEXT_MAX_BYTES,
        )
        .map_err(|e| StoreError::Config(e.to_string()))?;
        toml::from_str(&text).map_err(|e| {
            StoreError::Config(format!(
                "{}: {}",
                path.display(),
                e.message().lines().next().unwrap_or("invalid")
            ))
        })
    }

    /// The database to open.
    pub fn database_url(&self) -> Result<DatabaseUrl, StoreError> {
        if self.database.trim().is_empty() {
            return Ok(DatabaseUrl::Sqlite(self.state_dir.join("site.db")));
        }
        DatabaseUrl::parse(&self.database)
    }

    /// The listen address.
    pub fn listen_addr(&self) -> Result<SocketAddr, StoreError> {
        self.listen.parse().map_err(|_| {
            StoreError::Config(format!(
                "listen address {:?}: expected IP:PORT (127.0.0.1:9465)",
                self.listen
            ))
        })
    }

    /// The certificate and key files, when TLS is configured (both are, or neither).
    pub fn tls_files(&self) -> Result<Option<(&Path, &Path)>, StoreError> {
        match (&self.tls_cert_file, &self.tls_key_file) {
            (Some(c), Some(k)) => Ok(Some((c, k))),
            (None, None) => Ok(None),
            (Some(c), None) => Err(StoreError::Config(format!(
                "tls_cert_file {} is given without tls_key_file: give its key with --tls-key FILE too",
                c.display()
            ))),
            (None, Some(k)) => Err(StoreError::Config(format!(
                "tls_key_file {} is given without tls_cert_file: give the certificate with --tls-cert FILE too",
                k.display()
            ))),
        }
    }

    /// Who may reach the service and how: without tokens only on loopback; beyond loopback only
    /// in TLS, or in plain HTTP when `insecure_plain_http` says a proxy does TLS.
    fn validate_access(&self) -> Result<(), StoreError> {
        let addr = self.listen_addr()?;
        let tls = self.tls_files()?.is_some();
        if addr.ip().is_loopback() {
            return Ok(());
        }
        if self.tokens_file.is_none() {
            return Err(StoreError::Config(format!(
                "listening on {addr} without a tokens file would let anyone write: give --tokens FILE, or listen on loopback"
            )));
        }
        if !tls && !self.insecure_plain_http {
            return Err(StoreError::Config(format!(
                "listening on {addr} needs TLS: give --tls-cert FILE --tls-key FILE, or --insecure-plain-http (insecure_plain_http = true) for a site behind a TLS-terminating proxy"
            )));
        }
        Ok(())
    }

    /// Checks every setting, one line per problem.
    pub fn validate(&self) -> Result<(), StoreError> {
        let bad = |m: String| Err(StoreError::Config(m));
        if !(self.stale_after_s.is_finite() && (0.1..=86_400.0).contains(&self.stale_after_s)) {
            return bad(format!("stale_after_s {} must be 0.1 to 86400", self.stale_after_s));
        }
        if !(1..=36_500).contains(&self.raw_retention_days) {
            return bad(format!(
                "raw_retention_days {} must be 1 to 36500",
                self.raw_retention_days
            ));
        }
        if self.rollup_retention_days < self.raw_retention_days
            || self.rollup_retention_days > 36_500
        {
            return bad(format!(
                "rollup_retention_days {} must be at least raw_retention_days ({}) and at most 36500",
                self.rollup_retention_days, self.raw_retention_days
            ));
        }
        if !(1..=3_600_000).contains(&self.peak_window_ms) {
            return bad(format!("peak_window_ms {} must be 1 to 3600000", self.peak_window_ms));
        }
        if self.max_clock_ahead_s > 86_400 {
            return bad(format!(
                "max_clock_ahead_s {} must be at most 86400",
                self.max_clock_ahead_s
            ));
        }
        self.validate_tasks()?;
        self.bound.validate()?;
        self.bmcs()?;
        self.database_url()?;
        self.validate_access()
    }

    fn validate_tasks(&self) -> Result<(), StoreError> {
        let bad = |m: String| Err(StoreError::Config(m));
        if !(1..=10_000_000).contains(&self.tasks_max) {
            return bad(format!("tasks_max {} must be 1 to 10000000", self.tasks_max));
        }
        if !(1..=365 * 86_400).contains(&self.task_expiry_s) {
            return bad(format!("task_expiry_s {} must be 1 to 31536000", self.task_expiry_s));
        }
        if !(1..=10_000).contains(&self.task_concurrency) {
            return bad(format!("task_concurrency {} must be 1 to 10000", self.task_concurrency));
        }
        if !(1..=86_400).contains(&self.transition_deadline_s) {
            return bad(format!(
                "transition_deadline_s {} must be 1 to 86400",
                self.transition_deadline_s
            ));
        }
        if !(10..=60_000).contains(&self.task_poll_ms) {
            return bad(format!("task_poll_ms {} must be 10 to 60000", self.task_poll_ms));
        }
        if !(1..=3600).contains(&self.task_lease_s) {
            return bad(format!("task_lease_s {} must be 1 to 3600", self.task_lease_s));
        }
        if !(1..=3600).contains(&self.bmc_telemetry_interval_s) {
            return bad(format!(
                "bmc_telemetry_interval_s {} must be 1 to 3600",
                self.bmc_telemetry_interval_s
            ));
        }
        if !(1..=3600).contains(&self.task_call_timeout_s) {
            return bad(format!(
                "task_call_timeout_s {} must be 1 to 3600",
                self.task_call_timeout_s
            ));
        }
        Ok(())
    }

    /// The nodes with a BMC: the `[[bmc]]` entries, then those of `bmc_file`; each node once,
    /// each URL `http://` or `https://`.
    pub fn bmcs(&self) -> Result<Vec<BmcEntry>, StoreError> {
        let mut all = self.bmc.clone();
        if let Some(path) = &self.bmc_file {
            let text = powerstack_file::read_to_string(path, "bmc_file", 16 << 20)
                .map_err(|e| StoreError::Config(e.to_string()))?;
            let file: BmcFile = toml::from_str(&text).map_err(|e| {
                StoreError::Config(format!(
                    "bmc_file {}: {}",
                    path.display(),
                    e.message().lines().next().unwrap_or("invalid")
                ))
            })?;
            all.extend(file.bmc);
        }
        let mut seen = std::collections::HashSet::new();
        for b in &all {
            if !powerstack_api::site::is_node_name(&b.node) {
                return Err(StoreError::Config(format!(
                    "[[bmc]] node {:?}: 1 to 64 characters of A-Z a-z 0-9 . _ -",
                    b.node
                )));
            }
            if !seen.insert(b.node.as_str()) {
                return Err(StoreError::Config(format!(
                    "[[bmc]] node {} is given twice: give each node one BMC",
                    b.node
                )));
            }
            if !(b.url.starts_with("https://") || b.url.starts_with("http://")) {
                return Err(StoreError::Config(format!(
                    "[[bmc]] node {}: url {:?} must be https://HOST[:PORT] (or http://)",
                    b.node, b.url
                )));
            }
        }
        Ok(all)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(c: &SiteConfig) -> String {
        c.validate().unwrap_err().to_string()
    }

    #[test]
    fn bmcs_are_named_once_with_a_url_inline_or_in_a_file() {
        let text = "[[bmc]]\nnode = \"n01\"\nurl = \"https://n01-bmc\"\nuser = \"root\"\n";
        let mut c: SiteConfig = toml::from_str(text).unwrap();
        assert_eq!(c.bmcs().unwrap().len(), 1);
        let d = tempfile::tempdir().unwrap();
        let f = d.path().join("bmcs.toml");
        std::fs::write(&f, "[[bmc]]\nnode = \"n02\"\nurl = \"https://n02-bmc\"\n").unwrap();
        c.bmc_file = Some(f.clone());
        assert_eq!(
            c.bmcs().unwrap().iter().map(|b| b.node.as_str()).collect::<Vec<_>>(),
            ["n01", "n02"]
        );
        std::fs::write(&f, "[[bmc]]\nnode = \"n01\"\nurl = \"https://x\"\n").unwrap();
        assert!(err(&c).contains("n01 is given twice"), "{}", err(&c));
        std::fs::write(&f, "[[bmc]]\nnode = \"n02\"\nurl = \"n02-bmc\"\n").unwrap();
        assert!(err(&c).contains("must be https://"), "{}", err(&c));
        c.bmc_file = None;
        let t: SiteConfig = toml::from_str(
            "bmc_telemetry_interval_s = 0\n[[bmc]]\nnode = \"n03\"\nurl = \"http://b\"\ntelemetry = true\n",
        )
        .unwrap();
        assert!(t.bmc[0].telemetry && !c.bmc[0].telemetry);
        assert!(err(&t).contains("bmc_telemetry_interval_s 0"), "{}", err(&t));
        c.task_poll_ms = 1;
        assert!(err(&c).contains("task_poll_ms 1"), "{}", err(&c));
    }

    #[test]
    fn tls_is_both_files_or_neither_and_beyond_loopback_tls_or_the_explicit_option() {
        let d = SiteConfig::default();
        assert!(d.validate().is_ok());
        let cert = Some(PathBuf::from("/etc/site/cert.pem"));
        let key = Some(PathBuf::from("/etc/site/key.pem"));
        let e = err(&SiteConfig { tls_cert_file: cert.clone(), ..d.clone() });
        assert!(e.contains("without tls_key_file") && e.contains("--tls-key"), "{e}");
        let e = err(&SiteConfig { tls_key_file: key.clone(), ..d.clone() });
        assert!(e.contains("without tls_cert_file") && e.contains("--tls-cert"), "{e}");
        let both = SiteConfig { tls_cert_file: cert, tls_key_file: key, ..d.clone() };
        assert_eq!(
            both.tls_files().unwrap().map(|(c, _)| c),
            Some(Path::new("/etc/site/cert.pem"))
        );
        assert!(both.validate().is_ok());
        // Beyond loopback: tokens first, then TLS or the explicit option.
        let wide = SiteConfig { listen: "0.0.0.0:9465".into(), ..d.clone() };
        assert!(err(&wide).contains("without a tokens file"), "{}", err(&wide));
        let tokens = Some(PathBuf::from("/etc/site/tokens.toml"));
        let wide = SiteConfig { tokens_file: tokens, ..wide };
        let e = err(&wide);
        assert!(e.contains("needs TLS") && e.contains("--insecure-plain-http"), "{e}");
        assert!(SiteConfig { insecure_plain_http: true, ..wide.clone() }.validate().is_ok());
        assert!(SiteConfig { ..both.clone() }.validate().is_ok());
        let wide_tls = SiteConfig {
            listen: wide.listen.clone(),
            tokens_file: wide.tokens_file.clone(),
            ..both
        };
        assert!(wide_tls.validate().is_ok());
        assert!(err(&SiteConfig { listen: "site:9465".into(), ..d.clone() }).contains("IP:PORT"));
        let text = "listen = \"10.0.0.1:9465\"\ntokens_file = \"/t\"\ninsecure_plain_http = true\ntls_cert_file = \"/c\"\ntls_key_file = \"/k\"\n";
        let c: SiteConfig = toml::from_str(text).unwrap();
        assert!(c.insecure_plain_http && c.tls_files().unwrap().is_some());
    }
}
