//! The interpreter contract: per-job logic that turns output lines and the
//! exit code into typed [`InterpreterEvent`]s.
//!
//! The runtime calls one interpreter per job, serially, in stream order. It
//! owns all state transitions; an interpreter only describes what it saw. A
//! panic in `on_line`/`on_exit` is caught, reported as
//! [`Event::InterpreterError`](crate::Event::InterpreterError), and disables
//! the interpreter for the rest of the job; the process keeps running and its
//! output keeps streaming.

use std::time::{Duration, SystemTime};

use crate::event::Stream;
use crate::finding::Finding;
use crate::job::JobId;
use crate::outcome::ExitCode;
use crate::phase::Phase;
use crate::progress::Progress;
use crate::spec::CommandSpec;

/// One line of output.
#[derive(Debug, Clone, PartialEq)]
pub struct Line {
    /// Which pipe it came from.
    pub stream: Stream,
    /// The text without its line ending (lossy UTF-8).
    pub text: String,
    /// When it was read.
    pub at: SystemTime,
}

impl Line {
    /// A line read now.
    pub fn new(stream: Stream, text: impl Into<String>) -> Self {
        Line {
            stream,
            text: text.into(),
            at: SystemTime::now(),
        }
    }
}

/// What an interpreter knows about its job when called.
#[derive(Debug, Clone, Copy)]
pub struct Context<'a> {
    /// The job.
    pub job: JobId,
    /// Its command (secrets replaced).
    pub command: &'a CommandSpec,
    /// The innermost open phase.
    pub current_phase: Option<&'a Phase>,
    /// All open phases, outermost first.
    pub phase_stack: &'a [Phase],
    /// Time since the process started.
    pub elapsed: Duration,
}

/// What an interpreter may report.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum InterpreterEvent {
    /// Open a phase (nested inside the current one).
    EnterPhase {
        /// Machine-readable name.
        name: String,
        /// Human-readable label.
        label: Option<String>,
    },
    /// Relabel the current phase.
    UpdatePhase {
        /// The new label.
        label: String,
    },
    /// Close the current phase.
    ExitPhase,
    /// Report progress (fractions are clamped to `0..=1`).
    Progress {
        /// The progress.
        progress: Progress,
    },
    /// Change the job's label.
    Label {
        /// The new label.
        text: String,
    },
    /// A warning.
    Warning {
        /// Machine-readable code.
        code: Option<String>,
        /// Message.
        message: String,
    },
    /// A recognised error: turns a failed exit into `Failed{KnownError}`
    /// (never turns a successful exit into a failure).
    KnownError {
        /// Machine-readable code.
        code: String,
        /// Message.
        message: String,
    },
    /// A finding; accumulates into the outcome.
    Finding {
        /// The finding.
        finding: Finding,
    },
    /// The process waits for input.
    Prompt {
        /// The prompt text.
        prompt: String,
    },
    /// The job is ready (a server accepts connections, a watcher is
    /// watching). Only the first one counts: the runtime emits one
    /// [`Event::Ready`](crate::Event::Ready) per job and ignores repeats.
    Ready {
        /// Optional detail, e.g. the line that showed readiness.
        message: Option<String>,
    },
    /// The outcome's summary.
    Summary {
        /// The summary.
        text: String,
    },
}

/// Per-job output interpretation. See the [module docs](self).
pub trait Interpreter: Send {
    /// Called for each output line, in order.
    fn on_line(&mut self, ctx: &Context, line: &Line) -> Vec<InterpreterEvent>;

    /// Called once after the process exited and both pipes reached
    /// end-of-file, before the job is finalized.
    fn on_exit(&mut self, ctx: &Context, exit: &ExitCode) -> Vec<InterpreterEvent>;

    /// Called for a provisional redraw of the current line (text before a
    /// bare `\r`, or a partial line that has waited unfinished — a prompt).
    /// The default treats it as a line, so progress detectors see every
    /// redraw. Override it to tell the two apart.
    fn on_redraw(&mut self, ctx: &Context, line: &Line) -> Vec<InterpreterEvent> {
        self.on_line(ctx, line)
    }

    /// A name for this interpreter in `InterpreterError` events. Defaults to
    /// the type name.
    fn name(&self) -> &str {
        std::any::type_name::<Self>()
    }

    /// An optional shortcut for chatty jobs: `text` holds several complete
    /// output lines of one stream, separated by `\n` (a line may end in
    /// `\r`). Return `true` only if [`on_line`](Self::on_line) would return
    /// no events for any of them and would change nothing (say, none holds
    /// a byte your patterns need): the runtime then skips the `on_line`
    /// calls for those lines. The default, `false`, has every line go
    /// through `on_line`. An interpreter that counts lines, or keeps the
    /// last one, must keep the default.
    ///
    /// ```
    /// use execra::{Context, ExitCode, Interpreter, InterpreterEvent, Line};
    ///
    /// /// Warns about lines that mention "error".
    /// struct Errors;
    ///
    /// impl Interpreter for Errors {
    ///     fn on_line(&mut self, _: &Context, line: &Line) -> Vec<InterpreterEvent> {
    ///         if !line.text.contains("error") {
    ///             return vec![];
    ///         }
    ///         vec![InterpreterEvent::Warning { code: None, message: line.text.clone() }]
    ///     }
    ///     fn on_exit(&mut self, _: &Context, _: &ExitCode) -> Vec<InterpreterEvent> {
    ///         vec![]
    ///     }
    ///     // No line without "error" means anything to `on_line`.
    ///     fn ignores_lines(&self, text: &str) -> bool {
    ///         !text.contains("error")
    ///     }
    /// }
    ///
    /// assert!(Errors.ignores_lines("1\n2\n3"));
    /// assert!(!Errors.ignores_lines("1\nerror: disk full\n3"));
    /// ```
    ///
    /// (`interpret::ProgressDetector` does this for reads without `%`, `/`,
    /// `of` or an escape.)
    fn ignores_lines(&self, text: &str) -> bool {
        let _ = text;
        false
    }
}

impl<T: Interpreter + ?Sized> Interpreter for Box<T> {
    fn on_line(&mut self, ctx: &Context, line: &Line) -> Vec<InterpreterEvent> {
        (**self).on_line(ctx, line)
    }
    fn on_exit(&mut self, ctx: &Context, exit: &ExitCode) -> Vec<InterpreterEvent> {
        (**self).on_exit(ctx, exit)
    }
    fn on_redraw(&mut self, ctx: &Context, line: &Line) -> Vec<InterpreterEvent> {
        (**self).on_redraw(ctx, line)
    }
    fn name(&self) -> &str {
        (**self).name()
    }
    fn ignores_lines(&self, text: &str) -> bool {
        (**self).ignores_lines(text)
    }
}
