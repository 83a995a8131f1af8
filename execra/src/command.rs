//! Commands: what to run, with which arguments, environment and stdin.
//!
//! [`Command::new`] never parses a shell string: the program and every
//! argument reach the OS as given. Use the explicit shell helpers
//! ([`Command::shell`], [`Command::sh`], [`Command::cmd`],
//! [`Command::powershell`], [`Command::pwsh`]) when you want a shell.
//!
//! Secret values ([`Command::secret_arg`], [`Command::secret_env`]) reach the
//! child process unchanged but are replaced by [`SECRET_PLACEHOLDER`] in the
//! [`CommandSpec`] (and so in events, snapshots, history and the frontend),
//! and masked in the job's output lines if the child prints them.

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::interpreter::Interpreter;

/// What replaces a secret value everywhere it would leave the process.
pub const SECRET_PLACEHOLDER: &str = "********";

/// What the child's standard input is connected to.
#[derive(Clone, PartialEq, Eq, Default)]
pub enum StdinMode {
    /// `/dev/null` (the default): the child reads end-of-file at once.
    #[default]
    Null,
    /// The host process's own stdin.
    Inherit,
    /// These bytes are written, then stdin is closed.
    Piped(Vec<u8>),
    /// A pipe that stays open: write to it with
    /// [`Runtime::write_stdin`](crate::Runtime::write_stdin) (or
    /// [`JobHandle::write_stdin`](crate::JobHandle::write_stdin)) and close it
    /// with [`Runtime::close_stdin`](crate::Runtime::close_stdin). It is closed
    /// when the job ends.
    Interactive,
}

impl fmt::Debug for StdinMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StdinMode::Null => f.write_str("Null"),
            StdinMode::Inherit => f.write_str("Inherit"),
            StdinMode::Piped(b) => write!(f, "Piped({} bytes)", b.len()),
            StdinMode::Interactive => f.write_str("Interactive"),
        }
    }
}

/// The cloneable, persistable view of a command.
///
/// Secret arguments and environment values appear here as
/// [`SECRET_PLACEHOLDER`]; the real values never leave the [`Command`].
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

/// A command to run as a job. Build it, then hand it to
/// [`Runtime::spawn`](crate::Runtime::spawn).
///
/// ```
/// use execra::Command;
/// use std::time::Duration;
///
/// let cmd = Command::new("git")
///     .args(["clone", "--progress", "https://example.invalid/repo.git"])
///     .env("GIT_TERMINAL_PROMPT", "0")
///     .secret_env("GIT_TOKEN", "hunter2")
///     .label("Cloning repo")
///     .tags(["vcs".to_string()])
///     .timeout(Duration::from_secs(300));
/// assert_eq!(cmd.spec().env[1].1, execra::SECRET_PLACEHOLDER);
/// ```
pub struct Command {
    spec: CommandSpec,
    /// Real values of secret arguments, by index into `spec.args`.
    secret_args: Vec<(usize, String)>,
    /// Real values of secret env vars, by index into `spec.env`.
    secret_env: Vec<(usize, String)>,
    stdin: StdinMode,
    interpreter: Option<Box<dyn Interpreter + Send>>,
    keep_leftovers: bool,
}

impl fmt::Debug for Command {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Command")
            .field("spec", &self.spec)
            .field("stdin", &self.stdin)
            .field("interpreter", &self.interpreter.is_some())
            .finish()
    }
}

/// Everything the runtime needs to start a command, with real secret values.
pub(crate) struct Launch {
    pub spec: CommandSpec,
    pub args: Vec<String>,
    pub env: Vec<(String, String)>,
    pub stdin: StdinMode,
    pub interpreter: Option<Box<dyn Interpreter + Send>>,
    pub secrets: Vec<String>,
    /// Leave processes the main process left behind running at job end.
    pub keep_leftovers: bool,
}

impl Command {
    /// A command that runs `program` directly (no shell).
    pub fn new(program: impl Into<String>) -> Self {
        Command {
            spec: CommandSpec::new(program),
            secret_args: Vec::new(),
            secret_env: Vec::new(),
            stdin: StdinMode::Null,
            interpreter: None,
            keep_leftovers: false,
        }
    }

    /// Build a command from a spec (for re-running a job from history).
    pub fn from_spec(spec: CommandSpec) -> Self {
        Command {
            spec,
            ..Command::new("")
        }
    }

    /// Run `script` in the platform shell: `sh -c` on Unix, `cmd /C` on
    /// Windows.
    pub fn shell(script: impl Into<String>) -> Self {
        if cfg!(windows) {
            Self::cmd(script)
        } else {
            Self::sh(script)
        }
    }

    /// Same as [`Command::shell`].
    pub fn system_shell(script: impl Into<String>) -> Self {
        Self::shell(script)
    }

    /// `cmd /C script`.
    pub fn cmd(script: impl Into<String>) -> Self {
        Command::new("cmd").arg("/C").arg(script)
    }

    /// `sh -c script`.
    pub fn sh(script: impl Into<String>) -> Self {
        Command::new("sh").arg("-c").arg(script)
    }

    /// `powershell -NoProfile -Command script`.
    pub fn powershell(script: impl Into<String>) -> Self {
        Command::new("powershell")
            .args(["-NoProfile", "-Command"])
            .arg(script)
    }

    /// `pwsh -NoProfile -Command script`.
    pub fn pwsh(script: impl Into<String>) -> Self {
        Command::new("pwsh")
            .args(["-NoProfile", "-Command"])
            .arg(script)
    }

