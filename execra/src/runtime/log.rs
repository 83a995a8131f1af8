//! Event logs: how events get from one producer (a job's driver) to any
//! number of consumers without the producer waiting (beyond what a
//! subscriber asks for, below) and without losing anything that matters.
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
//! **Output as ranges.** A pipe read's complete plain lines arrive as one
//! string and the lines' `(start, end)` ranges ([`Item::Lines`]); the ring
//! keeps them that way, as a [`Block`] per read (one allocation per read,
//! 8 bytes per line, no per-line entry, reference count or timestamp: every
//! line of a read has the read's `at`). Other lines (redacted, assembled
//! across reads, cut at the cap, redraws) are blocks of one line with their
//! own string. Eviction drops whole front blocks, or moves the front
//! block's first line; a sealed log gives a block whose read is much bigger
//! than what it keeps a string of its own ([`repack`]), so a finished job
//! does not pin whole reads. A line counts as its length plus 64 bytes
//! against the ring's byte bound, as before (its real cost is now its
//! length plus 8).
//!
//! **Reading.** A cursor copies up to [`READ_BATCH`] events under one lock
//! into its consumer's [`Local`] buffer: a run of lines of one read is one
//! entry (the read's string, referenced once, and the ranges, copied with
//! one `memcpy`). Each [`Event`] is built only when the consumer takes it,
//! in the consumer's own slot: one allocation per line (its `String`), no
//! 256-byte event moved around before that. A consumer that borrows
//! ([`Local::visit`], `EventStream::next_batch_with`) gets each line as a
//! `&str` into the read's string: no allocation at all.
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
//! **Catching up.** A [`Lag::Skip`](super::Lag) cursor is skipped when it
//! falls behind the ring, but one that keeps reading gets a chance first:
//! after each append the log notes whether such a cursor is in the older
//! half of a ring at least half full ([`EventLog::behind`]); the driver then
//! waits in [`EventLog::catch_up`] (bounded; see
//! `driver::lines::catch_up_budget`) until the cursor has reached the
//! middle, which wakes it.
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

use crate::event::{Event, EventRef, OutputRef, Stream};
use crate::job::JobId;

/// Memory one output line is counted as, beyond its text.
const LINE_OVERHEAD: usize = 64;

/// An output line's text: a range of a string shared by several lines (a
/// pipe read's complete lines), or a string of its own (lines that were
/// redacted, stripped of escapes, cut at the length cap, or assembled
/// across reads).
#[derive(Clone)]
pub(crate) enum Text {
    /// `chunk[start..end]`.
    Shared {
        chunk: Arc<str>,
        start: u32,
        end: u32,
    },
    /// Its own string.
    Owned(String),
}

impl Text {
    /// The text.
    pub(crate) fn as_str(&self) -> &str {
        match self {
            Text::Shared { chunk, start, end } => chunk
                .get(*start as usize..*end as usize)
                .unwrap_or_default(),
            Text::Owned(s) => s,
        }
    }

    /// The text as an owned string (a copy for a shared range).
    pub(crate) fn into_string(self) -> String {
        match self {
            Text::Shared { .. } => self.as_str().to_owned(),
            Text::Owned(s) => s,
        }
    }
}

/// One output line of its own, as a driver hands it over (see [`Item`]).
#[derive(Clone)]
pub(crate) struct OutLine {
    pub stream: Stream,
    pub redraw: bool,
    pub at: SystemTime,
    pub line: Text,
}

/// The `(start, end)` ranges of a block's lines: one inline (a line of its
/// own, or a read with one line: no allocation), or many.
#[derive(Clone, Debug)]
pub(crate) enum Ranges {
    One((u32, u32)),
    Many(Vec<(u32, u32)>),
}

impl Ranges {
    pub(crate) fn as_slice(&self) -> &[(u32, u32)] {
        match self {
            Ranges::One(r) => std::slice::from_ref(r),
            Ranges::Many(v) => v,
        }
    }

    fn as_mut_slice(&mut self) -> &mut [(u32, u32)] {
        match self {
            Ranges::One(r) => std::slice::from_mut(r),
            Ranges::Many(v) => v,
        }
    }

    fn len(&self) -> usize {
        self.as_slice().len()
    }

    /// Forget the first `n` lines (fewer than all).
    fn drain_front(&mut self, n: usize) {
        if let Ranges::Many(v) = self {
            v.drain(..n.min(v.len()));
            v.shrink_to_fit();
        }
    }
}

