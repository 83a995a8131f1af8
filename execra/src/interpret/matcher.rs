//! Problem matchers: compiler and linter diagnostics → located [`Finding`]s,
//! in the model of VS Code / GitHub Actions problem matchers.

use std::path::PathBuf;

use regex::{Captures, Regex};
use serde::Deserialize;

use crate::finding::{Finding, RelatedEntity, Severity};
use crate::interpret::ansi::strip_ansi;
use crate::interpreter::{Context, Interpreter, InterpreterEvent, Line};
use crate::outcome::ExitCode;

/// Why a problem matcher could not be built.
///
/// ```
/// use execra::interpret::{MatcherError, ProblemMatcher};
/// let err = ProblemMatcher::from_json("{ not json").unwrap_err();
/// assert!(matches!(err, MatcherError::Json(_)));
/// ```
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum MatcherError {
    /// The JSON could not be parsed.
    #[error("invalid problem matcher JSON: {0}")]
    Json(#[from] serde_json::Error),
    /// A pattern is not a valid regular expression.
    #[error("invalid problem matcher regex {pattern:?}: {error}")]
    Regex {
        /// The pattern.
        pattern: String,
        /// The regex error.
        error: regex::Error,
    },
    /// The matcher is structurally invalid (no patterns, a group index that
    /// the regex does not have, …).
    #[error("invalid problem matcher: {0}")]
    Invalid(String),
}

/// Capture-group indices of the parts of a diagnostic (also the role keys of
/// the JSON problem-matcher format).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Roles {
    file: Option<usize>,
    line: Option<usize>,
    column: Option<usize>,
    end_line: Option<usize>,
    end_column: Option<usize>,
    severity: Option<usize>,
    code: Option<usize>,
    message: Option<usize>,
}

impl Roles {
    /// Take every role `other` sets (explicit indices win over named groups).
    fn overlay(&mut self, other: Roles) {
        let pairs = [
            (&mut self.file, other.file),
            (&mut self.line, other.line),
            (&mut self.column, other.column),
            (&mut self.end_line, other.end_line),
            (&mut self.end_column, other.end_column),
            (&mut self.severity, other.severity),
            (&mut self.code, other.code),
            (&mut self.message, other.message),
        ];
        for (slot, v) in pairs {
            if v.is_some() {
                *slot = v;
            }
        }
    }
}

/// One line pattern of a [`ProblemMatcher`]: a regex whose capture groups
/// have roles (file, line, column, end line, end column, severity, code,
/// message).
///
/// Roles come from named groups — `file`, `line`, `column` (or `col`),
/// `end_line` (or `endLine`), `end_column` (or `endColumn`), `severity`,
/// `code`, `message` — and can be set or overridden by group index with the
/// builder methods.
///
/// ```
/// use execra::interpret::ProblemPattern;
///
/// let named = ProblemPattern::new(r"^(?P<file>[^:]+):(?P<line>\d+): (?P<message>.*)$").unwrap();
/// let indexed = ProblemPattern::new(r"^([^:]+):(\d+): (.*)$").unwrap().file(1).line(2).message(3);
/// # let _ = (named, indexed);
/// ```
#[derive(Debug, Clone)]
pub struct ProblemPattern {
    regex: Regex,
    roles: Roles,
    looping: bool,
}

macro_rules! role_setter {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        pub fn $name(mut self, group: usize) -> Self {
            self.roles.$name = Some(group);
            self
        }
    };
}

impl ProblemPattern {
    /// A pattern; named groups assign their roles.
    ///
    /// ```
    /// use execra::interpret::ProblemPattern;
    /// assert!(ProblemPattern::new(r"(?P<message>.+)").is_ok());
    /// assert!(ProblemPattern::new(r"(").is_err());
    /// ```
    pub fn new(regex: &str) -> Result<Self, MatcherError> {
        let re = Regex::new(regex).map_err(|error| MatcherError::Regex {
            pattern: regex.to_string(),
            error,
        })?;
        let mut roles = Roles::default();
        for (i, name) in re.capture_names().enumerate() {
            let Some(name) = name else { continue };
            let slot = match name {
                "file" => &mut roles.file,
                "line" => &mut roles.line,
                "column" | "col" => &mut roles.column,
                "end_line" | "endLine" => &mut roles.end_line,
                "end_column" | "endColumn" => &mut roles.end_column,
                "severity" => &mut roles.severity,
                "code" => &mut roles.code,
                "message" => &mut roles.message,
                _ => continue,
            };
            *slot = Some(i);
        }
        Ok(ProblemPattern {
            regex: re,
            roles,
            looping: false,
        })
    }

