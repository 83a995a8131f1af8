//! [`TaskBuilder`]: one job, and where its events go.

use std::future::{Future, IntoFuture};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::SystemTime;

use tauri::ipc::Channel;
use tauri::{AppHandle, Emitter, EventTarget};
use tokio::task::JoinHandle;
use tokio::time::{interval_at, sleep_until, Instant, MissedTickBehavior};

use crate::event::{Event, Stream};
use crate::interpreter::Interpreter;
use crate::job::JobId;
use crate::outcome::{FailureReason, Outcome};
use crate::phase::PhaseModel;
use crate::progress::Progress;
use crate::runtime::{Error, EventStream, JobHandle, Runtime};
use crate::Command;

use super::batch::{BatchConfig, Batcher, Message};
use super::creep::{Creep, CREEP_TICK};

/// A callback that sees every event of a job, in order.
pub type Observer<R> = Arc<dyn Fn(&AppHandle<R>, &Event) + Send + Sync + 'static>;

/// Most events taken per wake-up (one [`EventStream::next_batch`]).
const DRAIN: usize = 4096;

enum Target {
    /// Tauri event bus, event name.
    Bus(String),
    /// A Tauri v2 IPC channel.
    Ipc(Channel<Message>),
}

struct Sink {
    target: Target,
    /// `false`: one payload per event (the plain [`Event`] on the bus, a
    /// [`Message::Event`] on a channel). `true`: [`Message`]s batched with
    /// the task's [`BatchConfig`].
    batched: bool,
}

/// Describes a job and where its events go; finish with
/// [`spawn`](Self::spawn), [`spawn_tracked`](Self::spawn_tracked) or
/// `.await`.
///
/// Event delivery to sinks and observers happens on a forwarding task, in
/// the job's event order. Every sink and observer sees `finalized` last.
///
/// Sinks:
/// - [`channel`](Self::channel): every event, serialized, one Tauri event
///   per job event (the published behaviour);
/// - [`channel_batched`](Self::channel_batched): the same name on the event
///   bus, but [`Message`]s — output coalesced into `output_batch`;
/// - [`ipc_channel`](Self::ipc_channel): a [`tauri::ipc::Channel`] of
///   [`Message`]s (batched), the fastest way to stream to one webview.
pub struct TaskBuilder<R: tauri::Runtime> {
    app: AppHandle<R>,
    runtime: Runtime,
    cmd: Command,
    sinks: Vec<Sink>,
    observers: Vec<Observer<R>>,
    creep: Option<Box<dyn PhaseModel>>,
    batch: BatchConfig,
    target: Option<EventTarget>,
}

impl<R: tauri::Runtime> std::fmt::Debug for TaskBuilder<R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TaskBuilder")
            .field("command", self.cmd.spec())
            .field("sinks", &self.sinks.len())
            .field("observers", &self.observers.len())
            .field("creep", &self.creep.is_some())
            .field("batch", &self.batch)
            .finish()
    }
}

impl<R: tauri::Runtime> TaskBuilder<R> {
    pub(crate) fn new(app: AppHandle<R>, runtime: Runtime, cmd: Command) -> Self {
        TaskBuilder {
            app,
            runtime,
            cmd,
            sinks: Vec::new(),
            observers: Vec::new(),
            creep: None,
            batch: BatchConfig::default(),
            target: None,
        }
    }

    /// Emit every event of the job, serialized as an [`Event`], on the
    /// Tauri event bus under `name` (one Tauri event per job event; listen
    /// with `listen(name, …)` in the frontend). Event names may contain
    /// only alphanumerics, `-`, `/`, `:` and `_`; with an invalid name
    /// nothing is emitted.
    pub fn channel(mut self, name: impl Into<String>) -> Self {
        self.sinks.push(Sink {
            target: Target::Bus(name.into()),
            batched: false,
        });
        self
    }

