//! Process identity: is the process recorded as pid N still that process,
//! and may its process group be signalled. Used by the driver (kill timers
//! that fire after the leader was reaped), by crash recovery and by
//! `execra cancel`.
//!
//! A PID alone is not an identity (PIDs are reused), so every PID we record
//! comes with the process's start time — on Linux field 22 of
//! `/proc/<pid>/stat` (clock ticks since boot) plus the boot id, elsewhere
//! `None`. A process is only ever signalled when its start time and boot id
//! match what was recorded; when that cannot be verified, nothing is killed.
#![cfg_attr(not(unix), allow(dead_code))]

/// What `/proc/<pid>/stat` says about a process.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ProcStat {
    /// Field 4: parent process id.
    pub ppid: i64,
    /// Field 5: process group id.
    pub pgrp: i64,
    /// Field 22: start time in clock ticks since boot.
    pub start: i64,
    /// Field 3 is `Z` (zombie) or `X` (dead).
    pub dead: bool,
    /// Field 3 is `T`: stopped by a signal (`SIGSTOP`, a pause).
    pub stopped: bool,
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
        ppid: fields.get(1)?.parse().ok()?,
        pgrp: fields.get(2)?.parse().ok()?,
        start: fields.get(19)?.parse().ok()?,
        dead: matches!(*state, "Z" | "X"),
        stopped: *state == "T",
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

