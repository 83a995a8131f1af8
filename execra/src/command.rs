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

use crate::interpreter::Interpreter;

pub use crate::spec::CommandSpec;

/// What replaces a secret value everywhere it would leave the process.
pub const SECRET_PLACEHOLDER: &str = "********";

/// What the child's standard input is connected to.
#[derive(Clone, PartialEq, Eq, Default)]
#[non_exhaustive]
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
    /// Output encoding label ([`Command::encoding`]); `None` is UTF-8.
    encoding: Option<String>,
    /// Run on a pseudo-terminal of this size ([`Command::pty`]).
    pty: Option<PtySize>,
    /// Keep ANSI escape sequences in PTY output ([`Command::keep_ansi`]).
    keep_ansi: bool,
    /// Stop after this long without output ([`Command::idle_timeout`]).
    idle_timeout: Option<Duration>,
}

/// The size of a pseudo-terminal, in character cells (see [`Command::pty`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
pub struct PtySize {
    /// Columns (characters per row). Must be at least 1.
    pub cols: u16,
    /// Rows. Must be at least 1.
    pub rows: u16,
}

impl PtySize {
    /// A `cols` × `rows` terminal.
    pub fn new(cols: u16, rows: u16) -> Self {
        PtySize { cols, rows }
    }

    /// `Err` with a readable message when either side is zero.
    pub(crate) fn check(&self) -> Result<(), String> {
        if self.cols == 0 || self.rows == 0 {
            return Err(format!(
                "invalid PTY size {}x{}: columns and rows must both be at least 1",
                self.cols, self.rows
            ));
        }
        Ok(())
    }
}

impl Default for PtySize {
    /// 80 × 24, the classic terminal.
    fn default() -> Self {
        PtySize { cols: 80, rows: 24 }
    }
}

impl fmt::Debug for Command {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Command")
            .field("spec", &self.spec)
            .field("stdin", &self.stdin)
            .field("interpreter", &self.interpreter.is_some())
            .field("encoding", &self.encoding)
            .field("pty", &self.pty)
            .field("keep_ansi", &self.keep_ansi)
            .field("idle_timeout", &self.idle_timeout)
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
    /// The output encoding (UTF-8 unless [`Command::encoding`] said otherwise).
    pub encoding: &'static encoding_rs::Encoding,
    /// Run on a pseudo-terminal of this size.
    pub pty: Option<PtySize>,
    /// Keep ANSI escape sequences in PTY output.
    pub keep_ansi: bool,
    /// Stop after this long without output.
    pub idle_timeout: Option<Duration>,
    /// A setting that cannot work (unknown encoding, 0×0 PTY, zero idle
    /// timeout): the job fails to start with this message.
    pub invalid: Option<String>,
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
            encoding: None,
            pty: None,
            keep_ansi: false,
            idle_timeout: None,
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
    ///
    /// `EXECRA_JOB_ID` is reserved: every job's child gets it, set to its
    /// job id (also with [`Command::env_clear`]), and a value set here is
    /// replaced. Descendants inherit it; on Linux without a cgroup the
    /// runtime finds the job's processes that left its process group by it.
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

    /// Start from an empty environment (then apply [`Command::env`]). The
    /// child still gets the reserved `EXECRA_JOB_ID` (see [`Command::env`]).
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
    /// stop the whole tree. With a cgroup, the kept processes are moved to
    /// the host's cgroup and the job's cgroup is removed; on Windows they
    /// still end when the job's Job Object closes.
    pub fn keep_leftovers(mut self, yes: bool) -> Self {
        self.keep_leftovers = yes;
        self
    }

    /// Windows: start without a console window. Ignored elsewhere.
    pub fn hide_window(mut self, yes: bool) -> Self {
        self.spec.hide_window = yes;
        self
    }

    /// Decode the program's output from `label` (a WHATWG encoding label:
    /// `"gbk"`, `"gb18030"`, `"shift_jis"`, `"euc-kr"`, `"windows-1252"`,
    /// `"utf-16le"`, `"utf-16be"`, …) instead of UTF-8. Characters split
    /// across reads are decoded whole; invalid bytes become U+FFFD. An
    /// unknown label makes the job fail to start
    /// (`Failed{SpawnFailed}` naming the label). Stdin is not re-encoded.
    ///
    /// ```
    /// let cmd = execra::Command::new("legacy-tool").encoding("gbk");
    /// ```
    pub fn encoding(mut self, label: impl Into<String>) -> Self {
        self.encoding = Some(label.into());
        self
    }

