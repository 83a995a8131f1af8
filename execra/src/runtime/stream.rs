//! [`EventStream`]: the consumer end of a job's log or of the all-jobs bus,
//! and [`SubscribeOptions`] / [`Lag`]: what a job subscriber does when it
//! falls behind.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use crate::event::{Event, EventRef};

use super::log::{BusReceiver, JobCursor, Local, Read};

/// What a job subscription does when its consumer falls behind the job's
/// output.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Lag {
    /// The job does not wait for this subscriber: lines it is too slow for
    /// are replaced by one `output_skipped { count }` (the default; right
    /// for UIs, which want the newest output, not all of it).
    ///
    /// A subscriber that keeps reading gets a chance to keep up with a
    /// burst: when it has fallen into the older half of the job's output
    /// ring (and the ring is at least half full), or more than 4096 other
    /// events behind (which it will be sent, so the job keeps them), the
    /// runtime pauses reading the job's pipes until it has caught up
    /// (halfway) — as long as it
    /// keeps reading (one that reads nothing for 20 ms is not waited for
    /// again until it reads on), at most 20 ms at a time, and for at most
    /// three quarters of the job's run time in all (at least 100 ms). So a
    /// subscriber that reads every line as fast as it can receives all of
    /// a burst such as `seq 1000000`; a much slower one slows a chatty job
    /// to a quarter of its speed at worst and is skipped; one that stopped
    /// reading costs the job one 20 ms wait.
    #[default]
    Skip,
    /// The job waits for this subscriber, as a shell pipe makes its writer
    /// wait: while the subscriber is more than
    /// [`max_lag_bytes`](SubscribeOptions::max_lag_bytes) of output behind,
    /// the runtime stops reading the job's pipes, so the child blocks in
    /// `write`. The subscriber never receives `output_skipped` for output
    /// produced after it subscribed.
    ///
    /// While it stalls, everything else keeps working: other subscribers,
    /// cancel, timeout (the child is signalled; after it exits, the drain
    /// deadline ends the job even if its pipes were never read), and
    /// `finalized`. Dropping the stream (also when its task panics)
    /// releases the pipes at once.
    ///
    /// A subscriber that never reads holds the job: it runs until the child
    /// finishes on its own (it may block forever on a full pipe), it is
    /// cancelled, or its timeout fires. Give such jobs a timeout, or read.
    Backpressure,
}

/// How to subscribe to one job: see
/// [`JobHandle::subscribe_with`](super::JobHandle::subscribe_with).
///
/// ```
/// use execra::{Lag, SubscribeOptions};
/// let opts = SubscribeOptions::backpressure().max_lag_bytes(1 << 20);
/// assert_eq!(opts.lag, Lag::Backpressure);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SubscribeOptions {
    /// What happens when the subscriber falls behind.
    pub lag: Lag,
    /// With [`Lag::Backpressure`]: how far behind (in bytes of output, each
    /// line counted as its length plus 64 bytes of bookkeeping) the
    /// subscriber may be before the job waits for it. Default 4 MiB.
    pub max_lag_bytes: usize,
}

/// Default [`SubscribeOptions::max_lag_bytes`].
pub const DEFAULT_MAX_LAG_BYTES: usize = 4 * 1024 * 1024;

impl Default for SubscribeOptions {
    fn default() -> Self {
        SubscribeOptions {
            lag: Lag::Skip,
            max_lag_bytes: DEFAULT_MAX_LAG_BYTES,
        }
    }
}

impl SubscribeOptions {
    /// A [`Lag::Backpressure`] subscription with the default budget.
    pub fn backpressure() -> Self {
        SubscribeOptions {
            lag: Lag::Backpressure,
            ..Self::default()
        }
    }

    /// Set [`max_lag_bytes`](Self::max_lag_bytes) (at least 1).
    pub fn max_lag_bytes(mut self, bytes: usize) -> Self {
        self.max_lag_bytes = bytes.max(1);
        self
    }

    /// The log cursor's backpressure budget, if any.
    pub(crate) fn budget(&self) -> Option<u64> {
        match self.lag {
            Lag::Skip => None,
            Lag::Backpressure => Some(self.max_lag_bytes as u64),
        }
    }
}

