//! What happens to each piece of output, in order: secrets masked
//! ([`Redactor`](crate::command::Redactor)), the raw log and the memory
//! ring, the interpreter (behind its panic fence), then the event — and what
//! the interpreter's events do to the job ([`Tally`](crate::runtime)).

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use tokio::io::AsyncRead;

use crate::event::{Event, Stream};
use crate::interpreter::{Context, Interpreter, InterpreterEvent, Line};
use crate::output::{strip_ansi, OutputLine, Segment, SegmentKind};

use super::super::log::{lock, EventLog, Item, Lines, OutLine, Ranges, Text};
use super::super::pipe::Pipe;
use super::super::RawOutputPolicy;
use super::Driver;

/// At most this long per pipe read waiting for a lagging subscriber.
const MAX_CATCH_UP: Duration = Duration::from_millis(20);

/// Waiting for lagging subscribers may take three quarters of a job's run
/// time, or this long if that is more (a burst at the start of a job).
const MIN_CATCH_UP_BUDGET: Duration = Duration::from_millis(100);

/// After a pipe read: give this worker to the subscribers just woken, and
/// let another worker take the driver.
///
/// tokio puts a task woken from a worker into that worker's LIFO slot,
/// where no other worker can steal it, for as long as the waking task
/// runs: a subscriber woken by the driver would wait for as long as the
/// pipe has data. `tokio::task::yield_now` would let it run, but on this
/// worker, with the driver deferred until the worker has nothing else to
/// do: driver and subscriber would take turns on one core. Waking
/// ourselves instead puts the driver on this worker's run queue, from
/// which an idle worker (told so) steals it, while this worker runs the
/// subscriber: reading and consuming proceed in parallel (≈ 15 % faster
/// for `seq 1000000` on 2 cores). A subscriber that falls behind that way
/// is given time to catch up ([`Driver::catch_up_budget`]).
pub(super) async fn hand_over() {
    let mut yielded = false;
    std::future::poll_fn(|cx| {
        if yielded {
            return std::task::Poll::Ready(());
        }
        yielded = true;
        cx.waker().wake_by_ref();
        std::task::Poll::Pending
    })
    .await
}

impl Driver {
    /// How long the driver may wait, before its next read, for a
    /// [`Lag::Skip`](crate::Lag) subscriber to catch up, if one should be
    /// waited for.
    ///
    /// A subscriber reads in parallel with the driver (on another worker
    /// after [`hand_over`], or on the `block_on` thread), and reading a
    /// pipe is usually cheaper than consuming events: such a subscriber that reads
    /// every line would soon be left behind the ring (or, for a chatty
    /// interpreter, make the log keep thousands of events it has not read).
    /// When one is in the older half of a ring at least half full, or
    /// thousands of events behind ([`EventLog::behind`]), the driver stops
    /// reading until it has caught up
    /// ([`EventLog::catch_up`]): at most [`MAX_CATCH_UP`] at a time, and in
    /// all at most three quarters of the time the job has run (or
    /// [`MIN_CATCH_UP_BUDGET`] if more), so a subscriber that reads,
    /// however slowly, slows a chatty job to a quarter of its speed at
    /// worst, and one that stopped reading costs it one wait of 20 ms.
    /// Cancel, timeout and exit are handled meanwhile, as while a
    /// backpressure subscriber holds the pipes.
    pub(super) fn catch_up_budget(&self, log: &EventLog) -> Option<Duration> {
        if !log.behind() {
            return None;
        }
        let allowed = (self.started.elapsed() * 3 / 4).max(MIN_CATCH_UP_BUDGET);
        let budget = allowed.saturating_sub(self.caught_up);
        (!budget.is_zero()).then(|| budget.min(MAX_CATCH_UP))
    }

