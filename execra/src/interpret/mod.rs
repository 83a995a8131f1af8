//! Interpreter toolkit (feature `interpret`): rule tables, problem matchers,
//! progress detectors, ANSI stripping and composition.
//!
//! - [`RuleInterpreter`] + [`rules!`](crate::rules): an ordered regex table
//!   mapping lines to phases, progress, warnings, known errors and a summary,
//!   with notes blocks and a failure fallback.
//! - [`ProblemMatcher`]: compiler/linter diagnostics → [`Finding`]s with a
//!   [`RelatedEntity::Location`], single- or multi-line (VS Code / GitHub
//!   Actions model, loadable from their JSON format); built-ins for GCC/Clang,
//!   rustc and ESLint.
//! - [`ProgressDetector`]: percentages, counters and byte counts in
//!   free-form output, including `\r` redraws.
//! - [`strip_ansi`]: colour and cursor escapes removed before matching (on by
//!   default in all of the above).
//! - [`Chain`]: several interpreters over one job, panics isolated.
//!
//! ```no_run
//! use execra::interpret::{Chain, ProblemMatcher, RuleInterpreter};
//! use execra::{rules, Command, Runtime};
//!
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! let rules = RuleInterpreter::flat(rules![
//!     enter_phase, "build", "Building $1", r"^\s*Compiling (\S+)";
//!     summary, "Finished", r"^\s*Finished";
//! ]);
//! let rt = Runtime::new();
//! let outcome = rt
//!     .spawn(Command::new("cargo").arg("build").interpreter(
//!         Chain::new().with(rules).with(ProblemMatcher::rustc()),
//!     ))?
//!     .await;
//! for finding in outcome.findings() {
//!     println!("{:?} {}: {}", finding.severity, finding.code, finding.message);
//! }
//! # Ok(()) }
//! ```
//!
//! [`Finding`]: crate::Finding
//! [`RelatedEntity::Location`]: crate::RelatedEntity::Location

use crate::output::ansi;
mod chain;
mod detect;
mod matcher;
mod rules;

/// The [`rules!`](crate::rules) macro, also reachable here.
pub use crate::rules;

pub use ansi::strip_ansi;
pub use chain::{Chain, CHAIN_PANIC_CODE};
pub use detect::{detect_bytes, detect_count, detect_percent, ProgressDetector};
pub use matcher::{MatcherError, ProblemMatcher, ProblemPattern};
pub use rules::{
    render, FallbackPolicy, NotesConfig, PhaseModel, Rule, RuleAction, RuleInterpreter,
};
