//! A tree of Redfish documents, keyed by URI path.

use std::collections::BTreeMap;
use std::path::Path;

use serde_json::Value;

use crate::MockError;

/// Redfish documents keyed by their URI path (`/redfish/v1/Chassis`, no trailing slash).
#[derive(Debug, Clone, Default)]
pub struct Tree {
    docs: BTreeMap<String, Value>,
}

/// A URI path as the tree keys it: no query, no fragment, no trailing slash.
pub(crate) fn normalize(uri: &str) -> &str {
    let path = uri.split(['?', '#']).next().unwrap_or(uri);
    let trimmed = path.trim_end_matches('/');
    if trimmed.is_empty() { "/" } else { trimmed }
}

impl Tree {
    /// An empty tree.
    pub fn new() -> Tree {
        Tree::default()
    }

    /// Puts `doc` at `uri` (replacing what was there).
    pub fn insert(&mut self, uri: &str, doc: Value) -> &mut Tree {
        self.docs.insert(normalize(uri).to_string(), doc);
        self
    }

    /// Removes the document at `uri`, so that it answers 404.
    pub fn remove(&mut self, uri: &str) -> Option<Value> {
        self.docs.remove(normalize(uri))
    }

    /// The document at `uri`.
    pub fn get(&self, uri: &str) -> Option<&Value> {
        self.docs.get(normalize(uri))
    }

    /// Every URI of the tree, in order.
    pub fn uris(&self) -> impl Iterator<Item = &str> {
        self.docs.keys().map(String::as_str)
    }

    /// The tree of a mockup directory: each `REL/index.json` under `dir` is the document at
    /// `/REL`. A short-form mockup (no `redfish/` directory at its top, as the DMTF
    /// Redfish-Publications mockups) is placed under `/redfish/v1`.
    pub fn from_dir(dir: &Path) -> Result<Tree, MockError> {
        let prefix = if dir.join("redfish").is_dir() { "" } else { "/redfish/v1" };
        let mut tree = Tree::new();
        let mut pending = vec![dir.to_path_buf()];
        while let Some(current) = pending.pop() {
            let entries = std::fs::read_dir(&current)
                .map_err(|source| MockError::Read { path: current.clone(), source })?;
            for entry in entries {
                let path = entry
                    .map_err(|source| MockError::Read { path: current.clone(), source })?
                    .path();
                if path.is_dir() {
                    pending.push(path);
                } else if path.file_name().is_some_and(|n| n == "index.json") {
                    let text = std::fs::read_to_string(&path)
                        .map_err(|source| MockError::Read { path: path.clone(), source })?;
                    let doc = serde_json::from_str(&text)
                        .map_err(|source| MockError::Json { path: path.clone(), source })?;
                    let rel = current.strip_prefix(dir).unwrap_or(&current);
                    let rel: Vec<String> =
                        rel.components().map(|c| c.as_os_str().to_string_lossy().into()).collect();
                    tree.insert(&format!("{prefix}/{}", rel.join("/")), doc);
                }
            }
        }
        Ok(tree)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uris_are_normalized() {
        let mut tree = Tree::new();
        tree.insert("/redfish/v1/", serde_json::json!({"a": 1}));
        assert!(tree.get("/redfish/v1").is_some());
        assert!(tree.get("/redfish/v1/?$expand=.").is_some());
        assert!(tree.get("/redfish/v1/Chassis").is_none());
        assert_eq!(normalize("/"), "/");
    }

    #[test]
    fn a_directory_is_read_into_uris() {
        let dir = std::env::temp_dir().join(format!("mock-bmc-tree-{}", std::process::id()));
        let chassis = dir.join("redfish/v1/Chassis");
        std::fs::create_dir_all(&chassis).unwrap();
        std::fs::write(dir.join("redfish/v1/index.json"), r#"{"Id":"root"}"#).unwrap();
        std::fs::write(chassis.join("index.json"), r#"{"Members":[]}"#).unwrap();
        let tree = Tree::from_dir(&dir).unwrap();
        assert_eq!(tree.uris().collect::<Vec<_>>(), ["/redfish/v1", "/redfish/v1/Chassis"]);
        std::fs::write(chassis.join("index.json"), "{").unwrap();
        assert!(matches!(Tree::from_dir(&dir), Err(MockError::Json { .. })));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