    /// Like [`channel`](Self::channel) but the payloads are [`Message`]s:
    /// output lines coalesced into `output_batch` messages (see
    /// [`batch`](Self::batch)), every other event sent at once as itself.
    pub fn channel_batched(mut self, name: impl Into<String>) -> Self {
        self.sinks.push(Sink {
            target: Target::Bus(name.into()),
            batched: true,
        });
        self
    }

    /// Send the job's events to a Tauri v2 IPC channel (created by the
    /// frontend, passed to one of your commands), as batched [`Message`]s.
    /// Use `.batch(BatchConfig::UNBATCHED)` for one message per event.
    pub fn ipc_channel(mut self, channel: Channel<Message>) -> Self {
        self.sinks.push(Sink {
            target: Target::Ipc(channel),
            batched: true,
        });
        self
    }

    /// Send the event-bus sinks ([`channel`](Self::channel),
    /// [`channel_batched`](Self::channel_batched)) to `target` only, e.g.
    /// the webview that asked for the job (`webview.label()` in a command
    /// taking a `tauri::Webview`), instead of every window. Without it they
    /// go to every listener. (An [`ipc_channel`](Self::ipc_channel) always
    /// reaches only the webview that created it.)
    pub fn emit_to(mut self, target: impl Into<EventTarget>) -> Self {
        self.target = Some(target.into());
        self
    }

    /// How batched sinks coalesce output (default: 25 ms or 1000 lines).
    pub fn batch(mut self, config: BatchConfig) -> Self {
        self.batch = config;
        self
    }

    /// Call `f` for every event of the job, in order (on the forwarding
    /// task; keep it quick). A panic in `f` is caught and ignored.
    pub fn observe<F>(mut self, f: F) -> Self
    where
        F: Fn(&AppHandle<R>, &Event) + Send + Sync + 'static,
    {
        self.observers.push(Arc::new(f));
        self
    }

    /// Call `f` with the job's id when it is created.
    pub fn on_created<F>(self, f: F) -> Self
    where
        F: Fn(&AppHandle<R>, JobId) + Send + Sync + 'static,
    {
        self.observe(move |app, ev| {
            if let Event::JobCreated { job, .. } = ev {
                f(app, *job)
            }
        })
    }

    /// Call `f` for every output line (final lines only; provisional
    /// `\r` redraws are skipped — use [`observe`](Self::observe) for them).
    pub fn on_output<F>(self, f: F) -> Self
    where
        F: Fn(&AppHandle<R>, Stream, &str) + Send + Sync + 'static,
    {
        self.observe(move |app, ev| {
            if let Event::OutputAppended {
                stream,
                line,
                redraw: false,
                ..
            } = ev
            {
                f(app, *stream, line)
            }
        })
    }

    /// Call `f(app, interpreter, error, line)` when the interpreter fails.
    pub fn on_interpreter_error<F>(self, f: F) -> Self
    where
        F: Fn(&AppHandle<R>, &str, &str, Option<&str>) + Send + Sync + 'static,
    {
        self.observe(move |app, ev| {
            if let Event::InterpreterError {
                interpreter,
                error,
                line,
                ..
            } = ev
            {
                f(app, interpreter, error, line.as_deref())
            }
        })
    }

    /// Call `f` with the verdict.
    pub fn on_finalized<F>(self, f: F) -> Self
    where
        F: Fn(&AppHandle<R>, &Outcome) + Send + Sync + 'static,
    {
        self.observe(move |app, ev| {
            if let Event::Finalized { outcome, .. } = ev {
                f(app, outcome)
            }
        })
    }

    /// Set the job's label.
    pub fn label(mut self, label: impl Into<String>) -> Self {
        self.cmd = self.cmd.label(label);
        self
    }

    /// Add a tag to the job.
    pub fn tag(mut self, tag: impl Into<String>) -> Self {
        self.cmd = self.cmd.tag(tag);
        self
    }