/// Complete lines cut from one string (a pipe read's), as ranges: what the
/// driver hands over for a read's plain lines, and how the log keeps them.
pub(crate) struct Lines {
    pub stream: Stream,
    /// When the read returned (one time for all its lines).
    pub at: SystemTime,
    pub chunk: Arc<str>,
    /// `(start, end)` of each line in `chunk`.
    pub ranges: Ranges,
}

/// What a driver appends to a log: output lines, or any other event.
pub(crate) enum Item {
    /// Plain lines of one read, as ranges of one string.
    Lines(Lines),
    /// One line (or redraw) with its own text.
    Out(OutLine),
    Event(Box<Event>),
}

impl Item {
    pub(crate) fn event(ev: Event) -> Self {
        Item::Event(Box::new(ev))
    }

    /// The event, unless this is output.
    pub(crate) fn structural(&self) -> Option<&Event> {
        match self {
            Item::Event(e) => Some(e),
            Item::Out(_) | Item::Lines(_) => None,
        }
    }
}

/// An event on its way to a consumer, kept compact until it is handed out
/// (see [`Local`]).
pub(crate) enum Pending {
    /// An output line with its own text (or a reference to its read).
    Out(JobId, OutLine),
    /// Output lines whose texts are `ranges[next..end]` of the [`Local`]
    /// buffer, in its chunk `chunk`.
    Run {
        job: JobId,
        stream: Stream,
        at: SystemTime,
        chunk: u32,
        next: u32,
        end: u32,
    },
    Event(Box<Event>),
}

impl Pending {
    /// How many output lines this is.
    fn outputs(&self) -> usize {
        match self {
            Pending::Out(..) => 1,
            Pending::Run { next, end, .. } => (end - next) as usize,
            Pending::Event(_) => 0,
        }
    }
}

/// Lines taken from a run ([`Local::take_run`]): `k` lines from range
/// `from` on, in chunk `chunk`.
struct RunTake {
    job: JobId,
    stream: Stream,
    at: SystemTime,
    chunk: usize,
    from: usize,
    k: usize,
}

/// `chunk[s..e]` (empty if out of bounds, which cannot happen).
#[inline]
fn slice(chunk: Option<&Arc<str>>, s: u32, e: u32) -> &str {
    chunk
        .and_then(|c| c.get(s as usize..e as usize))
        .unwrap_or_default()
}

/// A consumer's local buffer: events copied out of a log (or a bus queue)
/// under one lock, materialised into [`Event`]s one by one as the consumer
/// takes them. A run of lines of one read is one entry: a reference to the
/// read's string and the lines' ranges, copied in one go.
#[derive(Default)]
pub(crate) struct Local {
    items: VecDeque<Pending>,
    chunks: Vec<Arc<str>>,
    ranges: Vec<(u32, u32)>,
}

impl Local {
    /// A buffer holding these events.
    pub(crate) fn of_events(events: Vec<Event>) -> Self {
        Local {
            items: events
                .into_iter()
                .map(|e| Pending::Event(Box::new(e)))
                .collect(),
            ..Local::default()
        }
    }

    /// `true` when nothing is buffered.
    pub(crate) fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// How many events are buffered.
    pub(crate) fn len(&self) -> usize {
        self.items.iter().map(|p| p.outputs().max(1)).sum()
    }

    /// Take the oldest buffered event.
    #[inline]
    pub(crate) fn pop(&mut self) -> Option<Event> {
        // Two calls, each building its event in the caller's slot (a
        // 256-byte event is not copied around on the way out).
        if let Some(Pending::Run { .. }) = self.items.front() {
            self.pop_line()
        } else {
            self.pop_other()
        }
    }

    /// [`pop`](Self::pop) for a run of lines: its next line.
    #[inline(never)]
    fn pop_line(&mut self) -> Option<Event> {
        // (Not through `take_run`: this is the one-event-at-a-time path,
        // kept as short as can be.)
        let Some(Pending::Run {
            job,
            stream,
            at,
            chunk,
            next,
            end,
        }) = self.items.front_mut()
        else {
            return None;
        };
        let (job, stream, at) = (*job, *stream, *at);
        let (s, e) = self.ranges.get(*next as usize).copied().unwrap_or((0, 0));
        let line = slice(self.chunks.get(*chunk as usize), s, e).to_owned();
        *next += 1;
        if *next >= *end {
            self.items.pop_front();
            self.clear_if_empty();
        }
        // Built last, straight into the caller's slot.
        Some(Event::OutputAppended {
            job,
            stream,
            line,
            redraw: false,
            at,
        })
    }