    role_setter!(
        /// Group `group` holds the file path.
        ///
        /// ```
        /// # use execra::interpret::ProblemPattern;
        /// let p = ProblemPattern::new(r"^(\S+)$").unwrap().file(1);
        /// # let _ = p;
        /// ```
        file
    );
    role_setter!(
        /// Group `group` holds the (1-based) line.
        ///
        /// ```
        /// # use execra::interpret::ProblemPattern;
        /// let p = ProblemPattern::new(r"line (\d+)").unwrap().line(1);
        /// # let _ = p;
        /// ```
        line
    );
    role_setter!(
        /// Group `group` holds the (1-based) column.
        ///
        /// ```
        /// # use execra::interpret::ProblemPattern;
        /// let p = ProblemPattern::new(r"col (\d+)").unwrap().column(1);
        /// # let _ = p;
        /// ```
        column
    );
    role_setter!(
        /// Group `group` holds the last line of the range.
        ///
        /// ```
        /// # use execra::interpret::ProblemPattern;
        /// let p = ProblemPattern::new(r"(\d+)-(\d+)").unwrap().line(1).end_line(2);
        /// # let _ = p;
        /// ```
        end_line
    );
    role_setter!(
        /// Group `group` holds the last column of the range.
        ///
        /// ```
        /// # use execra::interpret::ProblemPattern;
        /// let p = ProblemPattern::new(r"(\d+)-(\d+)").unwrap().column(1).end_column(2);
        /// # let _ = p;
        /// ```
        end_column
    );
    role_setter!(
        /// Group `group` holds the severity (`error`, `warning`, `note`, …).
        ///
        /// ```
        /// # use execra::interpret::ProblemPattern;
        /// let p = ProblemPattern::new(r"^(error|warning): (.*)").unwrap().severity(1).message(2);
        /// # let _ = p;
        /// ```
        severity
    );
    role_setter!(
        /// Group `group` holds the diagnostic code (`E0425`, `no-unused-vars`).
        ///
        /// ```
        /// # use execra::interpret::ProblemPattern;
        /// let p = ProblemPattern::new(r"\[(\w+)\]").unwrap().code(1);
        /// # let _ = p;
        /// ```
        code
    );
    role_setter!(
        /// Group `group` holds the message.
        ///
        /// ```
        /// # use execra::interpret::ProblemPattern;
        /// let p = ProblemPattern::new(r"^error: (.*)").unwrap().message(1);
        /// # let _ = p;
        /// ```
        message
    );

    /// Let this (last) pattern of a multi-line matcher repeat: every
    /// following line it matches is one more problem, sharing what the
    /// earlier patterns captured (the `"loop": true` of the JSON format).
    ///
    /// ```
    /// # use execra::interpret::ProblemPattern;
    /// let p = ProblemPattern::new(r"^\s+(?P<line>\d+): (?P<message>.*)").unwrap().looping(true);
    /// # let _ = p;
    /// ```
    pub fn looping(mut self, on: bool) -> Self {
        self.looping = on;
        self
    }

    fn check(&self) -> Result<(), MatcherError> {
        let groups = self.regex.captures_len();
        let r = self.roles;
        for g in [
            r.file,
            r.line,
            r.column,
            r.end_line,
            r.end_column,
            r.severity,
            r.code,
            r.message,
        ]
        .into_iter()
        .flatten()
        {
            if g >= groups {
                return Err(MatcherError::Invalid(format!(
                    "group {g} does not exist in {:?} ({} groups)",
                    self.regex.as_str(),
                    groups.saturating_sub(1)
                )));
            }
        }
        Ok(())
    }
}

/// What the patterns captured so far for one problem.
#[derive(Debug, Clone, Default)]
struct Data {
    file: Option<String>,
    line: Option<u32>,
    column: Option<u32>,
    end_line: Option<u32>,
    end_column: Option<u32>,
    severity: Option<String>,
    code: Option<String>,
    message: Option<String>,
    last_line: String,
}

impl Data {
    fn merge(&mut self, roles: &Roles, caps: &Captures, text: &str) {
        let get = |g: Option<usize>| -> Option<String> {
            let s = caps.get(g?)?.as_str().trim();
            (!s.is_empty()).then(|| s.to_string())
        };
        let num = |g: Option<usize>| -> Option<u32> { get(g)?.parse().ok() };
        self.file = get(roles.file).or(self.file.take());
        self.line = num(roles.line).or(self.line);
        self.column = num(roles.column).or(self.column);
        self.end_line = num(roles.end_line).or(self.end_line);
        self.end_column = num(roles.end_column).or(self.end_column);
        self.severity = get(roles.severity).or(self.severity.take());
        self.code = get(roles.code).or(self.code.take());
        self.message = get(roles.message).or(self.message.take());
        self.last_line = text.trim().to_string();
    }
}

