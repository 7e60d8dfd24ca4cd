//! The agent's configuration file (TOML). Every key is documented in `docs/agent.md`; command-line
//! flags override the file.

use std::path::{Path, PathBuf};

use powerstack_cap::trust;
use powerstack_hw::ProviderOptions;
use powerstack_hw::providers::nvml::NvmlOptions;
use serde::{Deserialize, Serialize};

/// Lowest accepted sampling rate, Hz.
pub const MIN_RATE_HZ: f64 = 0.1;
/// Highest accepted sampling rate, Hz.
pub const MAX_RATE_HZ: f64 = 1000.0;
/// Default sampling rate, Hz.
pub const DEFAULT_RATE_HZ: f64 = 10.0;
/// Default ring size, samples (a day at 10 Hz).
pub const DEFAULT_BUFFER_SAMPLES: usize = 864_000;
/// Largest ring accepted, samples.
pub const MAX_BUFFER_SAMPLES: usize = 100_000_000;
/// Default Unix socket.
pub const DEFAULT_SOCKET: &str = "/run/powerstack/agent.sock";
/// Default window of a job's peak power, ms.
pub const DEFAULT_PEAK_WINDOW_MS: u64 = 1000;
pub use crate::job::MAX_PEAK_WINDOW_MS;
/// Default TCP listen address (loopback only).
pub const DEFAULT_LISTEN: &str = "127.0.0.1:9464";
pub use crate::push::{
    DEFAULT_PUSH_INTERVAL_MS, DEFAULT_SPOOL_MAX_AGE_S, DEFAULT_SPOOL_MAX_BYTES,
    MAX_PUSH_INTERVAL_MS, MIN_PUSH_INTERVAL_MS,
};
/// Smallest spool bound, bytes (1 MiB).
pub const MIN_SPOOL_MAX_BYTES: u64 = 1 << 20;
/// Largest spool bound, bytes (1 TiB).
pub const MAX_SPOOL_MAX_BYTES: u64 = 1 << 40;
/// Shortest spool age bound, s.
pub const MIN_SPOOL_MAX_AGE_S: u64 = 60;
/// Longest spool age bound, s (365 days).
pub const MAX_SPOOL_MAX_AGE_S: u64 = 365 * 86_400;

/// The agent's configuration.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AgentConfig {
    /// Sampling rate, Hz (0.1 to 1000).
    pub rate_hz: f64,
    /// Ring size, samples; the oldest go first.
    pub buffer_samples: usize,
    /// Unix socket path; empty disables it.
    pub socket: String,
    /// TCP listen address (`host:port`); empty disables it.
    pub listen: String,
    /// File holding the bearer token for writes over TCP (must be readable by its owner only).
    pub token_file: Option<PathBuf>,
    /// Users (names or uids) allowed to change controls over the Unix socket, besides root.
    pub allow_users: Vec<String>,
    /// Groups (names or gids) whose members may change controls over the Unix socket.
    pub allow_groups: Vec<String>,
    /// The journal directory (shared with `powerstack cap` and `pools`).
    pub state_dir: PathBuf,
    /// The hardware root.
    pub root: PathBuf,
    /// Hardware sources (`auto` or a list).
    pub source: String,
    /// The NVML library.
    pub nvml_lib: Option<PathBuf>,
    /// The window a job's peak power is taken over when a query does not say, ms (1 to
    /// 3 600 000); never shorter, in effect, than the sampling interval or the slowest domain's
    /// measured update period.
    pub peak_window_ms: u64,
    /// How many running jobs one caller (a uid on the socket, the token holder over TCP) may have
    /// begun (1 to 10 000): beyond that its `begin` is refused (409) until it ends some.
    pub max_running_jobs_per_caller: usize,
    /// The site service to push the counters to (`https://HOST:PORT`, `http://HOST:PORT`,
    /// `HOST:PORT` or a Unix socket path); `None` or empty: no pushing.
    pub site: Option<String>,
    /// This node's name at the site (default: the hostname); 1 to 64 of `A-Z a-z 0-9 . _ -`.
    pub node_name: Option<String>,
    /// File holding the bearer token sent to the site (must be readable by its owner only).
    pub site_token_file: Option<PathBuf>,
    /// The URL at which the site reaches this agent's HTTP API (its TCP listener) to cap the
    /// node, an `http://` or `https://` URL sent with each registration; `None`: the site does
    /// not cap this node through its agent.
    pub advertise_url: Option<String>,
    /// The site CA's certificates (PEM) an `https://` site's certificate is checked against;
    /// `None`: the system's trust store.
    pub site_ca_file: Option<PathBuf>,
    /// How often the newest settled sample is taken and the spool sent, ms (100 to 60 000).
    pub push_interval_ms: u64,
    /// Beyond this size the spool drops its oldest batches, bytes (1 MiB to 1 TiB).
    pub spool_max_bytes: u64,
    /// Spooled samples older than this are dropped, s (60 to 31 536 000, a year).
    pub spool_max_age_s: u64,
    /// A standing node cap is split again when the power that cannot be capped moves by more
    /// than this or than 0.5% of the cap, whichever is larger, W (0.1 to 1000).
    pub node_cap_resplit_watts: f64,
}

