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
//! and kill (cancel, timeout, idle timeout, grace, drain, idle flush) in
//! [`stop`](super::stop); what the interpreter's events mean for the job and
//! the verdict in [`tally`](super::tally); masking secrets in
//! [`Redactor`](crate::command::Redactor); signalling the tree in
//! `crate::process`. When a job ends, anything left of its tree is killed
//! (its cgroup, or its process group and live descendants): a job owns its
//! tree, unless the command keeps leftovers (`Command::keep_leftovers`).
//! Pausing freezes the tree (`Runtime::pause`); the timeout does not count
//! paused time.
//!
//! There is one way a job ends: [`Driver::finish`], or — when the driver
//! task is dropped before it got there (its tokio runtime shut down, even
//! before the task was first polled) — the [`Guard`], which publishes the
//! same `finalized` through the same [`settle`].

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use tokio::io::AsyncRead;
use tokio::sync::mpsc;
use tracing::Instrument;

use crate::command::{Launch, Redactor};
use crate::event::{Event, Stream};
use crate::job::{JobId, JobState};
use crate::outcome::{ExitCode, Outcome};
use crate::output::Segment;
use crate::process::pty::{self, PtyReader, PtyWriter};
use crate::process::{self, ProcessTree};

mod lines;

use super::finish::{conclude, publish, settle, spawn_failed, Guard};
use super::interp::Interp;
use super::log::{lock, Item};
use super::pipe::{Pipe, Reader};
use super::registry::{JobEntry, StdinMsg};
use super::stop::{Deadlines, Fired, StopPolicy, StopReason};
use super::tally::Tally;
use super::Inner;
use crate::output::RawLog;

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

    // A setting that cannot work (unknown encoding, 0×0 PTY, zero idle
    // timeout) fails like a program that cannot start.
    let spawned = match job.launch.invalid.clone() {
        Some(e) => Err(std::io::Error::new(std::io::ErrorKind::InvalidInput, e)),
        None => process::spawn(&job.launch, inner.config.containment, job.id),
    };
    let spawned = match spawned {
        Ok(s) => s,
        Err(e) => {
            tracing::warn!(error = %e, "spawn failed");
            return job.finish(spawn_failed(e.to_string()), &mut guard).await;
        }
    };
    tracing::info!(pid = spawned.pid, "spawned");
    let tree = Arc::new(spawned.tree);
    // The leader's identity as of now (not later on the history writer,
    // when the pid may be reaped and reused).
    process::identity::remember_leader(tree.leader().clone());
    guard.tree = Some(Arc::clone(&tree));
    let pty = match spawned.pty.map(|m| m.split()).transpose() {
        Ok(p) => p.map(|(reader, writer, control)| {
            *lock(&entry.pty) = Some(control);
            (reader, writer)
        }),
        Err(e) => {
            tracing::warn!(error = %e, "PTY setup failed");
            tree.kill();
            let error = format!("could not set up the pseudo-terminal: {e}");
            return job.finish(spawn_failed(error), &mut guard).await;
        }
    };
    *lock(&entry.tree) = Some(Arc::clone(&tree));
    let mut leader = spawned.leader_usage;
    let outcome = job
        .supervise(
            spawned.child,
            spawned.pid,
            &tree,
            (stdin_rx, &mut leader),
            cancel_rx,
            pty,
        )
        .await;
    // The job owns its tree: nothing of it outlives the job (unless the
    // command keeps leftovers and was not stopped).
    job.end_tree(&tree, leader.usage()).await;
    job.finish(outcome, &mut guard).await;
}

/// Per-job state while it runs.
struct Driver {
    inner: Arc<Inner>,
    entry: Arc<JobEntry>,
    id: JobId,
    launch: Launch,
    interp: Interp,
    tally: Tally,
    redactor: Redactor,
    started: Instant,
    batch: Vec<Item>,
    raw: Option<RawLog>,
    /// Cancel or timeout began (the whole tree goes, leftovers or not).
    stopped: bool,
    /// `started.elapsed()` for the lines of the pipe read being handled.
    batch_elapsed: Option<Duration>,
    /// Time spent letting lagging subscribers catch up (see
    /// `catch_up_budget`).
    caught_up: Duration,
}