/// Map a tool's severity word to a [`Severity`].
fn parse_severity(s: &str) -> Option<Severity> {
    let s = s.trim().to_ascii_lowercase();
    if s.starts_with("err") || s.starts_with("fatal") || s == "failure" {
        Some(Severity::Error)
    } else if s.starts_with("warn") {
        Some(Severity::Warning)
    } else if matches!(
        s.as_str(),
        "info" | "information" | "note" | "help" | "remark"
    ) {
        Some(Severity::Info)
    } else if matches!(s.as_str(), "hint" | "suggestion" | "style") {
        Some(Severity::Recommendation)
    } else {
        None
    }
}

/// Turns diagnostics (`file:line:col: error: message`) into [`Finding`]s
/// with a [`RelatedEntity::Location`], as an [`Interpreter`].
///
/// A matcher has one or more [`ProblemPattern`]s. With one, every matching
/// line is a problem. With several (a multi-line matcher), consecutive lines
/// must match them in order; the problem is reported when the last one
/// matches. If the last pattern is [`looping`](ProblemPattern::looping), it
/// keeps matching following lines, each one more problem, until a line does
/// not match (that line is then tried as the start of a new problem). This is
/// the VS Code / GitHub Actions model, and
/// [`from_json`](ProblemMatcher::from_json) reads that format.
///
/// A finding's code is the `code` capture if any, else the matcher's owner;
/// its severity is the `severity` capture (`error`/`fatal` → error,
/// `warning` → warning, `note`/`info`/`help` → info, `hint` →
/// recommendation), else the matcher's default (error). Its message is the
/// `message` capture, else the whole last line.
///
/// ANSI escapes are stripped before matching unless
/// [`strip_ansi(false)`](Self::strip_ansi). Redraws are ignored (diagnostics
/// are complete lines), so nothing is reported twice.
///
/// ```
/// use execra::interpret::ProblemMatcher;
/// use execra::{RelatedEntity, Severity};
///
/// let mut gcc = ProblemMatcher::gcc();
/// let found = gcc.match_line("src/util.c:7:9: warning: unused variable 'x' [-Wunused-variable]");
/// assert_eq!(found[0].severity, Severity::Warning);
/// assert_eq!(found[0].code, "-Wunused-variable");
/// assert_eq!(found[0].message, "unused variable 'x'");
/// assert!(matches!(
///     &found[0].related,
///     Some(RelatedEntity::Location { line: Some(7), column: Some(9), .. })
/// ));
/// ```
#[derive(Debug, Clone)]
pub struct ProblemMatcher {
    owner: String,
    patterns: Vec<ProblemPattern>,
    default_severity: Severity,
    strip_ansi: bool,
    next: usize,
    data: Data,
}

impl ProblemMatcher {
    /// A matcher named `owner` with `patterns` (at least one; every role's
    /// group must exist in its regex).
    ///
    /// ```
    /// use execra::interpret::{ProblemMatcher, ProblemPattern};
    ///
    /// // A file header line followed by any number of problem lines.
    /// let m = ProblemMatcher::new(
    ///     "lint",
    ///     vec![
    ///         ProblemPattern::new(r"^(?P<file>\S+):$").unwrap(),
    ///         ProblemPattern::new(r"^\s+(?P<line>\d+): (?P<message>.+)$").unwrap().looping(true),
    ///     ],
    /// )
    /// .unwrap();
    /// # let _ = m;
    /// ```
    pub fn new(
        owner: impl Into<String>,
        patterns: Vec<ProblemPattern>,
    ) -> Result<Self, MatcherError> {
        let owner = owner.into();
        if patterns.is_empty() {
            return Err(MatcherError::Invalid(format!(
                "matcher {owner:?} has no patterns"
            )));
        }
        for p in &patterns {
            p.check()?;
        }
        Ok(ProblemMatcher {
            owner,
            patterns,
            default_severity: Severity::Error,
            strip_ansi: true,
            next: 0,
            data: Data::default(),
        })
    }

    /// A single-line matcher from one regex with named groups (see
    /// [`ProblemPattern`]).
    ///
    /// ```
    /// use execra::interpret::ProblemMatcher;
    ///
    /// let mut m = ProblemMatcher::single("mypy", r"^(?P<file>[^:]+):(?P<line>\d+): (?P<severity>\w+): (?P<message>.*)$").unwrap();
    /// let f = m.match_line("app.py:3: error: Incompatible types");
    /// assert_eq!(f[0].message, "Incompatible types");
    /// assert_eq!(f[0].code, "mypy");
    /// ```
    pub fn single(owner: impl Into<String>, regex: &str) -> Result<Self, MatcherError> {
        ProblemMatcher::new(owner, vec![ProblemPattern::new(regex)?])
    }

