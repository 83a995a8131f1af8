//! [`EventStream`]: the consumer end of a job's log or of the all-jobs bus.

use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use crate::event::Event;

use super::log::{BusReceiver, JobCursor, Pending, Read};

enum Source {
    Job(JobCursor),
    All(BusReceiver),
}

impl Source {
    fn try_read(&mut self, out: &mut VecDeque<Pending>) -> Read {
        match self {
            Source::Job(c) => c.try_read(out),
            Source::All(b) => b.try_read(out),
        }
    }

    async fn wait(mut self) -> (Source, VecDeque<Pending>) {
        let mut out = VecDeque::new();
        match &mut self {
            Source::Job(c) => c.read(&mut out).await,
            Source::All(b) => b.read(&mut out).await,
        };
        (self, out)
    }
}

type Waiting = Pin<Box<dyn Future<Output = (Source, VecDeque<Pending>)> + Send>>;

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
/// receives `output_skipped { count }` in place of the lines it missed; it
/// never misses any other event.
pub struct EventStream {
    buf: VecDeque<Pending>,
    state: State,
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
            buf: VecDeque::new(),
            state: State::Idle(Source::Job(cursor)),
        }
    }

    pub(crate) fn all(rx: BusReceiver) -> Self {
        EventStream {
            buf: VecDeque::new(),
            state: State::Idle(Source::All(rx)),
        }
    }

    /// A stream that yields the given events, then ends.
    pub(crate) fn replay(events: Vec<Event>) -> Self {
        EventStream {
            buf: events
                .into_iter()
                .map(|e| Pending::Event(Box::new(e)))
                .collect(),
            state: State::Done,
        }
    }

    /// The next event, or `None` when the stream has ended.
    pub async fn next(&mut self) -> Option<Event> {
        std::future::poll_fn(|cx| self.poll_event(cx)).await
    }

    /// An event that is ready now, without waiting (`None` if nothing is
    /// ready yet or the stream ended).
    pub fn try_next(&mut self) -> Option<Event> {
        if let Some(e) = self.buf.pop_front() {
            return Some(e.into_event());
        }
        if let State::Idle(src) = &mut self.state {
            if let Read::Ended = src.try_read(&mut self.buf) {
                self.state = State::Done;
            }
        }
        self.buf.pop_front().map(Pending::into_event)
    }

    fn poll_event(&mut self, cx: &mut Context<'_>) -> Poll<Option<Event>> {
        loop {
            if let Some(e) = self.buf.pop_front() {
                return Poll::Ready(Some(e.into_event()));
            }
            match std::mem::replace(&mut self.state, State::Done) {
                State::Done => return Poll::Ready(None),
                State::Idle(mut src) => match src.try_read(&mut self.buf) {
                    Read::Some => self.state = State::Idle(src),
                    Read::Ended => return Poll::Ready(None),
                    Read::Empty => self.state = State::Waiting(Box::pin(src.wait())),
                },
                State::Waiting(mut fut) => match fut.as_mut().poll(cx) {
                    Poll::Pending => {
                        self.state = State::Waiting(fut);
                        return Poll::Pending;
                    }
                    Poll::Ready((src, batch)) => {
                        if batch.is_empty() {
                            return Poll::Ready(None);
                        }
                        self.buf = batch;
                        self.state = State::Idle(src);
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
