//! Event logs: how events get from one producer (a job's driver) to any
//! number of consumers without the producer ever waiting and without losing
//! anything that matters.
//!
//! - [`EventLog`] is one job's append-only log. Structural events (everything
//!   but `output_appended`) are kept in full; output lines sit in a ring
//!   bounded by count and bytes. A subscriber is a cursor (a sequence number)
//!   into the log, so a subscriber that arrives late replays from
//!   `job_created`, and one that falls behind the output ring gets a single
//!   `output_skipped { count }` and carries on.
//! - [`Bus`] feeds the all-jobs subscribers. Each has its own queue: every
//!   structural event is queued; output lines are queued up to a cap, past
//!   which they are counted and reported as `output_skipped` before the
//!   job's next event.
//!
//! Producers append whole batches (one pipe read's worth of lines) under one
//! lock and wake the consumers once per batch.
//!
//! **Backpressure cursors.** A job cursor opened with
//! [`Lag::Backpressure`](super::Lag) is never skipped: output lines it has not
//! read yet are pinned in the ring (the ring may exceed its own limits by up
//! to the cursor's byte budget plus one pipe read), and
//! [`EventLog::lagging`] tells the driver to stop reading the job's pipes
//! while any such cursor is more than its budget behind. Each read of a
//! backpressure cursor (and dropping it) wakes the driver through
//! [`EventLog::room`].
//!
//! **Superseded state events** are coalesced in the replay log: a
//! `progress_updated` followed by a newer one is dropped, likewise
//! `label_updated`, and `phase_updated` of the same phase, as long as no
//! other structural event (a phase change, a finding, a warning…) came in
//! between, and only once every live cursor has read it (a subscriber never
//! misses an event that happened while it was subscribed). The log is
//! compacted when its structural entries grow by half (amortized O(1) per
//! event), when it is sealed, and before a late subscriber replays it. A late subscriber therefore sees the latest
//! progress and label, and every phase and finding, while a job that reports
//! progress a million times keeps a bounded number of entries.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::SystemTime;

use tokio::sync::Notify;

use crate::event::{Event, Stream};
use crate::job::JobId;

/// One output line as a log keeps it: compact (the job id is the log's), so
/// a chatty job moves a quarter of the bytes a full [`Event`] would.
#[derive(Clone)]
pub(crate) struct OutLine {
    pub stream: Stream,
    pub redraw: bool,
    pub at: SystemTime,
    pub line: String,
}

impl OutLine {
    /// Approximate memory held.
    fn bytes(&self) -> usize {
        self.line.capacity() + 64
    }
}

/// An event on its way to a consumer, kept compact until it is handed out.
pub(crate) enum Pending {
    Out(JobId, OutLine),
    Event(Box<Event>),
}

impl Pending {
    pub(crate) fn into_event(self) -> Event {
        match self {
            Pending::Out(job, o) => Event::OutputAppended {
                job,
                stream: o.stream,
                line: o.line,
                redraw: o.redraw,
                at: o.at,
            },
            Pending::Event(e) => *e,
        }
    }

    fn is_output(&self) -> bool {
        matches!(self, Pending::Out(..))
    }
}

/// What a driver appends to a log: an output line, or any other event.
pub(crate) enum Item {
    Out(OutLine),
    Event(Box<Event>),
}

impl Item {
    pub(crate) fn event(ev: Event) -> Self {
        Item::Event(Box::new(ev))
    }

    /// The event, unless this is an output line.
    pub(crate) fn structural(&self) -> Option<&Event> {
        match self {
            Item::Event(e) => Some(e),
            Item::Out(_) => None,
        }
    }
}

/// Lock a mutex, recovering from poisoning (a panicking holder cannot leave
/// these structures half-updated in a way that matters to readers).
pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Bounds of a job's output ring.
#[derive(Debug, Clone, Copy)]
pub(crate) struct RingLimits {
    pub lines: usize,
    pub bytes: usize,
}

struct Entry {
    seq: u64,
    /// Output lines appended before this event. A gap between a cursor's
    /// count and this is a skip.
    out_ord: u64,
    event: Event,
}

struct OutEntry {
    seq: u64,
    /// This line's ordinal among the job's output lines.
    ord: u64,
    /// Output bytes (as [`OutLine::bytes`] counts them) appended up to and
    /// including this line.
    end_bytes: u64,
    out: OutLine,
}

