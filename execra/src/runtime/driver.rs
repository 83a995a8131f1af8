//! The per-job driver: permit → spawn → read both pipes → interpreter →
//! `exited` (after exit *and* both EOFs) → `on_exit` → close open phases →
//! verdict → durable history → `finalized` → the handle resolves.
//!
//! One task per job owns the process, both [`Pipe`]s and the interpreter, so
//! lines reach the interpreter serially in arrival order without any
//! cross-task hand-off. Each pipe read becomes one batch of events appended
//! to the job's log under one lock.
//!
//! The decisions live elsewhere, each in a file named for it: when to stop
//! and kill (cancel, timeout, grace, drain, idle flush) in
//! [`stop`](super::stop); what the interpreter's events mean for the job and
//! the verdict in [`tally`](super::tally); masking secrets in
//! [`Redactor`](crate::command::Redactor); signalling the tree in
//! `crate::process`. When a job ends, anything left of its tree is killed:
//! a job owns its tree.
//!
//! There is one way a job ends: [`Driver::finish`], or — when the driver
//! task is dropped before it got there (its tokio runtime shut down, even
//! before the task was first polled) — the [`Guard`], which publishes the
//! same `finalized` through the same [`settle`].

use std::future::Future;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Arc;
use std::time::{Instant, SystemTime};

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::sync::mpsc;
use tracing::Instrument;

use crate::command::{Launch, Redactor, StdinMode};
use crate::event::{Event, Stream};
use crate::interpreter::{Context, Interpreter, InterpreterEvent, Line};
use crate::job::{Job, JobId, JobState};
use crate::outcome::{ExitCode, FailureReason, Outcome};
use crate::output::{LineSplitter, OutputLine, Segment, SegmentKind};
use crate::process::{self, ProcessTree};

use super::log::{lock, Item, OutLine, RingLimits};
use super::persist::RawSink;
use super::registry::{JobEntry, StdinMsg};
use super::stop::{Deadlines, Fired, StopPolicy, StopReason};
use super::tally::Tally;
use super::{Inner, RawOutputPolicy};

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

