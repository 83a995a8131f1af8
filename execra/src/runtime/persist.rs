//! The seams between the runtime and what it keeps on disk: job history
//! ([`Recorder`]) and raw output logs ([`RawLogs`]). The driver calls these;
//! the implementations live in `crate::store` and `crate::output`.

use std::future::Future;
use std::io;
use std::pin::Pin;

use crate::event::{Event, Stream};
use crate::job::{Job, JobId};
use crate::output::OutputLine;

use super::query::JobsQuery;
use super::Error;

/// A boxed future, for the durable-write barrier.
pub(crate) type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Where job history goes.
pub(crate) trait Recorder: Send + Sync + 'static {
    /// A batch of events of one job (output events included: the recorder
    /// skips what it does not store) and the job's snapshot after them.
    /// Must not block: queue the work.
    fn record(&self, job: &Job, events: &[Event]);

    /// The job ended: record its final snapshot and `finalized` event and
    /// resolve once everything recorded for the job is durable.
    fn finish(&self, job: Job, finalized: Event) -> BoxFuture<'static, ()>;

    /// A job from history.
    fn load_job(&self, id: JobId) -> Result<Option<Job>, Error>;

    /// Jobs from history.
    fn query(&self, q: &JobsQuery) -> Result<Vec<Job>, Error>;

    /// A job's stored events, oldest first.
    fn events(&self, id: JobId) -> Result<Vec<Event>, Error>;

    /// Wait until everything recorded so far is durable.
    fn flush(&self) -> BoxFuture<'static, Result<(), Error>>;

    /// Enforce the retention policy now (history rows and, when the
    /// recorder knows the log directory, raw logs). Blocks until done.
    fn prune(&self) -> Result<crate::store::PruneReport, Error> {
        Ok(crate::store::PruneReport::default())
    }
}

/// One job's raw output log being written.
pub(crate) trait RawSink: Send {
    /// Append one line. After an error the sink writes nothing more.
    fn line(&mut self, stream: Stream, text: &str) -> io::Result<()>;
    /// The end of one read's worth of lines: make them visible to readers
    /// (`execra logs --follow`).
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
    /// The job ended: close (and compress, if configured).
    fn finish(self: Box<Self>);
}

/// Where raw output logs live.
pub(crate) trait RawLogs: Send + Sync + 'static {
    /// Start the log for a job (`Err` is reported and the job runs without).
    fn open(&self, id: JobId) -> io::Result<Box<dyn RawSink>>;
    /// Read a job's log back (`Ok(None)` if there is none).
    fn read(&self, id: JobId) -> io::Result<Option<Vec<OutputLine>>>;

    /// Delete logs past the retention policy; returns how many.
    fn prune(&self) -> io::Result<usize> {
        Ok(0)
    }
}