/// What the log sees of one live cursor.
pub(crate) struct CursorShared {
    /// The next sequence number the cursor will read.
    pos: AtomicU64,
    /// Output bytes read so far (compared with the log's total).
    bytes_read: AtomicU64,
    /// `Some(max lag in bytes)` for a backpressure cursor.
    backpressure: Option<u64>,
}

/// Which state a state event sets (a later event with the same key
/// supersedes it), or `None` for every other event.
#[derive(PartialEq)]
enum StateKey {
    Progress,
    Label,
    Phase(crate::phase::PhaseId),
}

fn state_key(ev: &Event) -> Option<StateKey> {
    match ev {
        Event::ProgressUpdated { .. } => Some(StateKey::Progress),
        Event::LabelUpdated { .. } => Some(StateKey::Label),
        Event::PhaseUpdated { phase, .. } => Some(StateKey::Phase(*phase)),
        _ => None,
    }
}

/// Structural entries kept before the first compaction is tried.
const COMPACT_FIRST: usize = 1024;

struct LogState {
    structural: Vec<Entry>,
    output: VecDeque<OutEntry>,
    output_bytes: usize,
    /// Output bytes ever appended (see [`OutEntry::end_bytes`]).
    bytes_total: u64,
    next_seq: u64,
    outputs_total: u64,
    closed: bool,
    limits: RingLimits,
    /// Live cursors (to keep what they still need when the log is sealed,
    /// and what backpressure cursors have not read yet).
    cursors: Vec<Weak<CursorShared>>,
    /// How many backpressure cursors were opened (0: skip the pin scan).
    backpressure_cursors: usize,
    /// Compact the structural entries when there are this many.
    compact_at: usize,
}

impl LogState {
    /// The first sequence number a live backpressure cursor still needs
    /// (`u64::MAX` if none).
    fn pinned_from(&mut self) -> u64 {
        if self.backpressure_cursors == 0 {
            return u64::MAX;
        }
        let mut min = u64::MAX;
        let mut live_bp = 0;
        self.cursors.retain(|w| match w.upgrade() {
            Some(c) => {
                if c.backpressure.is_some() {
                    live_bp += 1;
                    min = min.min(c.pos.load(Ordering::Acquire));
                }
                true
            }
            None => false,
        });
        self.backpressure_cursors = live_bp;
        min
    }

    /// Drop state events superseded by a later one of the same kind with
    /// no other structural event in between, once every live cursor has
    /// read them (a subscriber never misses an event it was there for).
    fn compact(&mut self) {
        let min_live = self
            .cursors
            .iter()
            .filter_map(Weak::upgrade)
            .map(|c| c.pos.load(Ordering::Acquire))
            .min()
            .unwrap_or(u64::MAX);
        let mut keep = vec![true; self.structural.len()];
        let mut seen: Vec<StateKey> = Vec::new();
        for (i, e) in self.structural.iter().enumerate().rev() {
            match state_key(&e.event) {
                None => seen.clear(),
                Some(k) => {
                    if seen.contains(&k) {
                        keep[i] = e.seq >= min_live;
                    } else {
                        seen.push(k);
                    }
                }
            }
        }
        let mut i = 0;
        self.structural.retain(|_| {
            i += 1;
            keep[i - 1]
        });
        let n = self.structural.len();
        self.compact_at = n + (n / 2).max(COMPACT_FIRST);
    }
}

/// One job's event log.
pub(crate) struct EventLog {
    job: JobId,
    state: Mutex<LogState>,
    notify: Notify,
    /// Woken when a backpressure cursor reads or goes away (the driver
    /// waits on it while [`lagging`](Self::lagging)).
    room: Notify,
}

/// What a non-blocking read found.
pub(crate) enum Read {
    /// Events were added to the buffer.
    Some,
    /// Nothing new yet.
    Empty,
    /// The log is closed and fully read.
    Ended,
}