enum Source {
    Job(JobCursor),
    All(BusReceiver),
}

impl Source {
    fn try_read(&mut self, out: &mut Local) -> Read {
        match self {
            Source::Job(c) => c.try_read(out),
            Source::All(b) => b.try_read(out),
        }
    }

    /// Did a read wake the job's driver onto this worker (see
    /// `JobCursor::take_woke_driver`)?
    fn take_woke_driver(&mut self) -> bool {
        match self {
            Source::Job(c) => c.take_woke_driver(),
            Source::All(_) => false,
        }
    }

    async fn wait(mut self) -> (Source, Local) {
        let mut out = Local::default();
        match &mut self {
            Source::Job(c) => c.read(&mut out).await,
            Source::All(b) => b.read(&mut out).await,
        };
        (self, out)
    }
}

type Waiting = Pin<Box<dyn Future<Output = (Source, Local)> + Send>>;

enum State {
    Idle(Source),
    Waiting(Waiting),
    Done,
}

/// An async stream of [`Event`]s.
///
/// Use [`next`](Self::next) or the [`futures_core::Stream`] impl. A job's
/// stream ends after its `finalized` event; the all-jobs stream ends when the
/// runtime shuts down. If the consumer falls far behind a chatty job, it
/// receives `output_skipped { count }` in place of the lines it missed
/// ([`Lag::Skip`]), or the job waits for it ([`Lag::Backpressure`]); it never
/// misses any other event (a progress or label update superseded before it
/// subscribed is not replayed: it sees the latest). Events are copied out
/// of the job's log in runs of up to 4096 under one lock and built one by
/// one as they are taken, so [`next`](Self::next) is cheap per event;
/// [`next_batch`](Self::next_batch) takes many per call, and
/// [`next_batch_with`](Self::next_batch_with) lends many per call without
/// building them (output lines as borrowed text).
pub struct EventStream {
    buf: Local,
    state: State,
    /// Yield once at the next poll: a read woke the job's driver onto this
    /// worker, where it cannot run (nor be stolen by another worker) until
    /// this task yields.
    yield_soon: bool,
}

impl std::fmt::Debug for EventStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EventStream")
            .field("buffered", &self.buf.len())
            .finish()
    }
}

impl EventStream {
    pub(crate) fn job(cursor: JobCursor) -> Self {
        EventStream {
            buf: Local::default(),
            state: State::Idle(Source::Job(cursor)),
            yield_soon: false,
        }
    }

    pub(crate) fn all(rx: BusReceiver) -> Self {
        EventStream {
            buf: Local::default(),
            state: State::Idle(Source::All(rx)),
            yield_soon: false,
        }
    }

    /// A stream that yields the given events, then ends.
    pub(crate) fn replay(events: Vec<Event>) -> Self {
        EventStream {
            buf: Local::of_events(events),
            state: State::Done,
            yield_soon: false,
        }
    }

