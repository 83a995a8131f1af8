//! The per-job driver: permit → spawn → read both pipes → interpreter →
//! `exited` (after exit *and* both EOFs) → `on_exit` → close open phases →
//! verdict → durable history → `finalized` → the handle resolves.
//!
//! One task per job owns the process, both pipes, the line splitters and the
//! interpreter, so lines reach the interpreter serially in arrival order
//! without any cross-task hand-off. Each pipe read becomes one batch of
//! events appended to the job's log under one lock.
//!
//! Stopping: cancel and timeout take the same path — `SIGTERM` to the
//! process group, `SIGKILL` after the grace period. When the main process
//! exits but a descendant still holds the pipes open, the driver waits up to
//! the drain timeout, then kills the group and finalizes with what it read.
//! When a job ends, anything left in its tree is killed (its cgroup, or its
//! process group and live descendants; see `crate::process`): a job owns
//! its tree, unless the command asked to keep leftovers
//! (`Command::keep_leftovers`). Pausing freezes the tree; the timeout does
//! not count paused time.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::sync::mpsc;
use tokio::time::sleep_until;

use crate::command::{Launch, StdinMode};
use crate::event::{Event, Stream};
use crate::finding::Finding;
use crate::interpreter::{Context, Interpreter, InterpreterEvent, Line};
use crate::job::{Job, JobId, JobState};
use crate::outcome::{ExitCode, FailureReason, Outcome};
use crate::output::{LineSplitter, OutputLine, SegmentKind};
use crate::phase::{Phase, PhaseId};
use crate::process::{self, ProcessTree};

use super::log::{lock, Item, OutLine, RingLimits};
use super::persist::RawSink;
use super::registry::{JobEntry, StdinMsg};
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

/// Why the job is being stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stop {
    Cancel,
    Timeout,
}

/// Finalizes the job even if the driver is dropped half-way (its tokio
/// runtime shut down): kills the tree and resolves the handle, so nothing
/// waits forever and nothing is left running.
struct Guard {
    inner: Arc<Inner>,
    entry: Arc<JobEntry>,
    tree: Option<Arc<ProcessTree>>,
    armed: bool,
}

impl Drop for Guard {
    fn drop(&mut self) {
        if !self.armed {
            return;
        }
        if let Some(tree) = &self.tree {
            tree.kill();
        }
        let outcome = Outcome::Failed {
            reason: FailureReason::SpawnFailed {
                error: "the runtime driving this job shut down".to_string(),
            },
            summary: None,
            findings: Vec::new(),
        };
        let job = {
            let mut s = lock(&self.entry.snapshot);
            s.state = JobState::Finalized;
            s.outcome = Some(outcome.clone());
            s.clone()
        };
        let ev = Event::Finalized {
            job: self.entry.id,
            outcome: outcome.clone(),
            at: SystemTime::now(),
        };
        publish(&self.inner, &self.entry, || job, vec![Item::event(ev)]);
        *lock(&self.entry.stdin) = None;
        self.entry.done.send_replace(Some(outcome));
        let keep = self.inner.config.max_finished_jobs;
        lock(&self.inner.registry).finished(self.entry.id, keep);
    }
}

