//! Events: the wire protocol between the runtime and its consumers.
//!
//! Every event is JSON with a `kind` tag (snake_case) and carries the `job`
//! id and the time `at` which it happened. A frontend matches on `kind`.
//!
//! Per job, events arrive in this order: `job_created`, `job_started`,
//! output and interpreter events, `exited`, events from the interpreter's
//! `on_exit`, `phase_exited` for phases still open, then `finalized` — always
//! last, exactly once.
//!
//! Two additions to the published protocol:
//! - `output_appended` has a `redraw` flag (omitted when `false`). A redraw is
//!   a *provisional* view of the current line: the text before a bare `\r`
//!   (a progress bar redrawing itself), or a partial line that has waited
//!   unfinished for a moment (a prompt such as `Continue? [y/N] `). Show it in
//!   place of the previous redraw; the line's final text follows as a normal
//!   `output_appended` (unless it too is replaced by a redraw).
//! - `output_skipped` tells a subscriber that fell too far behind how many
//!   output lines it missed. Only output lines are ever skipped; every other
//!   event is always delivered.

use std::time::SystemTime;

use serde::{Deserialize, Serialize};

use crate::finding::Finding;
use crate::job::JobId;
use crate::outcome::{ExitCode, Outcome};
use crate::phase::PhaseId;
use crate::progress::Progress;
use crate::spec::CommandSpec;

/// Which output pipe a line came from. Lowercase on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[serde(rename_all = "lowercase")]
pub enum Stream {
    /// Standard output.
    Stdout,
    /// Standard error.
    Stderr,
}

impl Stream {
    /// `"stdout"` or `"stderr"`.
    pub fn as_str(&self) -> &'static str {
        match self {
            Stream::Stdout => "stdout",
            Stream::Stderr => "stderr",
        }
    }
}

fn is_false(b: &bool) -> bool {
    !*b
}

