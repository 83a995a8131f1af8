//! The runtime: spawn jobs, observe them, cancel them, look them up.
//!
//! - [`Runtime`] is the cloneable facade; [`RuntimeBuilder`] configures it.
//! - `driver` runs one job from permit to verdict; it is the only place that
//!   sees a process, an interpreter and the event log at once.
//! - `log` holds the per-job event logs and the all-jobs bus; [`EventStream`]
//!   reads them.
//! - `stop` is how a job is stopped: cancel, timeout, the TERM → grace →
//!   KILL escalation, the drain deadline, the idle flush.
//! - `tally` turns interpreter events into phases, findings and the verdict.
//! - `registry` keeps jobs in memory and evicts finished ones beyond a cap.
//!
//! What a runtime keeps on disk sits below it and knows nothing of it: the
//! history writer (`crate::store`), the raw logs (`crate::output`) and
//! retention (`crate::retention`). The runtime holds them as concrete,
//! optional parts (`Inner::history`, `Inner::raw_logs`), opened from the
//! builder's plain settings in `from_config`.

mod builder;
mod config;
mod driver;
mod finish;
mod handle;
mod history_api;
mod interp;
mod log;
mod pipe;
mod query;
pub(crate) mod registry;
mod stdin;
mod stop;
mod stream;
mod tally;

use std::io;
use std::sync::{Arc, Mutex};

use tokio::sync::{watch, Semaphore};

use crate::command::{Command, StdinMode};
use crate::event::Event;
use crate::job::{Job, JobId, JobState};
use crate::output::{FileRawLogs, OutputLine, OutputRing};
use crate::store::HistoryRecorder;

pub use crate::retention::RetentionPolicy;
pub use builder::RuntimeBuilder;
pub use config::{
    RawOutputPolicy, DEFAULT_FINISHED_OUTPUT_BUDGET, MEMORY_OUTPUT_BYTES, MEMORY_OUTPUT_LINES,
};
pub use handle::{JobHandle, NotReady};
pub use query::JobsQuery;
pub use stream::{EventStream, Lag, SubscribeOptions, DEFAULT_MAX_LAG_BYTES};

pub(crate) use config::RuntimeConfig;
use log::{lock, Bus, EventLog, RingLimits};
use registry::{JobEntry, Registry};

/// What can go wrong when talking to the runtime. (What goes wrong with a
/// job is its [`Outcome`](crate::Outcome), not an error.)
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// No job with this id is known (in memory or in history).
    #[error("unknown job: {0}")]
    UnknownJob(JobId),
    /// An I/O error (opening files, no tokio runtime, …).
    #[error("io: {0}")]
    Io(#[from] io::Error),
    /// The history store failed.
    #[error("history store: {0}")]
    Store(#[from] crate::store::StoreError),
    /// The job's stdin is not open: it was not spawned with
    /// [`StdinMode::Interactive`], was closed, or the job has ended.
    #[error("stdin of job {0} is not open (not interactive, closed, or the job ended)")]
    StdinClosed(JobId),
    /// The runtime was shut down and accepts no new jobs.
    #[error("the runtime has been shut down")]
    ShutDown,
}

pub(crate) struct Inner {
    pub config: RuntimeConfig,
    pub registry: Mutex<Registry>,
    pub bus: Bus,
    pub permits: Arc<Semaphore>,
    pub history: Option<HistoryRecorder>,
    pub raw_logs: Option<FileRawLogs>,
    /// `true` once shutdown began.
    pub closing: watch::Sender<bool>,
}

/// The job runtime. Cheap to clone: clones share one set of jobs.
///
/// ```no_run
/// use execra::{Command, Runtime};
/// # async fn demo() -> Result<(), execra::Error> {
/// let rt = Runtime::new();
/// let handle = rt.spawn(Command::sh("for i in 1 2 3; do echo $i; done"))?;
/// let mut events = handle.subscribe();
/// while let Some(ev) = events.next().await {
///     println!("{}", serde_json::to_string(&ev).unwrap_or_default());
/// }
/// assert!(handle.await.is_success());
/// # Ok(()) }
/// ```
///
/// Dropping the last `Runtime` (clones and [`JobHandle`]s count) kills the
/// process tree of every job still running; [`shutdown`](Self::shutdown)
/// stops them politely and waits for history.
#[derive(Clone)]
pub struct Runtime {
    pub(crate) inner: Arc<Inner>,
    _last: Arc<LastHandle>,
}

/// Shared by every `Runtime` clone: when the last one goes, every job's
/// tree is killed (drivers hold `Inner`, not this, so running jobs do not
/// keep it alive).
struct LastHandle(Arc<Inner>);

impl Drop for LastHandle {
    fn drop(&mut self) {
        let live: Vec<Arc<JobEntry>> = {
            let reg = lock(&self.0.registry);
            reg.newest().filter(|e| !e.is_terminal()).cloned().collect()
        };
        for e in live {
            e.request_cancel();
            if let Some(tree) = lock(&e.tree).as_ref() {
                tree.kill();
            }
        }
    }
}

impl std::fmt::Debug for Runtime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Runtime")
            .field("jobs_in_memory", &lock(&self.inner.registry).len())
            .field("history", &self.inner.config.history)
            .finish()
    }
}

