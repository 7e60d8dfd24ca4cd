//! Who may change what: the caller's identity and the write policy, after GEOPM's access model,
//! simpler.
//!
//! - **Reads are open** to everyone who can connect (the socket is `0666`), in two tiers
//!   ([`Tier`], decided by [`Access::tier`]): callers allowed to write read everything; anyone
//!   else reads power averaged over whole seconds and rounded, no cap writer's details and only
//!   its own jobs' labels.
//! - **Writes** (job marks, caps) on the **Unix socket** are allowed to uid 0, to the users of
//!   [`AccessPolicy::allow_users`] and to the members of [`AccessPolicy::allow_groups`] (the
//!   caller's primary group, or membership in `/etc/group`). The caller is identified by the
//!   kernel (`SO_PEERCRED`), never by anything it sends. Names are resolved through the running
//!   system's `/etc/passwd` and `/etc/group`, never through the hardware root.
//! - **Writes over TCP** need `Authorization: Bearer <token>` equal to the configured token
//!   (compared in constant time); with no token configured, writes over TCP are refused.
//!
//! The server ([`crate::serve`]) attaches the caller's [`Peer`] to every request; the HTTP side
//! reads it with `ConnectInfo<Peer>` and asks [`Access::check_write`].

use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use powerstack_cap::trust;

/// The caller of one request, as the transport knows it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Peer {
    /// A process on this node, connected to the Unix socket; credentials from `SO_PEERCRED`.
    Unix {
        /// Its user id.
        uid: u32,
        /// Its (effective, primary) group id.
        gid: u32,
        /// Its process id, when the kernel reports it.
        pid: Option<i32>,
    },
    /// A client connected over TCP.
    Tcp {
        /// Its address.
        addr: SocketAddr,
    },
    /// A caller the transport could not identify (credentials unreadable, or no transport
    /// information at all). It may read, never write.
    Unknown,
}

impl fmt::Display for Peer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Peer::Unix { uid, pid: Some(pid), .. } => write!(f, "uid {uid}, pid {pid}"),
            Peer::Unix { uid, pid: None, .. } => write!(f, "uid {uid}"),
            Peer::Tcp { addr } => write!(f, "tcp {addr}"),
            Peer::Unknown => f.write_str("unknown caller"),
        }
    }
}

/// A user or group of an allow list: all digits is an id, anything else a name.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Principal<'a> {
    Name(&'a str),
    Id(u32),
}

fn principal(s: &str) -> Principal<'_> {
    let s = s.trim();
    match s.parse::<u32>() {
        Ok(id) if s.bytes().all(|b| b.is_ascii_digit()) => Principal::Id(id),
        _ => Principal::Name(s),
    }
}

/// Who may write. Reads are always open.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct AccessPolicy {
    /// Users allowed to write over the Unix socket, besides root: login names, or uids (all
    /// digits).
    pub allow_users: Vec<String>,
    /// Groups whose members may write over the Unix socket: group names, or gids (all digits).
    pub allow_groups: Vec<String>,
    /// The bearer token for writes over TCP; `None` refuses every write over TCP.
    pub token: Option<String>,
    /// The agent's Unix socket, when it has one: where a refused write over TCP is sent.
    pub socket: Option<PathBuf>,
}

impl fmt::Debug for AccessPolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AccessPolicy")
            .field("allow_users", &self.allow_users)
            .field("allow_groups", &self.allow_groups)
            .field("token", &self.token.as_ref().map(|_| "<redacted>"))
            .field("socket", &self.socket)
            .finish()
    }
}

impl AccessPolicy {
    /// Decides whether `peer` may write. `authorization` is the request's `Authorization` header
    /// (used on TCP only); `accounts` resolves names.
    pub fn check_write(
        &self,
        peer: &Peer,
        authorization: Option<&str>,
        accounts: &dyn Accounts,
    ) -> Result<(), Denied> {
        match peer {
            Peer::Unix { uid, gid, .. } => self.check_unix(*uid, *gid, accounts),
            Peer::Tcp { .. } => self.check_tcp(authorization),
            Peer::Unknown => Err(Denied::Forbidden(
                "the caller could not be identified, so it may not change anything".into(),
            )),
        }
    }