/// Set the final state and outcome on the job's snapshot; returns the
/// snapshot and the `finalized` event to record and publish.
fn conclude(entry: &JobEntry, outcome: &Outcome) -> (Job, Event) {
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
fn settle(inner: &Inner, entry: &JobEntry, finalized: Event, outcome: Outcome) {
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
struct Guard {
    inner: Arc<Inner>,
    entry: Arc<JobEntry>,
    tree: Option<Arc<ProcessTree>>,
    /// Set by [`Driver::finish`] once the real outcome went to history: a
    /// drop after that publishes this outcome, not "shut down".
    finalizing: Option<(Event, Outcome)>,
    armed: bool,
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
                let outcome = Outcome::Failed {
                    reason: FailureReason::SpawnFailed {
                        error: "the runtime driving this job shut down".to_string(),
                    },
                    summary: None,
                    findings: Vec::new(),
                };
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

/// The future that runs one job to its verdict, inside a `job` tracing span
/// (its id and label; never secret values).
pub(crate) fn run(
    inner: Arc<Inner>,
    entry: Arc<JobEntry>,
    launch: Launch,
    stdin_rx: Option<mpsc::UnboundedReceiver<StdinMsg>>,
) -> impl Future<Output = ()> + Send + 'static {
    let span = tracing::info_span!(
        "job",
        id = %entry.id,
        label = tracing::field::Empty,
        program = %launch.spec.program,
    );
    if let Some(label) = &launch.spec.label {
        span.record("label", label.as_str());
    }
    let guard = Guard {
        inner: Arc::clone(&inner),
        entry: Arc::clone(&entry),
        tree: None,
        finalizing: None,
        armed: true,
    };
    drive(guard, inner, entry, launch, stdin_rx).instrument(span)
}

async fn drive(
    mut guard: Guard,
    inner: Arc<Inner>,
    entry: Arc<JobEntry>,
    launch: Launch,
    stdin_rx: Option<mpsc::UnboundedReceiver<StdinMsg>>,
) {
    let mut job = Driver::new(&inner, &entry, launch);

    // Wait for a permit, unless cancelled first.
    let mut cancel_rx = entry.cancel.subscribe();
    let permit = tokio::select! {
        biased;
        _ = cancel_rx.wait_for(|c| *c) => None,
        p = Arc::clone(&inner.permits).acquire_owned() => p.ok(),
    };
    let Some(_permit) = permit else {
        tracing::info!("cancelled while queued; never started");
        job.push(Event::Cancelled {
            job: job.id,
            at: SystemTime::now(),
        });
        let findings = Vec::new();
        return job
            .finish(Outcome::Cancelled { findings }, &mut guard)
            .await;
    };

    let spawned = match process::spawn(&job.launch) {
        Ok(s) => s,
        Err(e) => {
            tracing::warn!(error = %e, "spawn failed");
            let reason = FailureReason::SpawnFailed {
                error: e.to_string(),
            };
            let outcome = Outcome::Failed {
                reason,
                summary: None,
                findings: Vec::new(),
            };
            return job.finish(outcome, &mut guard).await;
        }
    };
    tracing::info!(pid = spawned.pid, "spawned");
    let tree = Arc::new(spawned.tree);
    guard.tree = Some(Arc::clone(&tree));
    let outcome = job
        .supervise(spawned.child, spawned.pid, &tree, stdin_rx, cancel_rx)
        .await;
    // The job owns its tree: nothing of it outlives the job.
    tree.kill();
    job.finish(outcome, &mut guard).await;
}

/// One of the child's output pipes with its line splitter.
struct Pipe<R> {
    stream: Stream,
    reader: Option<R>,
    splitter: LineSplitter,
    buf: Box<[u8]>,
}

impl<R: AsyncRead + Unpin> Pipe<R> {
    fn new(stream: Stream, reader: Option<R>, max_line: usize) -> Self {
        Pipe {
            stream,
            reader,
            splitter: LineSplitter::new(max_line),
            buf: vec![0u8; 64 * 1024].into_boxed_slice(),
        }
    }

    fn is_open(&self) -> bool {
        self.reader.is_some()
    }

    /// Read once: `Some(n)` bytes, or `None` at EOF / on error.
    async fn read(&mut self) -> Option<usize> {
        let r = self.reader.as_mut()?;
        match r.read(&mut self.buf).await {
            Ok(0) | Err(_) => None,
            Ok(n) => Some(n),
        }
    }

    /// Split what [`read`](Self::read) returned into segments; at EOF the
    /// unfinished line is delivered and the pipe closes.
    fn take(&mut self, read: Option<usize>, segs: &mut Vec<Segment>) {
        match read {
            Some(n) => self.splitter.push(&self.buf[..n], segs),
            None => self.close(segs),
        }
    }

    /// Stop reading: deliver the unfinished line and close.
    fn close(&mut self, segs: &mut Vec<Segment>) {
        self.splitter.finish(segs);
        self.reader = None;
    }
}

/// Per-job state while it runs.
struct Driver {
    inner: Arc<Inner>,
    entry: Arc<JobEntry>,
    id: JobId,
    launch: Launch,
    interpreter: Option<Box<dyn Interpreter + Send>>,
    interpreter_name: String,
    tally: Tally,
    redactor: Redactor,
    started: Instant,
    batch: Vec<Item>,
    raw: Option<Box<dyn RawSink>>,
}

impl Driver {
    fn new(inner: &Arc<Inner>, entry: &Arc<JobEntry>, mut launch: Launch) -> Self {
        let interpreter = launch.interpreter.take();
        let interpreter_name = interpreter
            .as_ref()
            .map(|i| i.name().to_string())
            .unwrap_or_default();
        let redactor = Redactor::new(std::mem::take(&mut launch.secrets));
        Driver {
            inner: Arc::clone(inner),
            entry: Arc::clone(entry),
            id: entry.id,
            launch,
            interpreter,
            interpreter_name,
            tally: Tally::default(),
            redactor,
            started: Instant::now(),
            batch: Vec::new(),
            raw: None,
        }
    }

    fn push(&mut self, ev: Event) {
        self.batch.push(Item::event(ev));
    }

    /// Send the pending batch out.
    fn flush(&mut self) {
        if self.batch.is_empty() {
            return;
        }
        let keep = self.batch.len();
        let items = std::mem::replace(&mut self.batch, Vec::with_capacity(keep));
        let entry = &self.entry;
        publish(&self.inner, entry, || entry.snapshot(), items);
    }

    /// Watch the running process until it exited and both pipes closed;
    /// return the verdict.
    async fn supervise(
        &mut self,
        mut child: tokio::process::Child,
        pid: u32,
        tree: &ProcessTree,
        stdin_rx: Option<mpsc::UnboundedReceiver<StdinMsg>>,
        mut cancel_rx: tokio::sync::watch::Receiver<bool>,
    ) -> Outcome {
        self.mark_started(pid);
        self.connect_stdin(&mut child, stdin_rx);
        let cfg = &self.inner.config;
        let mut out = Pipe::new(Stream::Stdout, child.stdout.take(), cfg.max_line);
        let mut err = Pipe::new(Stream::Stderr, child.stderr.take(), cfg.max_line);
        let mut deadlines = Deadlines::start(StopPolicy {
            timeout: self.launch.spec.timeout,
            grace: cfg.grace_period,
            drain: cfg.drain_timeout,
            idle_flush: cfg.idle_flush,
        });
        let mut segs = Vec::new();
        let mut exit: Option<ExitCode> = None;
        if *cancel_rx.borrow_and_update() {
            self.stop(&mut deadlines, StopReason::Cancel, tree);
        }

        while out.is_open() || err.is_open() || exit.is_none() {
            let mut read_data = false;
            tokio::select! {
                r = out.read(), if out.is_open() => {
                    read_data = true;
                    self.take(&mut out, r, &mut segs);
                }
                r = err.read(), if err.is_open() => {
                    read_data = true;
                    self.take(&mut err, r, &mut segs);
                }
                status = child.wait(), if exit.is_none() => {
                    exit = Some(status.map_or(ExitCode { code: None, signal: None }, exit_code));
                    deadlines.exited(out.is_open() || err.is_open());
                }
                r = cancel_rx.wait_for(|c| *c), if deadlines.stopping().is_none() => {
                    if r.is_ok() {
                        self.stop(&mut deadlines, StopReason::Cancel, tree);
                    }
                }
                fired = deadlines.next() => match fired {
                    Fired::Timeout => self.stop(&mut deadlines, StopReason::Timeout, tree),
                    Fired::Kill => {
                        tracing::warn!("grace period over; killing the process tree");
                        tree.kill();
                    }
                    Fired::Drain => {
                        // A descendant holds the pipes after the main process
                        // exited: stop it and finish with what we have.
                        tracing::warn!("pipes still open after the drain timeout; killing the process tree");
                        tree.kill();
                        out.close(&mut segs);
                        self.handle(out.stream, &mut segs);
                        err.close(&mut segs);
                        self.handle(err.stream, &mut segs);
                    }
                    Fired::IdleFlush => {
                        out.splitter.flush_idle(&mut segs);
                        self.handle(out.stream, &mut segs);
                        err.splitter.flush_idle(&mut segs);
                        self.handle(err.stream, &mut segs);
                    }
                },
            }
            if read_data {
                let pending = out.splitter.buffered() > 0 || err.splitter.buffered() > 0;
                deadlines.unfinished_output(pending);
                // Let subscribers woken on this worker run before the next
                // read: tokio keeps a freshly woken task in this worker's
                // LIFO slot, where no other worker can steal it, for as long
                // as the pipe has data.
                tokio::task::yield_now().await;
            }
        }
        *lock(&self.entry.stdin) = None;
        let exit = exit.unwrap_or(ExitCode {
            code: None,
            signal: None,
        });
        self.exited(&exit);
        self.tally.verdict(deadlines.stopping(), &exit)
    }

    fn mark_started(&mut self, pid: u32) {
        let now = SystemTime::now();
        self.started = Instant::now();
        {
            let mut s = lock(&self.entry.snapshot);
            s.state = JobState::Running;
            s.started_at = Some(now);
        }
        self.push(Event::JobStarted {
            job: self.id,
            pid,
            at: now,
        });
        self.open_raw_log();
        self.flush();
    }

    /// Stdin: a separate task so a child that never reads cannot block us.
    fn connect_stdin(
        &mut self,
        child: &mut tokio::process::Child,
        stdin_rx: Option<mpsc::UnboundedReceiver<StdinMsg>>,
    ) {
        let Some(mut stdin) = child.stdin.take() else {
            return;
        };
        match std::mem::take(&mut self.launch.stdin) {
            StdinMode::Piped(bytes) => {
                tokio::spawn(async move {
                    let _ = stdin.write_all(&bytes).await;
                });
            }
            StdinMode::Interactive => {
                if let Some(rx) = stdin_rx {
                    tokio::spawn(pump_stdin(stdin, rx));
                }
            }
            StdinMode::Null | StdinMode::Inherit => drop(stdin),
        }
    }

    /// A pipe read returned: split it and handle the segments; at EOF, what
    /// the redactor still holds back goes out too.
    fn take<R: AsyncRead + Unpin>(
        &mut self,
        pipe: &mut Pipe<R>,
        read: Option<usize>,
        segs: &mut Vec<Segment>,
    ) {
        pipe.take(read, segs);
        self.handle(pipe.stream, segs);
        if !pipe.is_open() {
            if let Some(rest) = self.redactor.finish(pipe.stream) {
                segs.push(Segment {
                    text: rest,
                    kind: SegmentKind::Line,
                    continues: false,
                });
                self.handle(pipe.stream, segs);
            }
        }
    }

    /// Start stopping the job (cancel or timeout): TERM to the tree now,
    /// KILL when the grace period runs out (see [`Deadlines`]).
    fn stop(&mut self, deadlines: &mut Deadlines, why: StopReason, tree: &ProcessTree) {
        if !deadlines.stop(why) {
            return;
        }
        tracing::info!(reason = ?why, "stopping the job; TERM sent to its process tree");
        if why == StopReason::Cancel {
            self.push(Event::Cancelled {
                job: self.id,
                at: SystemTime::now(),
            });
            self.flush();
        }
        tree.terminate();
    }

    /// The process exited and both pipes closed: `exited`, `on_exit`, then
    /// the phases still open are closed.
    fn exited(&mut self, exit: &ExitCode) {
        {
            let mut s = lock(&self.entry.snapshot);
            s.state = JobState::Exited;
            s.exit = Some(*exit);
        }
        self.push(Event::Exited {
            job: self.id,
            code: *exit,
            at: SystemTime::now(),
        });
        let evs = self.call_interpreter(|i, ctx| i.on_exit(ctx, exit), None);
        for ie in evs {
            self.apply(ie);
        }
        let closed = {
            let mut s = lock(&self.entry.snapshot);
            self.tally.close_phases(self.id, SystemTime::now(), &mut s)
        };
        for ev in closed {
            self.push(ev);
        }
        self.flush();
    }

    fn open_raw_log(&mut self) {
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

    fn warn_raw_log(&mut self, message: String) {
        self.push(Event::WarningDetected {
            job: self.id,
            code: Some("execra.raw_log".to_string()),
            message,
            at: SystemTime::now(),
        });
    }

    /// Writing the raw log failed (disk full…): say so once and stop logging;
    /// the job itself carries on.
    fn raw_log_failed(&mut self, e: std::io::Error) {
        tracing::warn!(error = %e, "raw output log write failed; the rest is not logged");
        if let Some(raw) = self.raw.take() {
            raw.finish();
        }
        self.warn_raw_log(format!(
            "raw output log write failed, the rest is not logged: {e}"
        ));
    }

    /// Turn decoded segments of one stream into events (and interpreter
    /// calls), then send the batch.
    fn handle(&mut self, stream: Stream, segs: &mut Vec<Segment>) {
        if segs.is_empty() {
            return;
        }
        let at = SystemTime::now();
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
        if let Some(raw) = &mut self.raw {
            if let Err(e) = raw.flush() {
                self.raw_log_failed(e);
            }
        }
        self.flush();
    }

    /// One (already redacted) output segment: raw log, memory ring,
    /// interpreter, event.
    fn output(&mut self, stream: Stream, text: String, redraw: bool, at: SystemTime) {
        if !redraw {
            if let Some(raw) = &mut self.raw {
                if let Err(e) = raw.line(stream, &text) {
                    self.raw_log_failed(e);
                }
            }
            if let Some(ring) = &self.entry.ring {
                lock(ring).push(OutputLine {
                    stream,
                    text: text.clone(),
                    at,
                });
            }
        }
        let (text, interpreted) = if self.interpreter.is_some() {
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
            line: text,
            redraw,
            at,
        }));
        for ie in interpreted {
            self.apply(ie);
        }
    }

    /// Call the interpreter, catching panics (which disable it).
    fn call_interpreter(
        &mut self,
        f: impl FnOnce(&mut dyn Interpreter, &Context) -> Vec<InterpreterEvent>,
        line: Option<&str>,
    ) -> Vec<InterpreterEvent> {
        let Some(interp) = self.interpreter.as_mut() else {
            return Vec::new();
        };
        let phases = self.tally.phases();
        let ctx = Context {
            job: self.id,
            command: &self.launch.spec,
            current_phase: phases.last(),
            phase_stack: phases,
            elapsed: self.started.elapsed(),
        };
        match catch_unwind(AssertUnwindSafe(|| f(interp.as_mut(), &ctx))) {
            Ok(evs) => evs,
            Err(payload) => {
                let msg = panic_message(payload.as_ref());
                tracing::warn!(interpreter = %self.interpreter_name, panic = %msg,
                    "interpreter panicked; disabled for the rest of the job");
                self.interpreter = None;
                self.push(Event::InterpreterError {
                    job: self.id,
                    interpreter: self.interpreter_name.clone(),
                    error: format!(
                        "interpreter panicked: {msg}; it is disabled for the rest of this job"
                    ),
                    line: line.map(str::to_string),
                    at: SystemTime::now(),
                });
                Vec::new()
            }
        }
    }

    /// Apply one interpreter event through the tally and emit its event.
    fn apply(&mut self, ie: InterpreterEvent) {
        let applied = {
            let mut s = lock(&self.entry.snapshot);
            self.tally.apply(self.id, ie, SystemTime::now(), &mut s)
        };
        match applied {
            Ok(Some(ev)) => self.push(ev),
            Ok(None) => {}
            Err(error) => self.push(Event::InterpreterError {
                job: self.id,
                interpreter: self.interpreter_name.clone(),
                error,
                line: None,
                at: SystemTime::now(),
            }),
        }
    }

    /// Record the verdict: history first (durable), then `finalized`, then
    /// the handle resolves.
    async fn finish(&mut self, outcome: Outcome, guard: &mut Guard) {
        self.flush();
        if let Some(raw) = self.raw.take() {
            raw.finish();
        }
        let (job, ev) = conclude(&self.entry, &outcome);
        // From here on a dropped driver publishes this outcome, not another.
        guard.finalizing = Some((ev.clone(), outcome.clone()));
        if let Some(h) = &self.inner.history {
            h.finish(job, ev.clone()).await;
        }
        guard.armed = false;
        settle(&self.inner, &self.entry, ev, outcome);
    }
}

/// Feed a job's stdin from the runtime's write requests.
async fn pump_stdin(
    mut stdin: tokio::process::ChildStdin,
    mut rx: mpsc::UnboundedReceiver<StdinMsg>,
) {
    while let Some(msg) = rx.recv().await {
        match msg {
            StdinMsg::Write(bytes) => {
                if stdin.write_all(&bytes).await.is_err() || stdin.flush().await.is_err() {
                    break;
                }
            }
            StdinMsg::Close => break,
        }
    }
    let _ = stdin.shutdown().await;
}

fn exit_code(status: std::process::ExitStatus) -> ExitCode {
    #[cfg(unix)]
    {
        use std::os::unix::process::ExitStatusExt;
        ExitCode {
            code: status.code(),
            signal: status.signal(),
        }
    }
    #[cfg(not(unix))]
    {
        ExitCode {
            code: status.code(),
            signal: None,
        }
    }
}

fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_string()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "unknown panic payload".to_string()
    }
}