impl Default for Runtime {
    fn default() -> Self {
        Self::new()
    }
}

impl Runtime {
    /// An in-memory runtime with default settings. Synchronous, infallible,
    /// callable before any tokio runtime exists, and writes no file.
    pub fn new() -> Self {
        Self::with_parts(RuntimeConfig::default(), None, None)
    }

    /// Configure a runtime (history, raw logs, limits).
    pub fn builder() -> RuntimeBuilder {
        RuntimeBuilder::default()
    }

    pub(crate) fn from_config(config: RuntimeConfig) -> Result<Self, Error> {
        let gzip = match config.raw_policy() {
            RawOutputPolicy::Disabled | RawOutputPolicy::MemoryOnly => None,
            RawOutputPolicy::Persist => Some(false),
            #[cfg(feature = "gzip")]
            RawOutputPolicy::PersistGzipOnFinalize => Some(true),
        };
        let log_dir =
            match (gzip, &config.log_dir) {
                (None, _) => None,
                (Some(_), Some(dir)) => Some(dir.as_path()),
                (Some(_), None) => return Err(io::Error::new(
                    io::ErrorKind::InvalidInput,
                    "a persisted raw-output policy needs a log directory (RuntimeBuilder::log_dir)",
                )
                .into()),
            };
        let raw_logs = match (log_dir, gzip) {
            (Some(dir), Some(gzip)) => {
                // With history, its writer thread prunes the log directory
                // (it knows which jobs are pinned); without, the directory
                // prunes itself.
                let self_prune = config.history.is_none().then_some(&config.retention);
                Some(FileRawLogs::new(dir, gzip, self_prune)?)
            }
            _ => None,
        };
        let history = match &config.history {
            Some(path) => Some(HistoryRecorder::open(path, &config.retention, log_dir)?),
            None => None,
        };
        Ok(Self::with_parts(config, history, raw_logs))
    }

    fn with_parts(
        config: RuntimeConfig,
        history: Option<HistoryRecorder>,
        raw_logs: Option<FileRawLogs>,
    ) -> Self {
        let permits = Arc::new(Semaphore::new(config.max_concurrent));
        let bus = Bus::new(config.ring_lines);
        let registry = Registry::with_budget(config.finished_output_budget);
        let inner = Arc::new(Inner {
            config,
            registry: Mutex::new(registry),
            bus,
            permits,
            history,
            raw_logs,
            closing: watch::channel(false).0,
        });
        Runtime {
            _last: Arc::new(LastHandle(Arc::clone(&inner))),
            inner,
        }
    }

    /// Start a job. Returns at once (the job may wait `queued` for a
    /// concurrency permit). Must be called within a tokio runtime.
    ///
    /// A command that cannot start (missing program, bad cwd, NUL byte in an
    /// argument…) is not an error here: the job finalizes as
    /// `Failed{SpawnFailed}` with a readable message.
    pub fn spawn(&self, cmd: Command) -> Result<JobHandle, Error> {
        if *self.inner.closing.borrow() {
            return Err(Error::ShutDown);
        }
        let tokio = tokio::runtime::Handle::try_current().map_err(|_| {
            io::Error::other("Runtime::spawn must be called from within a tokio runtime")
        })?;
        let launch = cmd.into_launch();
        let id = JobId::new();
        let job = Job::queued(id, launch.spec.clone());
        let limits = RingLimits {
            lines: self.inner.config.ring_lines,
            bytes: self.inner.config.ring_bytes,
        };
        let ring = (self.inner.config.raw_policy() == RawOutputPolicy::MemoryOnly).then(|| {
            Mutex::new(OutputRing::with_limits(
                MEMORY_OUTPUT_LINES,
                MEMORY_OUTPUT_BYTES,
            ))
        });
        let interactive = matches!(launch.stdin, StdinMode::Interactive);
        let entry = Arc::new(JobEntry {
            id,
            snapshot: Mutex::new(job.clone()),
            log: Arc::new(EventLog::new(id, limits)),
            cancel: watch::channel(false).0,
            stdin: Mutex::new(None),
            done: watch::channel(None).0,
            ring,
            tree: Mutex::new(None),
            usage: Mutex::new(None),
            paused: watch::channel(false).0,
            pty: Mutex::new(None),
        });
        // Writes made before the process starts are queued, not lost.
        let stdin_rx = interactive.then(|| {
            let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
            *lock(&entry.stdin) = Some(tx);
            rx
        });
        lock(&self.inner.registry).insert(Arc::clone(&entry));
        let created = Event::JobCreated {
            job: id,
            command: launch.spec.clone(),
            at: job.created_at,
        };
        finish::publish(&self.inner, &entry, || job, vec![log::Item::event(created)]);
        tokio.spawn(driver::run(
            Arc::clone(&self.inner),
            Arc::clone(&entry),
            launch,
            stdin_rx,
        ));
        Ok(JobHandle::new(self.clone(), entry))
    }