    fn check_unix(&self, uid: u32, gid: u32, accounts: &dyn Accounts) -> Result<(), Denied> {
        if uid == 0 {
            return Ok(());
        }
        let user = accounts.user_by_uid(uid);
        let listed_user = self.allow_users.iter().any(|p| match principal(p) {
            Principal::Id(id) => id == uid,
            Principal::Name(n) => accounts.user_by_name(n).is_some_and(|u| u.uid == uid),
        });
        if listed_user {
            return Ok(());
        }
        let member = self.allow_groups.iter().any(|p| {
            let group = match principal(p) {
                Principal::Id(id) => {
                    accounts.group_by_gid(id).unwrap_or(Group { gid: id, members: Vec::new() })
                }
                Principal::Name(n) => match accounts.group_by_name(n) {
                    Some(g) => g,
                    None => return false,
                },
            };
            group.gid == gid
                || user
                    .as_ref()
                    .is_some_and(|u| u.gid == group.gid || group.members.contains(&u.name))
        });
        if member {
            return Ok(());
        }
        let who = match &user {
            Some(u) => format!("{} (uid {uid})", u.name),
            None => format!("uid {uid}"),
        };
        Err(Denied::Forbidden(format!(
            "{who} may not change controls on this node: over the Unix socket, writes are allowed to root, the users in allow_users and the members of allow_groups"
        )))
    }

    fn check_tcp(&self, authorization: Option<&str>) -> Result<(), Denied> {
        let Some(token) = self.token.as_deref() else {
            let disabled = "writes over TCP are disabled on this agent (no token_file configured)";
            return Err(Denied::Forbidden(match &self.socket {
                Some(p) => format!("{disabled}; use its Unix socket: --agent {}", p.display()),
                None => format!(
                    "{disabled} and it has no Unix socket: start it with --socket or --token-file"
                ),
            }));
        };
        let Some(given) = authorization.and_then(bearer) else {
            return Err(Denied::Unauthorized(
                "writes over TCP need an `Authorization: Bearer <token>` header".into(),
            ));
        };
        if constant_time_eq(given.as_bytes(), token.as_bytes()) {
            Ok(())
        } else {
            Err(Denied::Unauthorized("the bearer token is not the agent's token".into()))
        }
    }
}

/// The token of an `Authorization: Bearer <token>` header value (the scheme is case-insensitive).
fn bearer(header: &str) -> Option<&str> {
    let (scheme, token) = header.trim().split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
}

/// Compares two byte strings in time that depends only on their lengths.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    let mut diff = u8::from(a.len() != b.len());
    for i in 0..a.len().max(b.len()) {
        let x = a.get(i).copied().unwrap_or(0);
        let y = b.get(i).copied().unwrap_or(0);
        diff |= std::hint::black_box(x ^ y);
    }
    diff == 0
}

/// Why a write was refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Denied {
    /// The caller is known and not allowed (HTTP 403).
    #[error("{0}")]
    Forbidden(String),
    /// The caller did not prove who it is: no token, or a wrong one (HTTP 401).
    #[error("{0}")]
    Unauthorized(String),
}

/// A user account.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct User {
    /// Login name.
    pub name: String,
    /// User id.
    pub uid: u32,
    /// Primary group id.
    pub gid: u32,
}

/// A group.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Group {
    /// Group id.
    pub gid: u32,
    /// Supplementary members, by login name.
    pub members: Vec<String>,
}

/// Resolves users and groups (the system's files, or a fake in tests).
pub trait Accounts: Send + Sync + fmt::Debug {
    /// The user named `name`.
    fn user_by_name(&self, name: &str) -> Option<User>;
    /// The user with id `uid`.
    fn user_by_uid(&self, uid: u32) -> Option<User>;
    /// The group named `name`.
    fn group_by_name(&self, name: &str) -> Option<Group>;
    /// The group with id `gid`.
    fn group_by_gid(&self, gid: u32) -> Option<Group>;
}

/// Accounts from `passwd` and `group` files (by default the running system's `/etc/passwd` and
/// `/etc/group`, read at each lookup so that changes apply without a restart).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EtcFiles {
    /// The passwd file.
    pub passwd: PathBuf,
    /// The group file.
    pub group: PathBuf,
}

impl Default for EtcFiles {
    fn default() -> Self {
        EtcFiles { passwd: PathBuf::from("/etc/passwd"), group: PathBuf::from("/etc/group") }
    }
}

