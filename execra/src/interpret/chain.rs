//! Running several interpreters over one job.

use std::panic::{catch_unwind, AssertUnwindSafe};

use crate::interpreter::{Context, Interpreter, InterpreterEvent, Line};
use crate::outcome::ExitCode;

/// The warning code a [`Chain`] reports when one of its interpreters panics.
///
/// ```
/// assert_eq!(execra::interpret::CHAIN_PANIC_CODE, "interpret.chain_panic");
/// ```
pub const CHAIN_PANIC_CODE: &str = "interpret.chain_panic";

struct Member {
    interpreter: Box<dyn Interpreter + Send>,
    name: String,
    enabled: bool,
}

/// Several interpreters over one job, as one [`Interpreter`].
///
/// Every line, redraw and exit goes to each member in the order they were
/// added; their events are concatenated in that order. All members see the
/// same [`Context`] — the job's state *before* any of this line's events
/// were applied.
///
/// A panic in one member is isolated: that member is disabled for the rest
/// of the job and a `Warning` with code `"interpret.chain_panic"`
/// ([`CHAIN_PANIC_CODE`]) is emitted; the others keep running and the events
/// it produced for that call are discarded. (The panic message still goes
/// through the process's panic hook, which prints it to stderr by default.)
///
/// Phases are the job's, not a member's: `ExitPhase` closes the innermost
/// open phase whoever opened it, so let only one member manage phases (a
/// [`RuleInterpreter`](crate::interpret::RuleInterpreter) with phase rules,
/// say) and give the others findings and progress.
///
/// ```
/// use execra::interpret::{Chain, ProblemMatcher, ProgressDetector, RuleInterpreter};
/// use execra::{rules, Command};
///
/// let interp = Chain::new()
///     .with(RuleInterpreter::flat(rules![summary, "built $1", r"^Finished (\S+)"]))
///     .with(ProblemMatcher::gcc())
///     .with(ProgressDetector::new());
/// assert_eq!(interp.len(), 3);
/// let _cmd = Command::new("make").interpreter(interp);
/// ```
pub struct Chain {
    members: Vec<Member>,
    name: String,
}

impl Default for Chain {
    fn default() -> Self {
        Chain::new()
    }
}

impl std::fmt::Debug for Chain {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Chain").field("name", &self.name).finish()
    }
}

impl Chain {
    /// An empty chain (it reports nothing).
    ///
    /// ```
    /// assert!(execra::interpret::Chain::new().is_empty());
    /// ```
    pub fn new() -> Self {
        Chain {
            members: Vec::new(),
            name: "Chain[]".to_string(),
        }
    }

    /// Add an interpreter after the existing ones.
    ///
    /// ```
    /// use execra::interpret::{Chain, ProgressDetector};
    /// let c = Chain::new().with(ProgressDetector::new());
    /// assert_eq!(c.len(), 1);
    /// ```
    pub fn with<I: Interpreter + Send + 'static>(mut self, interpreter: I) -> Self {
        self.push(Box::new(interpreter));
        self
    }

    /// Add a boxed interpreter after the existing ones.
    ///
    /// ```
    /// use execra::interpret::{Chain, ProgressDetector};
    /// use execra::Interpreter;
    /// let mut c = Chain::new();
    /// let boxed: Box<dyn Interpreter + Send> = Box::new(ProgressDetector::new());
    /// c.push(boxed);
    /// assert_eq!(c.len(), 1);
    /// ```
    pub fn push(&mut self, interpreter: Box<dyn Interpreter + Send>) {
        let name = interpreter.name().to_string();
        self.members.push(Member {
            interpreter,
            name,
            enabled: true,
        });
        let names: Vec<&str> = self.members.iter().map(|m| m.name.as_str()).collect();
        self.name = format!("Chain[{}]", names.join(", "));
    }

    /// How many interpreters the chain holds.
    ///
    /// ```
    /// assert_eq!(execra::interpret::Chain::new().len(), 0);
    /// ```
    pub fn len(&self) -> usize {
        self.members.len()
    }

    /// `true` when the chain holds no interpreter.
    ///
    /// ```
    /// assert!(execra::interpret::Chain::new().is_empty());
    /// ```
    pub fn is_empty(&self) -> bool {
        self.members.is_empty()
    }

    fn each(
        &mut self,
        mut call: impl FnMut(&mut dyn Interpreter) -> Vec<InterpreterEvent>,
    ) -> Vec<InterpreterEvent> {
        let mut out = Vec::new();
        for m in self.members.iter_mut().filter(|m| m.enabled) {
            let interp: &mut dyn Interpreter = &mut *m.interpreter;
            match catch_unwind(AssertUnwindSafe(|| call(interp))) {
                Ok(evs) => out.extend(evs),
                Err(payload) => {
                    m.enabled = false;
                    let msg = payload
                        .downcast_ref::<&str>()
                        .map(|s| s.to_string())
                        .or_else(|| payload.downcast_ref::<String>().cloned())
                        .unwrap_or_else(|| "unknown panic payload".to_string());
                    out.push(InterpreterEvent::Warning {
                        code: Some(CHAIN_PANIC_CODE.to_string()),
                        message: format!(
                            "interpreter {} panicked: {msg}; it is disabled for the rest of this job",
                            m.name
                        ),
                    });
                }
            }
        }
        out
    }
}

impl Interpreter for Chain {
    fn on_line(&mut self, ctx: &Context, line: &Line) -> Vec<InterpreterEvent> {
        self.each(|i| i.on_line(ctx, line))
    }

    fn on_redraw(&mut self, ctx: &Context, line: &Line) -> Vec<InterpreterEvent> {
        self.each(|i| i.on_redraw(ctx, line))
    }

    fn on_exit(&mut self, ctx: &Context, exit: &ExitCode) -> Vec<InterpreterEvent> {
        self.each(|i| i.on_exit(ctx, exit))
    }

    fn name(&self) -> &str {
        &self.name
    }

    /// When every interpreter still enabled ignores them (a panic here is
    /// the runtime's to catch, like one in `on_line`).
    fn ignores_lines(&self, text: &str) -> bool {
        self.members
            .iter()
            .filter(|m| m.enabled)
            .all(|m| m.interpreter.ignores_lines(text))
    }
}
