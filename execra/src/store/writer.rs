//! The runtime's history recorder: one writer thread, batched transactions.
//!
//! The driver (on tokio worker threads) never touches SQLite. It hands each
//! batch of events and the job's snapshot to [`HistoryRecorder::record`],
//! which only clones them into a channel. A dedicated `std::thread` owns the
//! write connection: it blocks for the first message, drains everything
//! else queued, writes it all in one `BEGIN IMMEDIATE … COMMIT` (snapshots
//! of the same job coalesced to the newest), then acknowledges barriers
//! (`finish`, `flush`) whose messages were in that batch. A batch that holds
//! such a barrier commits with `synchronous = FULL` (the WAL is fsynced,
//! which makes every earlier commit durable too); other batches commit with
//! `synchronous = NORMAL` (written to the WAL, safe if the host process dies,
//! fsynced by the next barrier or checkpoint). A failed batch is
//! retried once; if it fails again the error is counted (and returned by the
//! next `flush`) and the terminal writes of the batch (final snapshots and
//! `finalized` events) are tried once more on their own. The thread never
//! panics on a failed write.
//!
//! Reads use a second connection behind a mutex (WAL lets it read while the
//! writer writes). A query first waits for the writer to commit what was
//! recorded before it (read-your-writes, best effort: at most 1 s), so it
//! may block the calling thread for about one commit.
//!
//! The writer thread also runs retention (`crate::retention`) when it
//! starts, every `PRUNE_EVERY` and on request.
//!
//! Failed and retried batches and retention passes are reported as
//! `tracing` events (target `execra::history`; counts and error messages,
//! never job output or command lines).

use std::collections::HashMap;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use tokio::sync::oneshot;
use uuid::Uuid;

use super::proc::{self, ProcId};
use super::{ImmediateTx, JobsFilter, Owner, PruneReport, Store, StoreError, Writes};
use crate::event::Event;
use crate::job::{Job, JobId};
use crate::retention::{prune_raw_logs, RetentionPolicy, PRUNE_EVERY};

/// The longest a query waits for the writer to catch up.
const CATCH_UP: Duration = Duration::from_secs(1);

/// At most this many messages go into one transaction (so acknowledgements
/// never wait behind an unbounded backlog).
const MAX_BATCH: usize = 20_000;

enum Msg {
    Record {
        job: Job,
        events: Vec<Event>,
    },
    Finish {
        job: Job,
        finalized: Box<Event>,
        ack: oneshot::Sender<()>,
    },
    Flush(oneshot::Sender<()>),
    /// A barrier for a blocking reader.
    Sync(mpsc::Sender<()>),
    Prune(mpsc::Sender<Result<PruneReport, StoreError>>),
}

/// Failed writes, for `flush` to report.
#[derive(Default)]
struct Failures {
    count: AtomicU64,
    reported: AtomicU64,
    last: Mutex<Option<String>>,
}

impl Failures {
    fn note(&self, e: &StoreError) {
        tracing::error!(target: "execra::history", error = %e, "history write failed");
        self.count.fetch_add(1, Ordering::SeqCst);
        if let Ok(mut l) = self.last.lock() {
            *l = Some(e.to_string());
        }
    }

    /// Failures since the last call, as an error.
    fn take(&self) -> Result<(), StoreError> {
        let count = self.count.load(Ordering::SeqCst);
        let reported = self.reported.swap(count, Ordering::SeqCst);
        if count > reported {
            let last = self
                .last
                .lock()
                .ok()
                .and_then(|l| l.clone())
                .unwrap_or_default();
            return Err(StoreError::WriteFailed {
                failures: count - reported,
                last,
            });
        }
        Ok(())
    }
}

/// The runtime's job history: a writer thread and a reader connection on
/// one SQLite file.
pub(crate) struct HistoryRecorder {
    tx: Option<mpsc::Sender<Msg>>,
    thread: Option<JoinHandle<()>>,
    reader: Mutex<Store>,
    failures: Arc<Failures>,
}

impl HistoryRecorder {
    /// Open the history file at `path`: migrate, finalize stranded jobs,
    /// run retention (rows, and the raw logs in `log_dir` if given), then
    /// start the writer thread.
    pub(crate) fn open(
        path: &Path,
        retention: &RetentionPolicy,
        log_dir: Option<&Path>,
    ) -> Result<Self, StoreError> {
        Self::open_with(path, retention, log_dir, PRUNE_EVERY)
    }

