//! Exit codes, verdicts and failure reasons.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::finding::Finding;

/// How a process ended: an exit code, or the signal that killed it (Unix).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
pub struct ExitCode {
    /// The exit status, when the process exited normally.
    pub code: Option<i32>,
    /// The signal that terminated the process (Unix only).
    pub signal: Option<i32>,
}

impl ExitCode {
    /// A normal exit with `code`.
    pub fn from_code(code: i32) -> Self {
        ExitCode {
            code: Some(code),
            signal: None,
        }
    }

    /// Termination by `signal`.
    pub fn from_signal(signal: i32) -> Self {
        ExitCode {
            code: None,
            signal: Some(signal),
        }
    }

    /// `true` when the exit code is 0.
    pub fn is_success(&self) -> bool {
        self.code == Some(0)
    }
}

impl fmt::Display for ExitCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.code, self.signal) {
            (Some(c), _) => write!(f, "exit code {c}"),
            (None, Some(s)) => write!(f, "signal {s}"),
            (None, None) => f.write_str("unknown exit"),
        }
    }
}

/// The final verdict of a job. Tag `kind` on the wire.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Outcome {
    /// The process exited with code 0.
    Succeeded {
        /// The interpreter's summary, if any.
        summary: Option<String>,
        /// Findings gathered during the job.
        findings: Vec<Finding>,
    },
    /// The job failed.
    Failed {
        /// Why.
        reason: FailureReason,
        /// The interpreter's summary, if any.
        summary: Option<String>,
        /// Findings gathered during the job.
        findings: Vec<Finding>,
    },
    /// The job was cancelled.
    Cancelled {
        /// Findings gathered before the cancellation.
        findings: Vec<Finding>,
    },
}

impl Outcome {
    /// `true` for [`Outcome::Succeeded`].
    pub fn is_success(&self) -> bool {
        matches!(self, Outcome::Succeeded { .. })
    }

    /// The summary if there is one, else a readable sentence.
    pub fn message(&self) -> String {
        match self {
            Outcome::Succeeded {
                summary: Some(s), ..
            }
            | Outcome::Failed {
                summary: Some(s), ..
            } => s.clone(),
            Outcome::Succeeded { summary: None, .. } => "completed successfully".to_string(),
            Outcome::Failed { reason, .. } => reason.message(),
            Outcome::Cancelled { .. } => "cancelled".to_string(),
        }
    }

    /// `Ok(message)` on success, `Err(message)` otherwise.
    pub fn into_result(self) -> Result<String, String> {
        let msg = self.message();
        if self.is_success() {
            Ok(msg)
        } else {
            Err(msg)
        }
    }

    /// The findings gathered during the job.
    pub fn findings(&self) -> &[Finding] {
        match self {
            Outcome::Succeeded { findings, .. }
            | Outcome::Failed { findings, .. }
            | Outcome::Cancelled { findings } => findings,
        }
    }

    /// The failure reason, for a failed job.
    pub fn failure(&self) -> Option<&FailureReason> {
        match self {
            Outcome::Failed { reason, .. } => Some(reason),
            _ => None,
        }
    }
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message())
    }
}

/// Why a job failed. Tag `kind` on the wire.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[serde(tag = "kind", rename_all = "snake_case")]
#[non_exhaustive]
pub enum FailureReason {
    /// The process exited with a non-zero code.
    NonZeroExit {
        /// The exit code.
        code: i32,
    },
    /// The process was killed by a signal.
    Signal {
        /// The signal number.
        signal: i32,
    },
    /// The interpreter recognised the failure.
    KnownError {
        /// Machine-readable code.
        code: String,
        /// Human-readable message.
        message: String,
    },
    /// The process could not be started.
    SpawnFailed {
        /// What went wrong.
        error: String,
    },
    /// The job ran past its timeout and was stopped.
    Timeout,
    /// The job wrote no output, on either stream, for its idle timeout
    /// ([`Command::idle_timeout`](crate::Command::idle_timeout)) and was
    /// stopped.
    IdleTimeout {
        /// The idle timeout, in milliseconds.
        #[cfg_attr(feature = "ts", ts(type = "number"))]
        after_ms: u64,
    },
}

impl FailureReason {
    /// A readable sentence.
    pub fn message(&self) -> String {
        match self {
            FailureReason::NonZeroExit { code } => format!("process exited with code {code}"),
            FailureReason::Signal { signal } => format!("process was killed by signal {signal}"),
            FailureReason::KnownError { message, .. } => message.clone(),
            FailureReason::SpawnFailed { error } => format!("failed to start: {error}"),
            FailureReason::Timeout => "timed out".to_string(),
            FailureReason::IdleTimeout { after_ms } => format!(
                "stopped after {} without output (idle timeout)",
                human_ms(*after_ms)
            ),
        }
    }
}

/// `250ms`, `2s`, `1.5s`, `2m`, `2m30s`.
fn human_ms(ms: u64) -> String {
    if ms < 1000 {
        return format!("{ms}ms");
    }
    if ms < 60_000 {
        return if ms % 1000 == 0 {
            format!("{}s", ms / 1000)
        } else {
            format!("{:.1}s", ms as f64 / 1000.0)
        };
    }
    let (m, s) = (ms / 60_000, (ms % 60_000) / 1000);
    if s == 0 {
        format!("{m}m")
    } else {
        format!("{m}m{s}s")
    }
}

impl fmt::Display for FailureReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message())
    }
}
