//! Counting connections: the limits derived from the open-file limit, and the [`Gate`] every
//! connection passes before it is served.

use std::collections::HashMap;
use std::io;
use std::sync::{Arc, Mutex};

use crate::access::Peer;

/// The most connections one caller (a uid on the socket, an address on TCP) may hold, unless it
/// is privileged.
pub const PER_PEER_CONNECTIONS: usize = 64;

/// Open files kept for the agent's own use (hardware files, the state directory, the runtime)
/// below the open-file limit; the rest may be connections.
pub const OTHER_OPEN_FILES: u64 = 256;

/// The fewest connections the agent serves, whatever the open-file limit.
pub const MIN_CONNECTIONS: usize = 32;

/// The most connections the agent serves, whatever the open-file limit (each costs a task and
/// its buffers).
pub const MAX_CONNECTIONS: usize = 4096;

/// The share of the connections kept for privileged callers: one in this many.
pub const RESERVED_SHARE: usize = 8;

/// How many connections may be served at once, and by whom.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ConnectionLimits {
    /// All connections, privileged or not.
    pub total: usize,
    /// Of `total`, how many only privileged callers may use.
    pub reserved: usize,
    /// The most one unprivileged caller may hold.
    pub per_peer: usize,
}

impl ConnectionLimits {
    /// The limits for a process allowed `open_files` open files: all but [`OTHER_OPEN_FILES`]
    /// (within [`MIN_CONNECTIONS`] and [`MAX_CONNECTIONS`]), one in [`RESERVED_SHARE`] of them
    /// reserved, [`PER_PEER_CONNECTIONS`] per caller.
    pub fn for_open_files(open_files: u64) -> ConnectionLimits {
        let usable =
            usize::try_from(open_files.saturating_sub(OTHER_OPEN_FILES)).unwrap_or(MAX_CONNECTIONS);
        let total = usable.clamp(MIN_CONNECTIONS, MAX_CONNECTIONS);
        ConnectionLimits {
            total,
            reserved: total / RESERVED_SHARE,
            per_peer: PER_PEER_CONNECTIONS.min(total - total / RESERVED_SHARE),
        }
    }
}

/// The open-file limit (soft, hard) of this process.
pub fn open_files_limit() -> io::Result<(u64, u64)> {
    let mut lim = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: `lim` is a valid, writable rlimit.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok((lim.rlim_cur, lim.rlim_max))
}

/// Raises the soft open-file limit to the hard one (at most 2^20 when the hard one is
/// unlimited); returns the soft limit before and after. A limit that cannot be raised is kept.
pub fn raise_open_files_limit() -> io::Result<(u64, u64)> {
    let (soft, hard) = open_files_limit()?;
    let wanted = if hard == libc::RLIM_INFINITY { 1 << 20 } else { hard };
    if wanted <= soft {
        return Ok((soft, soft));
    }
    let lim = libc::rlimit { rlim_cur: wanted, rlim_max: hard };
    // SAFETY: `lim` is a valid rlimit; raising the soft limit up to the hard one is allowed.
    if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &lim) } != 0 {
        return Ok((soft, soft));
    }
    Ok((soft, wanted))
}

/// Who a connection is counted against.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
enum PeerKey {
    Uid(u32),
    Ip(std::net::IpAddr),
    Unknown,
}

fn key(peer: &Peer) -> PeerKey {
    match peer {
        Peer::Unix { uid, .. } => PeerKey::Uid(*uid),
        Peer::Tcp { addr } => PeerKey::Ip(addr.ip()),
        Peer::Unknown => PeerKey::Unknown,
    }
}

/// What [`Gate::admit`] decided.
#[derive(Debug)]
pub enum Admission {
    /// Served; the slot is given back when dropped.
    Admitted(Slot),
    /// Over an unprivileged limit, and the connection may still use the reserve: ask whether the
    /// caller is privileged, and ask again.
    AskPrivilege,
    /// Refused, with the one-line reason.
    Refused(String),
}

/// Counts the connections being served, in all and per caller.
#[derive(Debug)]
pub struct Gate {
    limits: ConnectionLimits,
    counts: Mutex<Counts>,
}

#[derive(Debug, Default)]
struct Counts {
    total: usize,
    per_peer: HashMap<PeerKey, usize>,
}

impl Gate {
    /// A gate with no connection yet.
    pub fn new(limits: ConnectionLimits) -> Arc<Gate> {
        Arc::new(Gate { limits, counts: Mutex::new(Counts::default()) })
    }

    /// The limits it keeps.
    pub fn limits(&self) -> ConnectionLimits {
        self.limits
    }

    /// The connections being served.
    pub fn open(&self) -> usize {
        crate::http::lock(&self.counts).total
    }

