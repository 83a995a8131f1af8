//! Linux: the host as a child subreaper (`PR_SET_CHILD_SUBREAPER`, opt-in
//! with [`RuntimeBuilder::subreaper`](crate::RuntimeBuilder::subreaper), on
//! by default in `execra run`).
//!
//! A subreaper adopts the orphaned descendants of its children: a process
//! whose parent exited re-parents to the host instead of to init — even one
//! that scrubbed its environment (no `EXECRA_JOB_ID`) and left the job's
//! process group, which nothing else on the process-group path can find.
//! The setting is process-wide and lasts for the life of the process, so
//! orphans of *any* child of the host come to it, including children the
//! application starts itself.
//!
//! **Attribution** (which job an adopted orphan belongs to) has no lineage
//! to go on: the orphan's parent is gone. The rule is simple and sound
//! under one condition:
//!
//! - an adopted orphan belongs to a job if that job is the only one of
//!   this process that ran at any moment of its life — from just before
//!   its main process was spawned until its tree was released at its end
//!   (no other job started meanwhile, and none was running when it
//!   started) — and the orphan started after the job's main process;
//! - it is never a job's main process (tokio waits for those) nor one of
//!   execra's watchdogs.
//!
//! The condition: the application starts no child processes of its own
//! while such a job runs (they would be children of the host started after
//! the job, and count as its orphans). That holds in the `execra` CLI (one
//! job per process). With several jobs at once, adopted orphans are not
//! attributed: they run on (as without a subreaper) and, once they exit,
//! stay zombies of the host until it exits.
//!
//! **Reaping**: an attributed orphan killed (or found dead) is reaped with
//! `waitpid` on its own pid, on a short helper thread — never
//! `waitpid(-1)`, which would steal the exit status of the children tokio
//! waits for. Its pid cannot be reused before that: it is our child.
//!
//! Cgroup path: the orphans are in the job's cgroup and die with it; the
//! subreaper's part is only to reap them.

use std::io;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Mutex;

use super::identity::{self, ProcId};

/// Set once this process became a child subreaper.
static ENABLED: AtomicBool = AtomicBool::new(false);

/// Make this process a child subreaper (process-wide, for good).
pub(crate) fn enable() -> io::Result<()> {
    // SAFETY: prctl(2) with integer arguments only.
    let r = unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1 as libc::c_ulong, 0, 0, 0) };
    if r != 0 {
        return Err(io::Error::last_os_error());
    }
    ENABLED.store(true, Ordering::Relaxed);
    Ok(())
}

/// One running job, process-wide.
struct Slot {
    id: u64,
    leader: u32,
    /// No other job ran at any moment of this one's life so far.
    alone: bool,
}

/// Every running job of this process (all runtimes).
static RUNNING: Mutex<Vec<Slot>> = Mutex::new(Vec::new());
static NEXT: AtomicU64 = AtomicU64::new(1);

fn running() -> std::sync::MutexGuard<'static, Vec<Slot>> {
    RUNNING.lock().unwrap_or_else(|e| e.into_inner())
}

/// A running job's claim on the orphans adopted while it runs alone.
/// Reserved *before* the job's process is spawned, so no other job can
/// take the new process for an orphan of its own in between.
#[derive(Debug)]
pub(crate) struct Scope {
    id: u64,
    leader: Option<ProcId>,
}

impl Scope {
    /// Register a job about to be spawned: from now on every other running
    /// job counts as not alone.
    pub(crate) fn reserve() -> Scope {
        let id = NEXT.fetch_add(1, Ordering::Relaxed);
        let mut r = running();
        let alone = r.is_empty();
        for s in r.iter_mut() {
            s.alone = false;
        }
        r.push(Slot {
            id,
            leader: 0,
            alone,
        });
        Scope { id, leader: None }
    }

    /// The job's main process, right after spawn.
    pub(crate) fn set_leader(&mut self, leader: &ProcId) {
        self.leader = Some(leader.clone());
        if let Some(s) = running().iter_mut().find(|s| s.id == self.id) {
            s.leader = leader.pid;
        }
    }

    /// The adopted orphans attributed to this job (see the module docs),
    /// zombies included, with their state: `true` for a zombie.
    fn attributed(&self) -> Vec<(u32, bool)> {
        if !ENABLED.load(Ordering::Relaxed) {
            return Vec::new();
        }
        let leaders: Vec<u32> = {
            let r = running();
            match r.iter().find(|s| s.id == self.id) {
                Some(s) if s.alone => r.iter().map(|s| s.leader).collect(),
                _ => return Vec::new(),
            }
        };
        let Some(since) = self.leader.as_ref().and_then(|l| l.start) else {
            return Vec::new();
        };
        let me = std::process::id();
        identity::children_of(me)
            .into_iter()
            .filter(|(pid, st)| {
                st.start >= since && !leaders.contains(pid) && !super::hostwatch::is_watchdog(*pid)
            })
            .map(|(pid, st)| (pid, st.dead))
            .collect()
    }

    /// `sig` to every attributed orphan that still runs. Returns how many
    /// were signalled.
    pub(crate) fn signal(&self, sig: libc::c_int) -> usize {
        let mut n = 0;
        for (pid, dead) in self.attributed() {
            if dead {
                continue;
            }
            let Ok(p) = libc::pid_t::try_from(pid) else {
                continue;
            };
            // SAFETY: kill(2) on our own child (its pid cannot be reused
            // before we reap it).
            if p > 1 && unsafe { libc::kill(p, sig) } == 0 {
                n += 1;
            }
        }
        n
    }

    /// `SIGKILL` every attributed orphan and reap them (and those already
    /// dead) on a helper thread. Returns how many were found.
    pub(crate) fn kill(&self) -> usize {
        let found = self.attributed();
        let mut pids = Vec::with_capacity(found.len());
        for (pid, dead) in found {
            let Ok(p) = libc::pid_t::try_from(pid) else {
                continue;
            };
            if !dead && p > 1 {
                // SAFETY: kill(2) on our own child.
                unsafe {
                    libc::kill(p, libc::SIGKILL);
                }
            }
            pids.push(p);
        }
        let n = pids.len();
        if n > 0 {
            reap(pids);
        }
        n
    }
}

impl Scope {
    /// The job is done with its tree: remove it from the running jobs (so
    /// the next job can run alone). Also done on drop.
    pub(crate) fn leave(&self) {
        running().retain(|s| s.id != self.id);
    }
}

impl Drop for Scope {
    fn drop(&mut self) {
        self.leave();
    }
}

/// Reap these children of ours (each by its own pid) on a helper thread.
fn reap(pids: Vec<libc::pid_t>) {
    let work = move || {
        for pid in pids {
            let mut status = 0;
            // SAFETY: waitpid(2) on a specific child of ours, which tokio
            // does not wait for (not a job's main process).
            while unsafe { libc::waitpid(pid, &mut status, 0) } < 0
                && io::Error::last_os_error().kind() == io::ErrorKind::Interrupted
            {}
        }
    };
    if let Err(e) = std::thread::Builder::new()
        .name("execra-reap".into())
        .stack_size(64 * 1024)
        .spawn(work)
    {
        tracing::warn!(error = %e, "could not start a thread to reap orphans");
    }
}
