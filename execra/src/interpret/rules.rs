//! Rule tables: an ordered list of regex rules, each mapped to an action.

use regex::{Captures, Regex};

use crate::finding::Finding;
use crate::interpret::ansi::strip_ansi;
use crate::interpret::detect::ProgressDetector;
use crate::interpreter::{Context, Interpreter, InterpreterEvent, Line};
use crate::outcome::ExitCode;
use crate::progress::Progress;
use crate::Stream;

/// What a matching [`Rule`] does. Templates substitute `$1`, `$2`, … with
/// the rule's capture groups (see [`render`]).
///
/// ```
/// use execra::interpret::RuleAction;
///
/// let a = RuleAction::Warning { code: "pkg.held".into(), template: "$1 is held".into() };
/// assert!(matches!(a, RuleAction::Warning { .. }));
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum RuleAction {
    /// Recognised and deliberately ignored (also excluded from the fallback
    /// candidates).
    Benign,
    /// Indeterminate progress with this hint (a template).
    Progress(String),
    /// Leave the current rule-table phase, if any, and enter this one.
    EnterPhase {
        /// Machine-readable phase name (looked up in the [`PhaseModel`]).
        name: String,
        /// Template for the phase label.
        label_template: String,
    },
    /// A warning.
    Warning {
        /// Machine-readable code.
        code: String,
        /// Template for the message.
        template: String,
    },
    /// A recognised error (the job fails with `KnownError` if it exits
    /// non-zero).
    KnownError {
        /// Machine-readable code.
        code: String,
        /// Template for the message.
        template: String,
    },
    /// The outcome's summary.
    Summary {
        /// Template for the summary.
        template: String,
    },
    /// Byte progress: capture `$1` is megabytes done, `$2` megabytes in all
    /// (1 MB = 10^6 bytes).
    ByteProgressMb,
    /// The job is ready ([`InterpreterEvent::Ready`]; a server listening, a
    /// watcher watching). Also runs on provisional redraws, so a readiness
    /// line without a newline counts; the runtime reports readiness once.
    Ready {
        /// Template for the message.
        template: String,
    },
}

impl RuleAction {
    /// `true` for the kinds that also run on provisional redraws
    /// ([`Progress`](RuleAction::Progress) and
    /// [`ByteProgressMb`](RuleAction::ByteProgressMb)).
    ///
    /// ```
    /// use execra::interpret::RuleAction;
    /// assert!(RuleAction::ByteProgressMb.is_progress());
    /// assert!(!RuleAction::Benign.is_progress());
    /// ```
    pub fn is_progress(&self) -> bool {
        matches!(self, RuleAction::Progress(_) | RuleAction::ByteProgressMb)
    }
}

/// One row of a rule table: a regular expression and what to do when a line
/// matches it. Usually built with [`rules!`](crate::rules).
///
/// ```
/// use execra::interpret::{Rule, RuleAction};
///
/// let r = Rule::new(r"^Removing\b", RuleAction::Progress("removing".into()));
/// assert!(r.is_match("Removing old files"));
/// assert_eq!(r.pattern(), r"^Removing\b");
/// ```
#[derive(Debug, Clone)]
pub struct Rule {
    regex: Regex,
    action: RuleAction,
}

impl Rule {
    /// A rule. Rule tables are program text, so an invalid pattern is a bug:
    /// this panics at construction (never while a job runs) with the pattern
    /// in the message. Use [`Rule::try_new`] for patterns from elsewhere.
    ///
    /// ```
    /// use execra::interpret::{Rule, RuleAction};
    /// let r = Rule::new(r"^done$", RuleAction::Benign);
    /// assert!(r.is_match("done"));
    /// ```
    ///
    /// ```should_panic
    /// use execra::interpret::{Rule, RuleAction};
    /// let _ = Rule::new(r"(unclosed", RuleAction::Benign); // panics
    /// ```
    #[track_caller]
    pub fn new(pattern: &str, action: RuleAction) -> Rule {
        match Rule::try_new(pattern, action) {
            Ok(r) => r,
            Err(e) => panic!("invalid regex in rule table: {pattern:?}: {e}"),
        }
    }

    /// A rule, or the regex error for an invalid pattern.
    ///
    /// ```
    /// use execra::interpret::{Rule, RuleAction};
    /// assert!(Rule::try_new(r"(unclosed", RuleAction::Benign).is_err());
    /// ```
    pub fn try_new(pattern: &str, action: RuleAction) -> Result<Rule, regex::Error> {
        Ok(Rule {
            regex: Regex::new(pattern)?,
            action,
        })
    }