    /// The next event, or `None` when the stream has ended.
    ///
    /// (An `async fn` in effect; written as a plain future so that the
    /// event is built straight into the awaiting caller's slot.)
    #[allow(clippy::should_implement_trait)]
    pub fn next(&mut self) -> impl Future<Output = Option<Event>> + Send + '_ {
        std::future::poll_fn(move |cx| self.poll_event(cx))
    }

    /// Wait for at least one event, then move every event that is ready
    /// (at most `max`, at least 1) to the end of `out`. Returns how many
    /// were added; 0 means the stream has ended.
    ///
    /// This is the fast way to consume a chatty job: one wake-up per batch
    /// instead of per line.
    pub async fn next_batch(&mut self, out: &mut Vec<Event>, max: usize) -> usize {
        let max = max.max(1);
        let Some(first) = self.next().await else {
            return 0;
        };
        out.push(first);
        let mut n = 1;
        while n < max && self.refill() {
            n += self.buf.drain_into(out, max - n);
        }
        n
    }

    /// Wait for at least one event, then lend every event that is ready (at
    /// most `max`, at least 1) to `f`, in order. Returns how many; 0 means
    /// the stream has ended.
    ///
    /// The fastest way to consume a chatty job: output lines are lent as
    /// text borrowed from the job's log ([`EventRef::Output`]), so no
    /// `String` or [`Event`] is built per line. `f` must not block: the
    /// stream is not read while it runs.
    ///
    /// ```no_run
    /// # async fn demo(mut events: execra::EventStream) {
    /// use execra::EventRef;
    /// let mut lines = 0;
    /// while events
    ///     .next_batch_with(4096, |ev| {
    ///         if let EventRef::Output(out) = ev {
    ///             lines += usize::from(!out.line.is_empty());
    ///         }
    ///     })
    ///     .await
    ///     > 0
    /// {}
    /// # }
    /// ```
    pub async fn next_batch_with<F: FnMut(EventRef<'_>)>(&mut self, max: usize, mut f: F) -> usize {
        let max = max.max(1);
        if !std::future::poll_fn(|cx| self.poll_ready(cx)).await {
            return 0;
        }
        let mut n = 0;
        while n < max && self.refill() {
            n += self.buf.visit(max - n, &mut f);
        }
        n
    }

    /// Make sure the local buffer holds something if the source has it
    /// ready now, without waiting: `false` when it is empty.
    fn refill(&mut self) -> bool {
        if self.buf.is_empty() {
            if let State::Idle(src) = &mut self.state {
                if let Read::Ended = src.try_read(&mut self.buf) {
                    self.state = State::Done;
                } else if src.take_woke_driver() {
                    self.yield_soon = true;
                }
            }
        }
        !self.buf.is_empty()
    }

    /// An event that is ready now, without waiting (`None` if nothing is
    /// ready yet or the stream ended).
    pub fn try_next(&mut self) -> Option<Event> {
        self.refill();
        self.buf.pop()
    }

    #[inline]
    fn poll_event(&mut self, cx: &mut Context<'_>) -> Poll<Option<Event>> {
        match self.poll_ready(cx) {
            Poll::Pending => Poll::Pending,
            Poll::Ready(false) => Poll::Ready(None),
            Poll::Ready(true) => Poll::Ready(self.buf.pop()),
        }
    }

    /// `Ready(true)` once the local buffer holds an event, `Ready(false)`
    /// when the stream has ended.
    #[inline]
    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<bool> {
        if self.yield_soon {
            self.yield_soon = false;
            cx.waker().wake_by_ref();
            return Poll::Pending;
        }
        if self.buf.is_empty() {
            self.poll_fill(cx)
        } else {
            Poll::Ready(true)
        }
    }

    /// Refill the empty local buffer from the source: `Ready(true)` when it
    /// holds events, `Ready(false)` when the stream has ended.
    fn poll_fill(&mut self, cx: &mut Context<'_>) -> Poll<bool> {
        loop {
            if !self.buf.is_empty() {
                return Poll::Ready(true);
            }
            match std::mem::replace(&mut self.state, State::Done) {
                State::Done => return Poll::Ready(false),
                State::Idle(mut src) => match src.try_read(&mut self.buf) {
                    Read::Some => {
                        let yield_now = src.take_woke_driver();
                        self.state = State::Idle(src);
                        if yield_now {
                            cx.waker().wake_by_ref();
                            return Poll::Pending;
                        }
                    }
                    Read::Ended => return Poll::Ready(false),
                    Read::Empty => self.state = State::Waiting(Box::pin(src.wait())),
                },
                State::Waiting(mut fut) => match fut.as_mut().poll(cx) {
                    Poll::Pending => {
                        self.state = State::Waiting(fut);
                        return Poll::Pending;
                    }
                    Poll::Ready((mut src, batch)) => {
                        if batch.is_empty() {
                            return Poll::Ready(false);
                        }
                        self.buf = batch;
                        let yield_now = src.take_woke_driver();
                        self.state = State::Idle(src);
                        if yield_now {
                            cx.waker().wake_by_ref();
                            return Poll::Pending;
                        }
                    }
                },
            }
        }
    }
}

impl futures_core::Stream for EventStream {
    type Item = Event;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Event>> {
        self.get_mut().poll_event(cx)
    }
}