pub(crate) fn pid_exists(pid: u32) -> bool {
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

/// Leader identities taken right after spawn, waiting for the history
/// writer (which runs later, when the pid may already be reaped and
/// reused).
static LEADERS: std::sync::Mutex<Vec<ProcId>> = std::sync::Mutex::new(Vec::new());

/// Keep a just-spawned leader's identity for [`leader_identity`].
pub(crate) fn remember_leader(p: ProcId) {
    if let Ok(mut v) = LEADERS.lock() {
        // Bounded: identities nobody asked for (no history) age out.
        if v.len() >= 4096 {
            v.remove(0);
        }
        v.push(p);
    }
}

/// The identity of leader `pid` as taken right after spawn (removing it),
/// else as it reads now.
pub(crate) fn leader_identity(pid: u32) -> ProcId {
    if let Ok(mut v) = LEADERS.lock() {
        if let Some(i) = v.iter().rposition(|p| p.pid == pid) {
            return v.remove(i);
        }
    }
    ProcId::of(pid)
}

/// Send `sig` to the process group led by `leader` — the one place a
/// process group is signalled. Nothing is sent when the group can no longer
/// be ours:
///
/// - the boot id differs from the recorded one (another boot);
/// - a process with the leader's pid exists but started at another time
///   (the pid was reused, and may now lead someone else's group).
///
/// When no process has the leader's pid any more, the signal is sent: while
/// any member of the old group lives, the kernel keeps that number allocated
/// (it is still a process group id), so the signal reaches only our
/// leftovers, or nobody. Returns `true` if a signal was delivered.
pub(crate) fn signal_group(leader: &ProcId, sig: i32) -> bool {
    if let (Some(boot), Some(now)) = (&leader.boot, boot_id()) {
        if *boot != now {
            return false;
        }
    }
    if let (Some(start), Some(s)) = (leader.start, stat(leader.pid)) {
        if s.start != start {
            return false;
        }
    }
    #[cfg(unix)]
    {
        let Ok(pgid) = libc::pid_t::try_from(leader.pid) else {
            return false;
        };
        // SAFETY: kill(2) with a negative pid signals a process group; it has
        // no memory-safety preconditions.
        pgid > 1 && unsafe { libc::kill(-pgid, sig) == 0 }
    }
    #[cfg(not(unix))]
    {
        let _ = sig;
        false
    }
}

/// The process-group path's whole-tree signal: `sig` to the group led by
/// `leader` and to every live descendant of the leader (walked before the
/// group is signalled, since the leader may die of it and its children
/// re-parent out of reach), plus every process in `seen` that is still the
/// same process. Descendants found are added to `seen`. Returns `true` if
/// anything was signalled.
pub(crate) fn signal_tree(leader: &ProcId, sig: i32, seen: &mut Vec<ProcId>) -> bool {
    if leader.alive() == Some(true) {
        for d in descendants(leader.pid) {
            if !seen.contains(&d) {
                seen.push(d);
            }
        }
    }
    let mut any = signal_group(leader, sig);
    seen.retain(|p| {
        let hit = signal_process(p, sig);
        any |= hit;
        hit || p.alive() == Some(true)
    });
    any
}

/// Kill what is left of a stranded job's process group (crash recovery):
/// [`signal_group`] with `SIGKILL`, but only when the recorded identity can
/// be checked (start time and boot id known). Returns `true` if a signal was
/// sent.
pub(crate) fn kill_stranded_group(leader: &ProcId) -> bool {
    if leader.start.is_none() || leader.boot.is_none() {
        return false;
    }
    #[cfg(unix)]
    {
        signal_group(leader, libc::SIGKILL)
    }
    #[cfg(not(unix))]
    {
        false
    }
}

/// Every live process (other than this one) whose environment holds the
/// exact entry `EXECRA_JOB_ID=<job>` (see [`super::JOB_ID_VAR`]), with its
/// identity (Linux; empty elsewhere). Reads `/proc/<pid>/environ` — the
/// environment the process was started with — skipping what cannot be read
/// (another user's process, one that just exited) and zombies. A scan of
/// `/proc`: it runs only when stopping a tree without a cgroup and during
/// crash recovery.
pub(crate) fn marked(job: &str) -> Vec<ProcId> {
    #[cfg(target_os = "linux")]
    {
        let entry = format!("{}={job}", super::JOB_ID_VAR);
        let Ok(dir) = std::fs::read_dir("/proc") else {
            return Vec::new();
        };
        let me = std::process::id();
        let boot = boot_id();
        let mut out = Vec::new();
        for e in dir.flatten() {
            let Some(pid) = e.file_name().to_str().and_then(|n| n.parse::<u32>().ok()) else {
                continue;
            };
            if pid == me {
                continue;
            }
            let Ok(env) = std::fs::read(format!("/proc/{pid}/environ")) else {
                continue;
            };
            if !env.split(|b| *b == 0).any(|kv| kv == entry.as_bytes()) {
                continue;
            }
            let Some(s) = stat(pid) else {
                continue;
            };
            if s.dead {
                continue;
            }
            out.push(ProcId {
                pid,
                start: Some(s.start),
                boot: boot.clone(),
            });
        }
        out
    }
    #[cfg(not(target_os = "linux"))]
    {
        let _ = job;
        Vec::new()
    }
}

/// Add the live processes marked with `job` ([`marked`]) to `seen`.
/// Returns how many were new.
pub(crate) fn add_marked(job: &str, seen: &mut Vec<ProcId>) -> usize {
    let mut new = 0;
    for p in marked(job) {
        if !seen.contains(&p) {
            seen.push(p);
            new += 1;
        }
    }
    new
}

/// `SIGKILL` every process marked with `job` ([`marked`]), rescanning (a
/// few rounds) for children forked between a scan and the kill. Returns
/// how many processes were killed.
#[cfg(unix)]
pub(crate) fn kill_marked(job: &str) -> usize {
    let mut killed = 0;
    for _ in 0..4 {
        let found = marked(job);
        if found.is_empty() {
            break;
        }
        killed += found
            .iter()
            .filter(|p| signal_process(p, libc::SIGKILL))
            .count();
    }
    killed
}

/// The children of `parent` (Linux; empty elsewhere), zombies included,
/// with what their `stat` says.
#[cfg_attr(not(target_os = "linux"), allow(dead_code))]
pub(crate) fn children_of(parent: u32) -> Vec<(u32, ProcStat)> {
    #[cfg(target_os = "linux")]
    {
        let Ok(dir) = std::fs::read_dir("/proc") else {
            return Vec::new();
        };
        dir.flatten()
            .filter_map(|e| e.file_name().to_str().and_then(|n| n.parse::<u32>().ok()))
            .filter_map(|pid| Some((pid, stat(pid)?)))
            .filter(|(_, s)| s.ppid == i64::from(parent))
            .collect()
    }
    #[cfg(not(target_os = "linux"))]
    {
        let _ = parent;
        Vec::new()
    }
}

/// Every live process whose parent chain leads to `root` (Linux; empty
/// elsewhere), with its identity.
pub(crate) fn descendants(root: u32) -> Vec<ProcId> {
    #[cfg(target_os = "linux")]
    {
        let Ok(dir) = std::fs::read_dir("/proc") else {
            return Vec::new();
        };
        let mut parent_of: Vec<(u32, u32, i64)> = Vec::new();
        for e in dir.flatten() {
            let Some(pid) = e.file_name().to_str().and_then(|n| n.parse::<u32>().ok()) else {
                continue;
            };
            let Ok(text) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
                continue;
            };
            let Some(rest) = text.rfind(')').map(|i| &text[i + 1..]) else {
                continue;
            };
            let f: Vec<&str> = rest.split_whitespace().collect();
            let (Some(ppid), Some(start)) = (
                f.get(1).and_then(|v| v.parse::<u32>().ok()),
                f.get(19).and_then(|v| v.parse::<i64>().ok()),
            ) else {
                continue;
            };
            parent_of.push((pid, ppid, start));
        }
        let boot = boot_id();
        let mut out: Vec<ProcId> = Vec::new();
        let mut frontier = vec![root];
        while let Some(p) = frontier.pop() {
            for &(pid, ppid, start) in &parent_of {
                if ppid == p && pid != root && !out.iter().any(|o| o.pid == pid) {
                    out.push(ProcId {
                        pid,
                        start: Some(start),
                        boot: boot.clone(),
                    });
                    frontier.push(pid);
                }
            }
        }
        out
    }
    #[cfg(not(target_os = "linux"))]
    {
        let _ = root;
        Vec::new()
    }
}