    /// Set the job's interpreter.
    pub fn interpreter<I: Interpreter + Send + 'static>(mut self, interpreter: I) -> Self {
        self.cmd = self.cmd.interpreter(interpreter);
        self
    }

    /// Synthetic progress: while a phase whose name `model` maps to a
    /// `(start, end)` range is open and reports no real progress, send
    /// `progress_updated` events that ease from `start` toward `end`
    /// (never reaching it) every [`CREEP_TICK`]; stop when the phase exits,
    /// real progress arrives, or the job ends.
    ///
    /// These events go to this task's channels and observers only: creep
    /// never changes the job's real progress in the runtime (its snapshot,
    /// history and other subscribers are untouched).
    ///
    /// `model` is a [`PhaseModel`] closure; pass the same closure to the
    /// rule interpreter (`RuleInterpreter::new(rules, model)`) so the real
    /// and the synthetic progress agree on each phase's range.
    pub fn creep<F>(mut self, model: F) -> Self
    where
        F: Fn(&str) -> Option<(f32, f32)> + Send + 'static,
    {
        self.creep = Some(Box::new(model));
        self
    }

    /// Spawn the job and start forwarding its events; returns at once.
    ///
    /// Awaiting the returned handle does not wait for the forwarding to
    /// finish; `.await` the builder itself for that.
    pub fn spawn(self) -> Result<JobHandle, Error> {
        self.start().map(|(handle, _)| handle)
    }

    /// [`spawn`](Self::spawn), returning only the job's id.
    pub fn spawn_tracked(self) -> Result<JobId, Error> {
        self.spawn().map(|h| h.id())
    }

    fn start(self) -> Result<(JobHandle, JoinHandle<Option<Outcome>>), Error> {
        // Tauri commands and setup hooks may run outside tokio: use Tauri's
        // async runtime then.
        let tokio = match tokio::runtime::Handle::try_current() {
            Ok(h) => h,
            Err(_) => tauri::async_runtime::handle().inner().clone(),
        };
        let _guard = tokio.enter();
        let handle = self.runtime.spawn(self.cmd)?;
        let forwarder = Forwarder {
            app: self.app,
            job: handle.id(),
            sinks: self.sinks,
            observers: self.observers,
            batcher: Batcher::new(self.batch),
            creep: self.creep.map(Creep::boxed),
            target: self.target,
            out: Vec::new(),
        };
        let done = tokio.spawn(forwarder.run(handle.subscribe()));
        Ok((handle, done))
    }
}

/// The future of an awaited [`TaskBuilder`]: resolves to the job's
/// [`Outcome`] after every sink and observer has handled `finalized`.
pub struct TaskFuture {
    inner: Pin<Box<dyn Future<Output = Outcome> + Send>>,
}

impl std::fmt::Debug for TaskFuture {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TaskFuture").finish_non_exhaustive()
    }
}

impl Future for TaskFuture {
    type Output = Outcome;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Outcome> {
        self.inner.as_mut().poll(cx)
    }
}

impl<R: tauri::Runtime> IntoFuture for TaskBuilder<R> {
    type Output = Outcome;
    type IntoFuture = TaskFuture;

    /// Spawn, then wait until the job is finalized **and** every sink and
    /// observer has handled `finalized`. A spawn error becomes
    /// `Failed{SpawnFailed}`.
    fn into_future(self) -> TaskFuture {
        TaskFuture {
            inner: Box::pin(async move {
                match self.start() {
                    Err(e) => Outcome::Failed {
                        reason: FailureReason::SpawnFailed {
                            error: e.to_string(),
                        },
                        summary: None,
                        findings: Vec::new(),
                    },
                    Ok((handle, done)) => match done.await {
                        Ok(Some(outcome)) => outcome,
                        // The forwarder panicked or the stream ended early:
                        // the runtime still knows the verdict.
                        _ => handle.await,
                    },
                }
            }),
        }
    }
}

/// Delivers one job's events to its sinks and observers.
struct Forwarder<R: tauri::Runtime> {
    app: AppHandle<R>,
    job: JobId,
    sinks: Vec<Sink>,
    observers: Vec<Observer<R>>,
    batcher: Batcher,
    creep: Option<Creep>,
    target: Option<EventTarget>,
    out: Vec<Message>,
}