    /// Request cancellation of a job. Returns at once; the job then
    /// finalizes as `Cancelled` after its process tree exits (TERM to every
    /// process of it, then KILL after the grace period) and its pipes drain. A queued job
    /// finalizes without ever starting. A finished job: `Ok`, nothing
    /// happens. An unknown id: [`Error::UnknownJob`].
    pub fn cancel(&self, id: JobId) -> Result<(), Error> {
        match self.entry(id) {
            Some(entry) => {
                entry.request_cancel();
                Ok(())
            }
            None => match self.history_job(id)? {
                Some(_) => Ok(()),
                None => Err(Error::UnknownJob(id)),
            },
        }
    }

    /// Freeze a running job's whole process tree (`cgroup.freeze` with a
    /// cgroup, else `SIGSTOP` to its process group and live descendants;
    /// on Windows every thread of every process in its job object is
    /// suspended). Emits [`Event::Paused`]. The job's timeout does not count
    /// the time it spends paused; cancel still works (a paused job is thawed
    /// to receive `SIGTERM`). A job that is not running (queued, finished):
    /// `Ok`, nothing happens. A pause or resume made by another process
    /// (`execra pause ID`, Unix) is noticed within a second (250 ms when the
    /// job has a timeout) and treated the same way.
    pub fn pause(&self, id: JobId) -> Result<(), Error> {
        self.set_paused(id, true)
    }

    /// Thaw a job paused with [`pause`](Self::pause). Emits
    /// [`Event::Resumed`].
    pub fn resume(&self, id: JobId) -> Result<(), Error> {
        self.set_paused(id, false)
    }

    fn set_paused(&self, id: JobId, paused: bool) -> Result<(), Error> {
        let Some(entry) = self.entry(id) else {
            return match self.history_job(id)? {
                Some(_) => Ok(()),
                None => Err(Error::UnknownJob(id)),
            };
        };
        let tree = lock(&entry.tree).clone();
        let Some(tree) = tree else { return Ok(()) };
        if *entry.paused.borrow() == paused {
            return Ok(());
        }
        tree.pause(paused)?;
        entry.paused.send_replace(paused);
        {
            let mut s = lock(&entry.snapshot);
            match (paused, s.state) {
                (true, JobState::Running) => s.state = JobState::Paused,
                (false, JobState::Paused) => s.state = JobState::Running,
                _ => {}
            }
        }
        let at = std::time::SystemTime::now();
        let ev = if paused {
            Event::Paused { job: id, at }
        } else {
            Event::Resumed { job: id, at }
        };
        finish::publish(
            &self.inner,
            &entry,
            || entry.snapshot(),
            vec![log::Item::event(ev)],
        );
        Ok(())
    }

    /// CPU time and peak memory a finished job used: from memory, else from
    /// its stored [`Event::ResourcesMeasured`]. `None` while it runs, when
    /// the platform could not measure it, or for an unknown job.
    pub fn usage(&self, id: JobId) -> Option<crate::process::ResourceUsage> {
        if let Some(entry) = self.entry(id) {
            if let Some(u) = lock(&entry.usage).clone() {
                return Some(u);
            }
        }
        let h = self.inner.history.as_ref()?;
        h.events(id).ok()?.into_iter().find_map(|e| match e {
            Event::ResourcesMeasured { usage, .. } => Some(usage),
            _ => None,
        })
    }

    /// The `n` newest jobs in memory, newest first.
    pub fn recent(&self, n: usize) -> Vec<Job> {
        let reg = lock(&self.inner.registry);
        reg.newest().take(n).map(|e| e.snapshot()).collect()
    }

    /// Ids of jobs that are queued or running.
    pub fn running(&self) -> Vec<JobId> {
        let reg = lock(&self.inner.registry);
        reg.newest()
            .filter(|e| !e.is_terminal())
            .map(|e| e.id)
            .collect()
    }

    /// A job's snapshot: from memory, else from history.
    pub fn job(&self, id: JobId) -> Option<Job> {
        match self.entry(id) {
            Some(e) => Some(e.snapshot()),
            None => self.history_job(id).ok().flatten(),
        }
    }