    /// The pattern.
    ///
    /// ```
    /// # use execra::interpret::{Rule, RuleAction};
    /// assert_eq!(Rule::new("x+", RuleAction::Benign).pattern(), "x+");
    /// ```
    pub fn pattern(&self) -> &str {
        self.regex.as_str()
    }

    /// The action.
    ///
    /// ```
    /// # use execra::interpret::{Rule, RuleAction};
    /// assert_eq!(Rule::new("x", RuleAction::Benign).action(), &RuleAction::Benign);
    /// ```
    pub fn action(&self) -> &RuleAction {
        &self.action
    }

    /// Whether `text` matches.
    ///
    /// ```
    /// # use execra::interpret::{Rule, RuleAction};
    /// assert!(!Rule::new("^x", RuleAction::Benign).is_match("yx"));
    /// ```
    pub fn is_match(&self, text: &str) -> bool {
        self.regex.is_match(text)
    }

    /// The captures of `text`, if it matches.
    ///
    /// ```
    /// # use execra::interpret::{render, Rule, RuleAction};
    /// let r = Rule::new(r"'(\w+)'", RuleAction::Benign);
    /// let caps = r.captures("pkg 'git' ok").unwrap();
    /// assert_eq!(render("[$1]", &caps), "[git]");
    /// ```
    pub fn captures<'t>(&self, text: &'t str) -> Option<Captures<'t>> {
        self.regex.captures(text)
    }
}

/// Build a `Vec<`[`Rule`]`>` from a compact table, one rule per `;`:
///
/// | kind | arguments | action |
/// |---|---|---|
/// | `benign` | pattern | [`RuleAction::Benign`] |
/// | `progress` | hint, pattern | [`RuleAction::Progress`] |
/// | `enter_phase` | name, label, pattern | [`RuleAction::EnterPhase`] |
/// | `warning` | code, message, pattern | [`RuleAction::Warning`] |
/// | `known` | code, message, pattern | [`RuleAction::KnownError`] |
/// | `summary` | message, pattern | [`RuleAction::Summary`] |
/// | `byte_progress_mb` | pattern | [`RuleAction::ByteProgressMb`] |
/// | `ready` | message, pattern | [`RuleAction::Ready`] |
///
/// Labels and messages are templates (`$1`, `$2`, … — see
/// [`render`](crate::interpret::render)). An invalid pattern panics when
/// the table is built.
///
/// ```
/// use execra::rules;
///
/// let table = rules![
///     benign,                          r"^done\.?$";
///     progress,    "removing",         r"^Removing\b";
///     enter_phase, "download", "DL $1", r"^Downloading '([^']+)'";
///     warning,     "x.held", "$1 held", r"'([^']+)' is held";
///     known,       "x.hash", "bad hash", r"(?i)hash check failed";
///     summary,     "Installed $1",      r"'([^']+)' was installed";
///     byte_progress_mb,                 r"([\d.]+) MB / ([\d.]+) MB";
///     ready,       "up on port $1",     r"listening on :(\d+)";
/// ];
/// assert_eq!(table.len(), 8);
/// ```
#[macro_export]
macro_rules! rules {
    (@one benign, $p:expr) => {
        $crate::interpret::Rule::new(::std::convert::AsRef::<str>::as_ref(&$p), $crate::interpret::RuleAction::Benign)
    };
    (@one progress, $hint:expr, $p:expr) => {
        $crate::interpret::Rule::new(
            ::std::convert::AsRef::<str>::as_ref(&$p),
            $crate::interpret::RuleAction::Progress(::std::string::String::from($hint)),
        )
    };
    (@one enter_phase, $name:expr, $label:expr, $p:expr) => {
        $crate::interpret::Rule::new(
            ::std::convert::AsRef::<str>::as_ref(&$p),
            $crate::interpret::RuleAction::EnterPhase {
                name: ::std::string::String::from($name),
                label_template: ::std::string::String::from($label),
            },
        )
    };
    (@one warning, $code:expr, $msg:expr, $p:expr) => {
        $crate::interpret::Rule::new(
            ::std::convert::AsRef::<str>::as_ref(&$p),
            $crate::interpret::RuleAction::Warning {
                code: ::std::string::String::from($code),
                template: ::std::string::String::from($msg),
            },
        )
    };
    (@one known, $code:expr, $msg:expr, $p:expr) => {
        $crate::interpret::Rule::new(
            ::std::convert::AsRef::<str>::as_ref(&$p),
            $crate::interpret::RuleAction::KnownError {
                code: ::std::string::String::from($code),
                template: ::std::string::String::from($msg),
            },
        )
    };
    (@one summary, $msg:expr, $p:expr) => {
        $crate::interpret::Rule::new(
            ::std::convert::AsRef::<str>::as_ref(&$p),
            $crate::interpret::RuleAction::Summary {
                template: ::std::string::String::from($msg),
            },
        )
    };
    (@one byte_progress_mb, $p:expr) => {
        $crate::interpret::Rule::new(::std::convert::AsRef::<str>::as_ref(&$p), $crate::interpret::RuleAction::ByteProgressMb)
    };
    (@one ready, $msg:expr, $p:expr) => {
        $crate::interpret::Rule::new(
            ::std::convert::AsRef::<str>::as_ref(&$p),
            $crate::interpret::RuleAction::Ready {
                template: ::std::string::String::from($msg),
            },
        )
    };
    (@one $kind:ident, $($rest:tt)*) => {
        ::std::compile_error!(::std::concat!(
            "rules!: unknown rule kind or wrong number of arguments for `",
            ::std::stringify!($kind),
            "` (kinds: benign, progress, enter_phase, warning, known, summary, byte_progress_mb, ready)"
        ))
    };
    ($($kind:ident, $($arg:expr),+);* $(;)?) => {{
        let table: ::std::vec::Vec<$crate::interpret::Rule> =
            ::std::vec![$($crate::rules!(@one $kind, $($arg),+)),*];
        table
    }};
}