    /// Run the program on a pseudo-terminal of `size` (Unix): it sees a
    /// terminal on stdin, stdout and stderr, so tools that only draw
    /// progress or prompts on a terminal do so. Its output is one merged
    /// stream, delivered as [`Stream::Stdout`](crate::Stream::Stdout), with
    /// ANSI escape sequences removed (see [`Command::keep_ansi`]). With
    /// [`StdinMode::Interactive`], `write_stdin` types into the terminal
    /// and `close_stdin` sends end-of-file (`^D`). Resize a running job with
    /// [`JobHandle::resize_pty`](crate::JobHandle::resize_pty).
    ///
    /// A size with a zero side makes the job fail to start; so does a
    /// platform without PTY support (Windows, for now).
    ///
    /// ```
    /// use execra::{Command, PtySize};
    /// let cmd = Command::new("git").args(["clone", "../repo"]).pty(PtySize::new(120, 40));
    /// ```
    pub fn pty(mut self, size: PtySize) -> Self {
        self.pty = Some(size);
        self
    }

    /// Keep ANSI escape sequences (colours, cursor moves) in the lines of a
    /// PTY job, for consumers that render them. Off by default.
    pub fn keep_ansi(mut self, yes: bool) -> Self {
        self.keep_ansi = yes;
        self
    }

    /// Stop the job when it has written nothing, on either stream, for `d`
    /// (TERM → grace period → KILL, as for [`Command::timeout`]) and
    /// finalize it as `Failed{IdleTimeout}`. Any output, even a redraw or a
    /// partial line, restarts the clock. A zero duration makes the job fail
    /// to start (leave it unset for no idle timeout).
    ///
    /// ```
    /// use std::time::Duration;
    /// let cmd = execra::Command::new("curl").arg("-O").arg("https://example.invalid/big")
    ///     .idle_timeout(Duration::from_secs(120));
    /// ```
    pub fn idle_timeout(mut self, d: Duration) -> Self {
        self.idle_timeout = Some(d);
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
        let mut invalid = None;
        let encoding = match self.encoding.as_deref() {
            None => encoding_rs::UTF_8,
            Some(label) => crate::output::encoding_for_label(label).unwrap_or_else(|e| {
                invalid = Some(e);
                encoding_rs::UTF_8
            }),
        };
        if let Some(Err(e)) = self.pty.map(|p| p.check()) {
            invalid = Some(e);
        }
        if self.idle_timeout == Some(Duration::ZERO) {
            invalid = Some(
                "idle timeout must be greater than zero (leave it unset for no idle timeout)"
                    .to_string(),
            );
        }
        Launch {
            spec: self.spec,
            args,
            env,
            stdin: self.stdin,
            interpreter: self.interpreter,
            secrets,
            keep_leftovers: self.keep_leftovers,
            encoding,
            pty: self.pty,
            keep_ansi: self.keep_ansi,
            idle_timeout: self.idle_timeout,
            invalid,
        }
    }
}

/// Masks secret values in a job's output before it leaves the driver (events,
/// raw log, memory ring, interpreters).
///
/// Output arrives in segments, and a secret can straddle two of them: a line
/// cut at the length cap continues in the next segment. So the tail of a
/// continued piece that could be the start of a secret is held back and
/// prepended to the next segment of the same stream; provisional views
/// (redraws, idle flushes of an unfinished line) drop such a tail, since the
/// finished line will show it (masked if it turns out to be a secret).
pub(crate) struct Redactor {
    /// Real secret values, longest first, none empty.
    secrets: Vec<String>,
    /// Held-back tail per stream (stdout, stderr).
    carry: [String; 2],
}

impl Redactor {
    /// A redactor for these secret values.
    pub(crate) fn new(mut secrets: Vec<String>) -> Self {
        secrets.retain(|s| !s.is_empty());
        // Longest first, so a secret containing another is masked whole.
        secrets.sort_by_key(|s| std::cmp::Reverse(s.len()));
        secrets.dedup();
        Redactor {
            secrets,
            carry: [String::new(), String::new()],
        }
    }

    /// `true` when there is nothing to mask.
    pub(crate) fn is_empty(&self) -> bool {
        self.secrets.is_empty()
    }

    /// `true` when `text`, whole lines of `stream`, would pass unchanged:
    /// nothing is held back for the stream and no secret occurs in it.
    pub(crate) fn passes(&self, stream: crate::event::Stream, text: &str) -> bool {
        self.is_empty()
            || (self.carry[Self::slot(stream)].is_empty()
                && !self.secrets.iter().any(|s| text.contains(s.as_str())))
    }