impl EtcFiles {
    fn users(&self) -> Vec<User> {
        let text = std::fs::read_to_string(&self.passwd).unwrap_or_default();
        text.lines()
            .filter(|l| !l.starts_with('#'))
            .filter_map(|l| {
                let f: Vec<&str> = l.split(':').collect();
                Some(User {
                    name: (*f.first()?).to_string(),
                    uid: f.get(2)?.parse().ok()?,
                    gid: f.get(3)?.parse().ok()?,
                })
            })
            .collect()
    }

    fn groups(&self) -> Vec<(String, Group)> {
        let text = std::fs::read_to_string(&self.group).unwrap_or_default();
        text.lines()
            .filter(|l| !l.starts_with('#'))
            .filter_map(|l| {
                let f: Vec<&str> = l.split(':').collect();
                let members = f
                    .get(3)
                    .map(|m| m.split(',').map(str::trim).filter(|s| !s.is_empty()))
                    .into_iter()
                    .flatten()
                    .map(str::to_string)
                    .collect();
                Some(((*f.first()?).to_string(), Group { gid: f.get(2)?.parse().ok()?, members }))
            })
            .collect()
    }
}

impl Accounts for EtcFiles {
    fn user_by_name(&self, name: &str) -> Option<User> {
        self.users().into_iter().find(|u| u.name == name)
    }
    fn user_by_uid(&self, uid: u32) -> Option<User> {
        self.users().into_iter().find(|u| u.uid == uid)
    }
    fn group_by_name(&self, name: &str) -> Option<Group> {
        self.groups().into_iter().find(|(n, _)| n == name).map(|(_, g)| g)
    }
    fn group_by_gid(&self, gid: u32) -> Option<Group> {
        self.groups().into_iter().find(|(_, g)| g.gid == gid).map(|(_, g)| g)
    }
}

/// The write policy with its account resolver: what the HTTP side consults
/// ([`crate::http::app`] takes one, or an [`AccessPolicy`], which resolves names through the
/// system's files).
#[derive(Clone, Debug)]
pub struct Access {
    /// The policy.
    pub policy: Arc<AccessPolicy>,
    /// Resolves user and group names.
    pub accounts: Arc<dyn Accounts>,
}

impl Default for Access {
    /// Root only, over the Unix socket.
    fn default() -> Self {
        Access::new(AccessPolicy::default())
    }
}

impl From<AccessPolicy> for Access {
    fn from(policy: AccessPolicy) -> Access {
        Access::new(policy)
    }
}

impl Access {
    /// `policy`, with names resolved through the system's `/etc/passwd` and `/etc/group`.
    pub fn new(policy: AccessPolicy) -> Access {
        Access { policy: Arc::new(policy), accounts: Arc::new(EtcFiles::default()) }
    }

    /// `policy`, with names resolved by `accounts`.
    pub fn with_accounts(policy: AccessPolicy, accounts: Arc<dyn Accounts>) -> Access {
        Access { policy: Arc::new(policy), accounts }
    }

    /// Decides whether `peer` may write (see [`AccessPolicy::check_write`]).
    pub fn check_write(&self, peer: &Peer, authorization: Option<&str>) -> Result<(), Denied> {
        self.policy.check_write(peer, authorization, self.accounts.as_ref())
    }

    /// What `peer` may read (see [`Tier`]): the one place the read tiers are decided. A caller
    /// allowed to write reads everything; anyone else reads coarse figures and only its own
    /// jobs' labels.
    pub fn tier(&self, peer: &Peer, authorization: Option<&str>) -> Tier {
        if self.check_write(peer, authorization).is_ok() {
            return Tier::Privileged;
        }
        match peer {
            Peer::Unix { uid, .. } => Tier::Unprivileged {
                uid: Some(*uid),
                login: self.accounts.user_by_uid(*uid).map(|u| u.name),
            },
            Peer::Tcp { .. } | Peer::Unknown => Tier::Unprivileged { uid: None, login: None },
        }
    }

    /// How a peer is named in the journal and in messages: with its user name when known.
    pub fn describe(&self, peer: &Peer) -> String {
        match peer {
            Peer::Unix { uid, pid, .. } => {
                let name = self.accounts.user_by_uid(*uid).map(|u| u.name);
                let who = match name {
                    Some(n) => format!("{n} (uid {uid})"),
                    None => format!("uid {uid}"),
                };
                match pid {
                    Some(p) => format!("{who}, pid {p}"),
                    None => who,
                }
            }
            other => other.to_string(),
        }
    }
}

