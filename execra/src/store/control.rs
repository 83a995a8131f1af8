//! Reaching a recorded job's process tree from another process (the CLI's
//! `cancel`, `pause`, `resume`): through its cgroup, else its process group
//! with the leader identity recorded at spawn — the same path the runtime
//! uses (see `crate::process`).

#[cfg(unix)]
use std::time::{Duration, Instant};

#[cfg(unix)]
use rusqlite::{params, OptionalExtension};

#[cfg(unix)]
use super::proc::ProcId;
use super::Store;
#[cfg(unix)]
use super::StoreError;
#[cfg(unix)]
use crate::job::JobId;
#[cfg(unix)]
use crate::process::RecordedTree;

/// What holds a job's process tree, as reached by [`Store::stop_job`] and
/// [`Store::pause_job`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum TreeHolder {
    /// The job's cgroup (Linux): every process it started, wherever it went.
    Cgroup,
    /// The job's process group, whose recorded leader identity shows the
    /// group id was not reused.
    ProcessGroup,
}

impl TreeHolder {
    /// `"cgroup"` or `"process group"`.
    pub fn as_str(self) -> &'static str {
        match self {
            TreeHolder::Cgroup => "cgroup",
            TreeHolder::ProcessGroup => "process group",
        }
    }
}

impl Store {
    /// The recorded tree of a job: its cgroup, or its leader identity.
    #[cfg(unix)]
    fn recorded_tree(&self, id: JobId) -> Result<(RecordedTree, Option<TreeHolder>), StoreError> {
        let leader = self
            .conn
            .query_row(
                "SELECT pid, leader_start, boot_id FROM jobs WHERE id = ?1",
                params![id.0.as_bytes()],
                |r| {
                    Ok(r.get::<_, Option<i64>>(0)?.map(|pid| ProcId {
                        pid: u32::try_from(pid).unwrap_or(0),
                        start: r.get(1).ok().flatten(),
                        boot: r.get(2).ok().flatten(),
                    }))
                },
            )
            .optional()?
            .flatten();
        let tree = RecordedTree::find(id, leader);
        let holder = match tree.holder() {
            Some("cgroup") => Some(TreeHolder::Cgroup),
            Some(_) => Some(TreeHolder::ProcessGroup),
            None => None,
        };
        Ok((tree, holder))
    }

    /// Stop a job's whole process tree from any process (Unix): `SIGTERM`
    /// to every process of it, then, if anything is still running after
    /// `grace`, kill it (`cgroup.kill`, else `SIGKILL` to the group). Blocks
    /// up to `grace` (plus a moment). The process that owns the job records
    /// how it ended.
    ///
    /// Returns what held the tree, or `None` when nothing could be reached
    /// safely (no cgroup, and no recorded leader identity, or the group id
    /// was reused).
    #[cfg(unix)]
    pub fn stop_job(&self, id: JobId, grace: Duration) -> Result<Option<TreeHolder>, StoreError> {
        let (tree, holder) = self.recorded_tree(id)?;
        if holder.is_none() || !tree.signal(libc::SIGTERM) {
            return Ok(None);
        }
        // A stopped (paused) tree must run to act on the TERM.
        tree.signal(libc::SIGCONT);
        let end = Instant::now() + grace;
        while tree.alive() && Instant::now() < end {
            std::thread::sleep(Duration::from_millis(20));
        }
        if tree.alive() {
            tree.kill();
        }
        Ok(holder)
    }

    /// Freeze (`true`) or thaw (`false`) a job's whole process tree from any
    /// process (Unix): `cgroup.freeze`, else `SIGSTOP`/`SIGCONT` to its
    /// verified process group. Returns what held the tree, or `None` when
    /// nothing could be reached safely.
    ///
    /// The history records it as the runtime would: a `paused` / `resumed`
    /// event, and the job's state `paused` (back to `running` on resume).
    /// The runtime that owns the job notices the frozen tree within a
    /// moment (it polls the tree's state while the job runs: every 250 ms
    /// when a timeout or idle timeout is armed, else every second; Unix)
    /// and then treats it as its own pause: live `paused` / `resumed`
    /// events, the job's state, and its timeouts stop counting.
    #[cfg(unix)]
    pub fn pause_job(&self, id: JobId, paused: bool) -> Result<Option<TreeHolder>, StoreError> {
        let (tree, holder) = self.recorded_tree(id)?;
        if holder.is_none() || !tree.pause(paused) {
            return Ok(None);
        }
        self.record_pause(id, paused)?;
        Ok(holder)
    }

    /// Write what a pause or resume from this process did to the history.
    #[cfg(unix)]
    fn record_pause(&self, id: JobId, paused: bool) -> Result<(), StoreError> {
        use crate::event::Event;
        use crate::job::JobState;
        let (from, to) = if paused {
            (JobState::Running, JobState::Paused)
        } else {
            (JobState::Paused, JobState::Running)
        };
        let at = std::time::SystemTime::now();
        let ev = if paused {
            Event::Paused { job: id, at }
        } else {
            Event::Resumed { job: id, at }
        };
        let tx = super::ImmediateTx::begin(&self.conn)?;
        self.conn.execute(
            "UPDATE jobs SET state = ?2 WHERE id = ?1 AND state = ?3",
            params![id.0.as_bytes(), to.as_str(), from.as_str()],
        )?;
        super::Writes::new(&self.conn)?.insert_event(&ev)?;
        tx.commit()
    }
}