    fn open_with(
        path: &Path,
        retention: &RetentionPolicy,
        log_dir: Option<&Path>,
        prune_every: Duration,
    ) -> Result<Self, StoreError> {
        let writer = Store::open(path)?;
        writer.resurrect_stranded_jobs()?;
        let owner = Owner {
            id: Uuid::now_v7(),
            host: ProcId::of(std::process::id()),
        };
        let maintenance = Maintenance {
            retention: retention.clone(),
            log_dir: log_dir.map(Path::to_path_buf),
            every: prune_every,
        };
        maintenance.run(&writer)?;
        let reader = Store::open(path)?;
        let failures = Arc::new(Failures::default());
        let (tx, rx) = mpsc::channel();
        proc::register_owner(owner.id);
        let thread_failures = Arc::clone(&failures);
        let thread = std::thread::Builder::new()
            .name("execra-history".to_string())
            .spawn(move || {
                lower_priority();
                let owner_id = owner.id;
                WriterThread {
                    store: writer,
                    owner,
                    failures: thread_failures,
                    maintenance,
                }
                .run(rx);
                proc::unregister_owner(owner_id);
            })?;
        Ok(HistoryRecorder {
            tx: Some(tx),
            thread: Some(thread),
            reader: Mutex::new(reader),
            failures,
        })
    }
}

/// Let the async worker threads preempt the writer when CPUs are scarce:
/// the writer has slack (it batches), timers on the workers do not.
fn lower_priority() {
    #[cfg(target_os = "linux")]
    {
        // SAFETY: gettid/setpriority on the calling thread only; failure
        // leaves the priority unchanged.
        unsafe {
            let tid = libc::syscall(libc::SYS_gettid) as libc::id_t;
            libc::setpriority(libc::PRIO_PROCESS, tid, 10);
        }
    }
}

impl HistoryRecorder {
    fn send(&self, msg: Msg) -> bool {
        let sent = self.tx.as_ref().is_some_and(|tx| tx.send(msg).is_ok());
        if !sent {
            self.failures.note(&StoreError::Io(std::io::Error::other(
                "the history writer thread is gone",
            )));
        }
        sent
    }

    /// Wait (blocking, at most [`CATCH_UP`]) until what was recorded before
    /// this call is committed, so a query sees the jobs this runtime just
    /// spawned. Best effort: behind a large backlog the query runs anyway.
    fn catch_up(&self) {
        let (tx, rx) = mpsc::channel();
        if self
            .tx
            .as_ref()
            .is_some_and(|t| t.send(Msg::Sync(tx)).is_ok())
        {
            let _ = rx.recv_timeout(CATCH_UP);
        }
    }

    fn read<T>(&self, f: impl FnOnce(&Store) -> Result<T, StoreError>) -> Result<T, StoreError> {
        let store = self
            .reader
            .lock()
            .map_err(|_| std::io::Error::other("the history reader lock is poisoned"))?;
        f(&store)
    }

    /// A batch of events of one job (output events included: history skips
    /// what it does not store) and the job's snapshot after them. Never
    /// blocks: the work is queued for the writer thread.
    pub(crate) fn record(&self, job: &Job, events: &[Event]) {
        self.send(Msg::Record {
            job: job.clone(),
            events: events.to_vec(),
        });
    }