/// One event of one job. Tag `kind` (snake_case) on the wire.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[serde(tag = "kind", rename_all = "snake_case")]
#[non_exhaustive]
pub enum Event {
    /// The job was accepted (it may wait `queued` for a permit).
    JobCreated {
        /// The job.
        job: JobId,
        /// Its command (secrets replaced).
        command: CommandSpec,
        /// When.
        #[cfg_attr(feature = "ts", ts(type = "SystemTime"))]
        at: SystemTime,
    },
    /// The process started.
    JobStarted {
        /// The job.
        job: JobId,
        /// The process id (also its process group id on Unix).
        pid: u32,
        /// When.
        #[cfg_attr(feature = "ts", ts(type = "SystemTime"))]
        at: SystemTime,
    },
    /// The interpreter opened a phase.
    PhaseEntered {
        /// The job.
        job: JobId,
        /// The new phase.
        phase: PhaseId,
        /// Its name.
        name: String,
        /// Its label.
        label: Option<String>,
        /// When.
        #[cfg_attr(feature = "ts", ts(type = "SystemTime"))]
        at: SystemTime,
    },
    /// The interpreter relabelled the current phase.
    PhaseUpdated {
        /// The job.
        job: JobId,
        /// The phase.
        phase: PhaseId,
        /// Its new label.
        label: String,
        /// When.
        #[cfg_attr(feature = "ts", ts(type = "SystemTime"))]
        at: SystemTime,
    },
    /// A phase was closed.
    PhaseExited {
        /// The job.
        job: JobId,
        /// The phase.
        phase: PhaseId,
        /// When.
        #[cfg_attr(feature = "ts", ts(type = "SystemTime"))]
        at: SystemTime,
    },
    /// Progress changed.
    ProgressUpdated {
        /// The job.
        job: JobId,
        /// The new progress.
        progress: Progress,
        /// When.
        #[cfg_attr(feature = "ts", ts(type = "SystemTime"))]
        at: SystemTime,
    },
    /// The job's label changed.
    LabelUpdated {
        /// The job.
        job: JobId,
        /// The new label.
        label: String,
        /// When.
        #[cfg_attr(feature = "ts", ts(type = "SystemTime"))]
        at: SystemTime,
    },
    /// A line of output (or a redraw of the current line).
    OutputAppended {
        /// The job.
        job: JobId,
        /// Which pipe.
        stream: Stream,
        /// The text, without its line ending, decoded as lossy UTF-8.
        line: String,
        /// `true` for a provisional redraw of the current line (see the
        /// module docs); omitted on the wire when `false`.
        #[serde(default, skip_serializing_if = "is_false")]
        #[cfg_attr(feature = "ts", ts(as = "Option<bool>", optional))]
        redraw: bool,
        /// When.
        #[cfg_attr(feature = "ts", ts(type = "SystemTime"))]
        at: SystemTime,
    },
    /// This subscriber fell behind and missed `count` output lines.
    OutputSkipped {
        /// The job.
        job: JobId,
        /// How many `output_appended` events were skipped.
        #[cfg_attr(feature = "ts", ts(type = "number"))]
        count: u64,
        /// When the gap was noticed.
        #[cfg_attr(feature = "ts", ts(type = "SystemTime"))]
        at: SystemTime,
    },
    /// The interpreter reported a warning.
    WarningDetected {
        /// The job.
        job: JobId,
        /// Machine-readable code.
        code: Option<String>,
        /// Message.
        message: String,
        /// When.
        #[cfg_attr(feature = "ts", ts(type = "SystemTime"))]
        at: SystemTime,
    },
    /// The interpreter recognised an error.
    KnownErrorDetected {
        /// The job.
        job: JobId,
        /// Machine-readable code.
        code: String,
        /// Message.
        message: String,
        /// When.
        #[cfg_attr(feature = "ts", ts(type = "SystemTime"))]
        at: SystemTime,
    },
    /// The interpreter made a finding.
    FindingEmitted {
        /// The job.
        job: JobId,
        /// The finding.
        finding: Finding,
        /// When.
        #[cfg_attr(feature = "ts", ts(type = "SystemTime"))]
        at: SystemTime,
    },
    /// The process is waiting for input.
    PromptDetected {
        /// The job.
        job: JobId,
        /// The prompt text.
        prompt: String,
        /// When.
        #[cfg_attr(feature = "ts", ts(type = "SystemTime"))]
        at: SystemTime,
    },
    /// The job reported that it is ready (a server listening, a watcher
    /// watching). Sent at most once per job; await it with
    /// [`JobHandle::ready`](crate::JobHandle::ready).
    Ready {
        /// The job.
        job: JobId,
        /// What the interpreter said, e.g. the line that showed readiness.
        message: Option<String>,
        /// When.
        #[cfg_attr(feature = "ts", ts(type = "SystemTime"))]
        at: SystemTime,
    },
    /// The interpreter failed (it panicked, or asked for something invalid).
    InterpreterError {
        /// The job.
        job: JobId,
        /// The interpreter's type name.
        interpreter: String,
        /// What went wrong.
        error: String,
        /// The line being interpreted, if any.
        line: Option<String>,
        /// When.
        #[cfg_attr(feature = "ts", ts(type = "SystemTime"))]
        at: SystemTime,
    },
    /// The process exited and both pipes reached end-of-file.
    Exited {
        /// The job.
        job: JobId,
        /// How it exited.
        code: ExitCode,
        /// When.
        #[cfg_attr(feature = "ts", ts(type = "SystemTime"))]
        at: SystemTime,
    },
    /// The verdict. Always the last event of a job.
    Finalized {
        /// The job.
        job: JobId,
        /// The verdict.
        outcome: Outcome,
        /// When.
        #[cfg_attr(feature = "ts", ts(type = "SystemTime"))]
        at: SystemTime,
    },
    /// Cancellation took effect (the job will finalize as cancelled).
    Cancelled {
        /// The job.
        job: JobId,
        /// When.
        #[cfg_attr(feature = "ts", ts(type = "SystemTime"))]
        at: SystemTime,
    },
    /// The job's whole process tree was frozen
    /// ([`Runtime::pause`](crate::Runtime::pause)).
    Paused {
        /// The job.
        job: JobId,
        /// When.
        #[cfg_attr(feature = "ts", ts(type = "SystemTime"))]
        at: SystemTime,
    },
    /// The job's process tree runs again
    /// ([`Runtime::resume`](crate::Runtime::resume)).
    Resumed {
        /// The job.
        job: JobId,
        /// When.
        #[cfg_attr(feature = "ts", ts(type = "SystemTime"))]
        at: SystemTime,
    },
    /// What the job's processes used, measured when its tree ended (only
    /// where the platform can measure it). Stored in history just before
    /// `finalized`, not sent to live subscribers: read it with
    /// [`Runtime::usage`](crate::Runtime::usage).
    ResourcesMeasured {
        /// The job.
        job: JobId,
        /// CPU time and peak memory.
        usage: crate::process::ResourceUsage,
        /// When.
        #[cfg_attr(feature = "ts", ts(type = "SystemTime"))]
        at: SystemTime,
    },
}

impl Event {
    /// The job this event belongs to.
    pub fn job_id(&self) -> JobId {
        match self {
            Event::JobCreated { job, .. }
            | Event::JobStarted { job, .. }
            | Event::PhaseEntered { job, .. }
            | Event::PhaseUpdated { job, .. }
            | Event::PhaseExited { job, .. }
            | Event::ProgressUpdated { job, .. }
            | Event::LabelUpdated { job, .. }
            | Event::OutputAppended { job, .. }
            | Event::OutputSkipped { job, .. }
            | Event::WarningDetected { job, .. }
            | Event::KnownErrorDetected { job, .. }
            | Event::FindingEmitted { job, .. }
            | Event::PromptDetected { job, .. }
            | Event::Ready { job, .. }
            | Event::InterpreterError { job, .. }
            | Event::Exited { job, .. }
            | Event::Finalized { job, .. }
            | Event::Cancelled { job, .. }
            | Event::Paused { job, .. }
            | Event::Resumed { job, .. }
            | Event::ResourcesMeasured { job, .. } => *job,
        }
    }