/// Substitute `$1`, `$2`, … (and `${name}` for named groups) in `template`
/// with the captures. `$0` is the whole match, `$$` is a literal `$`, a
/// group that did not participate becomes empty, and a `$` not followed by
/// a digit or `{` is kept as is.
///
/// ```
/// use execra::interpret::render;
/// use regex::Regex;
///
/// let re = Regex::new(r"'(?P<pkg>[^']+)' \((\S+)\)").unwrap();
/// let caps = re.captures("Installing 'git' (2.42.0)").unwrap();
/// assert_eq!(render("$1 v$2", &caps), "git v2.42.0");
/// assert_eq!(render("${pkg} costs $$5", &caps), "git costs $5");
/// ```
pub fn render(template: &str, caps: &Captures) -> String {
    let mut out = String::with_capacity(template.len() + 16);
    let mut rest = template;
    while let Some(pos) = rest.find('$') {
        out.push_str(&rest[..pos]);
        let after = &rest[pos + 1..];
        if let Some(tail) = after.strip_prefix('$') {
            out.push('$');
            rest = tail;
            continue;
        }
        let digits = after.bytes().take_while(u8::is_ascii_digit).count();
        if digits > 0 {
            if let Ok(i) = after[..digits].parse::<usize>() {
                if let Some(m) = caps.get(i) {
                    out.push_str(m.as_str());
                }
            }
            rest = &after[digits..];
            continue;
        }
        if let Some(braced) = after.strip_prefix('{') {
            if let Some(end) = braced.find('}') {
                let key = &braced[..end];
                let m = match key.parse::<usize>() {
                    Ok(i) => caps.get(i),
                    Err(_) => caps.name(key),
                };
                if let Some(m) = m {
                    out.push_str(m.as_str());
                }
                rest = &braced[end + 1..];
                continue;
            }
        }
        out.push('$');
        rest = after;
    }
    out.push_str(rest);
    out
}

/// Maps a phase name to the slice of overall progress it covers, as
/// `(start, end)` fractions. Entering a phase reports `start` (the boundary
/// fraction) and byte progress inside it is scaled into `start..end`.
///
/// Implemented for `()` (no ranges) and for any
/// `Fn(&str) -> Option<(f32, f32)> + Send`.
///
/// ```
/// use execra::interpret::PhaseModel;
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
    /// use execra::interpret::PhaseModel;
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