    /// Matchers from the JSON problem-matcher format of GitHub Actions and
    /// VS Code. Accepted documents: `{"problemMatcher": [ … ]}`, an array of
    /// matchers, or one matcher object.
    ///
    /// Supported subset, per matcher: `owner` (required), `severity`
    /// (default severity: `"error"`, `"warning"`, `"info"`), and `pattern`
    /// (one object or an array). Per pattern: `regexp` (required), `file`,
    /// `line`, `column`, `endLine`, `endColumn`, `severity`, `code`,
    /// `message` (capture group numbers) and `loop` (last pattern only).
    /// Other keys (`fileLocation`, `fromPath`, `kind`, `location`, …) are
    /// ignored.
    ///
    /// ```
    /// use execra::interpret::ProblemMatcher;
    ///
    /// let json = r#"{ "problemMatcher": [{
    ///     "owner": "tsc",
    ///     "pattern": [{
    ///         "regexp": "^(.+)\\((\\d+),(\\d+)\\): (error|warning) (TS\\d+): (.*)$",
    ///         "file": 1, "line": 2, "column": 3, "severity": 4, "code": 5, "message": 6
    ///     }]
    /// }]}"#;
    /// let mut tsc = ProblemMatcher::from_json(json).unwrap().remove(0);
    /// let f = tsc.match_line("src/a.ts(4,7): error TS2322: Type 'string' is not assignable to type 'number'.");
    /// assert_eq!(f[0].code, "TS2322");
    /// ```
    pub fn from_json(json: &str) -> Result<Vec<ProblemMatcher>, MatcherError> {
        let doc: JsonDoc = serde_json::from_str(json)?;
        let matchers = match doc {
            JsonDoc::Wrapped { problem_matcher } => problem_matcher.into_vec(),
            JsonDoc::List(v) => v,
            JsonDoc::One(m) => vec![m],
        };
        matchers.into_iter().map(JsonMatcher::build).collect()
    }

    /// Set the severity of problems without a `severity` capture (default
    /// [`Severity::Error`]).
    ///
    /// ```
    /// use execra::{interpret::ProblemMatcher, Severity};
    /// let mut m = ProblemMatcher::single("x", r"^W: (?P<message>.*)").unwrap().severity(Severity::Warning);
    /// assert_eq!(m.match_line("W: careful")[0].severity, Severity::Warning);
    /// ```
    pub fn severity(mut self, severity: Severity) -> Self {
        self.default_severity = severity;
        self
    }

    /// Strip ANSI escapes before matching (on by default).
    ///
    /// ```
    /// use execra::interpret::ProblemMatcher;
    /// let mut m = ProblemMatcher::gcc();
    /// assert_eq!(m.match_line("\x1b[1ma.c:1:2: \x1b[31merror:\x1b[0m boom").len(), 1);
    /// let mut raw = ProblemMatcher::gcc().strip_ansi(false);
    /// assert!(raw.match_line("\x1b[1ma.c:1:2: \x1b[31merror:\x1b[0m boom").is_empty());
    /// ```
    pub fn strip_ansi(mut self, on: bool) -> Self {
        self.strip_ansi = on;
        self
    }

    /// The owner (name) of this matcher.
    ///
    /// ```
    /// assert_eq!(execra::interpret::ProblemMatcher::gcc().owner(), "gcc");
    /// ```
    pub fn owner(&self) -> &str {
        &self.owner
    }

    /// Feed one line; returns the problems it completes (zero or one).
    ///
    /// ```
    /// use execra::interpret::ProblemMatcher;
    /// let mut rustc = ProblemMatcher::rustc();
    /// assert!(rustc.match_line("error[E0425]: cannot find value `x` in this scope").is_empty());
    /// let f = rustc.match_line(" --> src/main.rs:2:5");
    /// assert_eq!(f[0].code, "E0425");
    /// ```
    pub fn match_line(&mut self, text: &str) -> Vec<Finding> {
        let text = if self.strip_ansi {
            strip_ansi(text)
        } else {
            std::borrow::Cow::Borrowed(text)
        };
        self.feed(&text).into_iter().collect()
    }

    /// Forget a half-matched multi-line problem.
    ///
    /// ```
    /// let mut m = execra::interpret::ProblemMatcher::rustc();
    /// m.match_line("error[E0425]: cannot find value `x` in this scope");
    /// m.reset();
    /// assert!(m.match_line(" --> src/main.rs:2:5").is_empty());
    /// ```
    pub fn reset(&mut self) {
        self.next = 0;
        self.data = Data::default();
    }