impl Default for AgentConfig {
    fn default() -> Self {
        AgentConfig {
            rate_hz: DEFAULT_RATE_HZ,
            buffer_samples: DEFAULT_BUFFER_SAMPLES,
            socket: DEFAULT_SOCKET.to_string(),
            listen: DEFAULT_LISTEN.to_string(),
            token_file: None,
            allow_users: Vec::new(),
            allow_groups: Vec::new(),
            state_dir: PathBuf::from("/var/lib/powerstack"),
            root: PathBuf::from("/"),
            source: "auto".to_string(),
            nvml_lib: None,
            peak_window_ms: DEFAULT_PEAK_WINDOW_MS,
            max_running_jobs_per_caller: crate::job::DEFAULT_MAX_RUNNING_PER_CALLER,
            site: None,
            node_name: None,
            site_token_file: None,
            advertise_url: None,
            site_ca_file: None,
            push_interval_ms: DEFAULT_PUSH_INTERVAL_MS,
            spool_max_bytes: DEFAULT_SPOOL_MAX_BYTES,
            spool_max_age_s: DEFAULT_SPOOL_MAX_AGE_S,
            node_cap_resplit_watts: crate::standing::DEFAULT_RESPLIT_WATTS,
        }
    }
}

/// An invalid configuration: one line naming the key.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct ConfigError(pub String);

impl AgentConfig {
    /// The providers' options this configuration gives (`nvml_lib`).
    pub fn provider_options(&self) -> ProviderOptions {
        ProviderOptions { nvml: NvmlOptions { library: self.nvml_lib.clone() } }
    }

    /// Reads a configuration file. Refuses one that anyone but this process's user or root owns
    /// or could write, or that lies in such a directory (see [`powerstack_cap::trust`]): it names
    /// the token file, the state directory and who may write.
    pub fn load(path: &Path) -> Result<AgentConfig, ConfigError> {
        trust::check_with_dir(path, trust::Kind::File, "configuration file")
            .map_err(|e| ConfigError(e.to_string()))?;
        let text = powerstack_file::read_to_string(
            path,
            "configuration file",
            powerstack_file::TEXT_MAX_BYTES,
        )
        .map_err(|e| ConfigError(e.to_string()))?;
        let c: AgentConfig = toml::from_str(&text).map_err(|e| {
            let first = e.to_string().lines().next().unwrap_or("malformed TOML").to_string();
            let why = e.to_string().lines().last().unwrap_or("").trim().to_string();
            ConfigError(format!("{}: {first}: {why}", path.display()))
        })?;
        Ok(c)
    }

    /// The site to push to: `site` unless empty.
    pub fn site(&self) -> Option<&str> {
        self.site.as_deref().map(str::trim).filter(|s| !s.is_empty())
    }

