//! How a job ends — one path for every job: [`conclude`] sets the final
//! state and builds `finalized`, history records it (the driver awaits the
//! durable barrier), and [`settle`] publishes it and resolves the handle.
//! [`Guard`] takes the same path when the driver is dropped before it got
//! there. [`publish`] is how every batch of a job's events goes out.

use std::sync::Arc;
use std::time::SystemTime;

use crate::event::Event;
use crate::job::{Job, JobState};
use crate::outcome::{FailureReason, Outcome};
use crate::process::ProcessTree;

use super::log::{lock, Item, RingLimits};
use super::registry::JobEntry;
use super::Inner;

/// How much output a finished job's event log keeps for late subscribers:
/// the last 1024 lines, at most 1 MiB. Earlier lines are replayed as one
/// `output_skipped`.
const FINISHED_LOG_LIMITS: RingLimits = RingLimits {
    lines: 1024,
    bytes: 1024 * 1024,
};

/// Append items to the job's log, the all-jobs bus and history (which gets
/// the structural events with the snapshot `job()` after them).
pub(crate) fn publish(
    inner: &Inner,
    entry: &JobEntry,
    job: impl FnOnce() -> Job,
    items: Vec<Item>,
) {
    if items.is_empty() {
        return;
    }
    if let Some(h) = &inner.history {
        let structural: Vec<Event> = items.iter().filter_map(Item::structural).cloned().collect();
        if !structural.is_empty() {
            h.record(&job(), &structural);
        }
    }
    inner.bus.publish(entry.id, &items);
    entry.log.append(items);
}

/// The verdict of a job that could not start (or stopped being driven).
pub(super) fn spawn_failed(error: String) -> Outcome {
    Outcome::Failed {
        reason: FailureReason::SpawnFailed { error },
        summary: None,
        findings: Vec::new(),
    }
}

/// Set the final state and outcome on the job's snapshot; returns the
/// snapshot and the `finalized` event to record and publish.
pub(super) fn conclude(entry: &JobEntry, outcome: &Outcome) -> (Job, Event) {
    let state = if matches!(outcome, Outcome::Cancelled { .. }) {
        JobState::Cancelled
    } else {
        JobState::Finalized
    };
    let job = {
        let mut s = lock(&entry.snapshot);
        s.state = state;
        s.outcome = Some(outcome.clone());
        s.current_phase = None;
        s.clone()
    };
    let ev = Event::Finalized {
        job: entry.id,
        outcome: outcome.clone(),
        at: SystemTime::now(),
    };
    (job, ev)
}

/// Publish `finalized` (already recorded in history) and resolve the handle:
/// the last thing that happens to a job.
pub(super) fn settle(inner: &Inner, entry: &JobEntry, finalized: Event, outcome: Outcome) {
    tracing::info!(outcome = %outcome.message(), "job finalized");
    let item = [Item::event(finalized)];
    inner.bus.publish(entry.id, &item);
    entry.log.append(item);
    entry.log.seal(FINISHED_LOG_LIMITS);
    *lock(&entry.stdin) = None;
    lock(&inner.registry).finished(entry.id, inner.config.max_finished_jobs);
    entry.done.send_replace(Some(outcome));
}

/// Finalizes the job if the driver is dropped half-way (its tokio runtime
/// shut down): kills the tree and resolves the handle, so nothing waits
/// forever and nothing is left running. Created before the driver's future
/// is first polled, so even a never-polled driver resolves its handle.
pub(super) struct Guard {
    pub inner: Arc<Inner>,
    pub entry: Arc<JobEntry>,
    pub tree: Option<Arc<ProcessTree>>,
    /// Set by [`Driver::finish`] once the real outcome went to history: a
    /// drop after that publishes this outcome, not "shut down".
    pub finalizing: Option<(Event, Outcome)>,
    pub armed: bool,
}

impl Drop for Guard {
    fn drop(&mut self) {
        if !self.armed || self.entry.outcome().is_some() {
            return;
        }
        if let Some(tree) = &self.tree {
            tree.kill();
        }
        let (ev, outcome) = match self.finalizing.take() {
            Some(f) => f,
            None => {
                tracing::warn!("the runtime driving this job shut down; job killed");
                let outcome = spawn_failed("the runtime driving this job shut down".into());
                let (job, ev) = conclude(&self.entry, &outcome);
                if let Some(h) = &self.inner.history {
                    h.record(&job, std::slice::from_ref(&ev));
                }
                (ev, outcome)
            }
        };
        settle(&self.inner, &self.entry, ev, outcome);
    }
}