/// Send `sig` to one recorded process if it is still that process (same
/// start time; Linux). Returns `true` if a signal was delivered.
pub(crate) fn signal_process(p: &ProcId, sig: i32) -> bool {
    if p.alive() != Some(true) {
        return false;
    }
    #[cfg(unix)]
    {
        let Ok(pid) = libc::pid_t::try_from(p.pid) else {
            return false;
        };
        // SAFETY: kill(2) on a verified pid.
        pid > 1 && unsafe { libc::kill(pid, sig) == 0 }
    }
    #[cfg(not(unix))]
    {
        let _ = sig;
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
        assert_eq!(s.ppid, 1);
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

    /// A kill timer that fires after our group is gone must not hit a
    /// group that reuses its id. Simulated with a second group whose leader
    /// has the recorded pid but another start time.
    #[cfg(target_os = "linux")]
    #[test]
    fn a_reused_group_id_is_never_signalled() {
        use std::os::unix::process::CommandExt;
        let mut other = std::process::Command::new("sleep")
            .arg("30")
            .process_group(0)
            .spawn()
            .expect("spawn sleep");
        let now = ProcId::of(other.id());
        let recorded = ProcId {
            start: now.start.map(|s| s - 1),
            ..now.clone()
        };
        assert!(!signal_group(&recorded, libc::SIGKILL));
        assert!(!kill_stranded_group(&recorded));
        assert!(
            other.try_wait().expect("try_wait").is_none(),
            "the other group was signalled"
        );
        // Its own identity does reach it.
        assert!(signal_group(&now, libc::SIGKILL));
        let status = other.wait().expect("wait");
        assert!(!status.success());
    }

    /// Only the exact entry matches (not a longer id sharing a prefix),
    /// every process carrying it is found, and a kill reaches them all.
    #[cfg(target_os = "linux")]
    #[test]
    fn marked_processes_are_found_by_their_exact_entry() {
        let job = crate::job::JobId::new().to_string();
        let spawn = |value: String| {
            std::process::Command::new("sh")
                .args(["-c", "sleep 30 & wait"])
                .env(super::super::JOB_ID_VAR, value)
                .spawn()
                .expect("spawn sh")
        };
        let mut ours = spawn(job.clone());
        let mut other = spawn(format!("{job}0"));
        // Wait until both shells' `sleep` children exist (each shell and
        // its child carry the marker), so neither count below races them.
        let wait_for_two = |marker: &str| {
            let mut found = Vec::new();
            for _ in 0..1000 {
                found = marked(marker);
                if found.len() >= 2 {
                    break;
                }
                std::thread::sleep(std::time::Duration::from_millis(10));
            }
            found
        };
        let found = wait_for_two(&job);
        assert_eq!(
            wait_for_two(&format!("{job}0")).len(),
            2,
            "the near miss's sleep started"
        );
        let pids: Vec<u32> = found.iter().map(|p| p.pid).collect();
        assert_eq!(found.len(), 2, "{found:?}");
        assert!(pids.contains(&ours.id()), "{pids:?}");
        assert!(!pids.contains(&other.id()), "{pids:?}");
        assert!(found.iter().all(|p| p.alive() == Some(true)));
        assert!(kill_marked(&job) >= 2);
        assert!(!ours.wait().expect("wait").success());
        assert!(
            other.try_wait().expect("try_wait").is_none(),
            "a near miss was killed"
        );
        // The near miss's sleep would outlive its shell: kill both by
        // their own marker.
        assert!(kill_marked(&format!("{job}0")) >= 2);
        let _ = other.wait();
        assert!(marked(&job).is_empty());
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn descendants_are_found_through_the_parent_chain() {
        let mut sh = std::process::Command::new("sh")
            .args(["-c", "sleep 30 & sleep 30 & wait"])
            .spawn()
            .expect("spawn sh");
        let pid = sh.id();
        let mut found = Vec::new();
        for _ in 0..500 {
            found = descendants(pid);
            if found.len() >= 2 {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        assert_eq!(found.len(), 2, "{found:?}");
        for d in &found {
            assert!(signal_process(d, libc::SIGKILL));
        }
        let _ = sh.kill();
        let _ = sh.wait();
    }
}