    /// Start a filtered query over jobs.
    pub fn jobs(&self) -> JobsQuery {
        JobsQuery::default()
    }

    /// Events of every job from now on. Never misses a structural event; a
    /// subscriber far behind chatty jobs gets `output_skipped` markers. The
    /// stream ends when the runtime shuts down.
    pub fn subscribe(&self) -> EventStream {
        EventStream::all(self.inner.bus.subscribe())
    }

    /// One job's events from `job_created` on, whenever this is called. For
    /// a job only in history, its stored (non-output) events. For an unknown
    /// job, a stream that ends at once.
    pub fn subscribe_job(&self, id: JobId) -> EventStream {
        self.subscribe_job_with(id, SubscribeOptions::default())
    }

    /// [`subscribe_job`](Self::subscribe_job) with options (e.g. a
    /// [`Lag::Backpressure`] subscription; see
    /// [`JobHandle::subscribe_with`]).
    pub fn subscribe_job_with(&self, id: JobId, opts: SubscribeOptions) -> EventStream {
        if let Some(entry) = self.entry(id) {
            return EventStream::job(entry.log.cursor(opts.budget()));
        }
        let stored = match &self.inner.history {
            Some(h) => h.events(id).unwrap_or_default(),
            None => Vec::new(),
        };
        EventStream::replay(stored)
    }

    /// A job's kept output lines, oldest first: the in-memory ring
    /// ([`RawOutputPolicy::MemoryOnly`]) or the raw log (plain or gzipped).
    /// Empty when the policy keeps nothing.
    pub fn output(&self, id: JobId) -> Result<Vec<OutputLine>, Error> {
        let entry = self.entry(id);
        if let Some(ring) = entry.as_ref().and_then(|e| e.ring.as_ref()) {
            return Ok(lock(ring).to_vec());
        }
        if let Some(raw) = &self.inner.raw_logs {
            if let Some(lines) = raw.read(id)? {
                return Ok(lines);
            }
        }
        if entry.is_some() || self.history_job(id)?.is_some() {
            Ok(Vec::new())
        } else {
            Err(Error::UnknownJob(id))
        }
    }

    /// Write bytes to a running job's stdin (spawned with
    /// [`StdinMode::Interactive`]). Returns once queued; bytes are written in
    /// order.
    pub fn write_stdin(&self, id: JobId, bytes: impl Into<Vec<u8>>) -> Result<(), Error> {
        self.entry(id)
            .ok_or(Error::UnknownJob(id))?
            .write_stdin(bytes.into())
    }

    /// Close a job's stdin (after pending writes): the process reads
    /// end-of-file.
    pub fn close_stdin(&self, id: JobId) -> Result<(), Error> {
        self.entry(id).ok_or(Error::UnknownJob(id))?.close_stdin()
    }

    /// Cancel every job (queued and running), wait until all are finalized
    /// and history is flushed, then end the all-jobs streams. Later spawns
    /// fail with [`Error::ShutDown`].
    pub async fn shutdown(&self) -> Result<(), Error> {
        self.inner.closing.send_replace(true);
        // Every job whose handle has not resolved yet, including those in
        // the middle of finishing (terminal snapshot, `finalized` not yet
        // durable or published): each is waited for.
        let live: Vec<Arc<JobEntry>> = {
            let reg = lock(&self.inner.registry);
            reg.newest()
                .filter(|e| e.outcome().is_none())
                .cloned()
                .collect()
        };
        tracing::info!(jobs = live.len(), "runtime shutting down");
        for e in &live {
            e.request_cancel();
        }
        for e in &live {
            e.wait_outcome().await;
        }
        if let Some(h) = &self.inner.history {
            h.flush().await?;
        }
        self.inner.bus.close();
        Ok(())
    }

    /// Wait until everything recorded in history so far is durable (no-op
    /// without history).
    pub async fn flush(&self) -> Result<(), Error> {
        match &self.inner.history {
            Some(h) => Ok(h.flush().await?),
            None => Ok(()),
        }
    }

    pub(crate) fn run_query(&self, q: &JobsQuery) -> Result<Vec<Job>, Error> {
        if let Some(h) = &self.inner.history {
            return Ok(h.list_jobs(q.limit, &q.filter)?);
        }
        let reg = lock(&self.inner.registry);
        Ok(reg
            .newest()
            .map(|e| e.snapshot())
            .filter(|j| q.filter.matches(j))
            .take(q.limit)
            .collect())
    }

    fn entry(&self, id: JobId) -> Option<Arc<JobEntry>> {
        lock(&self.inner.registry).get(id)
    }

    fn history_job(&self, id: JobId) -> Result<Option<Job>, Error> {
        match &self.inner.history {
            Some(h) => Ok(h.load_job(id)?),
            None => Ok(None),
        }
    }
}
