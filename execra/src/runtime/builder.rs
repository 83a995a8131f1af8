//! [`RuntimeBuilder`]: opt-in persistence and tuning.

use std::path::PathBuf;
use std::time::Duration;

use super::config::{RawOutputPolicy, RuntimeConfig};
use super::{Error, Runtime};
use crate::retention::RetentionPolicy;

/// Configures a [`Runtime`]. Every setting has a default; nothing touches
/// the disk unless [`history`](Self::history) or [`log_dir`](Self::log_dir)
/// is set.
///
/// ```
/// use std::time::Duration;
/// let rt = execra::Runtime::builder()
///     .max_concurrent(2)
///     .default_grace_period(Duration::from_secs(2))
///     .max_finished_jobs(100)
///     .build()
///     .expect("in-memory runtimes always build");
/// # drop(rt);
/// ```
#[derive(Debug, Clone, Default)]
pub struct RuntimeBuilder {
    pub(crate) config: RuntimeConfig,
}

impl RuntimeBuilder {
    /// Keep job history in the SQLite file at `path` (parent directories are
    /// created).
    pub fn history(mut self, path: impl Into<PathBuf>) -> Self {
        self.config.history = Some(path.into());
        self
    }

    /// Keep raw output logs in `path`. Implies [`RawOutputPolicy::Persist`]
    /// unless another policy is set.
    pub fn log_dir(mut self, path: impl Into<PathBuf>) -> Self {
        self.config.log_dir = Some(path.into());
        self
    }

    /// How raw output is kept.
    pub fn raw_output(mut self, policy: RawOutputPolicy) -> Self {
        self.config.raw_output = Some(policy);
        self
    }

    /// How long history and raw logs are kept.
    pub fn retention(mut self, policy: RetentionPolicy) -> Self {
        self.config.retention = policy;
        self
    }

    /// At most `n` processes run at once (at least 1); the rest wait
    /// `queued`. Default: the machine's available parallelism.
    pub fn max_concurrent(mut self, n: usize) -> Self {
        self.config.max_concurrent = n.max(1);
        self
    }

    /// Time between `SIGTERM` and `SIGKILL` on cancel or timeout (default
    /// 5 s).
    pub fn default_grace_period(mut self, d: Duration) -> Self {
        self.config.grace_period = d;
        self
    }

    /// After the main process exits, how long to wait for its pipes to close
    /// (a descendant may still hold them) before the process group is killed
    /// and the job finalizes with the output read so far (default 2 s).
    pub fn drain_timeout(mut self, d: Duration) -> Self {
        self.config.drain_timeout = d;
        self
    }

    /// How long an unfinished line may wait before it is shown
    /// provisionally as a redraw (default 100 ms). This is what makes a
    /// prompt like `Continue? [y/N] ` reach interpreters while the process
    /// waits for an answer.
    pub fn idle_flush(mut self, d: Duration) -> Self {
        self.config.idle_flush = d.max(Duration::from_millis(1));
        self
    }

    /// Longest line delivered whole, in bytes (default 1 MiB); longer lines
    /// arrive in pieces of this size.
    pub fn max_line_length(mut self, bytes: usize) -> Self {
        self.config.max_line = bytes.max(4);
        self
    }

    /// How many output lines (and bytes) each job's event log keeps for
    /// subscribers that fall behind (default 131,072 lines / 8 MiB). A
    /// subscriber further behind gets `output_skipped`.
    pub fn output_buffer(mut self, lines: usize, bytes: usize) -> Self {
        self.config.ring_lines = lines.max(1);
        self.config.ring_bytes = bytes.max(1);
        self
    }

    /// How many finished jobs stay in memory (default 1000). Older ones are
    /// evicted (history, if enabled, keeps them). Running jobs are never
    /// evicted.
    pub fn max_finished_jobs(mut self, n: usize) -> Self {
        self.config.max_finished_jobs = n;
        self
    }

    /// How each job's process tree is held (default
    /// [`Containment::Auto`](crate::Containment::Auto): a cgroup per job on
    /// Linux where the host may create one, else a process group; a Job
    /// Object on Windows). [`Containment::ProcessGroup`](crate::Containment::ProcessGroup)
    /// forces the process-group path.
    pub fn containment(mut self, c: crate::process::Containment) -> Self {
        self.config.containment = c;
        self
    }

    /// Make this process a child subreaper (Linux `PR_SET_CHILD_SUBREAPER`;
    /// elsewhere nothing happens), so a job's orphans — processes whose
    /// parent exited, even ones that scrubbed their environment and left the
    /// job's process group — re-parent to this process, where the runtime
    /// kills and reaps them when the job stops (cancel, timeout, leftovers at
    /// job end, shutdown). Default: off; on in `execra run`.
    ///
    /// **Process-wide and permanent**: from then on orphaned descendants of
    /// *any* child of this process re-parent to it, and an adopted orphan is
    /// attributed to a job only while that job is the only one running (see
    /// the README, "What each platform guarantees"). Turn it on only in a
    /// process that starts child processes through execra alone — one that
    /// starts its own children while a job runs alone could see them killed
    /// as that job's orphans. With several jobs at once, adopted orphans are
    /// not attributed and, once they exit, stay zombies until the process
    /// exits (as do kept leftovers, `Command::keep_leftovers`, adopted by
    /// it). `build` fails if the kernel refuses.
    pub fn subreaper(mut self, on: bool) -> Self {
        self.config.subreaper = on;
        self
    }

    /// How much output all finished jobs together keep in memory for late
    /// subscribers and [`Runtime::output`](super::Runtime::output) (default
    /// 32 MiB). Each finished job keeps at most its last 1024 lines / 1 MiB;
    /// past this total, the oldest finished jobs' output is dropped first
    /// (a late subscriber then gets one `output_skipped`; their structural
    /// events, snapshot and history stay).
    pub fn finished_output_budget(mut self, bytes: usize) -> Self {
        self.config.finished_output_budget = bytes;
        self
    }

    /// Build the runtime: opens the history and log directory if set.
    pub fn build(self) -> Result<Runtime, Error> {
        if self.config.subreaper {
            crate::process::enable_subreaper()?;
        }
        Runtime::from_config(self.config)
    }
}
