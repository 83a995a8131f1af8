//! Retention: how long history and raw logs are kept, and the raw-log half
//! of enforcing it.
//!
//! - [`RetentionPolicy`] is what an application sets (through
//!   [`RuntimeBuilder::retention`](crate::RuntimeBuilder::retention));
//!   public as `execra::RetentionPolicy`.
//! - [`PruneReport`] is what one pass removed; public as
//!   `execra::store::PruneReport`.
//! - [`prune_raw_logs`] deletes raw log files past `keep_raw_for`; the
//!   history half (events and findings past `keep_events_for`) is
//!   [`Store::prune`](crate::store::Store::prune).
//! - [`PRUNE_EVERY`] is how often a living runtime runs a pass by itself.
//!
//! Who runs a pass: with history, the history writer thread (when the
//! runtime is built, every [`PRUNE_EVERY`], and on
//! [`Runtime::prune`](crate::Runtime::prune)) prunes both the rows and the
//! log directory, sparing jobs that are pinned or not finished. Without
//! history, the raw-log directory prunes itself (at build, then at most every
//! [`PRUNE_EVERY`] when a job opens its log), sparing logs still open.
//! Every pass emits a `tracing` event (target `execra::retention`) with the
//! counts it removed.

use std::fs;
use std::io;
use std::path::Path;
use std::time::{Duration, SystemTime};

use crate::job::JobId;

/// How often a living runtime enforces its retention policy by itself.
pub(crate) const PRUNE_EVERY: Duration = Duration::from_secs(3600);

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

/// What a retention pass removed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct PruneReport {
    /// Event rows deleted.
    pub events: usize,
    /// Finding rows deleted.
    pub findings: usize,
    /// Raw log files deleted.
    pub raw_logs: usize,
}

impl PruneReport {
    /// Emit the `tracing` event of a finished pass.
    pub(crate) fn trace(&self) {
        tracing::info!(
            target: "execra::retention",
            events = self.events,
            findings = self.findings,
            raw_logs = self.raw_logs,
            "retention pass done"
        );
    }
}

/// Delete raw logs (`<id>.log`, `<id>.log.gz`) in `dir` last modified
/// longer ago than `policy.keep_raw_for`, except those of jobs for which
/// `keep` is true. Returns how many files were deleted. A missing directory
/// is not an error.
pub(crate) fn prune_raw_logs(
    dir: &Path,
    policy: &RetentionPolicy,
    keep: &dyn Fn(JobId) -> bool,
) -> io::Result<usize> {
    let entries = match fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(0),
        Err(e) => return Err(e),
    };
    let now = SystemTime::now();
    let mut removed = 0;
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        let (stem, temp) = if let Some(s) = name.strip_suffix(".log.gz.tmp") {
            (s, true)
        } else if let Some(s) = name.strip_suffix(".log.gz") {
            (s, false)
        } else if let Some(s) = name.strip_suffix(".log") {
            (s, false)
        } else {
            continue;
        };
        let Ok(id) = stem.parse::<JobId>() else {
            continue;
        };
        let age = entry
            .metadata()
            .and_then(|m| m.modified())
            .ok()
            .and_then(|m| now.duration_since(m).ok())
            .unwrap_or_default();
        if temp {
            // Left behind by an older execra that compressed after the job
            // ended and died half-way.
            if age > PRUNE_EVERY {
                let _ = fs::remove_file(entry.path());
            }
            continue;
        }
        if age > policy.keep_raw_for && !keep(id) {
            match fs::remove_file(entry.path()) {
                Ok(()) => removed += 1,
                Err(e) => tracing::warn!(
                    target: "execra::retention",
                    job = %id,
                    error = %e,
                    "cannot delete an expired raw log"
                ),
            }
        }
    }
    Ok(removed)
}
