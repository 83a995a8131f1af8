//! [`JobHandle`]: what [`Runtime::spawn`](super::Runtime::spawn) returns.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use crate::event::Event;
use crate::job::JobId;
use crate::outcome::Outcome;

use super::log::lock;
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

    /// Wait until the job reports that it is ready ([`Event::Ready`], from
    /// its interpreter, e.g. a `rules!` `ready` pattern): `Ok` with the
    /// interpreter's message. If the job ends without ever being ready, this
    /// resolves as soon as it ends, with [`NotReady`] carrying the outcome —
    /// it never waits past the job's life. Resolves at once for a job that
    /// was already ready (or already ended). Bound the wait itself with
    /// `tokio::time::timeout` if the job may run long without being ready.
    ///
    /// ```no_run
    /// # async fn demo(rt: execra::Runtime, cmd: execra::Command) {
    /// let job = rt.spawn(cmd).unwrap();
    /// match job.ready().await {
    ///     Ok(_) => println!("server is up"),
    ///     Err(e) => eprintln!("{e}"),
    /// }
    /// # }
    /// ```
    pub async fn ready(&self) -> Result<Option<String>, NotReady> {
        let mut events = self.subscribe();
        while let Some(ev) = events.next().await {
            match ev {
                Event::Ready { message, .. } => return Ok(message),
                Event::Finalized { outcome, .. } => return Err(NotReady { outcome }),
                _ => {}
            }
        }
        // The log ends only after `finalized`; this is a fallback.
        let entry = Arc::clone(&self.entry);
        Err(NotReady {
            outcome: entry.wait_outcome().await,
        })
    }

    /// Resize the pseudo-terminal of a job spawned with
    /// [`Command::pty`](crate::Command::pty). The program receives
    /// `SIGWINCH`. Fails for a job without a PTY, or one that has ended.
    pub fn resize_pty(&self, size: crate::PtySize) -> Result<(), Error> {
        size.check()
            .map_err(|e| Error::Io(std::io::Error::new(std::io::ErrorKind::InvalidInput, e)))?;
        let ctl = lock(&self.entry.pty).clone().ok_or_else(|| {
            Error::Io(std::io::Error::new(
                std::io::ErrorKind::NotFound,
                format!(
                    "job {} has no terminal (not spawned with Command::pty, or it has ended)",
                    self.entry.id
                ),
            ))
        })?;
        ctl.resize(size).map_err(Error::Io)
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

/// A job ended without ever reporting that it was ready (see
/// [`JobHandle::ready`]).
#[derive(Debug, Clone, PartialEq)]
pub struct NotReady {
    /// How the job ended.
    pub outcome: Outcome,
}

impl std::fmt::Display for NotReady {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "the job ended without becoming ready ({})",
            self.outcome.message()
        )
    }
}

impl std::error::Error for NotReady {}