    /// When this event happened.
    pub fn at(&self) -> SystemTime {
        match self {
            Event::JobCreated { at, .. }
            | Event::JobStarted { at, .. }
            | Event::PhaseEntered { at, .. }
            | Event::PhaseUpdated { at, .. }
            | Event::PhaseExited { at, .. }
            | Event::ProgressUpdated { at, .. }
            | Event::LabelUpdated { at, .. }
            | Event::OutputAppended { at, .. }
            | Event::OutputSkipped { at, .. }
            | Event::WarningDetected { at, .. }
            | Event::KnownErrorDetected { at, .. }
            | Event::FindingEmitted { at, .. }
            | Event::PromptDetected { at, .. }
            | Event::Ready { at, .. }
            | Event::InterpreterError { at, .. }
            | Event::Exited { at, .. }
            | Event::Finalized { at, .. }
            | Event::Cancelled { at, .. }
            | Event::Paused { at, .. }
            | Event::Resumed { at, .. }
            | Event::ResourcesMeasured { at, .. } => *at,
        }
    }

    /// The wire tag of this event (`"job_created"`, `"output_appended"`, …).
    pub fn kind(&self) -> &'static str {
        match self {
            Event::JobCreated { .. } => "job_created",
            Event::JobStarted { .. } => "job_started",
            Event::PhaseEntered { .. } => "phase_entered",
            Event::PhaseUpdated { .. } => "phase_updated",
            Event::PhaseExited { .. } => "phase_exited",
            Event::ProgressUpdated { .. } => "progress_updated",
            Event::LabelUpdated { .. } => "label_updated",
            Event::OutputAppended { .. } => "output_appended",
            Event::OutputSkipped { .. } => "output_skipped",
            Event::WarningDetected { .. } => "warning_detected",
            Event::KnownErrorDetected { .. } => "known_error_detected",
            Event::FindingEmitted { .. } => "finding_emitted",
            Event::PromptDetected { .. } => "prompt_detected",
            Event::Ready { .. } => "ready",
            Event::InterpreterError { .. } => "interpreter_error",
            Event::Exited { .. } => "exited",
            Event::Finalized { .. } => "finalized",
            Event::Cancelled { .. } => "cancelled",
            Event::Paused { .. } => "paused",
            Event::Resumed { .. } => "resumed",
            Event::ResourcesMeasured { .. } => "resources_measured",
        }
    }

    /// `true` for `output_appended` (the only kind a lagging subscriber may
    /// miss, and the kind history does not store).
    pub fn is_output(&self) -> bool {
        matches!(self, Event::OutputAppended { .. })
    }

    /// `true` for `finalized`.
    pub fn is_finalized(&self) -> bool {
        matches!(self, Event::Finalized { .. })
    }
}

/// An event lent out by
/// [`EventStream::next_batch_with`](crate::EventStream::next_batch_with):
/// an output line's text borrowed from the job's log (no allocation per
/// line), any other event by reference. Copy what you keep
/// ([`to_event`](Self::to_event)).
#[derive(Debug, Clone, Copy)]
pub enum EventRef<'a> {
    /// An `output_appended` event.
    Output(OutputRef<'a>),
    /// Any other event.
    Other(&'a Event),
}

/// An `output_appended` event whose text is borrowed (see [`EventRef`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OutputRef<'a> {
    /// The job.
    pub job: JobId,
    /// Which pipe.
    pub stream: Stream,
    /// The text, without its line ending.
    pub line: &'a str,
    /// `true` for a provisional redraw of the current line.
    pub redraw: bool,
    /// When.
    pub at: SystemTime,
}

impl<'a> EventRef<'a> {
    /// The view of an owned event (an `output_appended` becomes
    /// [`EventRef::Output`]).
    pub fn of(ev: &'a Event) -> Self {
        match ev {
            Event::OutputAppended {
                job,
                stream,
                line,
                redraw,
                at,
            } => EventRef::Output(OutputRef {
                job: *job,
                stream: *stream,
                line,
                redraw: *redraw,
                at: *at,
            }),
            other => EventRef::Other(other),
        }
    }

    /// An owned copy of the event.
    pub fn to_event(&self) -> Event {
        match self {
            EventRef::Output(o) => o.to_event(),
            EventRef::Other(e) => (*e).clone(),
        }
    }
}

impl OutputRef<'_> {
    /// An owned `output_appended` event.
    pub fn to_event(&self) -> Event {
        Event::OutputAppended {
            job: self.job,
            stream: self.stream,
            line: self.line.to_owned(),
            redraw: self.redraw,
            at: self.at,
        }
    }
}