    /// A pipe read returned: split it and handle what it held, in order, as
    /// one batch; at EOF, what the redactor still holds back goes out too.
    ///
    /// The read's complete plain lines (see [`Pipe::take`]) skip the
    /// per-line splitter and redactor: they are cut from one shared string
    /// ([`Text::Shared`]). Every line of one read carries the same `at`,
    /// read once per pipe read.
    pub(super) fn take<R: AsyncRead + Unpin>(
        &mut self,
        pipe: &mut Pipe<R>,
        read: Option<usize>,
        segs: &mut Vec<Segment>,
    ) {
        let stream = pipe.stream;
        let strip = self.strips_ansi();
        let redactor = &self.redactor;
        let run = pipe.take(read, segs, |text| {
            redactor.passes(stream, text) && !(strip && text.contains(['\u{1b}', '\u{9b}']))
        });
        let at = self.start_batch();
        match run {
            Some(run) => {
                let rest = segs.split_off(run.before.min(segs.len()));
                self.segments(stream, segs, at);
                self.lines(stream, &run.chunk, at);
                segs.extend(rest);
                self.segments(stream, segs, at);
            }
            None => self.segments(stream, segs, at),
        }
        if !pipe.is_open() {
            if let Some(rest) = self.redactor.finish(stream) {
                segs.push(Segment {
                    text: rest,
                    kind: SegmentKind::Line,
                    continues: false,
                });
                self.segments(stream, segs, at);
            }
        }
        self.end_batch();
    }

    /// Turn decoded segments of one stream into events (and interpreter
    /// calls), then send the batch.
    pub(super) fn handle(&mut self, stream: Stream, segs: &mut Vec<Segment>) {
        if segs.is_empty() {
            return;
        }
        let at = self.start_batch();
        self.segments(stream, segs, at);
        self.end_batch();
    }

    /// Output of one pipe read is being handled: its time.
    fn start_batch(&mut self) -> SystemTime {
        self.batch_elapsed = Some(self.started.elapsed());
        SystemTime::now()
    }

    /// The pipe read is handled: flush the raw log and send the batch.
    fn end_batch(&mut self) {
        self.batch_elapsed = None;
        if let Some(raw) = &mut self.raw {
            if let Err(e) = raw.flush() {
                self.raw_log_failed(e);
            }
        }
        self.flush();
    }

    /// Are escape sequences stripped from this job's lines (a PTY job that
    /// does not keep them)?
    fn strips_ansi(&self) -> bool {
        self.launch.pty.is_some() && !self.launch.keep_ansi
    }

    /// Segments from the splitter, each through the redactor and then
    /// [`output`](Self::output).
    fn segments(&mut self, stream: Stream, segs: &mut Vec<Segment>, at: SystemTime) {
        for seg in segs.drain(..) {
            let redraw = seg.kind == SegmentKind::Redraw;
            let text = if redraw {
                self.redactor.redraw(stream, seg.text)
            } else {
                self.redactor.line(stream, seg.text, seg.continues)
            };
            if redraw && text.is_empty() {
                continue;
            }
            self.output(stream, text, redraw, at);
        }
    }

    /// A run of plain lines (see [`Pipe::take`]): each one goes to the raw
    /// log, the memory ring and the interpreter like any line, and into the
    /// event log as a range of `chunk`.
    ///
    /// Done a read at a time rather than a line at a time, with the same
    /// events in the same order as line by line: the raw log takes every
    /// line in one loop, the ring under one lock, and the interpreter is
    /// called inside one panic fence for as many lines as it returns no
    /// events for ([`interpret_run`](Self::interpret_run)); where it does
    /// (or panics, or the raw log fails), the lines before go out as one
    /// range block, then the events.
    fn lines(&mut self, stream: Stream, chunk: &Arc<str>, at: SystemTime) {
        let ranges = cut_lines(chunk.as_bytes());
        let n = ranges.len();
        // The raw log: a failure is reported before the line it failed on.
        let mut raw_fail = None;
        if let Some(raw) = &mut self.raw {
            raw_fail = raw.lines(stream, chunk, &ranges).err();
        }
        if let Some(ring) = &self.entry.ring {
            let mut ring = lock(ring);
            for &(s, e) in &ranges {
                ring.push(OutputLine {
                    stream,
                    text: slice(chunk, s, e).to_owned(),
                    at,
                });
            }
        }
        // One `Line` for the whole read, its text overwritten per line.
        let mut line = Line {
            stream,
            text: String::new(),
            at,
        };
        // Lines `..done` are in the batch; the interpreter has seen `..next`.
        let (mut done, mut next) = (0, 0);
        loop {
            let stop = self.interpret_run(chunk, &ranges, next, &mut line);
            // The raw log failed before the interpreter's stop: say so first
            // (a failure before line `i` comes after the events of line
            // `i - 1` and before an interpreter panic on line `i`).
            let raw_first = match (&raw_fail, &stop) {
                (Some((i, _)), Some(stop)) => (*i, 1) < stop.key(),
                (Some(_), None) => true,
                (None, _) => false,
            };
            if raw_first {
                if let Some((i, err)) = raw_fail.take() {
                    self.emit_lines(stream, chunk, &ranges, &mut done, i, at);
                    self.raw_log_failed(err);
                }
            }
            match stop {
                None => break,
                Some(Stop::Events(i, events)) => {
                    self.emit_lines(stream, chunk, &ranges, &mut done, i + 1, at);
                    for ie in events {
                        self.apply(ie);
                    }
                    next = i + 1;
                }
                Some(Stop::Panic(i, msg)) => {
                    self.emit_lines(stream, chunk, &ranges, &mut done, i, at);
                    let error = format!(
                        "interpreter panicked: {msg}; it is disabled for the rest of this job"
                    );
                    self.interpreter_error(error, Some(&line.text));
                    next = n;
                }
            }
        }
        if done == 0 {
            // The usual case: the whole read is one block, its ranges moved.
            self.batch.push(Item::Lines(Lines {
                stream,
                at,
                chunk: Arc::clone(chunk),
                ranges: if n == 1 {
                    Ranges::One(ranges[0])
                } else {
                    Ranges::Many(ranges)
                },
            }));
        } else {
            self.emit_lines(stream, chunk, &ranges, &mut done, n, at);
        }
    }