/// Run one job to its verdict.
pub(crate) async fn run(
    inner: Arc<Inner>,
    entry: Arc<JobEntry>,
    launch: Launch,
    stdin_rx: Option<mpsc::UnboundedReceiver<StdinMsg>>,
) {
    let mut guard = Guard {
        inner: Arc::clone(&inner),
        entry: Arc::clone(&entry),
        tree: None,
        armed: true,
    };
    let mut job = Driver::new(&inner, &entry, launch);

    // Wait for a permit, unless cancelled first.
    let mut cancel_rx = entry.cancel.subscribe();
    let permit = tokio::select! {
        biased;
        _ = cancel_rx.wait_for(|c| *c) => None,
        p = Arc::clone(&inner.permits).acquire_owned() => p.ok(),
    };
    let Some(_permit) = permit else {
        job.push(Event::Cancelled {
            job: job.id,
            at: SystemTime::now(),
        });
        job.finish(Outcome::Cancelled {
            findings: Vec::new(),
        })
        .await;
        guard.armed = false;
        return;
    };

    let spawned = match process::spawn(&job.launch, inner.config.containment, job.id) {
        Ok(s) => s,
        Err(e) => {
            job.finish(Outcome::Failed {
                reason: FailureReason::SpawnFailed {
                    error: e.to_string(),
                },
                summary: None,
                findings: Vec::new(),
            })
            .await;
            guard.armed = false;
            return;
        }
    };
    let tree = Arc::new(spawned.tree);
    process::identity::remember_leader(tree.leader().clone());
    guard.tree = Some(Arc::clone(&tree));
    *lock(&entry.tree) = Some(Arc::clone(&tree));
    let mut leader_usage = spawned.leader_usage;
    let outcome = job
        .supervise(
            spawned.child,
            spawned.pid,
            &tree,
            (stdin_rx, &mut leader_usage),
            cancel_rx,
        )
        .await;
    job.end_tree(&tree, leader_usage.usage()).await;
    job.finish(outcome).await;
    guard.armed = false;
}

/// Per-job state while it runs.
struct Driver {
    inner: Arc<Inner>,
    entry: Arc<JobEntry>,
    id: JobId,
    launch: Launch,
    interpreter: Option<Box<dyn Interpreter + Send>>,
    interpreter_name: String,
    phases: Vec<Phase>,
    findings: Vec<Finding>,
    summary: Option<String>,
    known_error: Option<(String, String)>,
    started: Instant,
    batch: Vec<Item>,
    raw: Option<Box<dyn RawSink>>,
    stopped: Option<Stop>,
}