/// What a caller may read.
///
/// - **Privileged** (uid 0 and the users and groups allowed to write, on the Unix socket; a TCP
///   caller with the bearer token): everything, at full resolution.
/// - **Unprivileged** (everyone else): power and energy only as of the last whole second of the
///   agent's clock, averaged over at least a second and rounded (see [`crate::coarse`]), so that
///   the agent does not reopen what Linux closed when it made `energy_uj` root-only
///   (CVE-2020-8694, PLATYPUS); no cap writer's command line, pid or user; job labels only for
///   the caller's own jobs (its login name or uid as the job's `user`), none over TCP.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Tier {
    /// Full detail.
    Privileged,
    /// Coarse figures, no one else's details.
    Unprivileged {
        /// The caller's uid, on the Unix socket.
        uid: Option<u32>,
        /// Its login name, when known.
        login: Option<String>,
    },
}

impl Tier {
    /// Whether the caller gets full resolution and everyone's details.
    pub fn is_privileged(&self) -> bool {
        matches!(self, Tier::Privileged)
    }

    /// Whether the caller may see the labels of a job whose `user` label is `user`.
    pub fn sees_labels_of(&self, user: Option<&str>) -> bool {
        match self {
            Tier::Privileged => true,
            Tier::Unprivileged { uid: Some(uid), login } => user.is_some_and(|u| {
                login.as_deref() == Some(u) || principal(u) == Principal::Id(*uid)
            }),
            Tier::Unprivileged { uid: None, .. } => false,
        }
    }
}

/// The largest token file read: a token is a line, not a file of this size.
pub const TOKEN_MAX_BYTES: u64 = 64 << 10;

/// A token file that cannot be used.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct TokenError(pub String);

/// Reads the bearer token from `path`: the file's content, trimmed. Refuses a file, or a
/// directory holding it, that anyone but this process's user or root owns or could write, a file
/// that group or others can access (see [`powerstack_cap::trust`]), and an empty one.
pub fn load_token(path: &Path) -> Result<String, TokenError> {
    let shown = path.display();
    trust::check_with_dir(path, trust::Kind::Secret, "token file")
        .map_err(|e| TokenError(e.to_string()))?;
    let text = powerstack_file::read_to_string(path, "token file", TOKEN_MAX_BYTES)
        .map_err(|e| TokenError(e.to_string()))?;
    let token = text.trim();
    if token.is_empty() {
        return Err(TokenError(format!(
            "token file {shown} is empty: write a random token into it (openssl rand -hex 32 > {shown})"
        )));
    }
    Ok(token.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn principals_parse_ids_and_names() {
        assert_eq!(principal("1000"), Principal::Id(1000));
        assert_eq!(principal(" hpcadm "), Principal::Name("hpcadm"));
        assert_eq!(principal("+5"), Principal::Name("+5"));
    }

    #[test]
    fn bearer_tokens_are_parsed_and_compared_exactly() {
        assert_eq!(bearer("Bearer abc"), Some("abc"));
        assert_eq!(bearer("bearer  abc "), Some("abc"));
        assert_eq!(bearer("Basic abc"), None);
        assert_eq!(bearer("Bearer"), None);
        assert!(constant_time_eq(b"secret", b"secret"));
        assert!(!constant_time_eq(b"secret", b"secreT"));
        assert!(!constant_time_eq(b"secret", b"secret2"));
        assert!(!constant_time_eq(b"", b"x"));
    }

    #[test]
    fn a_refused_write_over_tcp_points_at_the_socket_the_agent_has() {
        let tcp = Peer::Tcp { addr: "127.0.0.1:5".parse().unwrap() };
        let accounts = EtcFiles::default();
        let with = AccessPolicy { socket: Some("/tmp/x/agent.sock".into()), ..Default::default() };
        let e = with.check_write(&tcp, None, &accounts).unwrap_err().to_string();
        assert!(e.ends_with("use its Unix socket: --agent /tmp/x/agent.sock"), "{e}");
        let e = AccessPolicy::default().check_write(&tcp, None, &accounts).unwrap_err().to_string();
        assert!(e.contains("has no Unix socket") && !e.contains("use its"), "{e}");
    }

    #[test]
    fn the_token_is_not_in_debug_output() {
        let p = AccessPolicy { token: Some("hunter2".into()), ..AccessPolicy::default() };
        assert!(!format!("{p:?}").contains("hunter2"));
    }
}