    /// Lines `*done..to` of a read go into the batch as one block.
    fn emit_lines(
        &mut self,
        stream: Stream,
        chunk: &Arc<str>,
        ranges: &[(u32, u32)],
        done: &mut usize,
        to: usize,
        at: SystemTime,
    ) {
        let part = ranges.get(*done..to).unwrap_or_default();
        if part.is_empty() {
            return;
        }
        *done = to;
        self.batch.push(Item::Lines(Lines {
            stream,
            at,
            chunk: Arc::clone(chunk),
            ranges: match part {
                [one] => Ranges::One(*one),
                many => Ranges::Many(many.to_vec()),
            },
        }));
    }

    /// Call the interpreter's `on_line` for lines `from..` of a read, inside
    /// one panic fence, until a line gives events (or it panics): where it
    /// stopped, or `None` when it saw them all quietly (or there is no
    /// interpreter).
    fn interpret_run(
        &mut self,
        chunk: &Arc<str>,
        ranges: &[(u32, u32)],
        from: usize,
        line: &mut Line,
    ) -> Option<Stop> {
        if from >= ranges.len() || !self.interp.is_active() {
            return None;
        }
        let ctx = context(
            self.id,
            &self.launch.spec,
            self.tally.phases(),
            self.line_elapsed(),
        );
        let mut i = from;
        let result = self.interp.call(&ctx, |interp, ctx| {
            // All the lines left at once, if the interpreter can tell they
            // mean nothing to it (`Interpreter::ignores_lines`).
            let rest = match (ranges.get(i), ranges.last()) {
                (Some(&(s, _)), Some(&(_, e))) => slice(chunk, s, e),
                _ => "",
            };
            if interp.ignores_lines(rest) {
                i = ranges.len();
                return Vec::new();
            }
            while let Some(&(s, e)) = ranges.get(i) {
                line.text.clear();
                line.text.push_str(slice(chunk, s, e));
                let events = interp.on_line(ctx, line);
                if !events.is_empty() {
                    return events;
                }
                i += 1;
            }
            Vec::new()
        });
        match result {
            Ok(events) if events.is_empty() => None,
            Ok(events) => Some(Stop::Events(i, events)),
            Err(msg) => Some(Stop::Panic(i, msg)),
        }
    }

    pub(super) fn open_raw_log(&mut self) {
        let policy = self.inner.config.raw_policy();
        let file_policy = !matches!(
            policy,
            RawOutputPolicy::Disabled | RawOutputPolicy::MemoryOnly
        );
        if !file_policy {
            return;
        }
        if let Some(logs) = &self.inner.raw_logs {
            match logs.open(self.id) {
                Ok(sink) => self.raw = Some(sink),
                Err(e) => {
                    tracing::warn!(error = %e, "raw output log could not be opened");
                    let msg = format!("raw output log could not be opened: {e}");
                    self.warn_raw_log(msg);
                }
            }
        }
    }

    pub(super) fn warn_raw_log(&mut self, message: String) {
        self.push(Event::WarningDetected {
            job: self.id,
            code: Some("execra.raw_log".to_string()),
            message,
            at: SystemTime::now(),
        });
    }

