//! [`JobHandle`]: what [`Runtime::spawn`](super::Runtime::spawn) returns.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use crate::job::JobId;
use crate::outcome::Outcome;

use super::registry::JobEntry;
use super::{Error, EventStream, Runtime, SubscribeOptions};

/// A spawned job. Await it for the [`Outcome`]; subscribe for its events;
/// cancel it; write to its stdin.
///
/// Awaiting resolves after the job's history rows are durable (when history
/// is enabled) and its `finalized` event is in its event log. Dropping the
/// handle does not cancel the job.
pub struct JobHandle {
    rt: Runtime,
    entry: Arc<JobEntry>,
    wait: Option<Pin<Box<dyn Future<Output = Outcome> + Send>>>,
}

impl std::fmt::Debug for JobHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JobHandle")
            .field("id", &self.entry.id)
            .finish()
    }
}

impl JobHandle {
    pub(crate) fn new(rt: Runtime, entry: Arc<JobEntry>) -> Self {
        JobHandle {
            rt,
            entry,
            wait: None,
        }
    }

    /// The job's id.
    pub fn id(&self) -> JobId {
        self.entry.id
    }

    /// Request cancellation (returns at once; see
    /// [`Runtime::cancel`](super::Runtime::cancel)).
    pub fn cancel(&self) -> Result<(), Error> {
        self.entry.request_cancel();
        Ok(())
    }

    /// This job's events from `job_created` on, whenever this is called.
    /// Falls behind by skipping output ([`Lag::Skip`](super::Lag::Skip));
    /// see [`subscribe_with`](Self::subscribe_with) for a subscription that
    /// makes the job wait instead.
    pub fn subscribe(&self) -> EventStream {
        EventStream::job(self.entry.log.cursor(None))
    }

    /// This job's events from `job_created` on, with options: e.g.
    /// `subscribe_with(SubscribeOptions::backpressure())` gets every line,
    /// the job's pipes are not read while this subscriber is too far
    /// behind (see [`Lag::Backpressure`](super::Lag::Backpressure)). Lines
    /// the job's output buffer dropped before this call are still reported
    /// as one `output_skipped`: subscribe right after spawning to get all.
    pub fn subscribe_with(&self, opts: SubscribeOptions) -> EventStream {
        EventStream::job(self.entry.log.cursor(opts.budget()))
    }

    /// Write bytes to the job's stdin (spawned with
    /// [`StdinMode::Interactive`](crate::StdinMode::Interactive)).
    pub fn write_stdin(&self, bytes: impl Into<Vec<u8>>) -> Result<(), Error> {
        self.entry.write_stdin(bytes.into())
    }

    /// Close the job's stdin (the process reads end-of-file).
    pub fn close_stdin(&self) -> Result<(), Error> {
        self.entry.close_stdin()
    }

    /// The outcome if the job has finished, without waiting.
    pub fn try_outcome(&self) -> Option<Outcome> {
        self.entry.outcome()
    }

    /// The runtime this job belongs to.
    pub fn runtime(&self) -> &Runtime {
        &self.rt
    }
}

impl Future for JobHandle {
    type Output = Outcome;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Outcome> {
        let this = &mut *self;
        let entry = Arc::clone(&this.entry);
        let fut = this
            .wait
            .get_or_insert_with(|| Box::pin(async move { entry.wait_outcome().await }));
        fut.as_mut().poll(cx)
    }
}
