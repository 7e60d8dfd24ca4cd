//! The site service's configuration (TOML; every key in docs/site.md). Command-line flags
//! override the file.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

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
}

impl Default for SiteConfig {
    fn default() -> Self {
        SiteConfig {
            listen: DEFAULT_LISTEN.into(),
            database: String::new(),
            state_dir: PathBuf::from("/var/lib/powerstack"),
            tokens_file: None,
            stale_after_s: 10.0,
            raw_retention_days: 30,
            rollup_retention_days: 400,
            max_clock_ahead_s: 300,
            peak_window_ms: 1000,
            settle_after_s: 7 * 86_400,
        }
    }
}

impl SiteConfig {
    /// Reads a configuration file.
    pub fn load(path: &Path) -> Result<SiteConfig, StoreError> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| StoreError::Config(format!("cannot read {}: {e}", path.display())))?;
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
        self.database_url()?;
        Ok(())
    }
}