    fn slot(stream: crate::event::Stream) -> usize {
        match stream {
            crate::event::Stream::Stdout => 0,
            crate::event::Stream::Stderr => 1,
        }
    }

    /// A finished line, or a piece of one when `continues` (the next segment
    /// of `stream` carries on with the same line).
    pub(crate) fn line(
        &mut self,
        stream: crate::event::Stream,
        text: String,
        continues: bool,
    ) -> String {
        if self.is_empty() {
            return text;
        }
        let slot = Self::slot(stream);
        let mut t = std::mem::take(&mut self.carry[slot]);
        t.push_str(&text);
        let mut t = self.mask(t);
        if continues {
            let held = self.secret_prefix_tail(&t);
            self.carry[slot] = t.split_off(t.len() - held);
        }
        t
    }

    /// A provisional view of the unfinished line of `stream`.
    pub(crate) fn redraw(&self, stream: crate::event::Stream, text: String) -> String {
        if self.is_empty() {
            return text;
        }
        let carry = &self.carry[Self::slot(stream)];
        let mut t = if carry.is_empty() {
            text
        } else {
            format!("{carry}{text}")
        };
        t = self.mask(t);
        let held = self.secret_prefix_tail(&t);
        t.truncate(t.len() - held);
        t
    }

    /// End of `stream`: what is still held back (it is no secret: the stream
    /// ended before one was complete).
    pub(crate) fn finish(&mut self, stream: crate::event::Stream) -> Option<String> {
        let held = std::mem::take(&mut self.carry[Self::slot(stream)]);
        (!held.is_empty()).then_some(held)
    }

    /// Replace every secret value in `text` with the placeholder.
    fn mask(&self, text: String) -> String {
        let mut t = text;
        for s in &self.secrets {
            if t.contains(s.as_str()) {
                t = t.replace(s.as_str(), SECRET_PLACEHOLDER);
            }
        }
        t
    }

    /// Length of the longest tail of `text` that is a proper prefix of a
    /// secret (0 if none).
    fn secret_prefix_tail(&self, text: &str) -> usize {
        let mut best = 0;
        for s in &self.secrets {
            for k in (best + 1..s.len()).rev() {
                if s.is_char_boundary(k) && text.ends_with(&s[..k]) {
                    best = k;
                    break;
                }
            }
        }
        best
    }
}

#[cfg(test)]
mod redactor_tests {
    use super::*;
    use crate::event::Stream;

    #[test]
    fn masks_whole_lines() {
        let mut r = Redactor::new(vec!["hunter2".into(), "hunter".into()]);
        assert_eq!(
            r.line(Stream::Stdout, "pw=hunter2 hunter".into(), false),
            "pw=******** ********"
        );
    }

    #[test]
    fn a_secret_cut_at_the_cap_is_masked_across_pieces() {
        let mut r = Redactor::new(vec!["s3cret".into()]);
        let a = r.line(Stream::Stdout, "xxxxs3c".into(), true);
        let b = r.line(Stream::Stdout, "ret yy".into(), false);
        assert_eq!(format!("{a}|{b}"), "xxxx|******** yy");
    }

    #[test]
    fn streams_hold_back_separately_and_flush_at_eof() {
        let mut r = Redactor::new(vec!["s3cret".into()]);
        assert_eq!(r.line(Stream::Stdout, "a s3".into(), true), "a ");
        assert_eq!(r.line(Stream::Stderr, "err".into(), false), "err");
        assert_eq!(r.finish(Stream::Stderr), None);
        assert_eq!(r.finish(Stream::Stdout).as_deref(), Some("s3"));
    }

    #[test]
    fn redraws_drop_a_possible_secret_start() {
        let r = Redactor::new(vec!["s3cret".into()]);
        assert_eq!(r.redraw(Stream::Stdout, "token: s3c".into()), "token: ");
        assert_eq!(
            r.redraw(Stream::Stdout, "token: s3cret!".into()),
            "token: ********!"
        );
    }

    #[test]
    fn multibyte_secrets_split_only_on_char_boundaries() {
        let mut r = Redactor::new(vec!["пароль".into()]);
        let a = r.line(Stream::Stdout, "x па".into(), true);
        let b = r.line(Stream::Stdout, "роль".into(), false);
        assert_eq!(format!("{a}{b}"), "x ********");
    }
}