    /// Checks the site settings.
    fn validate_site(&self) -> Result<(), ConfigError> {
        if let Some(url) = self.site() {
            powerstack_client::site::Site::new(url, None, std::time::Duration::from_secs(1))
                .map_err(|e| ConfigError(format!("site: {e}")))?;
        }
        if let Some(n) = &self.node_name
            && !powerstack_api::site::is_node_name(n)
        {
            return Err(ConfigError(format!(
                "node_name {n:?} is not a node name: give 1 to 64 characters of A-Z a-z 0-9 . _ -"
            )));
        }
        if let Some(why) =
            self.advertise_url.as_deref().and_then(powerstack_api::site::control_url_problem)
        {
            return Err(ConfigError(format!("advertise_url: {why}")));
        }
        if !(MIN_PUSH_INTERVAL_MS..=MAX_PUSH_INTERVAL_MS).contains(&self.push_interval_ms) {
            return Err(ConfigError(format!(
                "push_interval_ms {} is out of range: give {MIN_PUSH_INTERVAL_MS} to {MAX_PUSH_INTERVAL_MS} (100ms to 60s)",
                self.push_interval_ms
            )));
        }
        if !(MIN_SPOOL_MAX_BYTES..=MAX_SPOOL_MAX_BYTES).contains(&self.spool_max_bytes) {
            return Err(ConfigError(format!(
                "spool_max_bytes {} is out of range: give {MIN_SPOOL_MAX_BYTES} (1 MiB) to {MAX_SPOOL_MAX_BYTES} (1 TiB)",
                self.spool_max_bytes
            )));
        }
        if !(MIN_SPOOL_MAX_AGE_S..=MAX_SPOOL_MAX_AGE_S).contains(&self.spool_max_age_s) {
            return Err(ConfigError(format!(
                "spool_max_age_s {} is out of range: give {MIN_SPOOL_MAX_AGE_S} to {MAX_SPOOL_MAX_AGE_S} (a year)",
                self.spool_max_age_s
            )));
        }
        Ok(())
    }

