//! Phases: named stages of a job that an interpreter opens and closes, and
//! [`PhaseModel`], the share of overall progress each phase covers.

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

/// Maps a phase name to the slice of overall progress it covers, as
/// `(start, end)` fractions. Entering a phase reports `start` (the boundary
/// fraction) and byte progress inside it is scaled into `start..end`.
///
/// One model serves both uses of a range: the rule interpreter
/// (`execra::interpret::RuleInterpreter`, feature `interpret`) and the Tauri
/// plugin's synthetic progress (`TaskBuilder::creep`, feature `tauri`).
///
/// Implemented for `()` (no ranges) and for any
/// `Fn(&str) -> Option<(f32, f32)> + Send`.
///
/// ```
/// use execra::PhaseModel;
///
/// let model = |name: &str| match name {
///     "download" => Some((0.0, 0.8)),
///     "install" => Some((0.8, 1.0)),
///     _ => None,
/// };
/// assert_eq!(model.range("install"), Some((0.8, 1.0)));
/// assert_eq!(().range("install"), None);
/// ```
pub trait PhaseModel: Send {
    /// The `(start, end)` fractions of phase `name`, if it has a range.
    ///
    /// ```
    /// use execra::PhaseModel;
    /// let model = |name: &str| (name == "build").then_some((0.2, 0.9));
    /// assert_eq!(model.range("build"), Some((0.2, 0.9)));
    /// assert_eq!(model.range("test"), None);
    /// ```
    fn range(&self, name: &str) -> Option<(f32, f32)>;
}

impl PhaseModel for () {
    fn range(&self, _name: &str) -> Option<(f32, f32)> {
        None
    }
}

impl<F> PhaseModel for F
where
    F: Fn(&str) -> Option<(f32, f32)> + Send,
{
    fn range(&self, name: &str) -> Option<(f32, f32)> {
        self(name)
    }
}