impl Driver {
    fn new(inner: &Arc<Inner>, entry: &Arc<JobEntry>, mut launch: Launch) -> Self {
        let interp = Interp::new(launch.interpreter.take());
        let redactor = Redactor::new(std::mem::take(&mut launch.secrets));
        Driver {
            inner: Arc::clone(inner),
            entry: Arc::clone(entry),
            id: entry.id,
            launch,
            interp,
            tally: Tally::default(),
            redactor,
            started: Instant::now(),
            batch: Vec::new(),
            raw: None,
            stopped: false,
            batch_elapsed: None,
            caught_up: Duration::ZERO,
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
        mut child: process::Child,
        pid: u32,
        tree: &ProcessTree,
        (stdin_rx, leader): (
            Option<mpsc::UnboundedReceiver<StdinMsg>>,
            &mut process::LeaderWatch,
        ),
        mut cancel_rx: tokio::sync::watch::Receiver<bool>,
        pty: Option<(PtyReader, PtyWriter)>,
    ) -> Outcome {
        self.mark_started(pid);
        let (mut out, mut err) = self.pipes(&mut child, stdin_rx, pty);
        let mut deadlines = self.deadlines();
        let mut segs = Vec::new();
        let mut exit: Option<ExitCode> = None;
        let mut paused_rx = self.entry.paused.subscribe();
        if *cancel_rx.borrow_and_update() {
            self.stop(&mut deadlines, StopReason::Cancel, tree);
        }

        // Backpressure gate: while a `Lag::Backpressure` subscriber is too far
        // behind, the pipes are not read (the child blocks in `write`); every
        // other branch keeps running. Likewise, briefly, while a reading
        // `Lag::Skip` subscriber catches up (see `lines::catch_up_budget`).
        let log = Arc::clone(&self.entry.log);
        while out.is_open() || err.is_open() || exit.is_none() {
            let mut read_data = false;
            let bp_gated = log.lagging(false);
            let catch_up = (!bp_gated).then(|| self.catch_up_budget(&log)).flatten();
            let gated = bp_gated || catch_up.is_some();
            deadlines.hold(gated);
            let waited = Instant::now();
            tokio::select! {
                _ = log.room(), if bp_gated => deadlines.released(unfinished(&out, &err)),
                _ = log.catch_up(catch_up.unwrap_or_default()), if catch_up.is_some() => {
                    self.caught_up += waited.elapsed();
                    deadlines.released(unfinished(&out, &err));
                }
                r = out.read(), if out.is_open() && !gated => {
                    read_data = true;
                    self.take(&mut out, r, &mut segs);
                }
                r = err.read(), if err.is_open() && !gated => {
                    read_data = true;
                    self.take(&mut err, r, &mut segs);
                }
                // The usage probe sees the exit without reaping; reap after.
                status = async { leader.exited().await; child.wait().await }, if exit.is_none() => {
                    exit = Some(status.map_or(ExitCode { code: None, signal: None }, exit_code));
                    // A tree thawed by another process may exit before the
                    // next probe: report the resume first.
                    self.probe_pause(&mut deadlines, tree);
                    deadlines.exited(out.is_open() || err.is_open());
                }
                r = paused_rx.changed() => {
                    // Paused time does not count toward the timeout.
                    deadlines.paused(r.is_ok() && *paused_rx.borrow_and_update());
                }
                r = cancel_rx.wait_for(|c| *c), if deadlines.stopping().is_none() => {
                    if r.is_ok() {
                        self.stop(&mut deadlines, StopReason::Cancel, tree);
                    }
                }
                fired = deadlines.next() => {
                    self.fired(fired, &mut deadlines, tree, (&mut out, &mut err), &mut segs);
                }
            }
            if read_data {
                deadlines.unfinished_output(unfinished(&out, &err));
                deadlines.activity();
                // Let subscribers woken on this worker run, in parallel
                // with the next read (see `lines::hand_over`).
                lines::hand_over().await;
            }
        }
        *lock(&self.entry.stdin) = None;
        *lock(&self.entry.pty) = None;
        let exit = exit.unwrap_or(ExitCode {
            code: None,
            signal: None,
        });
        self.exited(&exit);
        self.tally.verdict(deadlines.stopping(), &exit)
    }

    /// The job's two output pipes. A PTY is one merged stream, read as
    /// stdout; its input side is fed by `pty::feed` according to the stdin
    /// mode. Otherwise stdin is connected to its pipe.
    fn pipes(
        &mut self,
        child: &mut process::Child,
        stdin_rx: Option<mpsc::UnboundedReceiver<StdinMsg>>,
        pty: Option<(PtyReader, PtyWriter)>,
    ) -> (Pipe<Reader>, Pipe<Reader>) {
        let stdout: Option<Reader> = match pty {
            Some((reader, writer)) => {
                let mode = std::mem::take(&mut self.launch.stdin);
                tokio::spawn(pty::feed(writer, mode, stdin_rx));
                Some(Box::new(reader))
            }
            None => {
                self.connect_stdin(child, stdin_rx);
                child.take_stdout()
            }
        };
        let max_line = self.inner.config.max_line;
        let out = Pipe::new(Stream::Stdout, stdout, &self.launch, max_line);
        let err = Pipe::new(Stream::Stderr, child.take_stderr(), &self.launch, max_line);
        (out, err)
    }

    /// The deadlines this job runs under, from its command and the runtime's
    /// configuration.
    fn deadlines(&self) -> Deadlines {
        let cfg = &self.inner.config;
        Deadlines::start(StopPolicy {
            timeout: self.launch.spec.timeout,
            grace: cfg.grace_period,
            drain: cfg.drain_timeout,
            idle_flush: cfg.idle_flush,
            idle_timeout: self.launch.idle_timeout,
            probe: process::PAUSE_PROBE.map(|(armed, idle)| {
                let timed =
                    self.launch.spec.timeout.is_some() || self.launch.idle_timeout.is_some();
                if timed {
                    armed
                } else {
                    idle
                }
            }),
        })
    }

    /// A deadline passed (see [`Deadlines::next`]): act on it.
    fn fired(
        &mut self,
        fired: Fired,
        deadlines: &mut Deadlines,
        tree: &ProcessTree,
        (out, err): (&mut Pipe<Reader>, &mut Pipe<Reader>),
        segs: &mut Vec<Segment>,
    ) {
        match fired {
            Fired::Timeout => self.stop(deadlines, StopReason::Timeout, tree),
            Fired::IdleTimeout => {
                let why = deadlines.idle_reason();
                self.stop(deadlines, why, tree);
            }
            Fired::Kill => {
                tracing::warn!("grace period over; killing the process tree");
                tree.kill();
            }
            Fired::Drain => {
                // A descendant holds the pipes after the main process exited:
                // stop it and finish with what we have.
                if self.launch.keep_leftovers {
                    tracing::warn!(
                        "pipes still open after the drain timeout; leftovers kept, pipes closed"
                    );
                } else {
                    tracing::warn!(
                        "pipes still open after the drain timeout; killing the process tree"
                    );
                    tree.kill();
                }
                out.close(segs);
                self.handle(out.stream, segs);
                err.close(segs);
                self.handle(err.stream, segs);
            }
            Fired::Probe => self.probe_pause(deadlines, tree),
            Fired::IdleFlush => {
                out.splitter.flush_idle(segs);
                self.handle(out.stream, segs);
                err.splitter.flush_idle(segs);
                self.handle(err.stream, segs);
            }
        }
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

    /// Stdin: fed by its own task (see [`stdin`](super::stdin)).
    fn connect_stdin(
        &mut self,
        child: &mut process::Child,
        stdin_rx: Option<mpsc::UnboundedReceiver<StdinMsg>>,
    ) {
        if let Some(stdin) = child.take_stdin() {
            let mode = std::mem::take(&mut self.launch.stdin);
            super::stdin::connect(stdin, mode, stdin_rx);
        }
    }
    /// The main process exited and the pipes closed: kill what is left of
    /// the tree (unless the command keeps leftovers and was not stopped),
    /// measure it, and remove its cgroup once empty. `leader` is the main
    /// process's own usage (see `process::watch_leader`).
    async fn end_tree(&mut self, tree: &ProcessTree, leader: Option<process::ResourceUsage>) {
        *lock(&self.entry.tree) = None;
        let kill = !self.launch.keep_leftovers || self.stopped;
        if kill {
            tree.kill();
        }
        // A killed tree empties within moments; wait for that (bounded) so
        // the cgroup can be removed and usage covers every process.
        let end = tokio::time::Instant::now() + std::time::Duration::from_secs(2);
        while kill && tree.populated() && tokio::time::Instant::now() < end {
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
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

    /// Start stopping the job (cancel, timeout, idle timeout): TERM to the tree now,
    /// KILL when the grace period runs out (see [`Deadlines`]). A paused
    /// tree is thawed first so it can act on the TERM.
    fn stop(&mut self, deadlines: &mut Deadlines, why: StopReason, tree: &ProcessTree) {
        if !deadlines.stop(why) {
            return;
        }
        self.stopped = true;
        if *self.entry.paused.borrow() && tree.pause(false).is_ok() {
            self.entry.paused.send_replace(false);
            {
                let mut s = lock(&self.entry.snapshot);
                if s.state == JobState::Paused {
                    s.state = JobState::Running;
                }
            }
            self.push(Event::Resumed {
                job: self.id,
                at: SystemTime::now(),
            });
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

    /// Another process paused or resumed the tree (`execra pause ID`): show
    /// it (`Paused`/`Resumed`, the job's state) and stop or restart the
    /// timeout's clock, as for `Runtime::pause`. Live only: the process
    /// that paused it recorded it in history.
    fn probe_pause(&mut self, deadlines: &mut Deadlines, tree: &ProcessTree) {
        let Some(paused) = process::external_pause(tree) else {
            return;
        };
        if *self.entry.paused.borrow() == paused {
            return;
        }
        tracing::info!(paused, "paused or resumed by another process");
        self.entry.paused.send_replace(paused);
        deadlines.paused(paused);
        let (job, at) = (self.id, SystemTime::now());
        let ev = if paused {
            Event::Paused { job, at }
        } else {
            Event::Resumed { job, at }
        };
        {
            let mut s = lock(&self.entry.snapshot);
            match (paused, s.state) {
                (true, JobState::Running) => s.state = JobState::Paused,
                (false, JobState::Paused) => s.state = JobState::Running,
                _ => {}
            }
        }
        self.flush();
        let items = [Item::event(ev)];
        self.inner.bus.publish(self.id, &items);
        self.entry.log.append(items);
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

/// Is a line of either pipe unfinished (waiting for more bytes)?
fn unfinished<A: AsyncRead + Unpin, B: AsyncRead + Unpin>(out: &Pipe<A>, err: &Pipe<B>) -> bool {
    out.splitter.buffered() > 0 || err.splitter.buffered() > 0
}
