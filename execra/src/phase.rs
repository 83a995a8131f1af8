//! Phases: named stages of a job that an interpreter opens and closes.

use std::time::SystemTime;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// Identifier of a phase, unique within a job.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
pub struct PhaseId(pub Uuid);

impl PhaseId {
    /// A fresh phase id.
    pub fn new() -> Self {
        PhaseId(Uuid::now_v7())
    }
}

impl Default for PhaseId {
    fn default() -> Self {
        Self::new()
    }
}

/// An open phase of a job.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
pub struct Phase {
    /// The phase's id.
    pub id: PhaseId,
    /// Machine-readable name given by the interpreter (`"download"`).
    pub name: String,
    /// Human-readable label, if any (`"Downloading git"`).
    pub label: Option<String>,
    /// When the phase was entered.
    #[cfg_attr(feature = "ts", ts(type = "SystemTime"))]
    pub entered_at: SystemTime,
}