impl<R: tauri::Runtime> Forwarder<R> {
    async fn run(mut self, mut events: EventStream) -> Option<Outcome> {
        let mut ticks = interval_at(Instant::now() + CREEP_TICK, CREEP_TICK);
        ticks.set_missed_tick_behavior(MissedTickBehavior::Delay);
        let mut batch = Vec::with_capacity(DRAIN);
        loop {
            let deadline = self.batcher.deadline();
            let creeping = self.creep.as_ref().is_some_and(Creep::wants_tick);
            tokio::select! {
                // Everything that is ready, up to `DRAIN` events, per wake-up:
                // a chatty job is handled in large steps.
                n = events.next_batch(&mut batch, DRAIN) => {
                    if n == 0 {
                        break;
                    }
                    for ev in batch.drain(..) {
                        if let Some(outcome) = self.handle(ev) {
                            return Some(outcome);
                        }
                        // A batch whose time has come goes out now, not
                        // after the rest of this wake-up's events.
                        if self.batcher.deadline().is_some_and(|d| d <= Instant::now()) {
                            self.batcher.flush_due(Instant::now(), &mut self.out);
                            self.deliver_batched();
                        }
                    }
                }
                _ = sleep_until(deadline.unwrap_or_else(Instant::now)), if deadline.is_some() => {}
                _ = ticks.tick(), if creeping => self.creep_tick(),
            }
            self.batcher.flush_due(Instant::now(), &mut self.out);
            self.deliver_batched();
        }
        // The stream ended without `finalized` (should not happen).
        self.batcher.flush_into(&mut self.out);
        self.deliver_batched();
        None
    }

    /// Handle one real event; returns the outcome once `finalized` has
    /// been delivered everywhere.
    fn handle(&mut self, ev: Event) -> Option<Outcome> {
        if let Some(c) = &mut self.creep {
            c.observe(&ev);
        }
        self.dispatch(ev)
    }

    fn creep_tick(&mut self) {
        let Some(value) = self.creep.as_mut().and_then(Creep::tick) else {
            return;
        };
        let ev = Event::ProgressUpdated {
            job: self.job,
            progress: Progress::fraction(value),
            at: SystemTime::now(),
        };
        self.dispatch(ev);
    }

    fn dispatch(&mut self, ev: Event) -> Option<Outcome> {
        for obs in &self.observers {
            // A panicking observer must not stop delivery to the others.
            let _ = catch_unwind(AssertUnwindSafe(|| obs(&self.app, &ev)));
        }
        for sink in &self.sinks {
            if sink.batched {
                continue;
            }
            match &sink.target {
                Target::Bus(name) => emit(&self.app, self.target.as_ref(), name, &ev),
                Target::Ipc(ch) => {
                    let _ = ch.send(Message::Event(ev.clone()));
                }
            }
        }
        let outcome = match &ev {
            Event::Finalized { outcome, .. } => Some(outcome.clone()),
            _ => None,
        };
        if self.sinks.iter().any(|s| s.batched) {
            self.batcher.push(ev, &mut self.out);
            if outcome.is_some() {
                self.batcher.flush_into(&mut self.out);
            }
            self.deliver_batched();
        }
        outcome
    }

    fn deliver_batched(&mut self) {
        if self.out.is_empty() {
            return;
        }
        for msg in self.out.drain(..) {
            for sink in self.sinks.iter().filter(|s| s.batched) {
                match &sink.target {
                    Target::Bus(name) => emit(&self.app, self.target.as_ref(), name, &msg),
                    Target::Ipc(ch) => {
                        let _ = ch.send(msg.clone());
                    }
                }
            }
        }
    }
}

/// Emit on the event bus: to `target` when set, else to every listener.
/// Delivery errors (an invalid event name, a closed webview) are dropped.
fn emit<R: tauri::Runtime, T: serde::Serialize + Clone>(
    app: &AppHandle<R>,
    target: Option<&EventTarget>,
    name: &str,
    payload: &T,
) {
    let _ = match target {
        Some(t) => app.emit_to(t.clone(), name, payload),
        None => app.emit(name, payload),
    };
}