impl EventLog {
    pub(crate) fn new(job: JobId, limits: RingLimits) -> Self {
        EventLog {
            job,
            state: Mutex::new(LogState {
                structural: Vec::new(),
                output: VecDeque::new(),
                output_bytes: 0,
                bytes_total: 0,
                next_seq: 0,
                outputs_total: 0,
                closed: false,
                limits,
                cursors: Vec::new(),
                backpressure_cursors: 0,
                compact_at: COMPACT_FIRST,
            }),
            notify: Notify::new(),
            room: Notify::new(),
        }
    }

    /// Is a backpressure cursor too far behind? With `resume`, the question
    /// is whether one is still more than half its budget behind (the driver
    /// resumes reading only then, so it does not wake for every batch).
    pub(crate) fn lagging(&self, resume: bool) -> bool {
        let st = lock(&self.state);
        if st.backpressure_cursors == 0 {
            return false;
        }
        st.cursors.iter().filter_map(Weak::upgrade).any(|c| {
            c.backpressure.is_some_and(|max| {
                let limit = if resume { max / 2 } else { max };
                st.bytes_total
                    .saturating_sub(c.bytes_read.load(Ordering::Acquire))
                    > limit
            })
        })
    }

    /// Wait until no backpressure cursor is more than half its budget
    /// behind (returns at once if none is).
    pub(crate) async fn room(&self) {
        loop {
            let woken = self.room.notified();
            tokio::pin!(woken);
            woken.as_mut().enable();
            if !self.lagging(true) {
                return;
            }
            woken.await;
        }
    }

    /// Output bytes this log keeps (for the finished-jobs budget).
    pub(crate) fn kept_bytes(&self) -> usize {
        lock(&self.state).output_bytes
    }

    /// Append items and wake readers. Appending to a closed log is ignored.
    pub(crate) fn append<I: IntoIterator<Item = Item>>(&self, items: I) {
        {
            let mut st = lock(&self.state);
            if st.closed {
                return;
            }
            let RingLimits { lines, bytes } = st.limits;
            let pinned = st.pinned_from();
            for item in items {
                let seq = st.next_seq;
                st.next_seq += 1;
                let ord = st.outputs_total;
                match item {
                    Item::Out(out) => {
                        // Make room first, so the ring never grows past its
                        // limits (not even by one batch).
                        // Lines a backpressure cursor still needs stay.
                        let size = out.bytes();
                        while st.output.front().is_some_and(|e| e.seq < pinned)
                            && (st.output.len() >= lines || st.output_bytes + size > bytes)
                        {
                            if let Some(e) = st.output.pop_front() {
                                st.output_bytes -= e.out.bytes();
                            }
                        }
                        st.outputs_total += 1;
                        st.output_bytes += size;
                        st.bytes_total += size as u64;
                        let end_bytes = st.bytes_total;
                        st.output.push_back(OutEntry {
                            seq,
                            ord,
                            end_bytes,
                            out,
                        });
                    }
                    Item::Event(event) => {
                        let closing = event.is_finalized();
                        st.structural.push(Entry {
                            seq,
                            out_ord: ord,
                            event: *event,
                        });
                        if st.structural.len() >= st.compact_at {
                            st.compact();
                        }
                        if closing {
                            st.closed = true;
                            break;
                        }
                    }
                }
            }
        }
        self.notify.notify_waiters();
    }

    /// After the job ended: keep only the last `limits` worth of output
    /// lines, plus whatever live subscribers have not read yet.
    pub(crate) fn seal(&self, limits: RingLimits) {
        let mut st = lock(&self.state);
        st.cursors.retain(|w| w.strong_count() > 0);
        let min_live = st
            .cursors
            .iter()
            .filter_map(|w| w.upgrade())
            .map(|p| p.pos.load(Ordering::Relaxed))
            .min()
            .unwrap_or(u64::MAX);
        while st.output.len() > limits.lines || st.output_bytes > limits.bytes {
            match st.output.front() {
                Some(e) if e.seq < min_live => {
                    if let Some(e) = st.output.pop_front() {
                        st.output_bytes -= e.out.bytes();
                    }
                }
                _ => break,
            }
        }
        st.compact();
        st.output.shrink_to_fit();
        st.structural.shrink_to_fit();
    }