    /// Decides on a new connection of `peer`; `privileged` is whether it may use the reserve and
    /// go past the per-caller limit, when known.
    pub fn admit(self: &Arc<Gate>, peer: &Peer, privileged: Option<bool>) -> Admission {
        let limits = self.limits;
        let k = key(peer);
        let mut counts = crate::http::lock(&self.counts);
        let mine = counts.per_peer.get(&k).copied().unwrap_or(0);
        let shared_room = counts.total < limits.total - limits.reserved;
        let admitted = if mine < limits.per_peer && shared_room {
            true
        } else if counts.total >= limits.total {
            false
        } else {
            match privileged {
                Some(p) => p,
                None => return Admission::AskPrivilege,
            }
        };
        if !admitted {
            let reason = if counts.total >= limits.total {
                format!("the agent serves {} connections, its limit: try again later", limits.total)
            } else if mine >= limits.per_peer {
                let who = match &k {
                    PeerKey::Uid(uid) => format!("uid {uid}"),
                    PeerKey::Ip(ip) => ip.to_string(),
                    PeerKey::Unknown => "an unidentified caller".to_string(),
                };
                format!(
                    "{who} holds {mine} connections, the limit per caller: close some and try again"
                )
            } else {
                format!(
                    "the agent serves {} connections; the last {} are kept for root and the users allowed to write: try again later",
                    counts.total, limits.reserved
                )
            };
            return Admission::Refused(reason);
        }
        counts.total += 1;
        *counts.per_peer.entry(k.clone()).or_insert(0) += 1;
        Admission::Admitted(Slot { gate: self.clone(), key: k })
    }
}

/// One admitted connection; given back when dropped.
#[derive(Debug)]
pub struct Slot {
    gate: Arc<Gate>,
    key: PeerKey,
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut counts = crate::http::lock(&self.gate.counts);
        counts.total = counts.total.saturating_sub(1);
        if let Some(n) = counts.per_peer.get_mut(&self.key) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                counts.per_peer.remove(&self.key);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user(uid: u32) -> Peer {
        Peer::Unix { uid, gid: uid, pid: None }
    }

    #[test]
    fn limits_follow_the_open_file_limit() {
        let at_1024 = ConnectionLimits::for_open_files(1024);
        assert_eq!(at_1024, ConnectionLimits { total: 768, reserved: 96, per_peer: 64 });
        assert_eq!(ConnectionLimits::for_open_files(100).total, MIN_CONNECTIONS);
        assert_eq!(ConnectionLimits::for_open_files(u64::MAX).total, MAX_CONNECTIONS);
        let low = ConnectionLimits::for_open_files(0);
        assert!(low.per_peer <= low.total - low.reserved && low.per_peer > 0);
    }

    #[test]
    fn the_reserve_is_for_privileged_callers_and_slots_come_back() {
        let gate = Gate::new(ConnectionLimits { total: 10, reserved: 3, per_peer: 4 });
        let admitted = |a: Admission| match a {
            Admission::Admitted(slot) => slot,
            other => panic!("refused: {other:?}"),
        };
        // One caller: up to its own limit; then it may only go on if privileged.
        let mut held: Vec<Slot> =
            (0..4).map(|_| admitted(gate.admit(&user(1000), Some(false)))).collect();
        assert!(matches!(gate.admit(&user(1000), None), Admission::AskPrivilege));
        let Admission::Refused(why) = gate.admit(&user(1000), Some(false)) else { panic!() };
        assert!(why.contains("uid 1000 holds 4 connections"), "{why}");
        // Others fill the shared part (7 = 10 - 3).
        held.extend((0..3).map(|_| admitted(gate.admit(&user(1001), Some(false)))));
        let tcp = Peer::Tcp { addr: "127.0.0.1:1".parse().unwrap() };
        let Admission::Refused(why) = gate.admit(&tcp, Some(false)) else { panic!() };
        assert!(why.contains("kept for root"), "{why}");
        // Root takes the reserve, past any per-caller limit, up to the total.
        held.extend((0..3).map(|_| admitted(gate.admit(&user(0), Some(true)))));
        assert_eq!(gate.open(), 10);
        let Admission::Refused(why) = gate.admit(&user(0), Some(true)) else { panic!() };
        assert!(why.contains("its limit"), "{why}");
        // Slots come back when their connections end.
        held.truncate(5);
        assert_eq!(gate.open(), 5);
        drop(admitted(gate.admit(&tcp, Some(false))));
        drop(held);
        assert_eq!(gate.open(), 0);
        assert!(gate.counts.lock().unwrap().per_peer.is_empty());
    }
}