impl Driver {
    fn new(inner: &Arc<Inner>, entry: &Arc<JobEntry>, mut launch: Launch) -> Self {
        let interpreter = launch.interpreter.take();
        let interpreter_name = interpreter
            .as_ref()
            .map(|i| i.name().to_string())
            .unwrap_or_default();
        Driver {
            inner: Arc::clone(inner),
            entry: Arc::clone(entry),
            id: entry.id,
            launch,
            interpreter,
            interpreter_name,
            phases: Vec::new(),
            findings: Vec::new(),
            summary: None,
            known_error: None,
            started: Instant::now(),
            batch: Vec::new(),
            raw: None,
            stopped: None,
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

    fn set_state(&self, f: impl FnOnce(&mut Job)) {
        f(&mut lock(&self.entry.snapshot));
    }

    /// Watch the running process until it exited and both pipes closed;
    /// return the verdict.
    async fn supervise(
        &mut self,
        mut child: tokio::process::Child,
        pid: u32,
        tree: &ProcessTree,
        (stdin_rx, leader_usage): (
            Option<mpsc::UnboundedReceiver<StdinMsg>>,
            &mut crate::process::LeaderWatch,
        ),
        mut cancel_rx: tokio::sync::watch::Receiver<bool>,
    ) -> Outcome {
        let now = SystemTime::now();
        self.started = Instant::now();
        self.set_state(|j| {
            j.state = JobState::Running;
            j.started_at = Some(now);
        });
        self.push(Event::JobStarted {
            job: self.id,
            pid,
            at: now,
        });
        self.open_raw_log();
        self.flush();

        // Stdin: a separate task so a child that never reads cannot block us.
        if let Some(stdin) = child.stdin.take() {
            match std::mem::take(&mut self.launch.stdin) {
                StdinMode::Piped(bytes) => {
                    tokio::spawn(async move {
                        let mut stdin = stdin;
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

        let mut stdout = child.stdout.take();
        let mut stderr = child.stderr.take();
        let cfg = &self.inner.config;
        let (max_line, idle_delay, grace, drain) = (
            cfg.max_line,
            cfg.idle_flush,
            cfg.grace_period,
            cfg.drain_timeout,
        );
        let mut out_split = LineSplitter::new(max_line);
        let mut err_split = LineSplitter::new(max_line);
        let mut out_buf = vec![0u8; 64 * 1024];
        let mut err_buf = vec![0u8; 64 * 1024];
        let mut segs = Vec::new();

        let far = Instant::now() + Duration::from_secs(100 * 365 * 24 * 3600);
        let far = tokio::time::Instant::from_std(far);
        let mut deadline = self
            .launch
            .spec
            .timeout
            .map(|d| tokio::time::Instant::now() + d);
        let mut paused_rx = self.entry.paused.subscribe();
        let mut paused_since: Option<tokio::time::Instant> = None;
        let timeout_sleep = sleep_until(deadline.unwrap_or(far));
        let kill_sleep = sleep_until(far);
        let drain_sleep = sleep_until(far);
        let idle_sleep = sleep_until(far);
        tokio::pin!(timeout_sleep, kill_sleep, drain_sleep, idle_sleep);
        let (mut kill_armed, mut drain_armed, mut idle_armed) = (false, false, false);
        let mut exit: Option<ExitCode> = None;

        if *cancel_rx.borrow_and_update() {
            self.begin_stop(Stop::Cancel, tree);
            kill_sleep
                .as_mut()
                .reset(tokio::time::Instant::now() + grace);
            kill_armed = true;
        }

        while stdout.is_some() || stderr.is_some() || exit.is_none() {
            let mut read_data = false;
            tokio::select! {
                r = read_some(&mut stdout, &mut out_buf), if stdout.is_some() => {
                    match r {
                        Some(n) => out_split.push(&out_buf[..n], &mut segs),
                        None => { out_split.finish(&mut segs); stdout = None; }
                    }
                    self.handle(Stream::Stdout, &mut segs);
                    if out_split.buffered() > 0 || err_split.buffered() > 0 {
                        idle_sleep.as_mut().reset(tokio::time::Instant::now() + idle_delay);
                        idle_armed = true;
                    }
                    read_data = true;
                }
                r = read_some(&mut stderr, &mut err_buf), if stderr.is_some() => {
                    match r {
                        Some(n) => err_split.push(&err_buf[..n], &mut segs),
                        None => { err_split.finish(&mut segs); stderr = None; }
                    }
                    self.handle(Stream::Stderr, &mut segs);
                    if out_split.buffered() > 0 || err_split.buffered() > 0 {
                        idle_sleep.as_mut().reset(tokio::time::Instant::now() + idle_delay);
                        idle_armed = true;
                    }
                    read_data = true;
                }
                // The usage probe sees the exit without reaping; reap after.
                status = async { leader_usage.exited().await; child.wait().await }, if exit.is_none() => {
                    exit = Some(match status {
                        Ok(s) => exit_code(s),
                        Err(_) => ExitCode { code: None, signal: None },
                    });
                    if stdout.is_some() || stderr.is_some() {
                        drain_sleep.as_mut().reset(tokio::time::Instant::now() + drain);
                        drain_armed = true;
                    }
                }
                _ = &mut idle_sleep, if idle_armed => {
                    idle_armed = false;
                    out_split.flush_idle(&mut segs);
                    self.handle(Stream::Stdout, &mut segs);
                    err_split.flush_idle(&mut segs);
                    self.handle(Stream::Stderr, &mut segs);
                }
                r = cancel_rx.wait_for(|c| *c), if self.stopped.is_none() => {
                    if r.is_ok() {
                        self.begin_stop(Stop::Cancel, tree);
                        kill_sleep.as_mut().reset(tokio::time::Instant::now() + grace);
                        kill_armed = true;
                    }
                }
                r = paused_rx.changed() => {
                    // Paused time does not count toward the timeout.
                    let now = tokio::time::Instant::now();
                    let paused = r.is_ok() && *paused_rx.borrow_and_update();
                    match (paused, paused_since) {
                        (true, None) => paused_since = Some(now),
                        (false, Some(since)) => {
                            paused_since = None;
                            if let Some(d) = deadline.as_mut() {
                                *d = d.checked_add(now - since).unwrap_or(far);
                                timeout_sleep.as_mut().reset(*d);
                            }
                        }
                        _ => {}
                    }
                }
                _ = &mut timeout_sleep, if deadline.is_some() && self.stopped.is_none() && paused_since.is_none() => {
                    self.begin_stop(Stop::Timeout, tree);
                    kill_sleep.as_mut().reset(tokio::time::Instant::now() + grace);
                    kill_armed = true;
                }
                _ = &mut kill_sleep, if kill_armed => {
                    kill_armed = false;
                    tree.kill();
                }
                _ = &mut drain_sleep, if drain_armed => {
                    // A descendant holds the pipes after the main process
                    // exited: stop it and finish with what we have.
                    drain_armed = false;
                    if !self.launch.keep_leftovers {
                        tree.kill();
                    }
                    out_split.finish(&mut segs);
                    self.handle(Stream::Stdout, &mut segs);
                    err_split.finish(&mut segs);
                    self.handle(Stream::Stderr, &mut segs);
                    stdout = None;
                    stderr = None;
                }
            }
            if read_data {
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

        self.set_state(|j| {
            j.state = JobState::Exited;
            j.exit = Some(exit);
        });
        self.push(Event::Exited {
            job: self.id,
            code: exit,
            at: SystemTime::now(),
        });
        self.call_on_exit(&exit);
        self.flush();
        self.verdict(&exit)
    }

    /// The main process exited and the pipes closed: kill what is left of
    /// the tree (unless the command keeps leftovers and was not stopped),
    /// measure it, and remove its cgroup once empty.
    async fn end_tree(
        &mut self,
        tree: &ProcessTree,
        leader: Option<crate::process::ResourceUsage>,
    ) {
        *lock(&self.entry.tree) = None;
        let kill = !self.launch.keep_leftovers || self.stopped.is_some();
        if kill {
            tree.kill();
        }
        // A killed tree empties within moments; wait for that (bounded) so
        // the cgroup can be removed and usage covers every process.
        let end = tokio::time::Instant::now() + Duration::from_secs(2);
        while kill && tree.populated() && tokio::time::Instant::now() < end {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        if let Some(usage) = tree.usage(leader) {
            *lock(&self.entry.usage) = Some(usage.clone());
            // History only (live subscribers read `Runtime::usage`), so the
            // live sequence `exited` → `finalized` stays as specified.
            if let Some(h) = &self.inner.history {
                let ev = Event::ResourcesMeasured {
                    job: self.id,
                    usage,
                    at: SystemTime::now(),
                };
                h.record(&self.entry.snapshot(), &[ev]);
            }
        }
        if !kill {
            tree.release_leftovers();
        }
        tree.release();
    }

    /// Start stopping the job (cancel or timeout): TERM to the tree now,
    /// KILL after the grace period (armed by the caller). A paused tree is
    /// thawed first so it can act on the TERM.
    fn begin_stop(&mut self, why: Stop, tree: &ProcessTree) {
        self.stopped = Some(why);
        if *self.entry.paused.borrow() && tree.pause(false).is_ok() {
            self.entry.paused.send_replace(false);
            self.push(Event::Resumed {
                job: self.id,
                at: SystemTime::now(),
            });
        }
        if why == Stop::Cancel {
            self.push(Event::Cancelled {
                job: self.id,
                at: SystemTime::now(),
            });
            self.flush();
        }
        tree.terminate();
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
                    let msg = format!("raw output log could not be opened: {e}");
                    self.push(Event::WarningDetected {
                        job: self.id,
                        code: Some("execra.raw_log".to_string()),
                        message: msg,
                        at: SystemTime::now(),
                    });
                }
            }
        }
    }

    /// Writing the raw log failed (disk full…): say so once and stop logging;
    /// the job itself carries on.
    fn raw_log_failed(&mut self, e: std::io::Error) {
        if let Some(raw) = self.raw.take() {
            raw.finish();
        }
        self.push(Event::WarningDetected {
            job: self.id,
            code: Some("execra.raw_log".to_string()),
            message: format!("raw output log write failed, the rest is not logged: {e}"),
            at: SystemTime::now(),
        });
    }

    /// Turn decoded segments of one stream into events (and interpreter
    /// calls), then send the batch.
    fn handle(&mut self, stream: Stream, segs: &mut Vec<crate::output::Segment>) {
        if segs.is_empty() {
            return;
        }
        let at = SystemTime::now();
        for seg in segs.drain(..) {
            let mut text = seg.text;
            if !self.launch.secrets.is_empty() {
                text = mask(text, &self.launch.secrets);
            }
            let redraw = seg.kind == SegmentKind::Redraw;
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
            let interpreted = if self.interpreter.is_some() {
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
                text = line.text;
                evs
            } else {
                Vec::new()
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
        if let Some(raw) = &mut self.raw {
            if let Err(e) = raw.flush() {
                self.raw_log_failed(e);
            }
        }
        self.flush();
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
        let ctx = Context {
            job: self.id,
            command: &self.launch.spec,
            current_phase: self.phases.last(),
            phase_stack: &self.phases,
            elapsed: self.started.elapsed(),
        };
        match catch_unwind(AssertUnwindSafe(|| f(interp.as_mut(), &ctx))) {
            Ok(evs) => evs,
            Err(payload) => {
                let msg = panic_message(payload.as_ref());
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

    fn call_on_exit(&mut self, exit: &ExitCode) {
        let evs = self.call_interpreter(|i, ctx| i.on_exit(ctx, exit), None);
        for ie in evs {
            self.apply(ie);
        }
        // Close phases still open, innermost first.
        while let Some(p) = self.phases.pop() {
            self.push(Event::PhaseExited {
                job: self.id,
                phase: p.id,
                at: SystemTime::now(),
            });
        }
        self.set_state(|j| j.current_phase = None);
    }

    fn interpreter_error(&mut self, error: String) {
        self.push(Event::InterpreterError {
            job: self.id,
            interpreter: self.interpreter_name.clone(),
            error,
            line: None,
            at: SystemTime::now(),
        });
    }

    /// Apply one interpreter event to the job's state and emit its event.
    fn apply(&mut self, ie: InterpreterEvent) {
        let job = self.id;
        let at = SystemTime::now();
        match ie {
            InterpreterEvent::EnterPhase { name, label } => {
                let phase = Phase {
                    id: PhaseId::new(),
                    name: name.clone(),
                    label: label.clone(),
                    entered_at: at,
                };
                let id = phase.id;
                self.phases.push(phase);
                self.set_state(|j| j.current_phase = Some(id));
                self.push(Event::PhaseEntered {
                    job,
                    phase: id,
                    name,
                    label,
                    at,
                });
            }
            InterpreterEvent::UpdatePhase { label } => match self.phases.last_mut() {
                Some(p) => {
                    p.label = Some(label.clone());
                    let phase = p.id;
                    self.push(Event::PhaseUpdated {
                        job,
                        phase,
                        label,
                        at,
                    });
                }
                None => self.interpreter_error(format!(
                    "UpdatePhase({label:?}) with no open phase was ignored"
                )),
            },
            InterpreterEvent::ExitPhase => match self.phases.pop() {
                Some(p) => {
                    let current = self.phases.last().map(|p| p.id);
                    self.set_state(|j| j.current_phase = current);
                    self.push(Event::PhaseExited {
                        job,
                        phase: p.id,
                        at,
                    });
                }
                None => self.interpreter_error("ExitPhase with no open phase was ignored".into()),
            },
            InterpreterEvent::Progress { progress } => {
                let progress = progress.sanitized();
                self.set_state(|j| j.progress = progress.clone());
                self.push(Event::ProgressUpdated { job, progress, at });
            }
            InterpreterEvent::Label { text } => {
                self.set_state(|j| j.label = Some(text.clone()));
                self.push(Event::LabelUpdated {
                    job,
                    label: text,
                    at,
                });
            }
            InterpreterEvent::Warning { code, message } => {
                self.push(Event::WarningDetected {
                    job,
                    code,
                    message,
                    at,
                });
            }
            InterpreterEvent::KnownError { code, message } => {
                if self.known_error.is_none() {
                    self.known_error = Some((code.clone(), message.clone()));
                }
                self.push(Event::KnownErrorDetected {
                    job,
                    code,
                    message,
                    at,
                });
            }
            InterpreterEvent::Finding { finding } => {
                self.findings.push(finding.clone());
                self.push(Event::FindingEmitted { job, finding, at });
            }
            InterpreterEvent::Prompt { prompt } => {
                self.push(Event::PromptDetected { job, prompt, at });
            }
            InterpreterEvent::Summary { text } => self.summary = Some(text),
        }
    }

    fn verdict(&mut self, exit: &ExitCode) -> Outcome {
        let findings = std::mem::take(&mut self.findings);
        let summary = self.summary.take();
        let reason = match self.stopped {
            Some(Stop::Cancel) => return Outcome::Cancelled { findings },
            Some(Stop::Timeout) => FailureReason::Timeout,
            None if exit.is_success() => return Outcome::Succeeded { summary, findings },
            None => match (self.known_error.take(), exit.signal, exit.code) {
                (Some((code, message)), _, _) => FailureReason::KnownError { code, message },
                (None, Some(signal), _) => FailureReason::Signal { signal },
                (None, None, Some(code)) => FailureReason::NonZeroExit { code },
                (None, None, None) => FailureReason::NonZeroExit { code: -1 },
            },
        };
        Outcome::Failed {
            reason,
            summary,
            findings,
        }
    }

    /// Record the verdict: history first (durable), then `finalized`, then
    /// the handle resolves.
    async fn finish(&mut self, outcome: Outcome) {
        self.flush();
        if let Some(raw) = self.raw.take() {
            raw.finish();
        }
        let state = if matches!(outcome, Outcome::Cancelled { .. }) {
            JobState::Cancelled
        } else {
            JobState::Finalized
        };
        let job = {
            let mut s = lock(&self.entry.snapshot);
            s.state = state;
            s.outcome = Some(outcome.clone());
            s.current_phase = None;
            s.clone()
        };
        let ev = Event::Finalized {
            job: self.id,
            outcome: outcome.clone(),
            at: SystemTime::now(),
        };
        if let Some(h) = &self.inner.history {
            h.finish(job, ev.clone()).await;
        }
        let item = [Item::event(ev)];
        self.inner.bus.publish(self.id, &item);
        self.entry.log.append(item);
        self.entry.log.seal(FINISHED_LOG_LIMITS);
        *lock(&self.entry.stdin) = None;
        let max = self.inner.config.max_finished_jobs;
        lock(&self.inner.registry).finished(self.id, max);
        self.entry.done.send_replace(Some(outcome));
    }
}

/// Read once from a pipe: `Some(n)` bytes, or `None` at EOF / on error.
async fn read_some<R: AsyncRead + Unpin>(pipe: &mut Option<R>, buf: &mut [u8]) -> Option<usize> {
    let p = pipe.as_mut()?;
    match p.read(buf).await {
        Ok(0) | Err(_) => None,
        Ok(n) => Some(n),
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

/// Replace every secret value in `text` with the placeholder.
fn mask(text: String, secrets: &[String]) -> String {
    if !secrets.iter().any(|s| text.contains(s.as_str())) {
        return text;
    }
    let mut t = text;
    for s in secrets {
        if t.contains(s.as_str()) {
            t = t.replace(s.as_str(), crate::command::SECRET_PLACEHOLDER);
        }
    }
    t
}