/// Where a notes block starts and the finding code it is reported under. See
/// [`RuleInterpreter::notes`].
///
/// ```
/// use execra::interpret::NotesConfig;
/// let n = NotesConfig { trigger: "Notes".into(), code: "scoop.notes".into() };
/// assert_eq!(n.trigger, "Notes");
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NotesConfig {
    /// The line (compared trimmed) that starts a block.
    pub trigger: String,
    /// The code of the `Finding::info` the block becomes.
    pub code: String,
}

/// How [`RuleInterpreter::fallback`] synthesises a `KnownError` for a failed
/// exit that no rule classified.
///
/// ```
/// use execra::interpret::FallbackPolicy;
///
/// let p = FallbackPolicy::default().code("scoop.error");
/// assert_eq!(p.code, "scoop.error");
/// assert!(p.from_failed_line && p.from_stderr);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FallbackPolicy {
    /// The code of the synthesised `KnownError` (default `"command_error"`).
    pub code: String,
    /// Use the first unclassified line containing "failed"
    /// (case-insensitive) as the message.
    pub from_failed_line: bool,
    /// Else use the last non-empty stderr line.
    pub from_stderr: bool,
}

impl Default for FallbackPolicy {
    fn default() -> Self {
        FallbackPolicy {
            code: "command_error".to_string(),
            from_failed_line: true,
            from_stderr: true,
        }
    }
}

impl FallbackPolicy {
    /// The same policy with another code.
    ///
    /// ```
    /// # use execra::interpret::FallbackPolicy;
    /// assert_eq!(FallbackPolicy::default().code("x").code, "x");
    /// ```
    pub fn code(mut self, code: impl Into<String>) -> Self {
        self.code = code.into();
        self
    }
}

#[derive(Debug)]
struct NotesBlock {
    body: Vec<String>,
    /// The next line may be a `---` separator to skip.
    at_start: bool,
}

/// `start + (end - start) * f` for `f` clamped to `0..=1` (computed in `f64`
/// so `0.8 * 0.1` is `0.08`, not `0.080000006`).
fn scale((start, end): (f32, f32), f: f64) -> f32 {
    let (start, end) = (f64::from(start), f64::from(end));
    (start + (end - start) * f.clamp(0.0, 1.0)) as f32
}

/// `true` for a `-----` / `=====`-style underline.
fn is_separator(line: &str) -> bool {
    let t = line.trim();
    t.chars().count() >= 2 && t.chars().all(|c| matches!(c, '-' | '=' | '─' | '━' | '~'))
}

/// A table-driven [`Interpreter`].
///
/// Each output line is matched against the rules in order; the first match
/// wins and performs its [`RuleAction`]. Phases are flat and sequential:
/// entering a phase first exits the one this interpreter entered before.
/// With a [`PhaseModel`], entering a phase reports its start fraction and
/// byte progress is scaled into its range.
///
/// Lines that match no rule can feed an optional [`ProgressDetector`]
/// ([`detector`](Self::detector)), a notes block
/// ([`notes`](Self::notes)) and the failure fallback
/// ([`fallback`](Self::fallback)). ANSI escapes are stripped before matching
/// unless [`strip_ansi(false)`](Self::strip_ansi).
///
/// **Redraws.** The runtime calls [`Interpreter::on_redraw`] for provisional
/// text (before a bare `\r`, or an unfinished line such as a prompt); the
/// final text of the same line usually follows as a normal line. So on a
/// redraw this interpreter only does progress and readiness work: if the
/// first matching rule is a `progress`, `byte_progress_mb` or `ready` rule it
/// runs, any other first
/// match does nothing (it will act on the final line), and with no match the
/// detector runs. Phases, warnings, known errors, summaries, notes and the
/// fallback bookkeeping only ever come from complete lines, so nothing is
/// reported twice. Identical consecutive progress values are reported once
/// (except a phase's boundary fraction, which is always reported).
///
/// ```
/// use execra::interpret::{FallbackPolicy, RuleInterpreter};
/// use execra::{rules, Command};
///
/// let phases = |name: &str| match name {
///     "download" => Some((0.0, 0.9)),
///     "install" => Some((0.9, 1.0)),
///     _ => None,
/// };
/// let interp = RuleInterpreter::new(
///     rules![
///         enter_phase, "download", "Downloading $1", r"^Downloading (\S+)";
///         byte_progress_mb, r"([\d.]+) MB / ([\d.]+) MB";
///         enter_phase, "install", "Installing", r"^Installing";
///         known, "pkg.hash", "hash mismatch for $1", r"^Hash check failed for (\S+)";
///         summary, "Installed $1", r"^(\S+) was installed";
///     ],
///     phases,
/// )
/// .notes("Notes", "pkg.notes")
/// .fallback(FallbackPolicy::default().code("pkg.error"));
/// let _cmd = Command::new("pkg").arg("install").arg("git").interpreter(interp);
/// ```
pub struct RuleInterpreter<P: PhaseModel = ()> {
    rules: Vec<Rule>,
    phases: P,
    notes: Option<NotesConfig>,
    fallback: Option<FallbackPolicy>,
    strip_ansi: bool,
    detector: Option<ProgressDetector>,
    // State.
    active: Option<(String, Option<(f32, f32)>)>,
    block: Option<NotesBlock>,
    known_seen: bool,
    fallback_fired: bool,
    first_failed: Option<String>,
    last_stderr: Option<String>,
    last_progress: Option<Progress>,
}

