//! # execra — a typed job runtime for programs that drive command-line tools
//!
//! Hand the [`Runtime`] a [`Command`]; it spawns the program so the job owns
//! its whole process tree (a cgroup per job on Linux where possible, else a
//! process group; a Job Object on Windows — see [`Containment`]), decodes
//! its output into lines, feeds them to a per-job
//! [`Interpreter`] that turns them into typed events (phases, progress,
//! findings), cancels the whole process tree on request or timeout, enforces a
//! concurrency limit, and streams every [`Event`] to any number of
//! subscribers — without losing any.
//!
//! ```no_run
//! use execra::{Command, Runtime};
//!
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! let rt = Runtime::new();
//! let outcome = rt
//!     .spawn(Command::new("echo").arg("hello").label("greet"))?
//!     .await;
//! assert!(outcome.is_success());
//! # Ok(()) }
//! ```
//!
//! See the crate README for the full tour: streaming without loss, `\r`
//! redraws, cancellation, interactive stdin, secrets and history.

#![warn(missing_docs)]

pub mod command;
pub mod event;
pub mod finding;
#[cfg(feature = "interpret")]
pub mod interpret;
pub mod interpreter;
pub mod job;
pub mod outcome;
pub mod output;
pub mod phase;
mod private;
mod process;
pub mod progress;
mod retention;
pub mod runtime;
mod spec;
pub mod store;
#[cfg(feature = "tauri")]
pub mod tauri;

pub use command::{Command, CommandSpec, PtySize, StdinMode, SECRET_PLACEHOLDER};
pub use event::{Event, EventRef, OutputRef, Stream};
pub use finding::{Action, Finding, RelatedEntity, Severity};
pub use interpreter::{Context, Interpreter, InterpreterEvent, Line};
pub use job::{Job, JobId, JobState};
pub use outcome::{ExitCode, FailureReason, Outcome};
pub use phase::{Phase, PhaseId, PhaseModel};
pub use process::{Containment, ResourceUsage};
pub use progress::{Progress, ProgressMetric};
pub use runtime::{
    Error, EventStream, JobHandle, JobsQuery, Lag, NotReady, RawOutputPolicy, RetentionPolicy,
    Runtime, RuntimeBuilder, SubscribeOptions, DEFAULT_FINISHED_OUTPUT_BUDGET,
    DEFAULT_MAX_LAG_BYTES, MEMORY_OUTPUT_BYTES, MEMORY_OUTPUT_LINES,
};

/// The README's examples are compiled as doctests so they stay true.
#[cfg(doctest)]
#[doc = include_str!("../../README.md")]
struct ReadmeDoctests;
