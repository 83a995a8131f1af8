//! Job identity, lifecycle state and the job snapshot.
//!
//! Plain data: nothing here knows about processes, tokio or SQLite.

use std::fmt;
use std::time::SystemTime;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::outcome::{ExitCode, Outcome};
use crate::phase::PhaseId;
use crate::progress::Progress;
use crate::spec::CommandSpec;

/// Identifier of one job: a UUID v7, so ids sort by creation time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
pub struct JobId(pub Uuid);

impl JobId {
    /// A fresh, time-ordered id.
    pub fn new() -> Self {
        JobId(Uuid::now_v7())
    }
}

impl Default for JobId {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Display for JobId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0.hyphenated(), f)
    }
}

impl std::str::FromStr for JobId {
    type Err = uuid::Error;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Uuid::parse_str(s).map(JobId)
    }
}

/// Where a job is in its life.
///
/// `Queued → Running → Exited → Finalized`, or `Cancelled` (terminal) for a
/// job whose cancellation took effect. `Exited` means the OS reported the exit
/// and both pipes reached end-of-file; `Finalized` means interpretation is
/// done and the [`Outcome`] is known.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum JobState {
    /// Waiting for a concurrency permit.
    Queued,
    /// The process is running.
    Running,
    /// The job's whole process tree is frozen
    /// ([`Runtime::pause`](crate::Runtime::pause)); `running` again on
    /// resume.
    Paused,
    /// The process exited; interpretation is being finished.
    Exited,
    /// Terminal: the outcome is known.
    Finalized,
    /// Terminal: the job was cancelled.
    Cancelled,
}

impl JobState {
    /// `true` for `Finalized` and `Cancelled`.
    pub fn is_terminal(self) -> bool {
        matches!(self, JobState::Finalized | JobState::Cancelled)
    }

    /// The wire name (`"queued"`, `"running"`, …).
    pub fn as_str(self) -> &'static str {
        match self {
            JobState::Queued => "queued",
            JobState::Running => "running",
            JobState::Paused => "paused",
            JobState::Exited => "exited",
            JobState::Finalized => "finalized",
            JobState::Cancelled => "cancelled",
        }
    }
}

impl fmt::Display for JobState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for JobState {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(match s {
            "queued" => JobState::Queued,
            "running" => JobState::Running,
            "paused" => JobState::Paused,
            "exited" => JobState::Exited,
            "finalized" => JobState::Finalized,
            "cancelled" => JobState::Cancelled,
            other => return Err(format!("unknown job state {other:?}")),
        })
    }
}

/// A snapshot of one job.
///
/// Callers may build this with a struct literal (to seed a store, in tests),
/// so new per-job data lives in separate types rather than new fields here.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
pub struct Job {
    /// The job's id.
    pub id: JobId,
    /// The command, with secrets replaced by a placeholder.
    pub command: CommandSpec,
    /// When the job was spawned.
    #[cfg_attr(feature = "ts", ts(type = "SystemTime"))]
    pub created_at: SystemTime,
    /// When the process started (`None` while queued or if it never started).
    #[cfg_attr(feature = "ts", ts(type = "SystemTime | null"))]
    pub started_at: Option<SystemTime>,
    /// Lifecycle state.
    pub state: JobState,
    /// The innermost open phase, if any.
    pub current_phase: Option<PhaseId>,
    /// Latest progress.
    pub progress: Progress,
    /// Current label (from the command, or updated by the interpreter).
    pub label: Option<String>,
    /// How the process exited, once it has.
    pub exit: Option<ExitCode>,
    /// The verdict, once finalized.
    pub outcome: Option<Outcome>,
}

impl Job {
    /// A queued job for `command`, created now.
    pub fn queued(id: JobId, command: CommandSpec) -> Self {
        Job {
            id,
            label: command.label.clone(),
            command,
            created_at: SystemTime::now(),
            started_at: None,
            state: JobState::Queued,
            current_phase: None,
            progress: Progress::Unknown,
            exit: None,
            outcome: None,
        }
    }

    /// The job's tags (from its command).
    pub fn tags(&self) -> &[String] {
        &self.command.tags
    }
}
