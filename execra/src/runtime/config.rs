//! Runtime configuration: raw-output and retention policies and the knobs
//! set through [`RuntimeBuilder`](super::RuntimeBuilder).

use std::path::PathBuf;
use std::time::Duration;

use crate::output::DEFAULT_MAX_LINE;

/// How raw stdout/stderr lines are kept after they are streamed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum RawOutputPolicy {
    /// Append every line to `<log_dir>/<job_id>.log`, prefixed `[stdout] ` /
    /// `[stderr] `.
    Persist,
    /// As `Persist`, then gzip to `<job_id>.log.gz` when the job ends.
    #[cfg(feature = "gzip")]
    PersistGzipOnFinalize,
    /// Keep the last 1024 lines per job in memory (read them back with
    /// [`Runtime::output`](crate::Runtime::output)); freed with the job.
    MemoryOnly,
    /// Keep nothing beyond the live event stream (the default).
    #[default]
    Disabled,
}

/// How long history and raw logs are kept.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetentionPolicy {
    /// Events and findings older than this are pruned (default 30 days).
    pub keep_events_for: Duration,
    /// Raw logs older than this are deleted (default 7 days).
    pub keep_raw_for: Duration,
    /// Jobs carrying this tag are never pruned (default `"pinned"`).
    pub pinned_tag: String,
}

impl Default for RetentionPolicy {
    fn default() -> Self {
        RetentionPolicy {
            keep_events_for: Duration::from_secs(30 * 24 * 3600),
            keep_raw_for: Duration::from_secs(7 * 24 * 3600),
            pinned_tag: "pinned".to_string(),
        }
    }
}

/// Lines kept per job by [`RawOutputPolicy::MemoryOnly`].
pub const MEMORY_OUTPUT_LINES: usize = 1024;

/// Everything the builder can set.
#[derive(Debug, Clone)]
pub(crate) struct RuntimeConfig {
    pub history: Option<PathBuf>,
    pub log_dir: Option<PathBuf>,
    pub raw_output: Option<RawOutputPolicy>,
    pub retention: RetentionPolicy,
    pub max_concurrent: usize,
    pub grace_period: Duration,
    pub drain_timeout: Duration,
    pub idle_flush: Duration,
    pub max_line: usize,
    pub ring_lines: usize,
    pub ring_bytes: usize,
    pub max_finished_jobs: usize,
    pub containment: crate::process::Containment,
}

impl Default for RuntimeConfig {
    fn default() -> Self {
        RuntimeConfig {
            history: None,
            log_dir: None,
            raw_output: None,
            retention: RetentionPolicy::default(),
            max_concurrent: std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(4),
            grace_period: Duration::from_secs(5),
            drain_timeout: Duration::from_secs(2),
            idle_flush: Duration::from_millis(100),
            max_line: DEFAULT_MAX_LINE,
            ring_lines: 131_072,
            ring_bytes: 8 * 1024 * 1024,
            max_finished_jobs: 1000,
            containment: crate::process::Containment::Auto,
        }
    }
}

impl RuntimeConfig {
    /// The effective raw-output policy: `log_dir` implies `Persist`.
    pub fn raw_policy(&self) -> RawOutputPolicy {
        match (self.raw_output, &self.log_dir) {
            (Some(p), _) => p,
            (None, Some(_)) => RawOutputPolicy::Persist,
            (None, None) => RawOutputPolicy::Disabled,
        }
    }
}