impl<P: PhaseModel> std::fmt::Debug for RuleInterpreter<P> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RuleInterpreter")
            .field("rules", &self.rules)
            .field("notes", &self.notes)
            .field("fallback", &self.fallback)
            .field("strip_ansi", &self.strip_ansi)
            .field("detector", &self.detector)
            .field("active_phase", &self.active)
            .finish_non_exhaustive()
    }
}

impl RuleInterpreter<()> {
    /// A rule interpreter without phase ranges.
    ///
    /// ```
    /// use execra::{interpret::RuleInterpreter, rules};
    /// let i = RuleInterpreter::flat(rules![benign, r"^ok$"]);
    /// # let _ = i;
    /// ```
    pub fn flat(rules: Vec<Rule>) -> Self {
        RuleInterpreter::new(rules, ())
    }
}

impl<P: PhaseModel> RuleInterpreter<P> {
    /// A rule interpreter whose phases have the ranges of `phases`.
    ///
    /// ```
    /// use execra::{interpret::RuleInterpreter, rules};
    /// let i = RuleInterpreter::new(
    ///     rules![enter_phase, "build", "Building", r"^Compiling"],
    ///     |name: &str| (name == "build").then_some((0.0, 1.0)),
    /// );
    /// # let _ = i;
    /// ```
    pub fn new(rules: Vec<Rule>, phases: P) -> Self {
        RuleInterpreter {
            rules,
            phases,
            notes: None,
            fallback: None,
            strip_ansi: true,
            detector: None,
            active: None,
            block: None,
            known_seen: false,
            fallback_fired: false,
            first_failed: None,
            last_stderr: None,
            last_progress: None,
        }
    }

    /// Collect notes blocks: a block starts at a line equal to `trigger`
    /// (both trimmed), skips an immediately following `-----`-style
    /// separator, and ends at the first blank line or when the process
    /// exits. Its lines (joined with `\n`) become one
    /// `Finding::info(code, body)`; an empty block is dropped. Lines of a
    /// block are not matched against the rules.
    ///
    /// ```
    /// use execra::{interpret::RuleInterpreter, rules};
    /// let i = RuleInterpreter::flat(rules![]).notes("Notes", "scoop.notes");
    /// # let _ = i;
    /// ```
    pub fn notes(mut self, trigger: impl Into<String>, code: impl Into<String>) -> Self {
        self.notes = Some(NotesConfig {
            trigger: trigger.into(),
            code: code.into(),
        });
        self
    }

    /// On an exit with a non-zero code (not a signal) when no rule emitted a
    /// `KnownError`, synthesise one (at most once) with `policy.code` and, as
    /// its message, the first unclassified line containing "failed"
    /// (case-insensitive; if `from_failed_line`), else the last non-empty
    /// stderr line not matched by a `benign` rule (if `from_stderr`). With
    /// no such line nothing is synthesised and the job fails with its exit
    /// code.
    ///
    /// ```
    /// use execra::interpret::{FallbackPolicy, RuleInterpreter};
    /// let i = RuleInterpreter::flat(vec![]).fallback(FallbackPolicy::default());
    /// # let _ = i;
    /// ```
    pub fn fallback(mut self, policy: FallbackPolicy) -> Self {
        self.fallback = Some(policy);
        self
    }

    /// Strip ANSI escapes (colours, cursor movement) from lines before
    /// matching (on by default). Captured text is then escape-free too.
    ///
    /// ```
    /// use execra::{interpret::RuleInterpreter, rules};
    /// let i = RuleInterpreter::flat(rules![benign, "\x1b"]).strip_ansi(false);
    /// # let _ = i;
    /// ```
    pub fn strip_ansi(mut self, on: bool) -> Self {
        self.strip_ansi = on;
        self
    }

