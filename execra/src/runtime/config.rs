//! Runtime configuration: the raw-output policy and the knobs set through
//! [`RuntimeBuilder`](super::RuntimeBuilder). The retention policy lives in
//! `crate::retention`.

use std::path::PathBuf;
use std::time::Duration;

use crate::output::DEFAULT_MAX_LINE;
use crate::retention::RetentionPolicy;

/// How raw stdout/stderr lines are kept after they are streamed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum RawOutputPolicy {
    /// Append every line to `<log_dir>/<job_id>.log`, prefixed `[stdout] ` /
    /// `[stderr] ` (written by the log's own thread, off the job's hot
    /// path; readable while the job runs; complete before the job's handle
    /// resolves). Files are owner-only (`0600`) on Unix.
    Persist,
    /// As `Persist`, but compressed (on the log's own thread) while
    /// written, to `<job_id>.log.gz` (no plain file). The stream is flushed
    /// whenever the output pauses, so the log is readable while the job
    /// runs ([`Runtime::output`](crate::Runtime::output) in this process
    /// sees every line whose event was published), and it is complete
    /// before the job's `finalized` event and its handle resolving.
    /// Compression never holds the job back: while the log's writer is
    /// more than 256 KiB behind the job's output (a job printing hundreds of
    /// MB/s, a busy machine), it stores what it is behind on uncompressed
    /// (in the same gzip stream, readable by any gzip reader) and goes back
    /// to compressing once it has caught up — such a burst costs disk, not
    /// time. (The name is the published 1.1 API's.)
    #[cfg(feature = "gzip")]
    PersistGzipOnFinalize,
    /// Keep the last 1024 lines per job in memory, at most
    /// [`MEMORY_OUTPUT_BYTES`] of them (read them back with
    /// [`Runtime::output`](crate::Runtime::output)); freed with the job.
    MemoryOnly,
    /// Keep nothing beyond the live event stream (the default).
    #[default]
    Disabled,
}

/// Lines kept per job by [`RawOutputPolicy::MemoryOnly`].
pub const MEMORY_OUTPUT_LINES: usize = 1024;

/// Bytes kept per job by [`RawOutputPolicy::MemoryOnly`] (4 MiB; each line
/// counted as its text plus 64 bytes): a 1 GiB line does not stay in memory.
pub const MEMORY_OUTPUT_BYTES: usize = 4 * 1024 * 1024;

/// Default [`RuntimeBuilder::finished_output_budget`](super::RuntimeBuilder::finished_output_budget):
/// 32 MiB of output kept across all finished jobs.
pub const DEFAULT_FINISHED_OUTPUT_BUDGET: usize = 32 * 1024 * 1024;

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
    /// Make the process a child subreaper (Linux) when the runtime is built.
    pub subreaper: bool,
    /// Output bytes kept across all finished jobs (event logs and
    /// `MemoryOnly` rings).
    pub finished_output_budget: usize,
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
            subreaper: false,
            finished_output_budget: DEFAULT_FINISHED_OUTPUT_BUDGET,
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