    /// A cursor at the start of the log; `backpressure`: its byte budget,
    /// if it is a backpressure cursor.
    pub(crate) fn cursor(self: &Arc<Self>, backpressure: Option<u64>) -> JobCursor {
        let mut st = lock(&self.state);
        if st.closed {
            // Subscribers that were there when the job ended may have read
            // on since it was sealed: a late one gets the compact replay.
            st.compact();
        }
        // A backpressure cursor has read nothing yet: it lags by everything
        // still in the ring (so the driver waits for it from the start).
        let first_bytes = st
            .output
            .front()
            .map(|e| e.end_bytes - e.out.bytes() as u64)
            .unwrap_or(st.bytes_total);
        let shared = Arc::new(CursorShared {
            pos: AtomicU64::new(0),
            bytes_read: AtomicU64::new(first_bytes),
            backpressure: backpressure.map(|b| b.max(1)),
        });
        if backpressure.is_some() {
            st.backpressure_cursors += 1;
        }
        st.cursors.push(Arc::downgrade(&shared));
        drop(st);
        JobCursor {
            log: Arc::clone(self),
            shared,
            seq: 0,
            out_next: 0,
        }
    }
}

/// A reader's position in one job's log.
pub(crate) struct JobCursor {
    log: Arc<EventLog>,
    shared: Arc<CursorShared>,
    seq: u64,
    out_next: u64,
}

impl Drop for JobCursor {
    fn drop(&mut self) {
        if self.shared.backpressure.is_some() {
            // Release the pipe: the driver re-checks who is still behind.
            // (The count of backpressure cursors is fixed up lazily.)
            self.shared.pos.store(u64::MAX, Ordering::Release);
            self.shared.bytes_read.store(u64::MAX, Ordering::Release);
            self.log.room.notify_one();
        }
    }
}

/// How many events one read moves at most (small enough to stay in cache).
const READ_BATCH: usize = 512;

impl JobCursor {
    pub(crate) fn try_read(&mut self, out: &mut VecDeque<Pending>) -> Read {
        let st = lock(&self.log.state);
        let mut si = st.structural.partition_point(|e| e.seq < self.seq);
        let mut oi = st.output.partition_point(|e| e.seq < self.seq);
        let job = self.log.job;
        let mut n = 0;
        let mut bytes_read = None;
        while n < READ_BATCH {
            let s = st.structural.get(si);
            let o = st.output.get(oi);
            // The next entry in sequence order: (seq, outputs before it).
            let (seq, ord, output) = match (s, o) {
                (Some(s), Some(o)) if o.seq < s.seq => (o.seq, o.ord, Some(o)),
                (Some(s), _) => (s.seq, s.out_ord, None),
                (None, Some(o)) => (o.seq, o.ord, Some(o)),
                (None, None) => break,
            };
            if ord > self.out_next {
                out.push_back(Pending::Event(Box::new(Event::OutputSkipped {
                    job,
                    count: ord - self.out_next,
                    at: SystemTime::now(),
                })));
                self.out_next = ord;
            }
            match output {
                Some(o) => {
                    out.push_back(Pending::Out(job, o.out.clone()));
                    bytes_read = Some(o.end_bytes);
                    self.out_next += 1;
                    oi += 1;
                }
                None => {
                    if let Some(s) = s {
                        out.push_back(Pending::Event(Box::new(s.event.clone())));
                    }
                    si += 1;
                }
            }
            self.seq = seq + 1;
            n += 1;
        }
        let ended = st.closed && self.seq >= st.next_seq;
        drop(st);
        self.shared.pos.store(self.seq, Ordering::Release);
        if let Some(b) = bytes_read {
            self.shared.bytes_read.store(b, Ordering::Release);
            if self.shared.backpressure.is_some() {
                self.log.room.notify_one();
            }
        }
        if n > 0 {
            Read::Some
        } else if ended {
            Read::Ended
        } else {
            Read::Empty
        }
    }

    /// Wait until there is something to read (or the log ended); returns
    /// `false` once the log is closed and fully read.
    pub(crate) async fn read(&mut self, out: &mut VecDeque<Pending>) -> bool {
        loop {
            let log = Arc::clone(&self.log);
            let notified = log.notify.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            match self.try_read(out) {
                Read::Some => return true,
                Read::Ended => return false,
                Read::Empty => notified.await,
            }
        }
    }
}

/// Fan-out to all-jobs subscribers.
pub(crate) struct Bus {
    subs: Mutex<Vec<Arc<BusSub>>>,
    count: AtomicUsize,
    output_cap: usize,
}

