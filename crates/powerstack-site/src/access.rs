//! Who may do what at the site. A tokens file gives each bearer token a role: an `agent` may push
//! only its own node's streams, the `scheduler` (its hooks) may write job records and read them,
//! a `user` may read their own jobs, an `admin` everything. Without a tokens file every caller is
//! an administrator, and the service listens on loopback only.

use std::collections::HashMap;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

use serde::Deserialize;

use crate::error::StoreError;

/// A role.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// A node's agent.
    Agent,
    /// The scheduler's hooks.
    Scheduler,
    /// A user.
    User,
    /// An administrator.
    Admin,
}

/// Who a caller is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Principal {
    /// Its role.
    pub role: Role,
    /// An agent's node.
    pub node: Option<String>,
    /// A user's name.
    pub user: Option<String>,
}

impl Principal {
    /// The caller of a service without tokens.
    pub fn open() -> Principal {
        Principal { role: Role::Admin, node: None, user: None }
    }

    /// Whether it may push node `node`'s streams.
    pub fn may_push(&self, node: &str) -> bool {
        self.role == Role::Admin || (self.role == Role::Agent && self.node.as_deref() == Some(node))
    }

    /// Whether it may write job records.
    pub fn may_write_jobs(&self) -> bool {
        matches!(self.role, Role::Admin | Role::Scheduler)
    }

    /// Whether it may read jobs of `user` (`None`: jobs of anyone).
    pub fn may_read_jobs_of(&self, user: Option<&str>) -> bool {
        match self.role {
            Role::Admin | Role::Scheduler => true,
            Role::User => user.is_some() && user == self.user.as_deref(),
            Role::Agent => false,
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TokensFile {
    #[serde(default)]
    token: Vec<TokenEntry>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TokenEntry {
    token: String,
    role: Role,
    #[serde(default)]
    node: Option<String>,
    #[serde(default)]
    user: Option<String>,
}

/// The tokens of a tokens file.
#[derive(Clone, Debug, Default)]
pub struct Tokens {
    by_token: HashMap<String, Principal>,
}

impl Tokens {
    /// Reads `path`: a regular file, readable by its owner only, at most 16 MiB, each
    /// `[[token]]` with `token` (at least 16 characters), `role`, and `node` for an agent or
    /// `user` for a user.
    pub fn load(path: &Path) -> Result<Tokens, StoreError> {
        let fail =
            |why: String| StoreError::Config(format!("tokens file {}: {why}", path.display()));
        let meta = std::fs::metadata(path).map_err(|e| fail(e.to_string()))?;
        if !meta.is_file() {
            return Err(fail("not a regular file".into()));
        }
        if meta.mode() & 0o077 != 0 {
            return Err(fail(format!(
                "mode {:o} lets others read it: chmod 600 it",
                meta.mode() & 0o777
            )));
        }
        let text = powerstack_file::read_to_string(path, "tokens file", 16 << 20)
            .map_err(|e| StoreError::Config(e.to_string()))?;
        let file: TokensFile = toml::from_str(&text)
            .map_err(|e| fail(e.message().lines().next().unwrap_or("invalid").to_string()))?;
        let mut by_token = HashMap::new();
        for (i, t) in file.token.into_iter().enumerate() {
            if t.token.len() < 16 || t.token.chars().any(|c| c.is_control() || c.is_whitespace()) {
                return Err(fail(format!(
                    "token {}: at least 16 characters, no space or control character",
                    i + 1
                )));
            }
            match (t.role, &t.node, &t.user) {
                (Role::Agent, None, _) => {
                    return Err(fail(format!("token {}: an agent token names its node", i + 1)));
                }
                (Role::User, _, None) => {
                    return Err(fail(format!("token {}: a user token names its user", i + 1)));
                }
                _ => {}
            }
            let p = Principal { role: t.role, node: t.node, user: t.user };
            if by_token.insert(t.token, p).is_some() {
                return Err(fail(format!("token {} appears twice", i + 1)));
            }
        }
        Ok(Tokens { by_token })
    }

    /// A tokens set from entries (tests, embedding).
    pub fn from_entries(entries: impl IntoIterator<Item = (String, Principal)>) -> Tokens {
        Tokens { by_token: entries.into_iter().collect() }
    }

    /// Who holds `token`, compared in time independent of where it differs.
    pub fn who(&self, token: &str) -> Option<&Principal> {
        let mut found = None;
        for (t, p) in &self.by_token {
            if constant_time_eq(t.as_bytes(), token.as_bytes()) {
                found = Some(p);
            }
        }
        found
    }
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    #[test]
    fn roles_grant_what_they_say_and_the_file_must_be_private() {
        let agent = Principal { role: Role::Agent, node: Some("n1".into()), user: None };
        assert!(agent.may_push("n1") && !agent.may_push("n2") && !agent.may_write_jobs());
        assert!(!agent.may_read_jobs_of(None));
        let alice = Principal { role: Role::User, node: None, user: Some("alice".into()) };
        assert!(alice.may_read_jobs_of(Some("alice")) && !alice.may_read_jobs_of(Some("bob")));
        assert!(!alice.may_read_jobs_of(None) && !alice.may_push("n1"));
        let d = tempfile::tempdir().unwrap();
        let f = d.path().join("tokens.toml");
        std::fs::write(
            &f,
            "[[token]]\ntoken = \"0123456789abcdef\"\nrole = \"agent\"\nnode = \"n1\"\n",
        )
        .unwrap();
        std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o644)).unwrap();
        assert!(Tokens::load(&f).unwrap_err().to_string().contains("chmod 600"));
        std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o600)).unwrap();
        let t = Tokens::load(&f).unwrap();
        assert_eq!(t.who("0123456789abcdef"), Some(&agent));
        assert_eq!(t.who("0123456789abcdeX"), None);
        std::fs::write(&f, "[[token]]\ntoken = \"0123456789abcdef\"\nrole = \"agent\"\n").unwrap();
        assert!(Tokens::load(&f).unwrap_err().to_string().contains("names its node"));
    }
}