    /// Run `detector` on lines (and redraws) that match no rule; its
    /// fractions are scaled into the active phase's range, if any.
    ///
    /// ```
    /// use execra::interpret::{ProgressDetector, RuleInterpreter};
    /// let i = RuleInterpreter::flat(vec![]).detector(ProgressDetector::new());
    /// # let _ = i;
    /// ```
    pub fn detector(mut self, detector: ProgressDetector) -> Self {
        self.detector = Some(detector);
        self
    }

    /// Append a rule to the table (it matches after the existing ones).
    ///
    /// ```
    /// use execra::interpret::{Rule, RuleAction, RuleInterpreter};
    /// let i = RuleInterpreter::flat(vec![]).rule(Rule::new("^ok$", RuleAction::Benign));
    /// # let _ = i;
    /// ```
    pub fn rule(mut self, rule: Rule) -> Self {
        self.rules.push(rule);
        self
    }

    fn push_progress(&mut self, out: &mut Vec<InterpreterEvent>, progress: Progress) {
        if self.last_progress.as_ref() == Some(&progress) {
            return;
        }
        self.last_progress = Some(progress.clone());
        out.push(InterpreterEvent::Progress { progress });
    }

    fn active_range(&self) -> Option<(f32, f32)> {
        self.active.as_ref().and_then(|(_, r)| *r)
    }

    /// Scale a fraction into the active phase's range, if any.
    fn scaled(&self, progress: Progress) -> Progress {
        match (self.active_range(), progress.as_fraction()) {
            (Some(range), Some(f)) => Progress::fraction(scale(range, f64::from(f))),
            _ => progress,
        }
    }

    /// Run a progress-kind action.
    fn progress_action(
        &mut self,
        action: &RuleAction,
        caps: &Captures,
        out: &mut Vec<InterpreterEvent>,
    ) {
        match action {
            RuleAction::Progress(hint) => {
                let p = Progress::indeterminate(render(hint, caps));
                self.push_progress(out, p);
            }
            RuleAction::ByteProgressMb => {
                let num = |i: usize| -> Option<f64> {
                    let v: f64 = caps.get(i)?.as_str().trim().parse().ok()?;
                    (v.is_finite() && v >= 0.0).then_some(v)
                };
                let (Some(done), Some(total)) = (num(1), num(2)) else {
                    return;
                };
                let p = match self.active_range() {
                    Some(range) if total > 0.0 => Progress::fraction(scale(range, done / total)),
                    _ => Progress::bytes_mb(done, total),
                };
                self.push_progress(out, p);
            }
            _ => {}
        }
    }

    fn run_detector(&mut self, text: &str, out: &mut Vec<InterpreterEvent>) {
        if let Some(p) = self.detector.as_ref().and_then(|d| d.detect(text)) {
            let p = self.scaled(p);
            self.push_progress(out, p);
        }
    }

    fn finish_notes(&mut self, out: &mut Vec<InterpreterEvent>) {
        let (Some(block), Some(cfg)) = (self.block.take(), self.notes.as_ref()) else {
            return;
        };
        if block.body.is_empty() {
            return;
        }
        out.push(InterpreterEvent::Finding {
            finding: Finding::info(cfg.code.clone(), block.body.join("\n")),
        });
    }

    /// Feed a line to the notes collector; `true` if it was consumed.
    fn notes_line(&mut self, text: &str, out: &mut Vec<InterpreterEvent>) -> bool {
        let Some(cfg) = &self.notes else {
            return false;
        };
        let is_trigger = text.trim() == cfg.trigger.trim();
        if let Some(block) = &mut self.block {
            if is_trigger {
                self.finish_notes(out);
                self.block = Some(NotesBlock {
                    body: Vec::new(),
                    at_start: true,
                });
                return true;
            }
            if block.at_start && is_separator(text) {
                block.at_start = false;
                return true;
            }
            block.at_start = false;
            if text.trim().is_empty() {
                self.finish_notes(out);
            } else {
                block.body.push(text.trim_end().to_string());
            }
            return true;
        }
        if is_trigger {
            self.block = Some(NotesBlock {
                body: Vec::new(),
                at_start: true,
            });
            return true;
        }
        false
    }
}

