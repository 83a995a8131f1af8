//! Who owns a job: the runtimes of this process that are recording right
//! now, and whether a recorded owner (runtime id + host process) is alive.
//! Process identity itself lives in [`crate::process::identity`].

use std::sync::Mutex;

use uuid::Uuid;

pub(crate) use crate::process::identity::ProcId;
use crate::process::identity::{pid_exists, stat};

/// Runtimes of this process that are recording right now (by owner id).
static LIVE_OWNERS: Mutex<Vec<Uuid>> = Mutex::new(Vec::new());

/// Mark a recorder of this process as live.
pub(crate) fn register_owner(owner: Uuid) {
    if let Ok(mut v) = LIVE_OWNERS.lock() {
        v.push(owner);
    }
}

/// A recorder of this process stopped.
pub(crate) fn unregister_owner(owner: Uuid) {
    if let Ok(mut v) = LIVE_OWNERS.lock() {
        v.retain(|o| *o != owner);
    }
}

/// Is the runtime that owns a job still running? `owner`/`host` are what
/// was recorded with the job (`None` for jobs written through the public
/// [`Store`](super::Store) API).
pub(crate) fn owner_alive(owner: Option<Uuid>, host: Option<&ProcId>) -> bool {
    let (Some(owner), Some(host)) = (owner, host) else {
        return false;
    };
    if host.pid == std::process::id() && host.start == stat(host.pid).map(|s| s.start) {
        // Our own process: alive iff that runtime's recorder still is.
        return LIVE_OWNERS
            .lock()
            .map(|v| v.contains(&owner))
            .unwrap_or(true);
    }
    match host.alive() {
        Some(alive) => alive,
        // Cannot verify (not Linux): alive if a process with that pid exists.
        None => pid_exists(host.pid),
    }
}