    fn feed(&mut self, text: &str) -> Option<Finding> {
        let last = self.patterns.len() - 1;
        if self.next > 0 {
            let p = &self.patterns[self.next];
            if let Some(caps) = p.regex.captures(text) {
                let mut d = self.data.clone();
                d.merge(&p.roles, &caps, text);
                if self.next == last {
                    if !p.looping {
                        self.reset();
                    }
                    return Some(self.finish(d));
                }
                self.data = d;
                self.next += 1;
                return None;
            }
            self.reset();
        }
        let p = &self.patterns[0];
        let caps = p.regex.captures(text)?;
        let mut d = Data::default();
        d.merge(&p.roles, &caps, text);
        if last == 0 {
            return Some(self.finish(d));
        }
        self.data = d;
        self.next = 1;
        None
    }

    fn finish(&self, d: Data) -> Finding {
        let severity = d
            .severity
            .as_deref()
            .and_then(parse_severity)
            .unwrap_or(self.default_severity);
        let code = d.code.unwrap_or_else(|| self.owner.clone());
        let message = d.message.unwrap_or(d.last_line);
        let mut f = Finding::new(severity, code, message);
        if let Some(file) = d.file {
            f = f.with_related(RelatedEntity::Location {
                path: PathBuf::from(file),
                line: d.line,
                column: d.column,
                end_line: d.end_line,
                end_column: d.end_column,
            });
        }
        f
    }

    fn builtin(owner: &str, patterns: &[(&str, bool)]) -> Self {
        let patterns = patterns
            .iter()
            .map(|(re, looping)| match ProblemPattern::new(re) {
                Ok(p) => p.looping(*looping),
                Err(e) => panic!("built-in problem matcher {owner:?} is invalid: {e}"),
            })
            .collect();
        match ProblemMatcher::new(owner, patterns) {
            Ok(m) => m,
            Err(e) => panic!("built-in problem matcher {owner:?} is invalid: {e}"),
        }
    }

    /// GCC and Clang diagnostics (and anything printing
    /// `file:line[:col]: severity: message [-Wflag]`). Owner `"gcc"`; the
    /// code is the `-W…` flag when present.
    ///
    /// ```
    /// use execra::{interpret::ProblemMatcher, Severity};
    /// let mut m = ProblemMatcher::gcc();
    /// let f = m.match_line("src/main.c:3:10: fatal error: 'missing.h' file not found");
    /// assert_eq!(f[0].severity, Severity::Error);
    /// assert_eq!(f[0].message, "'missing.h' file not found");
    /// ```
    pub fn gcc() -> Self {
        Self::builtin(
            "gcc",
            &[(
                r"^(?P<file>(?:[A-Za-z]:)?[^:\s][^:]*):(?P<line>\d+):(?:(?P<column>\d+):)?\s+(?:fatal\s+)?(?P<severity>error|warning|note|remark):\s+(?P<message>.*?)(?:\s+\[(?P<code>-W[^\]]+)\])?\s*$",
                false,
            )],
        )
    }

    /// rustc / cargo diagnostics in the default (human) format: a
    /// `error[E0425]: message` line followed by ` --> file:line:col`. Owner
    /// `"rustc"`; the code is the error code when present.
    ///
    /// ```
    /// use execra::{interpret::ProblemMatcher, Severity};
    /// let mut m = ProblemMatcher::rustc();
    /// m.match_line("warning: unused variable: `x`");
    /// let f = m.match_line("  --> src/lib.rs:10:9");
    /// assert_eq!(f[0].severity, Severity::Warning);
    /// assert_eq!(f[0].code, "rustc");
    /// ```
    pub fn rustc() -> Self {
        Self::builtin(
            "rustc",
            &[
                (
                    r"^(?P<severity>error|warning)(?:\[(?P<code>[A-Za-z]*\d+)\])?: (?P<message>.+)$",
                    false,
                ),
                (
                    r"^\s*--> (?P<file>.+?):(?P<line>\d+):(?P<column>\d+)\s*$",
                    false,
                ),
            ],
        )
    }

    /// rustc / cargo diagnostics in the short format
    /// (`--message-format short`: `file:line:col: error[E0425]: message`).
    /// Owner `"rustc"`.
    ///
    /// ```
    /// use execra::interpret::ProblemMatcher;
    /// let mut m = ProblemMatcher::rustc_short();
    /// let f = m.match_line("src/main.rs:2:5: error[E0425]: cannot find value `x` in this scope");
    /// assert_eq!(f[0].code, "E0425");
    /// ```
    pub fn rustc_short() -> Self {
        Self::builtin(
            "rustc",
            &[(
                r"^(?P<file>(?:[A-Za-z]:)?[^:\s][^:]*):(?P<line>\d+):(?P<column>\d+): (?P<severity>error|warning)(?:\[(?P<code>[A-Za-z]*\d+)\])?: (?P<message>.*)$",
                false,
            )],
        )
    }

