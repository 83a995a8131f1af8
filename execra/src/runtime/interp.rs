//! The job's interpreter behind a panic fence: a panic in `on_line`,
//! `on_redraw` or `on_exit` is caught, reported once, and disables the
//! interpreter for the rest of the job (SPEC §4); the job carries on.

use std::panic::{catch_unwind, AssertUnwindSafe};

use crate::interpreter::{Context, Interpreter, InterpreterEvent};

/// The interpreter of one job, if it has one and it has not panicked.
pub(super) struct Interp {
    slot: Option<Box<dyn Interpreter + Send>>,
    name: String,
}

impl Interp {
    pub fn new(slot: Option<Box<dyn Interpreter + Send>>) -> Self {
        let name = slot
            .as_ref()
            .map(|i| i.name().to_string())
            .unwrap_or_default();
        Interp { slot, name }
    }

    /// `true` while there is an interpreter to call.
    pub fn is_active(&self) -> bool {
        self.slot.is_some()
    }

    /// The interpreter's name (for `interpreter_error`).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Call it. `Err` carries the panic message; the interpreter is then
    /// disabled. Without an interpreter: no events.
    pub fn call(
        &mut self,
        ctx: &Context<'_>,
        f: impl FnOnce(&mut dyn Interpreter, &Context) -> Vec<InterpreterEvent>,
    ) -> Result<Vec<InterpreterEvent>, String> {
        let Some(interp) = self.slot.as_mut() else {
            return Ok(Vec::new());
        };
        catch_unwind(AssertUnwindSafe(|| f(interp.as_mut(), ctx))).map_err(|payload| {
            self.slot = None;
            let msg = panic_message(payload.as_ref());
            tracing::warn!(interpreter = %self.name, panic = %msg,
                "interpreter panicked; disabled for the rest of the job");
            msg
        })
    }
}

fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_string()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "unknown panic payload".to_string()
    }
}
