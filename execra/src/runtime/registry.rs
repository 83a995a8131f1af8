//! The in-memory registry: live and recently finished jobs, and what the
//! runtime keeps per job (snapshot, event log, controls).
//!
//! Finished jobs are bounded twice: by count (`max_finished_jobs`, oldest
//! evicted) and by the output they keep in memory (`finished_output_budget`:
//! past it, the oldest finished jobs' kept output is dropped first).

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Mutex};

use tokio::sync::{mpsc, watch};

use crate::job::{Job, JobId};
use crate::outcome::Outcome;
use crate::output::OutputRing;

use super::log::{lock, EventLog, RingLimits};
use super::Error;

/// A request to a job's stdin writer.
pub(crate) enum StdinMsg {
    Write(Vec<u8>),
    Close,
}

/// Everything the runtime keeps for one job.
pub(crate) struct JobEntry {
    pub id: JobId,
    pub snapshot: Mutex<Job>,
    pub log: Arc<EventLog>,
    /// `true` once cancellation was requested.
    pub cancel: watch::Sender<bool>,
    pub stdin: Mutex<Option<mpsc::UnboundedSender<StdinMsg>>>,
    pub done: watch::Sender<Option<Outcome>>,
    /// `Some` under `RawOutputPolicy::MemoryOnly`.
    pub ring: Option<Mutex<OutputRing>>,
    /// The job's process tree while it runs (for pause, resume and the
    /// last-handle kill).
    pub tree: Mutex<Option<Arc<crate::process::ProcessTree>>>,
    /// `true` while the job is paused.
    pub paused: watch::Sender<bool>,
    /// Resource usage, once the job ended.
    pub usage: Mutex<Option<crate::process::ResourceUsage>>,
    /// Resize handle of a running PTY job's terminal.
    pub pty: Mutex<Option<crate::process::pty::PtyControl>>,
}

impl JobEntry {
    pub fn snapshot(&self) -> Job {
        lock(&self.snapshot).clone()
    }

    pub fn is_terminal(&self) -> bool {
        lock(&self.snapshot).state.is_terminal()
    }

    pub fn request_cancel(&self) {
        if self.done.borrow().is_none() {
            self.cancel.send_replace(true);
        }
    }

    /// Output bytes kept in memory (event log ring and `MemoryOnly` ring).
    pub fn kept_bytes(&self) -> usize {
        let ring = self.ring.as_ref().map(|r| lock(r).bytes()).unwrap_or(0);
        self.log.kept_bytes() + ring
    }

    /// Drop the kept output (what live subscribers still need stays).
    fn trim_output(&self) {
        self.log.seal(RingLimits { lines: 0, bytes: 0 });
        if let Some(r) = &self.ring {
            lock(r).clear();
        }
    }

    pub fn outcome(&self) -> Option<Outcome> {
        self.done.borrow().clone()
    }

    pub async fn wait_outcome(&self) -> Outcome {
        let mut rx = self.done.subscribe();
        loop {
            if let Some(o) = rx.borrow_and_update().clone() {
                return o;
            }
            if rx.changed().await.is_err() {
                // The sender lives in this entry, so this cannot happen while
                // we hold `self`; answer something sensible anyway.
                return Outcome::Cancelled {
                    findings: Vec::new(),
                };
            }
        }
    }

    fn stdin_sender(&self) -> Result<mpsc::UnboundedSender<StdinMsg>, Error> {
        lock(&self.stdin)
            .as_ref()
            .filter(|tx| !tx.is_closed())
            .cloned()
            .ok_or(Error::StdinClosed(self.id))
    }

    pub fn write_stdin(&self, bytes: Vec<u8>) -> Result<(), Error> {
        self.stdin_sender()?
            .send(StdinMsg::Write(bytes))
            .map_err(|_| Error::StdinClosed(self.id))
    }

    pub fn close_stdin(&self) -> Result<(), Error> {
        let tx = self.stdin_sender()?;
        *lock(&self.stdin) = None;
        tx.send(StdinMsg::Close)
            .map_err(|_| Error::StdinClosed(self.id))
    }
}

/// Jobs in memory, ordered by id (ids are time-ordered).
pub(crate) struct Registry {
    jobs: BTreeMap<JobId, Arc<JobEntry>>,
    /// Finished jobs, oldest first, with the output bytes each keeps.
    finished: VecDeque<(JobId, usize)>,
    /// Sum of the kept bytes in `finished`.
    kept: usize,
    budget: usize,
}

impl Registry {
    /// An empty registry whose finished jobs keep at most `budget` bytes of
    /// output together.
    pub fn with_budget(budget: usize) -> Self {
        Registry {
            jobs: BTreeMap::new(),
            finished: VecDeque::new(),
            kept: 0,
            budget,
        }
    }

    pub fn insert(&mut self, entry: Arc<JobEntry>) {
        self.jobs.insert(entry.id, entry);
    }

    pub fn get(&self, id: JobId) -> Option<Arc<JobEntry>> {
        self.jobs.get(&id).cloned()
    }

    /// Newest first.
    pub fn newest(&self) -> impl Iterator<Item = &Arc<JobEntry>> {
        self.jobs.values().rev()
    }

    pub fn len(&self) -> usize {
        self.jobs.len()
    }

    /// Record that `id` finished, evicting the oldest finished jobs beyond
    /// `keep`, then dropping the oldest finished jobs' output while all of
    /// them keep more than the budget.
    pub fn finished(&mut self, id: JobId, keep: usize) {
        let bytes = self.jobs.get(&id).map(|e| e.kept_bytes()).unwrap_or(0);
        self.finished.push_back((id, bytes));
        self.kept += bytes;
        while self.finished.len() > keep {
            if let Some((old, b)) = self.finished.pop_front() {
                self.kept -= b;
                self.jobs.remove(&old);
            }
        }
        let mut i = 0;
        while self.kept > self.budget && i < self.finished.len() {
            let (old, b) = self.finished[i];
            if b > 0 {
                let now = match self.jobs.get(&old) {
                    Some(e) => {
                        e.trim_output();
                        e.kept_bytes()
                    }
                    None => 0,
                };
                self.kept = self.kept - b + now;
                self.finished[i].1 = now;
            }
            i += 1;
        }
    }
}
