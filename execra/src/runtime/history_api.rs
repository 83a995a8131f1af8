//! Runtime methods about history and raw logs (retention).

use super::{Error, Runtime};
use crate::store::PruneReport;

impl Runtime {
    /// Enforce the [`RetentionPolicy`](crate::RetentionPolicy) now: delete
    /// events and findings older than `keep_events_for` and raw logs older
    /// than `keep_raw_for`, except those of jobs tagged `pinned_tag` (and of
    /// jobs still running). Job rows themselves are kept, so a pruned job
    /// still shows its label, state, exit and outcome.
    ///
    /// The same pass runs when the runtime is built and then hourly while it
    /// lives. This call blocks until the pass is done (it runs on the
    /// history writer thread); from async code, wrap it in
    /// `spawn_blocking`.
    pub fn prune(&self) -> Result<PruneReport, Error> {
        match (&self.inner.history, &self.inner.raw_logs) {
            // The history writer prunes the log directory too (it knows
            // which jobs are pinned).
            (Some(h), _) => Ok(h.prune()?),
            (None, Some(raw)) => Ok(PruneReport {
                raw_logs: raw.prune()?,
                ..PruneReport::default()
            }),
            (None, None) => Ok(PruneReport::default()),
        }
    }
}