    /// ESLint's default `stylish` formatter: a file path line, then one
    /// indented `line:col  severity  message  rule-id` line per problem (a
    /// looping pattern). Owner `"eslint"`; the code is the rule id.
    ///
    /// ```
    /// use execra::interpret::ProblemMatcher;
    /// let mut m = ProblemMatcher::eslint_stylish();
    /// m.match_line("/home/me/app/src/index.js");
    /// let f = m.match_line("  1:10  error  'foo' is defined but never used  no-unused-vars");
    /// assert_eq!(f[0].code, "no-unused-vars");
    /// ```
    pub fn eslint_stylish() -> Self {
        Self::builtin(
            "eslint",
            &[
                (r"^(?P<file>[^\s✖].*?)\s*$", false),
                (
                    r"^\s+(?P<line>\d+):(?P<column>\d+)\s+(?P<severity>error|warning|info)\s+(?P<message>.+?)(?:\s{2,}(?P<code>[\w@/-]+))?\s*$",
                    true,
                ),
            ],
        )
    }
}

impl Interpreter for ProblemMatcher {
    fn on_line(&mut self, _ctx: &Context, line: &Line) -> Vec<InterpreterEvent> {
        self.match_line(&line.text)
            .into_iter()
            .map(|finding| InterpreterEvent::Finding { finding })
            .collect()
    }

    /// Redraws are ignored: diagnostics are complete lines.
    fn on_redraw(&mut self, _ctx: &Context, _line: &Line) -> Vec<InterpreterEvent> {
        Vec::new()
    }

    fn on_exit(&mut self, _ctx: &Context, _exit: &ExitCode) -> Vec<InterpreterEvent> {
        self.reset();
        Vec::new()
    }

    fn name(&self) -> &str {
        "ProblemMatcher"
    }
}

// ---- JSON format ----------------------------------------------------------

#[derive(Deserialize)]
#[serde(untagged)]
enum JsonDoc {
    Wrapped {
        #[serde(rename = "problemMatcher")]
        problem_matcher: OneOrMany<JsonMatcher>,
    },
    List(Vec<JsonMatcher>),
    One(JsonMatcher),
}

#[derive(Deserialize)]
#[serde(untagged)]
enum OneOrMany<T> {
    Many(Vec<T>),
    One(T),
}

impl<T> OneOrMany<T> {
    fn into_vec(self) -> Vec<T> {
        match self {
            OneOrMany::Many(v) => v,
            OneOrMany::One(t) => vec![t],
        }
    }
}

