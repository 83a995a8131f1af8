//! [`CommandSpec`]: the cloneable, persistable view of a command — what
//! events, snapshots, history and interpreters see of it (secret values
//! replaced by [`SECRET_PLACEHOLDER`](crate::SECRET_PLACEHOLDER)). Plain data: it knows nothing of
//! interpreters or processes, so [`interpreter`](crate::interpreter) can depend on it
//! without depending on [`command`](crate::command).

use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// The cloneable, persistable view of a command.
///
/// Secret arguments and environment values appear here as
/// [`SECRET_PLACEHOLDER`](crate::SECRET_PLACEHOLDER); the real values never leave the [`Command`](crate::Command).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
pub struct CommandSpec {
    /// The program to run (a path or a name looked up in `PATH`).
    pub program: String,
    /// Its arguments.
    pub args: Vec<String>,
    /// Extra environment variables, applied in order.
    pub env: Vec<(String, String)>,
    /// Start from an empty environment.
    pub env_clear: bool,
    /// Working directory.
    pub cwd: Option<PathBuf>,
    /// Human-readable label for the job.
    pub label: Option<String>,
    /// Tags, for queries and retention (`"pinned"`).
    pub tags: Vec<String>,
    /// Stop the job after this long (`Failed{Timeout}`).
    #[cfg_attr(feature = "ts", ts(type = "Duration | null"))]
    pub timeout: Option<Duration>,
    /// Windows: start without a console window. Ignored elsewhere.
    pub hide_window: bool,
}

impl CommandSpec {
    /// A spec for `program` with no arguments and default settings.
    pub fn new(program: impl Into<String>) -> Self {
        CommandSpec {
            program: program.into(),
            args: Vec::new(),
            env: Vec::new(),
            env_clear: false,
            cwd: None,
            label: None,
            tags: Vec::new(),
            timeout: None,
            hide_window: cfg!(windows),
        }
    }

    /// The command line as one readable string (for display only; it is not
    /// shell-quoted).
    pub fn display(&self) -> String {
        let mut s = self.program.clone();
        for a in &self.args {
            s.push(' ');
            s.push_str(a);
        }
        s
    }
}