    /// The job ended: record its final snapshot and `finalized` event. The
    /// future resolves once everything recorded for the job is durable.
    pub(crate) fn finish(&self, job: Job, finalized: Event) -> impl Future<Output = ()> + 'static {
        let (ack, done) = oneshot::channel();
        let sent = self.send(Msg::Finish {
            job,
            finalized: Box::new(finalized),
            ack,
        });
        async move {
            if sent {
                let _ = done.await;
            }
        }
    }

    /// A job from history.
    pub(crate) fn load_job(&self, id: JobId) -> Result<Option<Job>, StoreError> {
        self.read(|s| s.load_job(id))
    }

    /// Up to `limit` jobs matching `filter`, newest first, including what
    /// this runtime recorded just before (see [`catch_up`](Self::catch_up)).
    pub(crate) fn list_jobs(
        &self,
        limit: usize,
        filter: &JobsFilter,
    ) -> Result<Vec<Job>, StoreError> {
        self.catch_up();
        self.read(|s| s.list_jobs(limit, filter))
    }

    /// A job's stored events, oldest first.
    pub(crate) fn events(&self, id: JobId) -> Result<Vec<Event>, StoreError> {
        self.read(|s| s.list_events(id, usize::MAX))
    }

    /// Resolves once everything recorded so far is durable, with the write
    /// failures since the last call, if any.
    pub(crate) fn flush(&self) -> impl Future<Output = Result<(), StoreError>> + 'static {
        let (ack, done) = oneshot::channel();
        let sent = self.send(Msg::Flush(ack));
        let failures = Arc::clone(&self.failures);
        async move {
            if sent {
                let _ = done.await;
            }
            failures.take()
        }
    }

    /// Enforce the retention policy now (history rows and, when configured,
    /// raw logs) on the writer thread. Blocks until done.
    pub(crate) fn prune(&self) -> Result<PruneReport, StoreError> {
        let (tx, rx) = mpsc::channel();
        if !self.send(Msg::Prune(tx)) {
            return Err(std::io::Error::other("the history writer thread is gone").into());
        }
        match rx.recv() {
            Ok(r) => r,
            Err(_) => Err(std::io::Error::other("the history writer thread stopped").into()),
        }
    }
}

