//! Interpreter toolkit (feature `interpret`).

mod ansi;
mod detect;
mod rules;

pub use ansi::strip_ansi;
pub use detect::{detect_bytes, detect_count, detect_percent, ProgressDetector};
pub use rules::{render, FallbackPolicy, NotesConfig, PhaseModel, Rule, RuleAction, RuleInterpreter};