    /// Take up to `max` lines (at least one) of the front entry if it is a
    /// run of lines: which ones, to be read with [`texts`](Self::texts).
    /// The run is dropped once all of its lines are taken; the chunks and
    /// ranges stay until the caller clears them.
    #[inline]
    fn take_run(&mut self, max: usize) -> Option<RunTake> {
        let Some(Pending::Run {
            job,
            stream,
            at,
            chunk,
            next,
            end,
        }) = self.items.front_mut()
        else {
            return None;
        };
        let k = ((*end - *next) as usize).min(max.max(1));
        let run = RunTake {
            job: *job,
            stream: *stream,
            at: *at,
            chunk: *chunk as usize,
            from: *next as usize,
            k,
        };
        *next += k as u32;
        if *next >= *end {
            self.items.pop_front();
        }
        Some(run)
    }

    /// The texts of the lines a [`take_run`](Self::take_run) took.
    #[inline]
    fn texts<'a>(&'a self, run: &RunTake) -> impl Iterator<Item = &'a str> + 'a {
        let text = self.chunks.get(run.chunk);
        self.ranges
            .get(run.from..run.from + run.k)
            .unwrap_or_default()
            .iter()
            .map(move |&(s, e)| slice(text, s, e))
    }

    /// Forget the chunks once no entry refers to them.
    fn clear_if_empty(&mut self) {
        if self.items.is_empty() {
            self.chunks.clear();
            self.ranges.clear();
        }
    }

    /// [`pop`](Self::pop) for anything but a run of lines.
    #[inline(never)]
    fn pop_other(&mut self) -> Option<Event> {
        let ev = match self.items.pop_front()? {
            Pending::Out(job, o) => Event::OutputAppended {
                job,
                stream: o.stream,
                line: o.line.into_string(),
                redraw: o.redraw,
                at: o.at,
            },
            Pending::Event(e) => *e,
            Pending::Run { .. } => return None,
        };
        self.clear_if_empty();
        Some(ev)
    }

    /// Move up to `max` buffered events to the end of `out`; returns how
    /// many.
    pub(crate) fn drain_into(&mut self, out: &mut Vec<Event>, max: usize) -> usize {
        let mut n = 0;
        while n < max {
            if let Some(run) = self.take_run(max - n) {
                // A run of lines: each event is built in its place.
                out.reserve(run.k);
                for line in self.texts(&run) {
                    out.push(Event::OutputAppended {
                        job: run.job,
                        stream: run.stream,
                        line: line.to_owned(),
                        redraw: false,
                        at: run.at,
                    });
                }
                n += run.k;
            } else if let Some(ev) = self.pop() {
                out.push(ev);
                n += 1;
            } else {
                break;
            }
        }
        self.clear_if_empty();
        n
    }

    /// Lend up to `max` buffered events to `f`, oldest first, then drop
    /// them; returns how many. A run of lines is lent as ranges of its
    /// read's string: no line is copied.
    pub(crate) fn visit<F: FnMut(EventRef<'_>)>(&mut self, max: usize, f: &mut F) -> usize {
        let mut n = 0;
        while n < max {
            if let Some(run) = self.take_run(max - n) {
                for line in self.texts(&run) {
                    f(EventRef::Output(OutputRef {
                        job: run.job,
                        stream: run.stream,
                        line,
                        redraw: false,
                        at: run.at,
                    }));
                }
                n += run.k;
                continue;
            }
            match self.items.pop_front() {
                None => break,
                Some(Pending::Out(job, o)) => f(EventRef::Output(OutputRef {
                    job,
                    stream: o.stream,
                    line: o.line.as_str(),
                    redraw: o.redraw,
                    at: o.at,
                })),
                Some(Pending::Event(e)) => f(EventRef::of(&e)),
                Some(Pending::Run { .. }) => {}
            }
            n += 1;
        }
        self.clear_if_empty();
        n
    }

    fn push_event(&mut self, ev: Event) {
        self.items.push_back(Pending::Event(Box::new(ev)));
    }

    /// Buffer lines `from..to` of `block`, of `job`'s log.
    fn push_block(&mut self, job: JobId, block: &Block, from: usize, to: usize) {
        match &block.text {
            BlockText::Shared(chunk) => {
                let idx = match self.chunks.last() {
                    Some(last) if Arc::ptr_eq(last, chunk) => self.chunks.len() - 1,
                    _ => {
                        self.chunks.push(Arc::clone(chunk));
                        self.chunks.len() - 1
                    }
                };
                let next = self.ranges.len();
                self.ranges
                    .extend_from_slice(&block.ranges.as_slice()[from..to]);
                self.items.push_back(Pending::Run {
                    job,
                    stream: block.stream,
                    at: block.at,
                    chunk: idx as u32,
                    next: next as u32,
                    end: self.ranges.len() as u32,
                });
            }
            BlockText::Owned(text) => self.items.push_back(Pending::Out(
                job,
                OutLine {
                    stream: block.stream,
                    redraw: block.redraw,
                    at: block.at,
                    line: Text::Owned(text.clone()),
                },
            )),
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

enum BlockText {
    /// Lines are ranges of this string.
    Shared(Arc<str>),
    /// One line (or redraw): this string.
    Owned(String),
}

/// Consecutive output lines of one stream, appended together: a pipe
/// read's plain lines (ranges of one string), or one line of its own. The
/// ring keeps blocks; its front block may have lost its first lines.
struct Block {
    /// Sequence number of line 0 (a block's lines have consecutive ones).
    seq: u64,
    /// Ordinal of line 0 among the job's output lines.
    ord: u64,
    /// Output bytes (as [`Block::size`] counts them) appended before line 0.
    bytes_before: u64,
    /// Lines before this one were evicted.
    first: usize,
    /// Counted bytes of the lines from `first` on.
    kept_bytes: u64,
    stream: Stream,
    redraw: bool,
    at: SystemTime,
    text: BlockText,
    /// `(start, end)` of each line in a shared text; `(0, len)` for an
    /// owned one.
    ranges: Ranges,
}

impl Block {
    fn len(&self) -> usize {
        self.ranges.len()
    }

    /// Memory line `i` is counted as: its text plus [`LINE_OVERHEAD`].
    fn size(&self, i: usize) -> usize {
        match &self.text {
            BlockText::Owned(s) => s.capacity() + LINE_OVERHEAD,
            BlockText::Shared(_) => {
                self.ranges
                    .as_slice()
                    .get(i)
                    .map_or(0, |&(s, e)| e.saturating_sub(s) as usize)
                    + LINE_OVERHEAD
            }
        }
    }

    /// Memory lines `from..to` are counted as (see [`size`](Self::size)).
    fn size_of(&self, from: usize, to: usize) -> usize {
        match &self.text {
            BlockText::Owned(_) => (from..to).map(|i| self.size(i)).sum(),
            BlockText::Shared(_) => {
                let lines = self.ranges.as_slice().get(from..to).unwrap_or_default();
                let text: usize = lines
                    .iter()
                    .map(|&(s, e)| e.saturating_sub(s) as usize)
                    .sum();
                text + lines.len() * LINE_OVERHEAD
            }
        }
    }

    /// Counted output bytes appended before line `i`.
    fn bytes_at(&self, i: usize) -> u64 {
        match &self.text {
            BlockText::Owned(_) => self.bytes_before + if i > 0 { self.size(0) as u64 } else { 0 },
            BlockText::Shared(_) => {
                let text: u64 = self.ranges.as_slice()[..i.min(self.len())]
                    .iter()
                    .map(|&(s, e)| u64::from(e.saturating_sub(s)))
                    .sum();
                self.bytes_before + text + (i * LINE_OVERHEAD) as u64
            }
        }
    }
}

/// What the log sees of one live cursor.
pub(crate) struct CursorShared {
    /// The next sequence number the cursor will read.
    pos: AtomicU64,
    /// Output bytes read so far (compared with the log's total).
    bytes_read: AtomicU64,
    /// `Some(max lag in bytes)` for a backpressure cursor.
    backpressure: Option<u64>,
    /// Where a [`Lag::Skip`](super::Lag) cursor was when it did not read
    /// while the driver waited for it to catch up (`u64::MAX`: it did): it
    /// is not waited for again until it reads on (see
    /// [`EventLog::catch_up`]).
    stalled_at: AtomicU64,
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

/// A [`Lag::Skip`](super::Lag) cursor with more structural events than
/// this unread is waited for (see [`LogState::skip_cursor_behind`]).
const STRUCTURAL_LAG: usize = 4096;

/// Structural entries kept before the first compaction is tried.
const COMPACT_FIRST: usize = 1024;

struct LogState {
    structural: Vec<Entry>,
    output: VecDeque<Block>,
    /// Output lines kept (in `output`, past each block's `first`).
    output_lines: usize,
    output_bytes: usize,
    /// Output bytes ever appended (see [`Block::bytes_before`]).
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

    /// Is a live [`Lag::Skip`](super::Lag) cursor falling behind: in
    /// danger of being skipped (the ring is at least half full and the
    /// cursor still has the older half of it to read), or holding more than
    /// [`STRUCTURAL_LAG`] structural events unread (which cannot be
    /// coalesced until it has read them)? Returns such a cursor, and the
    /// sequence number it has to reach: the ring's middle, and half that
    /// many structural events from the end.
    fn skip_cursor_behind(&self) -> Option<(Arc<CursorShared>, u64)> {
        let half_full = self.output_lines * 2 >= self.limits.lines
            || self.output_bytes * 2 >= self.limits.bytes;
        let middle = match self.output.front() {
            Some(front) if half_full => front.seq + (front.first + self.output_lines / 2) as u64,
            _ => 0,
        };
        let n = self.structural.len();
        let (too_far, structural_target) = match n.checked_sub(STRUCTURAL_LAG) {
            Some(i) => (
                self.structural.get(i).map_or(0, |e| e.seq),
                self.structural
                    .get(n - STRUCTURAL_LAG / 2)
                    .map_or(0, |e| e.seq),
            ),
            None => (0, 0),
        };
        let cursor = self.cursors.iter().filter_map(Weak::upgrade).find(|c| {
            let pos = c.pos.load(Ordering::Acquire);
            c.backpressure.is_none()
                && (pos < middle || pos <= too_far && n > STRUCTURAL_LAG)
                && c.stalled_at.load(Ordering::Relaxed) != pos
        })?;
        let pos = cursor.pos.load(Ordering::Acquire);
        let target = if pos < middle { middle } else { 0 };
        let target = if n > STRUCTURAL_LAG && pos <= too_far {
            target.max(structural_target)
        } else {
            target
        };
        Some((cursor, target))
    }

    /// Add a block of output lines at the end of the ring.
    fn push_block(&mut self, mut block: Block) {
        if block.ranges.len() == 0 {
            return;
        }
        block.seq = self.next_seq;
        block.ord = self.outputs_total;
        block.bytes_before = self.bytes_total;
        let n = block.len();
        let bytes = block.bytes_at(n) - block.bytes_before;
        block.kept_bytes = bytes;
        self.next_seq += n as u64;
        self.outputs_total += n as u64;
        self.bytes_total += bytes;
        self.output_lines += n;
        self.output_bytes += bytes as usize;
        self.output.push_back(block);
    }

    /// Evict the oldest output lines while over `limits`, keeping lines
    /// from sequence number `keep_from` on, and at least `min_kept` lines.
    fn evict(&mut self, limits: RingLimits, keep_from: u64, min_kept: usize) {
        while self.output_lines > min_kept
            && (self.output_lines > limits.lines || self.output_bytes > limits.bytes)
        {
            let Some(front) = self.output.front_mut() else {
                break;
            };
            if front.seq + front.first as u64 >= keep_from {
                break;
            }
            // The whole rest of the block, if one by one it would all go:
            // the condition still holds before its last line goes.
            let rest = front.len() - front.first;
            if rest > 1 {
                let last = front.len() - 1;
                let lines = self.output_lines - (rest - 1);
                let bytes = self.output_bytes + front.size(last) - front.kept_bytes as usize;
                if front.seq + (last as u64) < keep_from
                    && lines > min_kept
                    && (lines > limits.lines || bytes > limits.bytes)
                {
                    self.output_lines -= rest;
                    self.output_bytes -= front.kept_bytes as usize;
                    self.output.pop_front();
                    continue;
                }
            }
            // Part of the block: as many front lines as one by one would
            // go (at least one: the loop's condition holds), counted in one
            // pass rather than a round of this loop per line.
            let first = front.first;
            let allowed = usize::try_from(keep_from - (front.seq + first as u64))
                .unwrap_or(usize::MAX)
                .min(self.output_lines - min_kept)
                .min(rest);
            let mut k = self
                .output_lines
                .saturating_sub(limits.lines)
                .clamp(1, allowed.max(1));
            let mut size = front.size_of(first, first + k);
            while k < allowed && self.output_bytes - size > limits.bytes {
                size += front.size(first + k);
                k += 1;
            }
            front.kept_bytes -= size as u64;
            front.first += k;
            let emptied = front.first >= front.len();
            self.output_lines -= k;
            self.output_bytes -= size;
            if emptied {
                self.output.pop_front();
            }
        }
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

/// Give each block a finished log keeps a string of its own size when its
/// read's string is much bigger than the lines it still keeps (its first
/// lines were evicted, or other blocks shared the read), and forget the
/// evicted lines' ranges: a finished job holds about what it counts, not a
/// whole read per block more. (Blocks are repacked one by one, in
/// allocations no bigger than a read.)
fn repack(output: &mut VecDeque<Block>) {
    for b in output.iter_mut() {
        if b.first > 0 {
            // Forget the evicted lines (their counts move to `bytes_before`).
            b.bytes_before = b.bytes_at(b.first);
            b.seq += b.first as u64;
            b.ord += b.first as u64;
            b.ranges.drain_front(b.first);
            b.first = 0;
        }
        if let Ranges::Many(v) = &mut b.ranges {
            v.shrink_to_fit();
        }
        let BlockText::Shared(chunk) = &b.text else {
            continue;
        };
        let kept: usize = b
            .ranges
            .as_slice()
            .iter()
            .map(|&(s, e)| e.saturating_sub(s) as usize)
            .sum();
        if chunk.len() <= kept + kept / 4 + 256 {
            continue;
        }
        let mut text = String::with_capacity(kept);
        let mut at = 0u32;
        for r in b.ranges.as_mut_slice().iter_mut() {
            text.push_str(chunk.get(r.0 as usize..r.1 as usize).unwrap_or_default());
            let len = r.1.saturating_sub(r.0);
            *r = (at, at + len);
            at += len;
        }
        b.text = BlockText::Shared(Arc::from(text));
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
    /// As of the last append: see [`behind`](Self::behind).
    behind: AtomicBool,
    /// While the driver waits in [`catch_up`](Self::catch_up): the
    /// sequence number a skip cursor that reaches it wakes the driver at
    /// (through `room`), else `u64::MAX`.
    catch_up_to: AtomicU64,
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
                output_lines: 0,
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
            behind: AtomicBool::new(false),
            catch_up_to: AtomicU64::new(u64::MAX),
        }
    }

    /// Let a [`Lag::Skip`](super::Lag) subscriber that is
    /// [`behind`](Self::behind) catch up before the driver reads on: wait
    /// until none is behind, for at most `max`. A subscriber that does not
    /// read for [`PATIENCE`] meanwhile is marked stalled and not waited for
    /// again until it reads on (meanwhile it gets `output_skipped` as
    /// usual).
    pub(crate) async fn catch_up(&self, max: std::time::Duration) {
        let deadline = tokio::time::Instant::now() + max;
        loop {
            let woken = self.room.notified();
            tokio::pin!(woken);
            woken.as_mut().enable();
            let Some((cursor, target)) = lock(&self.state).skip_cursor_behind() else {
                break;
            };
            // The cursor wakes us when it gets there (see `JobCursor::try_read`).
            self.catch_up_to.store(target, Ordering::Release);
            let pos = cursor.pos.load(Ordering::Acquire);
            let now = tokio::time::Instant::now();
            if pos >= target || now >= deadline {
                break;
            }
            let until = deadline.min(now + PATIENCE);
            if tokio::time::timeout_at(until, woken).await.is_err()
                && cursor.pos.load(Ordering::Acquire) == pos
            {
                cursor.stalled_at.store(pos, Ordering::Relaxed);
            }
        }
        self.catch_up_to.store(u64::MAX, Ordering::Release);
        let behind = lock(&self.state).skip_cursor_behind().is_some();
        self.behind.store(behind, Ordering::Relaxed);
    }

    /// As of the last append, is a [`Lag::Skip`](super::Lag) subscriber
    /// in the older half of a ring at least half full (soon to be
    /// skipped)? The driver then lets it catch up before it reads on (see
    /// `driver::lines::hand_over`).
    pub(crate) fn behind(&self) -> bool {
        self.behind.load(Ordering::Relaxed)
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
            let limits = st.limits;
            let pinned = st.pinned_from();
            for item in items {
                match item {
                    Item::Lines(lines) => {
                        st.push_block(Block {
                            seq: 0,
                            ord: 0,
                            bytes_before: 0,
                            first: 0,
                            kept_bytes: 0,
                            stream: lines.stream,
                            redraw: false,
                            at: lines.at,
                            text: BlockText::Shared(lines.chunk),
                            ranges: lines.ranges,
                        });
                        // Lines a backpressure cursor still needs stay; the
                        // newest line always stays.
                        st.evict(limits, pinned, 1);
                    }
                    Item::Out(out) => {
                        let text = out.line.into_string();
                        let len = u32::try_from(text.len()).unwrap_or(u32::MAX);
                        st.push_block(Block {
                            seq: 0,
                            ord: 0,
                            bytes_before: 0,
                            first: 0,
                            kept_bytes: 0,
                            stream: out.stream,
                            redraw: out.redraw,
                            at: out.at,
                            text: BlockText::Owned(text),
                            ranges: Ranges::One((0, len)),
                        });
                        st.evict(limits, pinned, 1);
                    }
                    Item::Event(event) => {
                        let closing = event.is_finalized();
                        let (seq, ord) = (st.next_seq, st.outputs_total);
                        st.next_seq += 1;
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
            let behind = st.skip_cursor_behind().is_some();
            self.behind.store(behind, Ordering::Relaxed);
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
        st.evict(limits, min_live, 0);
        repack(&mut st.output);
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
            .map(|b| b.bytes_at(b.first))
            .unwrap_or(st.bytes_total);
        let shared = Arc::new(CursorShared {
            pos: AtomicU64::new(0),
            bytes_read: AtomicU64::new(first_bytes),
            backpressure: backpressure.map(|b| b.max(1)),
            stalled_at: AtomicU64::new(u64::MAX),
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
            woke_driver: false,
        }
    }
}

/// A reader's position in one job's log.
pub(crate) struct JobCursor {
    log: Arc<EventLog>,
    shared: Arc<CursorShared>,
    seq: u64,
    out_next: u64,
    /// A read woke the driver waiting for this cursor to catch up.
    woke_driver: bool,
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

/// How long [`EventLog::catch_up`] waits for a subscriber that reads
/// nothing before it stops waiting for it.
const PATIENCE: std::time::Duration = std::time::Duration::from_millis(20);

/// How many events one read moves at most: output lines are copied as
/// ranges (8 bytes each), so a read stays small and quick however many.
const READ_BATCH: usize = 4096;

impl JobCursor {
    /// Did a read since the last call wake the driver (which then waits
    /// for this task to yield)?
    pub(crate) fn take_woke_driver(&mut self) -> bool {
        std::mem::take(&mut self.woke_driver)
    }

    pub(crate) fn try_read(&mut self, out: &mut Local) -> Read {
        let st = lock(&self.log.state);
        let mut si = st.structural.partition_point(|e| e.seq < self.seq);
        // The first block with a line at or after the cursor, and that line.
        let mut bi = st
            .output
            .partition_point(|b| b.seq + b.len() as u64 <= self.seq);
        let mut li = st.output.get(bi).map_or(0, |b| {
            (self.seq.saturating_sub(b.seq) as usize).max(b.first)
        });
        let job = self.log.job;
        let mut n = 0;
        let mut bytes_read = None;
        while n < READ_BATCH {
            let s = st.structural.get(si);
            let b = st.output.get(bi);
            // The next entry in sequence order: (seq, outputs before it).
            let output_next = match (s, b) {
                (Some(s), Some(b)) => b.seq + (li as u64) < s.seq,
                (None, Some(_)) => true,
                (Some(_), None) => false,
                (None, None) => break,
            };
            let (seq, ord) = match (output_next, s, b) {
                (true, _, Some(b)) => (b.seq + li as u64, b.ord + li as u64),
                (false, Some(s), _) => (s.seq, s.out_ord),
                _ => break,
            };
            if ord > self.out_next {
                out.push_event(Event::OutputSkipped {
                    job,
                    count: ord - self.out_next,
                    at: SystemTime::now(),
                });
                self.out_next = ord;
            }
            match (output_next, s, b) {
                (true, _, Some(b)) => {
                    // A run of this block's lines, up to the next event.
                    let mut to = b.len().min(li + (READ_BATCH - n));
                    if let Some(s) = s {
                        to = to.min(li + (s.seq - seq) as usize);
                    }
                    out.push_block(job, b, li, to);
                    if self.shared.backpressure.is_some() {
                        bytes_read = Some(b.bytes_at(to));
                    }
                    let k = to - li;
                    self.out_next += k as u64;
                    self.seq = seq + k as u64;
                    n += k;
                    li = to;
                    if li >= b.len() {
                        bi += 1;
                        li = st.output.get(bi).map_or(0, |b| b.first);
                    }
                }
                (false, Some(s), _) => {
                    out.push_event(s.event.clone());
                    si += 1;
                    self.seq = seq + 1;
                    n += 1;
                }
                _ => break,
            }
        }
        let ended = st.closed && self.seq >= st.next_seq;
        drop(st);
        self.shared.pos.store(self.seq, Ordering::Release);
        if let Some(b) = bytes_read {
            self.shared.bytes_read.store(b, Ordering::Release);
            self.log.room.notify_one();
        } else if n > 0 {
            let target = self.log.catch_up_to.load(Ordering::Acquire);
            if self.seq >= target
                && self
                    .log
                    .catch_up_to
                    .compare_exchange(target, u64::MAX, Ordering::AcqRel, Ordering::Relaxed)
                    .is_ok()
            {
                // The driver waited for this cursor: it can read on. It is
                // woken onto this worker, where it waits until this task
                // yields: the stream yields once (see `EventStream`).
                self.log.room.notify_one();
                self.woke_driver = true;
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
    pub(crate) async fn read(&mut self, out: &mut Local) -> bool {
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

impl BusQueue {
    /// Queue an output line of `job`, or count it as skipped while `cap`
    /// lines are queued.
    fn push_output(&mut self, job: JobId, cap: usize, o: OutLine) {
        if self.outputs_queued >= cap {
            match self.skipped.iter_mut().find(|(j, _)| *j == job) {
                Some((_, n)) => *n += 1,
                None => self.skipped.push((job, 1)),
            }
            return;
        }
        self.outputs_queued += 1;
        self.report_skipped(job);
        self.events.push_back(Pending::Out(job, o));
    }

    /// Before `job`'s next event: how many of its lines were skipped.
    fn report_skipped(&mut self, job: JobId) {
        if self.skipped.is_empty() {
            return;
        }
        if let Some(i) = self.skipped.iter().position(|(j, _)| *j == job) {
            let (_, count) = self.skipped.swap_remove(i);
            self.events
                .push_back(Pending::Event(Box::new(Event::OutputSkipped {
                    job,
                    count,
                    at: SystemTime::now(),
                })));
        }
    }
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
                    match item {
                        Item::Out(o) => q.push_output(job, self.output_cap, o.clone()),
                        Item::Lines(lines) => {
                            for &(start, end) in lines.ranges.as_slice() {
                                let o = OutLine {
                                    stream: lines.stream,
                                    redraw: false,
                                    at: lines.at,
                                    line: Text::Shared {
                                        chunk: Arc::clone(&lines.chunk),
                                        start,
                                        end,
                                    },
                                };
                                q.push_output(job, self.output_cap, o);
                            }
                        }
                        Item::Event(e) => {
                            q.report_skipped(job);
                            q.events.push_back(Pending::Event(e.clone()));
                        }
                    }
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
    pub(crate) fn try_read(&mut self, out: &mut Local) -> Read {
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
            outputs += ev.outputs();
            out.items.push_back(ev);
        }
        q.outputs_queued -= outputs;
        Read::Some
    }

    pub(crate) async fn read(&mut self, out: &mut Local) -> bool {
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

#[cfg(test)]
mod tests {
    use super::*;

    fn lines_item(texts: &[String]) -> Item {
        let mut chunk = String::new();
        let mut ranges = Vec::new();
        for t in texts {
            let start = chunk.len() as u32;
            chunk.push_str(t);
            ranges.push((start, chunk.len() as u32));
            chunk.push('\n');
        }
        Item::Lines(Lines {
            stream: Stream::Stdout,
            at: SystemTime::now(),
            chunk: Arc::from(chunk),
            ranges: Ranges::Many(ranges),
        })
    }

    /// Blocks of many sizes through a ring bounded by lines and bytes: a
    /// late reader gets exactly the newest lines the bounds allow (each
    /// line counted as its length plus 64, the newest always kept) and one
    /// `output_skipped` for the rest, as evicting line by line would give.
    #[test]
    fn eviction_keeps_the_newest_lines_within_the_bounds() {
        let mut seed = 7u64;
        let mut rand = move |n: u64| {
            seed = seed
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (seed >> 33) % n
        };
        for round in 0..200 {
            let limits = RingLimits {
                lines: 1 + rand(40) as usize,
                bytes: 64 + rand(4000) as usize,
            };
            let log = Arc::new(EventLog::new(JobId::new(), limits));
            let mut all = Vec::new();
            for _ in 0..(1 + rand(12)) {
                let texts: Vec<String> = (0..(1 + rand(30)))
                    .map(|_| {
                        let i = all.len();
                        let t = format!("{i}:{}", "x".repeat(rand(200) as usize));
                        all.push(t.clone());
                        t
                    })
                    .collect();
                log.append([lines_item(&texts)]);
            }
            // The reference: the longest suffix within both bounds, at
            // least one line.
            let (mut kept, mut bytes) = (0usize, 0usize);
            for t in all.iter().rev() {
                let size = t.len() + 64;
                if kept > 0 && (kept + 1 > limits.lines || bytes + size > limits.bytes) {
                    break;
                }
                kept += 1;
                bytes += size;
            }
            let mut cursor = log.cursor(None);
            let mut out = Local::default();
            while let Read::Some = cursor.try_read(&mut out) {}
            let mut got = Vec::new();
            let mut skipped = 0;
            while let Some(ev) = out.pop() {
                match ev {
                    Event::OutputAppended { line, .. } => got.push(line),
                    Event::OutputSkipped { count, .. } => skipped += count,
                    other => panic!("unexpected {other:?}"),
                }
            }
            assert_eq!(got, all[all.len() - kept..], "round {round}: {limits:?}");
            assert_eq!(skipped as usize, all.len() - kept, "round {round}");
            assert_eq!(lock(&log.state).output_bytes, bytes, "round {round}");
        }
    }
}