impl<P: PhaseModel> Interpreter for RuleInterpreter<P> {
    fn on_line(&mut self, _ctx: &Context, line: &Line) -> Vec<InterpreterEvent> {
        let mut out = Vec::new();
        let text = if self.strip_ansi {
            strip_ansi(&line.text)
        } else {
            std::borrow::Cow::Borrowed(line.text.as_str())
        };
        if self.notes_line(&text, &mut out) {
            return out;
        }
        let rules = std::mem::take(&mut self.rules);
        let hit = rules
            .iter()
            .find_map(|r| r.captures(&text).map(|c| (&r.action, c)));
        match &hit {
            Some((action, caps)) => match action {
                RuleAction::Benign => {}
                RuleAction::Progress(_) | RuleAction::ByteProgressMb => {
                    self.progress_action(action, caps, &mut out)
                }
                RuleAction::EnterPhase {
                    name,
                    label_template,
                } => {
                    if self.active.take().is_some() {
                        out.push(InterpreterEvent::ExitPhase);
                    }
                    let range = self.phases.range(name);
                    out.push(InterpreterEvent::EnterPhase {
                        name: name.clone(),
                        label: Some(render(label_template, caps)),
                    });
                    self.active = Some((name.clone(), range));
                    if let Some((start, _)) = range {
                        // Always reported, even when equal to the last value:
                        // the boundary marks the phase change.
                        let p = Progress::fraction(start);
                        self.last_progress = Some(p.clone());
                        out.push(InterpreterEvent::Progress { progress: p });
                    }
                }
                RuleAction::Warning { code, template } => out.push(InterpreterEvent::Warning {
                    code: Some(code.clone()),
                    message: render(template, caps),
                }),
                RuleAction::KnownError { code, template } => {
                    self.known_seen = true;
                    out.push(InterpreterEvent::KnownError {
                        code: code.clone(),
                        message: render(template, caps),
                    });
                }
                RuleAction::Summary { template } => out.push(InterpreterEvent::Summary {
                    text: render(template, caps),
                }),
                RuleAction::Ready { template } => out.push(InterpreterEvent::Ready {
                    message: Some(render(template, caps)),
                }),
            },
            None => {
                self.run_detector(&text, &mut out);
                if self.first_failed.is_none() && text.to_lowercase().contains("failed") {
                    self.first_failed = Some(text.trim().to_string());
                }
            }
        }
        let benign = matches!(hit, Some((RuleAction::Benign, _)));
        drop(hit);
        self.rules = rules;
        if line.stream == Stream::Stderr && !benign && !text.trim().is_empty() {
            self.last_stderr = Some(text.trim().to_string());
        }
        out
    }

    fn on_redraw(&mut self, _ctx: &Context, line: &Line) -> Vec<InterpreterEvent> {
        let mut out = Vec::new();
        let text = if self.strip_ansi {
            strip_ansi(&line.text)
        } else {
            std::borrow::Cow::Borrowed(line.text.as_str())
        };
        let rules = std::mem::take(&mut self.rules);
        match rules
            .iter()
            .find_map(|r| r.captures(&text).map(|c| (&r.action, c)))
        {
            Some((RuleAction::Ready { template }, caps)) => out.push(InterpreterEvent::Ready {
                message: Some(render(template, &caps)),
            }),
            Some((action, caps)) => self.progress_action(action, &caps, &mut out),
            None => self.run_detector(&text, &mut out),
        }
        self.rules = rules;
        out
    }

    fn on_exit(&mut self, _ctx: &Context, exit: &ExitCode) -> Vec<InterpreterEvent> {
        let mut out = Vec::new();
        self.finish_notes(&mut out);
        self.active = None;
        let failed = matches!(exit.code, Some(c) if c != 0);
        if let Some(policy) = &self.fallback {
            if failed && !self.known_seen && !self.fallback_fired {
                let message = policy
                    .from_failed_line
                    .then(|| self.first_failed.clone())
                    .flatten()
                    .or_else(|| {
                        policy
                            .from_stderr
                            .then(|| self.last_stderr.clone())
                            .flatten()
                    });
                if let Some(message) = message {
                    self.fallback_fired = true;
                    out.push(InterpreterEvent::KnownError {
                        code: policy.code.clone(),
                        message,
                    });
                }
            }
        }
        out
    }

    fn name(&self) -> &str {
        "RuleInterpreter"
    }
}
