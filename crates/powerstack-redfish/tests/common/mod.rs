//! Test helpers: a mockup directory as a `Fetch`, the fixtures' place, a runtime.

#![allow(dead_code)]

use std::path::{Path, PathBuf};

use powerstack_redfish::{Error, Fetch};
use serde_json::Value;

/// A mockup directory read as files: `URI/index.json`; a captured error body is a 404.
pub struct Dir(pub PathBuf);

impl Fetch for Dir {
    async fn get(&self, uri: &str) -> Result<Option<Value>, Error> {
        let path = self.0.join(uri.trim_start_matches('/')).join("index.json");
        let Ok(text) = std::fs::read_to_string(&path) else { return Ok(None) };
        let doc: Value = serde_json::from_str(&text)
            .map_err(|e| Error::Malformed { uri: uri.into(), reason: e.to_string() })?;
        let error_only = doc.as_object().is_some_and(|o| o.len() == 1 && o.contains_key("error"));
        Ok((!error_only).then_some(doc))
    }
}

/// `../shared/fixtures/redfish/NAME` when present; prints a note and gives `None` otherwise.
pub fn fixture(name: &str) -> Option<PathBuf> {
    let dir =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/fixtures/redfish").join(name);
    if dir.is_dir() {
        Some(dir)
    } else {
        eprintln!("skipped: {} is absent", dir.display());
        None
    }
}

/// Runs a future on a fresh current-thread runtime.
pub fn block_on<T>(future: impl std::future::Future<Output = T>) -> T {
    tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(future)
}

/// A client config for the mock with short waits: tasks polled every 5 ms, retries after 5 ms.
pub fn fast(url: String) -> powerstack_redfish::BmcConfig {
    powerstack_redfish::BmcConfig {
        task_poll_interval_ms: 5,
        backoff_ms: 5,
        ..powerstack_redfish::BmcConfig::new(url)
    }
}