    /// Checks ranges.
    pub fn validate(&self) -> Result<(), ConfigError> {
        self.validate_site()?;
        if !(self.rate_hz.is_finite() && (MIN_RATE_HZ..=MAX_RATE_HZ).contains(&self.rate_hz)) {
            return Err(ConfigError(format!(
                "rate_hz {} is out of range: give {MIN_RATE_HZ} to {MAX_RATE_HZ}",
                self.rate_hz
            )));
        }
        if !(2..=MAX_BUFFER_SAMPLES).contains(&self.buffer_samples) {
            return Err(ConfigError(format!(
                "buffer_samples {} is out of range: give 2 to {MAX_BUFFER_SAMPLES}",
                self.buffer_samples
            )));
        }
        if !(1..=MAX_PEAK_WINDOW_MS).contains(&self.peak_window_ms) {
            return Err(ConfigError(format!(
                "peak_window_ms {} is out of range: give 1 to {MAX_PEAK_WINDOW_MS}",
                self.peak_window_ms
            )));
        }
        if !(1..=crate::job::MAX_JOBS).contains(&self.max_running_jobs_per_caller) {
            return Err(ConfigError(format!(
                "max_running_jobs_per_caller {} is out of range: give 1 to {}",
                self.max_running_jobs_per_caller,
                crate::job::MAX_JOBS
            )));
        }
        let resplit = self.node_cap_resplit_watts;
        if !(resplit.is_finite() && (0.1..=1000.0).contains(&resplit)) {
            return Err(ConfigError(format!(
                "node_cap_resplit_watts {resplit} is out of range: give 0.1 to 1000"
            )));
        }
        if self.socket.is_empty() && self.listen.is_empty() {
            return Err(ConfigError(
                "both socket and listen are empty: the agent would not be reachable".into(),
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid_and_ranges_are_checked() {
        let c = AgentConfig::default();
        c.validate().unwrap();
        for rate in [0.0, 0.05, 1000.5, f64::NAN] {
            let e = AgentConfig { rate_hz: rate, ..AgentConfig::default() }.validate().unwrap_err();
            assert!(e.to_string().contains("rate_hz"), "{e}");
        }
        let e = AgentConfig { buffer_samples: 1, ..AgentConfig::default() }.validate().unwrap_err();
        assert!(e.to_string().contains("buffer_samples"), "{e}");
        let e = AgentConfig { peak_window_ms: 0, ..AgentConfig::default() }.validate().unwrap_err();
        assert!(e.to_string().contains("peak_window_ms"), "{e}");
        for w in [0.0, f64::NAN, 1000.5] {
            let c = AgentConfig { node_cap_resplit_watts: w, ..AgentConfig::default() };
            let e = c.validate().unwrap_err();
            assert!(e.to_string().contains("node_cap_resplit_watts"), "{e}");
        }
    }

    #[test]
    fn site_settings_are_checked() {
        let ok = |c: AgentConfig| c.validate().unwrap();
        let bad = |c: AgentConfig, key: &str| {
            let e = c.validate().unwrap_err().to_string();
            assert!(e.contains(key), "{e}");
            assert_eq!(e.lines().count(), 1, "{e}");
        };
        let d = AgentConfig::default;
        assert_eq!(d().site(), None);
        assert_eq!(AgentConfig { site: Some(" ".into()), ..d() }.site(), None);
        ok(AgentConfig {
            site: Some("http://site:9465".into()),
            node_name: Some("n-01.x_y".into()),
            ..d()
        });
        ok(AgentConfig { site: Some("https://site:9465".into()), ..d() });
        bad(AgentConfig { site: Some("https:///run/site.sock".into()), ..d() }, "https");
        bad(AgentConfig { site: Some("site".into()), ..d() }, "site");
        bad(AgentConfig { node_name: Some("no spaces".into()), ..d() }, "node_name");
        bad(AgentConfig { node_name: Some(String::new()), ..d() }, "node_name");
        ok(AgentConfig { advertise_url: Some("https://n01.example:9464".into()), ..d() });
        for url in ["n01:9464", "ftp://n01", "http://"] {
            bad(AgentConfig { advertise_url: Some(url.into()), ..d() }, "advertise_url");
        }
        for ms in [99, 60_001] {
            bad(AgentConfig { push_interval_ms: ms, ..d() }, "push_interval_ms");
        }
        ok(AgentConfig { push_interval_ms: 100, ..d() });
        bad(AgentConfig { spool_max_bytes: 1000, ..d() }, "spool_max_bytes");
        bad(AgentConfig { spool_max_age_s: 59, ..d() }, "spool_max_age_s");
        assert_eq!(d().push_interval_ms, 1000);
        assert_eq!((d().spool_max_bytes, d().spool_max_age_s), (64 << 20, 7 * 86_400));
    }

    #[test]
    fn unknown_keys_are_refused_naming_them() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("agent.toml");
        std::fs::write(&p, "rate_hz = 100\nrate = 5\n").unwrap();
        let e = AgentConfig::load(&p).unwrap_err().to_string();
        assert!(e.contains("rate"), "{e}");
        assert_eq!(e.lines().count(), 1);
        std::fs::write(&p, "rate_hz = 100\nbuffer_samples = 1000\nallow_groups = [\"hpcadm\"]\n")
            .unwrap();
        let c = AgentConfig::load(&p).unwrap();
        assert_eq!((c.rate_hz, c.buffer_samples), (100.0, 1000));
        assert_eq!(c.allow_groups, vec!["hpcadm"]);
        let site = "site = \"http://site:9465\"\nnode_name = \"n1\"\npush_interval_ms = 500\nspool_max_bytes = 2000000\nspool_max_age_s = 3600\n";
        std::fs::write(&p, site).unwrap();
        let c = AgentConfig::load(&p).unwrap();
        assert_eq!((c.site(), c.node_name.as_deref()), (Some("http://site:9465"), Some("n1")));
        assert_eq!(
            (c.push_interval_ms, c.spool_max_bytes, c.spool_max_age_s),
            (500, 2_000_000, 3600)
        );
    }
}
