//! The 1.1 `INTERPRETER.md` snippets.

use execra::{
    Action, Context, ExitCode, Finding, Interpreter, InterpreterEvent, JobId, Line, Progress,
};

/// "What an interpreter may emit": every variant, constructed.
pub fn every_interpreter_event(finding: Finding) -> Vec<InterpreterEvent> {
    vec![
        InterpreterEvent::EnterPhase {
            name: "download".into(),
            label: None,
        },
        InterpreterEvent::UpdatePhase {
            label: "Downloading".into(),
        },
        InterpreterEvent::ExitPhase,
        InterpreterEvent::Progress {
            progress: Progress::fraction(0.5),
        },
        InterpreterEvent::Label {
            text: "label".into(),
        },
        InterpreterEvent::Warning {
            code: None,
            message: "careful".into(),
        },
        InterpreterEvent::KnownError {
            code: "E1".into(),
            message: "known".into(),
        },
        InterpreterEvent::Finding { finding },
        InterpreterEvent::Prompt {
            prompt: "Continue?".into(),
        },
        InterpreterEvent::Summary {
            text: "done".into(),
        },
    ]
}

/// "The trait": the context and line fields the contract documents.
pub fn context_and_line(ctx: &Context, line: &Line) {
    let _: JobId = ctx.job;
    let _ = ctx.command;
    let _ = ctx.current_phase;
    let _ = ctx.phase_stack;
    let _: std::time::Duration = ctx.elapsed;
    let _: execra::Stream = line.stream;
    let _: &String = &line.text;
    let _: std::time::SystemTime = line.at;
}

/// "Helpers".
pub fn helpers(text: String, done: f64, total: f64) -> (Vec<Finding>, Vec<Progress>) {
    (
        vec![
            Finding::info("scoop.notes", text),
            Finding::recommendation("vt.api_missing", "API key not set")
                .with_action(Action::command("Install", "scoop", ["install", "7zip"])),
        ],
        vec![
            Progress::bytes_mb(done, total), // -> Determinate(Bytes { .. })
            Progress::indeterminate("verifying"),
            Progress::fraction(0.42),
        ],
    )
}

/// "Multi-line patterns", inside the interpreter it describes.
#[derive(Default)]
pub struct Notes {
    in_notes: bool,
    notes_buf: Vec<String>,
}

impl Interpreter for Notes {
    fn on_line(&mut self, _ctx: &Context, line: &Line) -> Vec<InterpreterEvent> {
        // 1.1 doc error: the snippet says `Event::Finding`, with `Event`
        // meaning `InterpreterEvent` (as its examples/ import it).
        use InterpreterEvent as Event;
        if self.in_notes {
            if line.text.is_empty() {
                self.in_notes = false;
                let msg = std::mem::take(&mut self.notes_buf).join("\n");
                return vec![Event::Finding {
                    finding: Finding::info("scoop.notes", msg),
                }];
            }
            if !line.text.trim_start().starts_with("---") {
                self.notes_buf.push(line.text.clone());
            }
            return vec![];
        }
        if line.text == "Notes" {
            self.in_notes = true;
            return vec![];
        }
        vec![]
    }

    fn on_exit(&mut self, _ctx: &Context, _exit: &ExitCode) -> Vec<InterpreterEvent> {
        vec![]
    }
}