    /// Append one argument.
    pub fn arg(mut self, a: impl Into<String>) -> Self {
        self.spec.args.push(a.into());
        self
    }

    /// Append arguments.
    pub fn args<I, S>(mut self, args: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.spec.args.extend(args.into_iter().map(Into::into));
        self
    }

    /// Append an argument whose value is secret: the child receives it, but
    /// every view of the command shows [`SECRET_PLACEHOLDER`] instead.
    pub fn secret_arg(mut self, a: impl Into<String>) -> Self {
        self.secret_args.push((self.spec.args.len(), a.into()));
        self.spec.args.push(SECRET_PLACEHOLDER.to_string());
        self
    }

    /// Set an environment variable.
    pub fn env(mut self, key: impl Into<String>, val: impl Into<String>) -> Self {
        self.spec.env.push((key.into(), val.into()));
        self
    }

    /// Set environment variables.
    pub fn envs<I, K, V>(mut self, vars: I) -> Self
    where
        I: IntoIterator<Item = (K, V)>,
        K: Into<String>,
        V: Into<String>,
    {
        self.spec
            .env
            .extend(vars.into_iter().map(|(k, v)| (k.into(), v.into())));
        self
    }

    /// Set an environment variable whose value is secret (see
    /// [`Command::secret_arg`]).
    pub fn secret_env(mut self, key: impl Into<String>, val: impl Into<String>) -> Self {
        self.secret_env.push((self.spec.env.len(), val.into()));
        self.spec
            .env
            .push((key.into(), SECRET_PLACEHOLDER.to_string()));
        self
    }

    /// Start from an empty environment (then apply [`Command::env`]).
    pub fn env_clear(mut self) -> Self {
        self.spec.env_clear = true;
        self
    }

    /// Set the working directory.
    pub fn cwd(mut self, dir: impl Into<PathBuf>) -> Self {
        self.spec.cwd = Some(dir.into());
        self
    }

    /// Choose what stdin is connected to.
    pub fn stdin(mut self, mode: StdinMode) -> Self {
        self.stdin = mode;
        self
    }

    /// Set the job's label.
    pub fn label(mut self, label: impl Into<String>) -> Self {
        self.spec.label = Some(label.into());
        self
    }

    /// Add tags.
    pub fn tags(mut self, tags: impl IntoIterator<Item = String>) -> Self {
        self.spec.tags.extend(tags);
        self
    }

    /// Add one tag.
    pub fn tag(mut self, tag: impl Into<String>) -> Self {
        self.spec.tags.push(tag.into());
        self
    }

    /// Attach an interpreter (replacing any previous one).
    pub fn interpreter<I: Interpreter + Send + 'static>(mut self, i: I) -> Self {
        self.interpreter = Some(Box::new(i));
        self
    }

    /// Attach an already boxed interpreter.
    pub fn boxed_interpreter(mut self, i: Box<dyn Interpreter + Send>) -> Self {
        self.interpreter = Some(i);
        self
    }

    /// Stop the job after `d` (TERM → grace period → KILL of its process
    /// group) and finalize it as `Failed{Timeout}`.
    pub fn timeout(mut self, d: Duration) -> Self {
        self.spec.timeout = Some(d);
        self
    }

    /// Leave running what the main process leaves behind when it exits
    /// (default `false`: when the main process has exited and its pipes are
    /// drained, everything else in the job's tree is killed). Set it for
    /// tools that intentionally start a daemon. Cancel and timeout still
    /// stop the whole tree. With a cgroup, a kept tree stays in the job's
    /// cgroup, which is then not removed.
    pub fn keep_leftovers(mut self, yes: bool) -> Self {
        self.keep_leftovers = yes;
        self
    }

    /// Windows: start without a console window. Ignored elsewhere.
    pub fn hide_window(mut self, yes: bool) -> Self {
        self.spec.hide_window = yes;
        self
    }

    /// The persistable view of this command (secrets replaced).
    pub fn spec(&self) -> &CommandSpec {
        &self.spec
    }

    /// `true` if an interpreter is attached.
    pub fn has_interpreter(&self) -> bool {
        self.interpreter.is_some()
    }

    /// Split into spec (secrets replaced), stdin mode and interpreter.
    ///
    /// The real secret values are dropped: a command rebuilt from these parts
    /// runs with the placeholders. Spawn the `Command` itself to keep them.
    pub fn into_parts(self) -> (CommandSpec, StdinMode, Option<Box<dyn Interpreter + Send>>) {
        (self.spec, self.stdin, self.interpreter)
    }

    /// Split for spawning, putting the real secret values back.
    pub(crate) fn into_launch(self) -> Launch {
        let mut args = self.spec.args.clone();
        let mut env = self.spec.env.clone();
        let mut secrets = Vec::new();
        for (i, v) in self.secret_args {
            if let Some(slot) = args.get_mut(i) {
                *slot = v.clone();
            }
            secrets.push(v);
        }
        for (i, v) in self.secret_env {
            if let Some(slot) = env.get_mut(i) {
                slot.1 = v.clone();
            }
            secrets.push(v);
        }
        secrets.retain(|s| !s.is_empty());
        // Longest first, so a secret containing another is masked whole.
        secrets.sort_by_key(|s| std::cmp::Reverse(s.len()));
        Launch {
            spec: self.spec,
            args,
            env,
            stdin: self.stdin,
            interpreter: self.interpreter,
            secrets,
            keep_leftovers: self.keep_leftovers,
        }
    }
}