    /// Writing the raw log failed (disk full…): say so once and stop logging;
    /// the job itself carries on.
    pub(super) fn raw_log_failed(&mut self, e: std::io::Error) {
        tracing::warn!(error = %e, "raw output log write failed; the rest is not logged");
        if let Some(raw) = self.raw.take() {
            raw.finish();
        }
        self.warn_raw_log(format!(
            "raw output log write failed, the rest is not logged: {e}"
        ));
    }

    /// One (already redacted) output segment: raw log, memory ring,
    /// interpreter, event.
    pub(super) fn output(
        &mut self,
        stream: Stream,
        mut text: String,
        redraw: bool,
        at: SystemTime,
    ) {
        if !redraw {
            if let Some(raw) = &mut self.raw {
                if let Err(e) = raw.line(stream, &text) {
                    self.raw_log_failed(e);
                }
            }
        }
        // PTY output: escapes stay in the raw log only (unless kept).
        if self.strips_ansi() {
            if let std::borrow::Cow::Owned(t) = strip_ansi(&text) {
                text = t;
            }
        }
        if !redraw {
            if let Some(ring) = &self.entry.ring {
                lock(ring).push(OutputLine {
                    stream,
                    text: text.clone(),
                    at,
                });
            }
        }
        let (text, interpreted) = if self.interp.is_active() {
            let line = Line { stream, text, at };
            let evs = self.call_interpreter(
                |i, ctx| {
                    if redraw {
                        i.on_redraw(ctx, &line)
                    } else {
                        i.on_line(ctx, &line)
                    }
                },
                Some(&line.text),
            );
            (line.text, evs)
        } else {
            (text, Vec::new())
        };
        self.batch.push(Item::Out(OutLine {
            stream,
            line: Text::Owned(text),
            redraw,
            at,
        }));
        for ie in interpreted {
            self.apply(ie);
        }
    }

    /// Time since the process started, for the lines being handled: one
    /// clock read per pipe read, not per line.
    fn line_elapsed(&self) -> std::time::Duration {
        self.batch_elapsed.unwrap_or_else(|| self.started.elapsed())
    }

    /// Call the interpreter with the job's context; a panic becomes an
    /// `interpreter_error` (see [`Interp`]).
    pub(super) fn call_interpreter(
        &mut self,
        f: impl FnOnce(&mut dyn Interpreter, &Context) -> Vec<InterpreterEvent>,
        line: Option<&str>,
    ) -> Vec<InterpreterEvent> {
        let ctx = context(
            self.id,
            &self.launch.spec,
            self.tally.phases(),
            self.line_elapsed(),
        );
        match self.interp.call(&ctx, f) {
            Ok(evs) => evs,
            Err(msg) => {
                let error =
                    format!("interpreter panicked: {msg}; it is disabled for the rest of this job");
                self.interpreter_error(error, line);
                Vec::new()
            }
        }
    }

    pub(super) fn interpreter_error(&mut self, error: String, line: Option<&str>) {
        self.push(Event::InterpreterError {
            job: self.id,
            interpreter: self.interp.name().to_string(),
            error,
            line: line.map(str::to_string),
            at: SystemTime::now(),
        });
    }

    /// Apply one interpreter event through the tally and emit its event.
    pub(super) fn apply(&mut self, ie: InterpreterEvent) {
        let applied = {
            let mut s = lock(&self.entry.snapshot);
            self.tally.apply(self.id, ie, SystemTime::now(), &mut s)
        };
        match applied {
            Ok(Some(ev)) => self.push(ev),
            Ok(None) => {}
            Err(error) => self.interpreter_error(error, None),
        }
    }
}

/// Where the interpreter stopped in a read's lines (see
/// [`Driver::interpret_run`]).
enum Stop {
    /// Line `.0` gave these events: they follow it.
    Events(usize, Vec<InterpreterEvent>),
    /// It panicked on line `.0`: the error comes before that line.
    Panic(usize, String),
}

impl Stop {
    /// Where this goes among a read's lines and other events: before line
    /// `.0`; on a tie the smaller `.1` first (the raw log's failure is `1`).
    fn key(&self) -> (usize, u8) {
        match self {
            Stop::Events(i, _) => (i + 1, 0),
            Stop::Panic(i, _) => (*i, 2),
        }
    }
}