pub(crate) struct BusSub {
    queue: Mutex<BusQueue>,
    notify: Notify,
    /// The subscriber went away (its stream was dropped).
    gone: AtomicBool,
    /// The bus went away: no more events will come.
    closed: AtomicBool,
}

#[derive(Default)]
struct BusQueue {
    events: VecDeque<Pending>,
    outputs_queued: usize,
    skipped: Vec<(JobId, u64)>,
}

impl Bus {
    pub(crate) fn new(output_cap: usize) -> Self {
        Bus {
            subs: Mutex::new(Vec::new()),
            count: AtomicUsize::new(0),
            output_cap: output_cap.max(1),
        }
    }

    pub(crate) fn subscribe(&self) -> BusReceiver {
        let sub = Arc::new(BusSub {
            queue: Mutex::new(BusQueue::default()),
            notify: Notify::new(),
            gone: AtomicBool::new(false),
            closed: AtomicBool::new(false),
        });
        let mut subs = lock(&self.subs);
        subs.push(Arc::clone(&sub));
        self.count.store(subs.len(), Ordering::Release);
        BusReceiver { sub }
    }

    /// Deliver a batch of one job's items to every subscriber.
    pub(crate) fn publish(&self, job: JobId, items: &[Item]) {
        if items.is_empty() || self.count.load(Ordering::Acquire) == 0 {
            return;
        }
        let mut subs = lock(&self.subs);
        subs.retain(|s| !s.gone.load(Ordering::Acquire));
        self.count.store(subs.len(), Ordering::Release);
        for sub in subs.iter() {
            {
                let mut q = lock(&sub.queue);
                for item in items {
                    if let Item::Out(_) = item {
                        if q.outputs_queued >= self.output_cap {
                            match q.skipped.iter_mut().find(|(j, _)| *j == job) {
                                Some((_, n)) => *n += 1,
                                None => q.skipped.push((job, 1)),
                            }
                            continue;
                        }
                        q.outputs_queued += 1;
                    }
                    if !q.skipped.is_empty() {
                        if let Some(i) = q.skipped.iter().position(|(j, _)| *j == job) {
                            let (_, count) = q.skipped.swap_remove(i);
                            q.events
                                .push_back(Pending::Event(Box::new(Event::OutputSkipped {
                                    job,
                                    count,
                                    at: SystemTime::now(),
                                })));
                        }
                    }
                    q.events.push_back(match item {
                        Item::Out(o) => Pending::Out(job, o.clone()),
                        Item::Event(e) => Pending::Event(e.clone()),
                    });
                }
            }
            sub.notify.notify_one();
        }
    }

    /// No more events: end every subscriber's stream once drained.
    pub(crate) fn close(&self) {
        let subs = std::mem::take(&mut *lock(&self.subs));
        self.count.store(0, Ordering::Release);
        for sub in subs {
            sub.closed.store(true, Ordering::Release);
            sub.notify.notify_one();
        }
    }
}

impl Drop for Bus {
    fn drop(&mut self) {
        self.close();
    }
}

/// One all-jobs subscriber's end of the bus.
pub(crate) struct BusReceiver {
    sub: Arc<BusSub>,
}

impl BusReceiver {
    pub(crate) fn try_read(&mut self, out: &mut VecDeque<Pending>) -> Read {
        let mut q = lock(&self.sub.queue);
        if q.events.is_empty() {
            return if self.sub.closed.load(Ordering::Acquire) {
                Read::Ended
            } else {
                Read::Empty
            };
        }
        let n = q.events.len().min(READ_BATCH);
        let mut outputs = 0;
        for ev in q.events.drain(..n) {
            if ev.is_output() {
                outputs += 1;
            }
            out.push_back(ev);
        }
        q.outputs_queued -= outputs;
        Read::Some
    }

    pub(crate) async fn read(&mut self, out: &mut VecDeque<Pending>) -> bool {
        loop {
            match self.try_read(out) {
                Read::Some => return true,
                Read::Ended => return false,
                Read::Empty => self.sub.notify.notified().await,
            }
        }
    }
}

impl Drop for BusReceiver {
    fn drop(&mut self) {
        self.sub.gone.store(true, Ordering::Release);
    }
}