impl Drop for HistoryRecorder {
    fn drop(&mut self) {
        // Closing the channel lets the thread write what is queued and exit.
        self.tx = None;
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Retention: the database part and the raw-log part.
struct Maintenance {
    retention: RetentionPolicy,
    log_dir: Option<PathBuf>,
    /// How often to run while the runtime lives.
    every: Duration,
}

impl Maintenance {
    fn run(&self, store: &Store) -> Result<PruneReport, StoreError> {
        let mut report = store.prune(&self.retention)?;
        if let Some(dir) = &self.log_dir {
            let keep = store.protected_jobs(&self.retention.pinned_tag)?;
            report.raw_logs = prune_raw_logs(dir, &self.retention, &|id| keep.contains(&id))?;
        }
        report.trace();
        Ok(report)
    }
}

struct WriterThread {
    store: Store,
    owner: Owner,
    failures: Arc<Failures>,
    maintenance: Maintenance,
}

/// One batch, coalesced.
#[derive(Default)]
struct Batch {
    /// Newest snapshot per job, in order of first appearance.
    jobs: Vec<Job>,
    index: HashMap<JobId, usize>,
    events: Vec<Event>,
    acks: Vec<oneshot::Sender<()>>,
    syncs: Vec<mpsc::Sender<()>>,
    prunes: Vec<mpsc::Sender<Result<PruneReport, StoreError>>>,
}

impl Batch {
    fn snapshot(&mut self, job: Job) {
        match self.index.get(&job.id) {
            Some(&i) => self.jobs[i] = job,
            None => {
                self.index.insert(job.id, self.jobs.len());
                self.jobs.push(job);
            }
        }
    }

    fn add(&mut self, msg: Msg) {
        match msg {
            Msg::Record { job, events } => {
                self.snapshot(job);
                self.events.extend(events);
            }
            Msg::Finish {
                job,
                finalized,
                ack,
            } => {
                self.snapshot(job);
                self.events.push(*finalized);
                self.acks.push(ack);
            }
            Msg::Flush(ack) => self.acks.push(ack),
            Msg::Sync(ack) => self.syncs.push(ack),
            Msg::Prune(reply) => self.prunes.push(reply),
        }
    }

    fn is_empty(&self) -> bool {
        self.jobs.is_empty() && self.events.is_empty()
    }
}

impl WriterThread {
    fn run(mut self, rx: mpsc::Receiver<Msg>) {
        let every = self.maintenance.every;
        let mut next_prune = Instant::now() + every;
        loop {
            let wait = next_prune.saturating_duration_since(Instant::now());
            let first = match rx.recv_timeout(wait) {
                Ok(m) => m,
                Err(mpsc::RecvTimeoutError::Timeout) => {
                    if let Err(e) = self.maintenance.run(&self.store) {
                        self.failures.note(&e);
                    }
                    next_prune = Instant::now() + every;
                    continue;
                }
                Err(mpsc::RecvTimeoutError::Disconnected) => return,
            };
            let mut batch = Batch::default();
            batch.add(first);
            let mut n = 1;
            while n < MAX_BATCH {
                match rx.try_recv() {
                    Ok(m) => {
                        batch.add(m);
                        n += 1;
                    }
                    Err(_) => break,
                }
            }
            self.write(&batch);
            for ack in batch.acks {
                let _ = ack.send(());
            }
            for ack in batch.syncs {
                let _ = ack.send(());
            }
            for reply in batch.prunes {
                let r = self.maintenance.run(&self.store);
                let _ = reply.send(r);
                next_prune = Instant::now() + every;
            }
        }
    }

    fn write(&mut self, batch: &Batch) {
        if batch.is_empty() {
            return;
        }
        // Only a batch that someone waits on for durability (a job's
        // `finish`, a `flush`) pays for an fsync; see the module docs.
        let durable = !batch.acks.is_empty();
        let first = match self.try_write(&batch.jobs, &batch.events, durable) {
            Ok(()) => return,
            Err(e) => e,
        };
        // Once more (a lock held past the busy timeout, a transient I/O
        // error…).
        tracing::warn!(
            target: "execra::history",
            error = %first,
            jobs = batch.jobs.len(),
            events = batch.events.len(),
            "history batch failed, retrying once"
        );
        std::thread::sleep(Duration::from_millis(50));
        if self.try_write(&batch.jobs, &batch.events, durable).is_ok() {
            tracing::info!(target: "execra::history", "history batch retry succeeded");
            return;
        }
        self.failures.note(&first);
        // Never drop a terminal state silently: try it on its own.
        let jobs: Vec<Job> = batch
            .jobs
            .iter()
            .filter(|j| j.state.is_terminal())
            .cloned()
            .collect();
        let events: Vec<Event> = batch
            .events
            .iter()
            .filter(|e| e.is_finalized())
            .cloned()
            .collect();
        if !jobs.is_empty() || !events.is_empty() {
            if let Err(e) = self.try_write(&jobs, &events, true) {
                self.failures.note(&e);
            }
        }
    }

    fn try_write(&self, jobs: &[Job], events: &[Event], durable: bool) -> Result<(), StoreError> {
        let conn = &self.store.conn;
        // WAL + NORMAL: committed to the WAL file (safe if this process
        // dies), fsynced later. WAL + FULL: fsynced at commit, which also
        // makes every earlier NORMAL commit durable.
        conn.pragma_update(None, "synchronous", if durable { "FULL" } else { "NORMAL" })?;
        let mut w = Writes::new(conn)?;
        let tx = ImmediateTx::begin(conn)?;
        for job in jobs {
            w.upsert_job(job, Some(&self.owner))?;
        }
        for ev in events {
            w.insert_event(ev)?;
            if let Event::JobStarted { job, pid, .. } = ev {
                w.record_leader(*job, &crate::process::identity::leader_identity(*pid))?;
            }
        }
        drop(w);
        tx.commit()
    }
}

#[cfg(test)]
mod tests {
    use std::time::SystemTime;

    use super::*;
    use crate::job::JobState;
    use crate::outcome::Outcome;
    use crate::progress::Progress;

    #[test]
    fn retention_runs_periodically_while_the_runtime_lives() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("h.db");
        let recorder = HistoryRecorder::open_with(
            &path,
            &RetentionPolicy::default(),
            None,
            Duration::from_millis(20),
        )
        .expect("open");
        // Old rows arrive after the build-time pass.
        let old = SystemTime::now() - Duration::from_secs(90 * 24 * 3600);
        let store = Store::open(&path).expect("store");
        let mut job = Job::queued(JobId::new(), crate::Command::new("x").spec().clone());
        job.created_at = old;
        job.state = JobState::Finalized;
        job.outcome = Some(Outcome::Cancelled {
            findings: Vec::new(),
        });
        store.upsert_job(&job).expect("job");
        store
            .insert_event(&Event::ProgressUpdated {
                job: job.id,
                progress: Progress::fraction(0.3),
                at: old,
            })
            .expect("event");
        let deadline = Instant::now() + Duration::from_secs(10);
        while !store.list_events(job.id, 10).expect("events").is_empty() {
            assert!(Instant::now() < deadline, "never pruned");
            std::thread::sleep(Duration::from_millis(10));
        }
        assert!(recorder.load_job(job.id).expect("load").is_some());
    }
}