#[derive(Deserialize)]
struct JsonMatcher {
    owner: String,
    #[serde(default)]
    severity: Option<String>,
    pattern: OneOrMany<JsonPattern>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct JsonPattern {
    regexp: String,
    #[serde(flatten)]
    roles: Roles,
    #[serde(rename = "loop", default)]
    looping: bool,
}

impl JsonMatcher {
    fn build(self) -> Result<ProblemMatcher, MatcherError> {
        let patterns = self.pattern.into_vec();
        let n = patterns.len();
        let mut built = Vec::with_capacity(n);
        for (i, p) in patterns.into_iter().enumerate() {
            if p.looping && (i + 1 != n || n == 1) {
                return Err(MatcherError::Invalid(format!(
                    "matcher {:?}: only the last pattern of a multi-line matcher may loop",
                    self.owner
                )));
            }
            let mut pat = ProblemPattern::new(&p.regexp)?.looping(p.looping);
            pat.roles.overlay(p.roles);
            built.push(pat);
        }
        let mut m = ProblemMatcher::new(self.owner, built)?;
        if let Some(s) = self.severity.as_deref() {
            m.default_severity = parse_severity(s).ok_or_else(|| {
                MatcherError::Invalid(format!("unknown severity {s:?} in matcher {:?}", m.owner))
            })?;
        }
        Ok(m)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn loc(f: &Finding) -> (String, Option<u32>, Option<u32>) {
        match &f.related {
            Some(RelatedEntity::Location {
                path, line, column, ..
            }) => (path.display().to_string(), *line, *column),
            other => panic!("no location: {other:?}"),
        }
    }

    fn run(m: &mut ProblemMatcher, text: &str) -> Vec<Finding> {
        text.lines().flat_map(|l| m.match_line(l)).collect()
    }

    #[test]
    fn gcc_and_clang_output() {
        let out = "\
In file included from src/main.c:1:
src/util.h:4:6: warning: no previous prototype for 'helper' [-Wmissing-prototypes]
    4 | void helper(void);
      |      ^~~~~~
src/main.c: In function 'main':
src/main.c:12:5: error: 'foo' undeclared (first use in this function)
   12 |     foo = 1;
      |     ^~~
src/main.c:12:5: note: each undeclared identifier is reported only once
src/main.c:3:10: fatal error: missing.h: No such file or directory
ld.lld: error: undefined symbol: bar
1 error generated.
make: *** [Makefile:2: all] Error 1
";
        let f = run(&mut ProblemMatcher::gcc(), out);
        assert_eq!(f.len(), 4, "{f:#?}");
        assert_eq!(loc(&f[0]), ("src/util.h".into(), Some(4), Some(6)));
        assert_eq!(f[0].code, "-Wmissing-prototypes");
        assert_eq!(f[0].severity, Severity::Warning);
        assert_eq!(
            f[1].message,
            "'foo' undeclared (first use in this function)"
        );
        assert_eq!(f[1].severity, Severity::Error);
        assert_eq!(f[1].code, "gcc");
        assert_eq!(f[2].severity, Severity::Info);
        assert_eq!(f[3].message, "missing.h: No such file or directory");
        assert_eq!(loc(&f[3]), ("src/main.c".into(), Some(3), Some(10)));
    }

    #[test]
    fn gcc_without_column_and_windows_path() {
        let mut m = ProblemMatcher::gcc();
        let f = m.match_line("main.c:7: warning: implicit declaration");
        assert_eq!(loc(&f[0]), ("main.c".into(), Some(7), None));
        let f = m.match_line(r"C:\src\main.c:12:5: error: boom");
        assert_eq!(loc(&f[0]), (r"C:\src\main.c".into(), Some(12), Some(5)));
    }

    #[test]
    fn rustc_human_format_two_line_pattern() {
        let out = "\
   Compiling demo v0.1.0 (/tmp/demo)
error[E0425]: cannot find value `x` in this scope
 --> src/main.rs:2:20
  |
2 |     println!(\"{}\", x);
  |                    ^ not found in this scope

warning: unused variable: `y`
  --> src/lib.rs:10:9
   |
error: aborting due to 1 previous error; 1 warning emitted

For more information about this error, try `rustc --explain E0425`.
error: could not compile `demo` (bin \"demo\") due to 1 previous error
";
        let f = run(&mut ProblemMatcher::rustc(), out);
        assert_eq!(f.len(), 2, "{f:#?}");
        assert_eq!(f[0].code, "E0425");
        assert_eq!(f[0].message, "cannot find value `x` in this scope");
        assert_eq!(loc(&f[0]), ("src/main.rs".into(), Some(2), Some(20)));
        assert_eq!(f[1].severity, Severity::Warning);
        assert_eq!(loc(&f[1]), ("src/lib.rs".into(), Some(10), Some(9)));
    }

    #[test]
    fn rustc_pattern_sequence_breaks_reset() {
        let mut m = ProblemMatcher::rustc();
        assert!(m.match_line("error[E0425]: cannot find value").is_empty());
        assert!(m.match_line("something else").is_empty());
        assert!(m.match_line(" --> src/main.rs:2:20").is_empty());
    }

    #[test]
    fn rustc_short_format() {
        let out = "\
src/main.rs:2:20: error[E0425]: cannot find value `x` in this scope
src/lib.rs:10:9: warning: unused variable: `y`
error: could not compile `demo` (bin \"demo\") due to 1 previous error
";
        let f = run(&mut ProblemMatcher::rustc_short(), out);
        assert_eq!(f.len(), 2);
        assert_eq!(f[0].code, "E0425");
        assert_eq!(f[1].code, "rustc");
    }

    #[test]
    fn eslint_stylish_loop() {
        let out = "
/home/me/app/src/index.js
   1:10  error    'foo' is defined but never used  no-unused-vars
   5:3   warning  Unexpected console statement     no-console
  12:1   error    Parsing error: Unexpected token

/home/me/app/src/util.ts
  7:15  warning  Unexpected any. Specify a different type  @typescript-eslint/no-explicit-any

✖ 4 problems (2 errors, 2 warnings)
  1 error and 0 warnings potentially fixable with the `--fix` option.
";
        let f = run(&mut ProblemMatcher::eslint_stylish(), out);
        assert_eq!(f.len(), 4, "{f:#?}");
        assert_eq!(
            loc(&f[0]),
            ("/home/me/app/src/index.js".into(), Some(1), Some(10))
        );
        assert_eq!(f[0].code, "no-unused-vars");
        assert_eq!(f[0].message, "'foo' is defined but never used");
        assert_eq!(f[1].severity, Severity::Warning);
        assert_eq!(f[1].code, "no-console");
        assert_eq!(f[1].message, "Unexpected console statement");
        assert_eq!(f[2].code, "eslint");
        assert_eq!(f[2].message, "Parsing error: Unexpected token");
        assert_eq!(
            loc(&f[3]),
            ("/home/me/app/src/util.ts".into(), Some(7), Some(15))
        );
        assert_eq!(f[3].code, "@typescript-eslint/no-explicit-any");
    }

    #[test]
    fn loop_ends_on_new_header_without_blank_line() {
        let mut m = ProblemMatcher::eslint_stylish();
        let f = run(
            &mut m,
            "a.js\n  1:1  error  x  r1\nb.js\n  2:2  error  y  r2\n",
        );
        assert_eq!(f.len(), 2);
        assert_eq!(loc(&f[1]).0, "b.js");
    }

    #[test]
    fn three_line_pattern_with_end_positions() {
        let m = ProblemMatcher::new(
            "multi",
            vec![
                ProblemPattern::new(r"^FILE (?P<file>\S+)$").unwrap(),
                ProblemPattern::new(r"^AT (\d+):(\d+)-(\d+):(\d+)$")
                    .unwrap()
                    .line(1)
                    .column(2)
                    .end_line(3)
                    .end_column(4),
                ProblemPattern::new(r"^(?P<severity>\w+) (?P<message>.+)$").unwrap(),
            ],
        );
        let mut m = m.unwrap();
        let f = run(
            &mut m,
            "FILE x.py\nAT 1:2-3:4\nwarning bad thing\nwarning alone\n",
        );
        assert_eq!(f.len(), 1);
        assert_eq!(
            f[0].related,
            Some(RelatedEntity::Location {
                path: "x.py".into(),
                line: Some(1),
                column: Some(2),
                end_line: Some(3),
                end_column: Some(4)
            })
        );
        assert_eq!(f[0].message, "bad thing");
    }

    #[test]
    fn json_formats() {
        let gh = r#"{
          "problemMatcher": [
            {
              "owner": "eslint-stylish",
              "severity": "warning",
              "pattern": [
                { "regexp": "^([^\\s].*)$", "file": 1 },
                { "regexp": "^\\s+(\\d+):(\\d+)\\s+(error|warning|info)\\s+(.*)\\s\\s+(.*)$",
                  "line": 1, "column": 2, "severity": 3, "message": 4, "code": 5, "loop": true }
              ]
            },
            { "owner": "plain", "fileLocation": "relative",
              "pattern": { "regexp": "^(\\S+):(\\d+) (.*)$", "file": 1, "line": 2, "message": 3 } }
          ]
        }"#;
        let mut ms = ProblemMatcher::from_json(gh).unwrap();
        assert_eq!(ms.len(), 2);
        let f = run(
            &mut ms[0],
            "src/a.js\n  3:4  error  Bad  rule-a\n  4:1  warning  Meh  rule-b\n",
        );
        assert_eq!(f.len(), 2);
        assert_eq!(f[1].code, "rule-b");
        assert_eq!(ms[0].default_severity, Severity::Warning);
        let f = ms[1].match_line("a.txt:9 oops");
        assert_eq!(loc(&f[0]), ("a.txt".into(), Some(9), None));

        let list = r#"[{ "owner": "o", "pattern": { "regexp": "^E (.*)$", "message": 1 } }]"#;
        assert_eq!(ProblemMatcher::from_json(list).unwrap().len(), 1);
        let one = r#"{ "owner": "o", "pattern": [{ "regexp": "^E (.*)$", "message": 1 }] }"#;
        let mut one = ProblemMatcher::from_json(one).unwrap();
        let f = one[0].match_line("E boom");
        assert_eq!(f[0].message, "boom");
        assert!(f[0].related.is_none());
    }

    #[test]
    fn json_errors() {
        assert!(matches!(
            ProblemMatcher::from_json(r#"{"owner":"o","pattern":[{"regexp":"("}]}"#),
            Err(MatcherError::Regex { .. })
        ));
        assert!(matches!(
            ProblemMatcher::from_json(r#"{"owner":"o","pattern":[{"regexp":"(a)","file":2}]}"#),
            Err(MatcherError::Invalid(_))
        ));
        assert!(matches!(
            ProblemMatcher::from_json(r#"{"owner":"o","pattern":[]}"#),
            Err(MatcherError::Invalid(_))
        ));
        assert!(matches!(
            ProblemMatcher::from_json(
                r#"{"owner":"o","pattern":[{"regexp":"a","loop":true},{"regexp":"b"}]}"#
            ),
            Err(MatcherError::Invalid(_))
        ));
        assert!(ProblemMatcher::from_json(r#"{"nope": 1}"#).is_err());
    }

    #[test]
    fn coloured_diagnostics() {
        let mut m = ProblemMatcher::rustc();
        m.match_line("\x1b[0m\x1b[1m\x1b[38;5;9merror[E0425]\x1b[0m\x1b[0m\x1b[1m: cannot find value `x`\x1b[0m");
        let f = m.match_line(
            "\x1b[0m \x1b[0m\x1b[0m\x1b[1m\x1b[38;5;12m--> \x1b[0m\x1b[0msrc/main.rs:2:20\x1b[0m",
        );
        assert_eq!(f.len(), 1);
        assert_eq!(f[0].message, "cannot find value `x`");
    }
}
