//! Process identity for crash recovery: who owns a job, is that owner still
//! alive, and may a stranded job's process group be killed.
//!
//! A PID alone is not an identity (PIDs are reused), so every PID we record
//! comes with the process's start time — on Linux field 22 of
//! `/proc/<pid>/stat` (clock ticks since boot) plus the boot id, elsewhere
//! `None`. A process is only ever signalled when its start time and boot id
//! match what was recorded; when that cannot be verified, nothing is killed.

use std::sync::Mutex;

use uuid::Uuid;

/// What `/proc/<pid>/stat` says about a process.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ProcStat {
    /// Field 5: process group id.
    pub pgrp: i64,
    /// Field 22: start time in clock ticks since boot.
    pub start: i64,
    /// Field 3 is `Z` (zombie) or `X` (dead).
    pub dead: bool,
}

/// Read `/proc/<pid>/stat` (Linux only; `None` elsewhere or if the process
/// does not exist).
pub(crate) fn stat(pid: u32) -> Option<ProcStat> {
    #[cfg(target_os = "linux")]
    {
        let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
        parse_stat(&text)
    }
    #[cfg(not(target_os = "linux"))]
    {
        let _ = pid;
        None
    }
}

/// Parse the contents of a `/proc/<pid>/stat` file. The command name (field
/// 2) may contain spaces and parentheses, so fields are counted from the
/// last `)`.
#[cfg_attr(not(target_os = "linux"), allow(dead_code))]
pub(crate) fn parse_stat(text: &str) -> Option<ProcStat> {
    let rest = &text[text.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // fields[0] is field 3 (state), fields[2] field 5, fields[19] field 22.
    let state = fields.first()?;
    Some(ProcStat {
        pgrp: fields.get(2)?.parse().ok()?,
        start: fields.get(19)?.parse().ok()?,
        dead: matches!(*state, "Z" | "X"),
    })
}

/// The id of the current boot (Linux), so start times from another boot are
/// never compared.
pub(crate) fn boot_id() -> Option<String> {
    #[cfg(target_os = "linux")]
    {
        std::fs::read_to_string("/proc/sys/kernel/random/boot_id")
            .ok()
            .map(|s| s.trim().to_string())
    }
    #[cfg(not(target_os = "linux"))]
    {
        None
    }
}

/// A recorded process: pid, start time, boot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ProcId {
    pub pid: u32,
    pub start: Option<i64>,
    pub boot: Option<String>,
}

impl ProcId {
    /// Identify a live process now.
    pub fn of(pid: u32) -> Self {
        ProcId {
            pid,
            start: stat(pid).map(|s| s.start),
            boot: boot_id(),
        }
    }

    /// `Some(true)` if this exact process (not a reuse of its pid) is still
    /// alive, `Some(false)` if it certainly is not, `None` if that cannot be
    /// told.
    pub fn alive(&self) -> Option<bool> {
        let (Some(start), Some(boot)) = (self.start, &self.boot) else {
            return None;
        };
        if boot_id().as_deref() != Some(boot.as_str()) {
            return Some(false);
        }
        match stat(self.pid) {
            Some(s) => Some(!s.dead && s.start == start),
            // No such process (on a system where we could read /proc).
            None => Some(false),
        }
    }
}

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

fn pid_exists(pid: u32) -> bool {
    #[cfg(unix)]
    {
        let Ok(pid) = libc::pid_t::try_from(pid) else {
            return false;
        };
        // SAFETY: signal 0 only checks that the process exists.
        pid > 0 && unsafe { libc::kill(pid, 0) == 0 }
    }
    #[cfg(not(unix))]
    {
        let _ = pid;
        false
    }
}

/// Kill the process group led by `leader` if — and only if — the leader is
/// verifiably the process that was recorded (same start time, same boot,
/// still leading its group). Returns `true` if a signal was sent.
pub(crate) fn kill_stranded_group(leader: &ProcId) -> bool {
    if leader.alive() != Some(true) {
        return false;
    }
    match stat(leader.pid) {
        Some(s) if s.pgrp == i64::from(leader.pid) => {}
        _ => return false,
    }
    #[cfg(unix)]
    {
        let Ok(pgid) = libc::pid_t::try_from(leader.pid) else {
            return false;
        };
        // SAFETY: plain kill(2) on a verified process group.
        pgid > 1 && unsafe { libc::kill(-pgid, libc::SIGKILL) == 0 }
    }
    #[cfg(not(unix))]
    {
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_stat_with_odd_command_names() {
        let text =
            "1234 (a) b (c)) S 1 1234 1234 0 -1 4194560 100 0 0 0 1 2 0 0 20 0 1 0 987654 1000 100";
        let s = parse_stat(text).expect("parse");
        assert_eq!(s.pgrp, 1234);
        assert_eq!(s.start, 987654);
        assert!(!s.dead);
        assert!(parse_stat("garbage").is_none());
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn own_process_is_alive_and_a_fake_start_time_is_not() {
        let me = ProcId::of(std::process::id());
        assert_eq!(me.alive(), Some(true));
        let fake = ProcId {
            start: me.start.map(|s| s + 1),
            ..me.clone()
        };
        assert_eq!(fake.alive(), Some(false));
        assert!(!kill_stranded_group(&fake));
    }
}