/// The `(start, end)` of each line in `bytes` (lines separated by `\n`, a
/// `\r` before it belongs to the line ending, the last one ending where
/// `bytes` does): exactly sized, as the log keeps it.
/// What the interpreter is told about the job (built from the driver's
/// fields, so the interpreter itself stays mutably borrowable).
fn context<'a>(
    job: crate::job::JobId,
    command: &'a crate::spec::CommandSpec,
    phases: &'a [crate::Phase],
    elapsed: std::time::Duration,
) -> Context<'a> {
    Context {
        job,
        command,
        current_phase: phases.last(),
        phase_stack: phases,
        elapsed,
    }
}

/// The `(start, end)` of each `\n`-separated line of `bytes` (a trailing
/// `\r` dropped), the text after the last `\n` included as a last line.
fn cut_lines(bytes: &[u8]) -> Vec<(u32, u32)> {
    let n = memchr::memchr_iter(b'\n', bytes).count() + 1;
    let mut ranges = Vec::with_capacity(n);
    let mut start = 0;
    let mut cut = |nl: usize| {
        let end = if nl > start && bytes[nl - 1] == b'\r' {
            nl - 1
        } else {
            nl
        };
        ranges.push((start as u32, end as u32));
        start = nl + 1;
    };
    if bytes.len() < 32 * n {
        // Short lines (a fast producer's usual): eight bytes at a time,
        // which costs less than a `memchr` call per line and has no
        // unpredictable branch per byte.
        let mut words = bytes.chunks_exact(8);
        let mut base = 0;
        for word in &mut words {
            let mut found = newlines(u64::from_le_bytes(word.try_into().unwrap_or([0; 8])));
            while found != 0 {
                cut(base + (found.trailing_zeros() / 8) as usize);
                found &= found - 1;
            }
            base += 8;
        }
        for (i, &b) in words.remainder().iter().enumerate() {
            if b == b'\n' {
                cut(base + i);
            }
        }
    } else {
        memchr::memchr_iter(b'\n', bytes).for_each(&mut cut);
    }
    cut(bytes.len());
    ranges
}

/// The high bit of each byte of `word` that is `\n`, and no other bit
/// (exact: no carry between bytes).
#[inline]
fn newlines(word: u64) -> u64 {
    const LOW7: u64 = 0x7f7f_7f7f_7f7f_7f7f;
    let x = word ^ 0x0a0a_0a0a_0a0a_0a0a;
    // High bit set for each byte of `x` that is not zero.
    let nonzero = ((x & LOW7) + LOW7) | x;
    !nonzero & !LOW7
}

/// `chunk[s..e]` (`s` and `e` sit next to `\n` or `\r`: character
/// boundaries).
#[inline]
fn slice(chunk: &str, s: u32, e: u32) -> &str {
    chunk.get(s as usize..e as usize).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::{cut_lines, newlines};

    /// Every byte value at every position of a word, next to a newline or
    /// not: only `\n` bytes are flagged.
    #[test]
    fn newlines_flags_exactly_the_newline_bytes() {
        for pos in 0..8 {
            for b in 0..=255u8 {
                for fill in [0u8, b'\n', 0x0b, 0x8a, 0xff] {
                    let mut word = [fill; 8];
                    word[pos] = b;
                    let want = word.iter().enumerate().fold(0u64, |m, (i, &c)| {
                        m | if c == b'\n' { 0x80 << (8 * i) } else { 0 }
                    });
                    assert_eq!(newlines(u64::from_le_bytes(word)), want, "{word:?}");
                }
            }
        }
    }

    /// Both ways of cutting (short lines, long lines) agree with a plain
    /// split on `\n` with a trailing `\r` dropped.
    #[test]
    fn cut_lines_agrees_with_split() {
        let long = "x".repeat(100);
        for text in [
            String::new(),
            "a".to_string(),
            "a\nb\r\n\r\nc".to_string(),
            "\n\n\r".to_string(),
            format!("{long}\r\n{long}\n\n{long}"),
            format!("{long}\n\r\n"),
            "1\n22\n333\n4444\n\n\n7777777\n88888888\n\u{8a}\n\x0b\n\t\r\n".to_string(),
            "\n".repeat(17),
        ] {
            let want: Vec<&str> = text
                .split('\n')
                .map(|l| l.strip_suffix('\r').unwrap_or(l))
                .collect();
            let got: Vec<&str> = cut_lines(text.as_bytes())
                .iter()
                .map(|&(s, e)| &text[s as usize..e as usize])
                .collect();
            assert_eq!(got, want, "{text:?}");
        }
    }
}
