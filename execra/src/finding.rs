//! Findings: structured observations (info, recommendations, warnings,
//! errors) with an optional action and a related entity.

use std::path::PathBuf;
use std::time::SystemTime;

use serde::{Deserialize, Serialize};

/// How serious a finding is. Lowercase on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// For information.
    Info,
    /// A suggestion.
    Recommendation,
    /// Something is probably wrong.
    Warning,
    /// Something is wrong.
    Error,
}

impl Severity {
    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Info => "info",
            Severity::Recommendation => "recommendation",
            Severity::Warning => "warning",
            Severity::Error => "error",
        }
    }
}

/// Something the user can do about a finding. Tag `kind` on the wire.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[serde(tag = "kind", rename_all = "snake_case")]
#[non_exhaustive]
pub enum Action {
    /// Run a command.
    Command {
        /// Button text.
        label: String,
        /// Program to run.
        program: String,
        /// Its arguments.
        args: Vec<String>,
        /// Working directory.
        cwd: Option<PathBuf>,
    },
    /// Open a link.
    Link {
        /// Link text.
        label: String,
        /// Where it points.
        url: String,
    },
    /// Follow written instructions.
    Instruction {
        /// Title.
        label: String,
        /// What to do.
        text: String,
    },
}

impl Action {
    /// A command action.
    pub fn command<I, S>(label: impl Into<String>, program: impl Into<String>, args: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        Action::Command {
            label: label.into(),
            program: program.into(),
            args: args.into_iter().map(Into::into).collect(),
            cwd: None,
        }
    }

    /// A command action run in `cwd`.
    pub fn command_in<I, S>(
        label: impl Into<String>,
        program: impl Into<String>,
        args: I,
        cwd: impl Into<PathBuf>,
    ) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        match Action::command(label, program, args) {
            Action::Command {
                label,
                program,
                args,
                ..
            } => Action::Command {
                label,
                program,
                args,
                cwd: Some(cwd.into()),
            },
            other => other,
        }
    }

    /// A link action.
    pub fn link(label: impl Into<String>, url: impl Into<String>) -> Self {
        Action::Link {
            label: label.into(),
            url: url.into(),
        }
    }

    /// An instruction action.
    pub fn instruction(label: impl Into<String>, text: impl Into<String>) -> Self {
        Action::Instruction {
            label: label.into(),
            text: text.into(),
        }
    }
}

/// What a finding is about. Tag `kind`, content `value` on the wire.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[serde(tag = "kind", content = "value", rename_all = "snake_case")]
#[non_exhaustive]
pub enum RelatedEntity {
    /// A package name.
    Package(String),
    /// A file.
    File(PathBuf),
    /// A URL.
    Url(String),
    /// Anything else.
    Other(String),
    /// A position in a source file (from a compiler or linter diagnostic).
    /// Line and column numbers are 1-based, as tools print them.
    Location {
        /// The file, as the tool printed it.
        path: PathBuf,
        /// The line, when known.
        line: Option<u32>,
        /// The column, when known.
        column: Option<u32>,
        /// The last line of the range, when known.
        end_line: Option<u32>,
        /// The last column of the range, when known.
        end_column: Option<u32>,
    },
}

/// A structured observation made while a job ran.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
pub struct Finding {
    /// How serious it is.
    pub severity: Severity,
    /// Machine-readable code (`"scoop.notes"`).
    pub code: String,
    /// Human-readable message.
    pub message: String,
    /// Something the user can do about it.
    pub action: Option<Action>,
    /// What it is about.
    pub related: Option<RelatedEntity>,
    /// When it was made.
    #[cfg_attr(feature = "ts", ts(type = "SystemTime"))]
    pub at: SystemTime,
}

impl Finding {
    /// A finding of `severity`, made now.
    pub fn new(severity: Severity, code: impl Into<String>, message: impl Into<String>) -> Self {
        Finding {
            severity,
            code: code.into(),
            message: message.into(),
            action: None,
            related: None,
            at: SystemTime::now(),
        }
    }

    /// An informational finding.
    pub fn info(code: impl Into<String>, message: impl Into<String>) -> Self {
        Self::new(Severity::Info, code, message)
    }

    /// A recommendation.
    pub fn recommendation(code: impl Into<String>, message: impl Into<String>) -> Self {
        Self::new(Severity::Recommendation, code, message)
    }

    /// A warning.
    pub fn warning(code: impl Into<String>, message: impl Into<String>) -> Self {
        Self::new(Severity::Warning, code, message)
    }

    /// An error.
    pub fn error(code: impl Into<String>, message: impl Into<String>) -> Self {
        Self::new(Severity::Error, code, message)
    }

    /// Attach an action.
    pub fn with_action(mut self, action: Action) -> Self {
        self.action = Some(action);
        self
    }

    /// Attach a related entity.
    pub fn with_related(mut self, related: RelatedEntity) -> Self {
        self.related = Some(related);
        self
    }
}
