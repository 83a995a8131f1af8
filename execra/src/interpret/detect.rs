//! Generic progress detectors: percentages, counters and byte counts with
//! units, as most command-line tools print them.

use std::sync::OnceLock;

use regex::Regex;

use crate::interpret::ansi::strip_ansi;
use crate::interpreter::{Context, Interpreter, InterpreterEvent, Line};
use crate::outcome::ExitCode;
use crate::progress::Progress;

/// Compile a built-in pattern once. The patterns are constants of this
/// module, covered by its tests.
fn builtin(cell: &'static OnceLock<Regex>, pattern: &str) -> &'static Regex {
    cell.get_or_init(|| match Regex::new(pattern) {
        Ok(r) => r,
        Err(e) => panic!("built-in progress pattern {pattern:?} is invalid: {e}"),
    })
}

fn percent_re() -> &'static Regex {
    static RE: OnceLock<Regex> = OnceLock::new();
    // Not preceded by a digit, dot or letter (so `v1.42%` or `x42%` do not
    // count), at most 3 integer digits.
    builtin(&RE, r"(?:^|[^\w.])(\d{1,3}(?:\.\d+)?)\s?%")
}

fn count_re() -> &'static Regex {
    static RE: OnceLock<Regex> = OnceLock::new();
    // `12/300`, `[12/300]`, `(12 / 300)`; not part of a path, a date
    // (`2024/11/26`), a version or a decimal.
    builtin(&RE, r"(?:^|[^\w./:-])(\d+)\s?/\s?(\d+)(?:$|[^\w./])")
}

fn bytes_re() -> &'static Regex {
    static RE: OnceLock<Regex> = OnceLock::new();
    // `12.3 MiB / 1.2 GiB`, `12MB of 40MB`, `12.3/40.5 MB` (shared unit).
    builtin(
        &RE,
        r"(?i)(?:^|[^\w.])(\d+(?:\.\d+)?)\s?([kmgt]i?b|b)?\s*(?:/|\bof\b)\s*(\d+(?:\.\d+)?)\s?([kmgt]i?b|b)\b",
    )
}

/// Bytes per unit: `kB`/`KB` = 10^3, `KiB` = 2^10, and so on (case-insensitive
/// except for the `i`).
fn unit_bytes(unit: &str) -> Option<f64> {
    let u = unit.to_ascii_lowercase();
    let binary = u.len() == 3 && u.as_bytes()[1] == b'i';
    let exp = match u.as_bytes().first()? {
        b'b' if u.len() == 1 => 0,
        b'k' => 1,
        b'm' => 2,
        b'g' => 3,
        b't' => 4,
        _ => return None,
    };
    let base: f64 = if binary { 1024.0 } else { 1000.0 };
    Some(base.powi(exp))
}

/// A `%` in the text.
const PERCENT: u8 = 1;
/// A `/` in the text.
const SLASH: u8 = 2;
/// The word part `of` (any case) in the text.
const OF: u8 = 4;
/// An escape byte: what the text says is only known after stripping ANSI.
const ESC: u8 = 8;

/// What each byte can start: 0 for all but `%`, `/`, `o`/`O` and ESC.
static CLASS: [u8; 256] = {
    let mut t = [0u8; 256];
    t[b'%' as usize] = PERCENT;
    t[b'/' as usize] = SLASH;
    t[b'o' as usize] = OF;
    t[b'O' as usize] = OF;
    t[0x1b] = ESC;
    t
};

/// The markers a progress report needs (`%`, `/`, `of`) found in `b`, in
/// one pass with no allocation: a line without any is rejected in a few
/// nanoseconds, before any ANSI stripping or regex. Stops at the first
/// escape byte (reported as [`ESC`]).
#[inline]
fn markers(b: &[u8]) -> u8 {
    // First a branch-free pass: a line with no `%`, `/`, `o` or ESC (most
    // of them) is done with; `%` and `/` alone need no second look.
    let any = b.iter().fold(0u8, |a, &c| a | CLASS[c as usize]);
    if any & (OF | ESC) == 0 {
        return any;
    }
    let mut found = 0u8;
    for (i, &c) in b.iter().enumerate() {
        match CLASS[c as usize] {
            0 => {}
            OF => {
                if matches!(b.get(i + 1), Some(b'f' | b'F')) {
                    found |= OF;
                }
            }
            ESC => return found | ESC,
            m => found |= m,
        }
    }
    found
}

fn number(s: &str) -> Option<f64> {
    let v: f64 = s.parse().ok()?;
    v.is_finite().then_some(v)
}

/// Find a percentage (`42%`, `42.5 %`) in `text`, as a fraction.
///
/// ```
/// use execra::interpret::detect_percent;
///
/// assert_eq!(detect_percent("######          42.5%"), Some(0.425));
/// assert_eq!(detect_percent("no progress here"), None);
/// ```
pub fn detect_percent(text: &str) -> Option<f32> {
    // Cheap pre-check: most output lines have no `%` (regex set-up per
    // line costs more than the scan).
    if !text.contains('%') {
        return None;
    }
    percent_re()
        .captures_iter(text)
        .filter_map(|c| number(c.get(1)?.as_str()))
        .find(|v| (0.0..=100.0).contains(v))
        .map(|v| (v / 100.0) as f32)
}

/// Find a counter (`12/300`, `[12/300]`) in `text`, as `(done, total)`.
/// Only `done <= total` with a non-zero total counts, so dates and paths are
/// not mistaken for progress.
///
/// ```
/// use execra::interpret::detect_count;
///
/// assert_eq!(detect_count("    Building [=====>    ] 12/300: serde"), Some((12, 300)));
/// assert_eq!(detect_count("released 2024/11/26"), None);
/// ```
pub fn detect_count(text: &str) -> Option<(u64, u64)> {
    if !text.contains('/') {
        return None;
    }
    count_re().captures_iter(text).find_map(|c| {
        let done: u64 = c.get(1)?.as_str().parse().ok()?;
        let total: u64 = c.get(2)?.as_str().parse().ok()?;
        (total > 0 && done <= total).then_some((done, total))
    })
}

/// Find a byte count with a total and units (`12.3 MiB / 1.2 GiB`,
/// `12MB of 40MB`, `12.3/40.5 MB`) in `text`, as `(done, total)` bytes.
/// Units: `B`, `kB`/`KB`, `MB`, `GB`, `TB` (powers of 1000) and `KiB`,
/// `MiB`, `GiB`, `TiB` (powers of 1024), case-insensitive.
///
/// ```
/// use execra::interpret::detect_bytes;
///
/// assert_eq!(detect_bytes("12MB of 40MB"), Some((12_000_000, 40_000_000)));
/// assert_eq!(detect_bytes("1 KiB / 2 KiB"), Some((1024, 2048)));
/// ```
pub fn detect_bytes(text: &str) -> Option<(u64, u64)> {
    // Needs `/` or `of` between the numbers.
    if markers(text.as_bytes()) & (SLASH | OF) == 0 {
        return None;
    }
    bytes_re().captures_iter(text).find_map(|c| {
        let total_unit = unit_bytes(c.get(4)?.as_str())?;
        let done_unit = match c.get(2) {
            Some(u) => unit_bytes(u.as_str())?,
            None => total_unit,
        };
        let done = number(c.get(1)?.as_str())? * done_unit;
        let total = number(c.get(3)?.as_str())? * total_unit;
        (total > 0.0).then_some((done.round() as u64, total.round() as u64))
    })
}

/// Detects progress in free-form output lines: byte counts with a total,
/// then percentages, then counters (the first kind found wins). Works on
/// `\r` redraws, so a tool's live progress bar moves the job's progress.
///
/// As an [`Interpreter`] it emits a `Progress` event only when the detected
/// value changes, and nothing else. Use it alone, inside a
/// [`RuleInterpreter`](crate::interpret::RuleInterpreter) via
/// [`detector`](crate::interpret::RuleInterpreter::detector), or next to
/// other interpreters in a [`Chain`](crate::interpret::Chain).
///
/// ```
/// use execra::interpret::ProgressDetector;
/// use execra::Progress;
///
/// let d = ProgressDetector::new();
/// assert_eq!(d.detect(" 45% [=======>         ] 540.00M  50.2MB/s"), Some(Progress::fraction(0.45)));
/// assert_eq!(d.detect("Receiving 3/4"), Some(Progress::count(3, 4)));
/// assert_eq!(
///     d.detect("   ━━━━━━━━━━━━╸━━━━━━━ 12.3/40.5 MB 5.1 MB/s eta 0:00:06"),
///     Some(Progress::bytes(12_300_000, Some(40_500_000)))
/// );
///
/// // With a runtime: one line of code for a moving progress bar.
/// let _cmd = execra::Command::new("curl").arg("-#O").arg("https://example.com/f").interpreter(ProgressDetector::new());
/// ```
#[derive(Debug, Clone)]
pub struct ProgressDetector {
    percent: bool,
    count: bool,
    bytes: bool,
    strip_ansi: bool,
    last: Option<Progress>,
}

impl Default for ProgressDetector {
    fn default() -> Self {
        Self::new()
    }
}

impl ProgressDetector {
    /// A detector for all three kinds, stripping ANSI escapes first.
    ///
    /// ```
    /// let d = execra::interpret::ProgressDetector::new();
    /// assert!(d.detect("\x1b[32m 50%\x1b[0m").is_some());
    /// ```
    pub fn new() -> Self {
        ProgressDetector {
            percent: true,
            count: true,
            bytes: true,
            strip_ansi: true,
            last: None,
        }
    }

    /// Enable or disable percentages (`42%`).
    ///
    /// ```
    /// let d = execra::interpret::ProgressDetector::new().percent(false);
    /// assert_eq!(d.detect("42%"), None);
    /// ```
    pub fn percent(mut self, on: bool) -> Self {
        self.percent = on;
        self
    }

    /// Enable or disable counters (`12/300`).
    ///
    /// ```
    /// let d = execra::interpret::ProgressDetector::new().count(false);
    /// assert_eq!(d.detect("[12/300]"), None);
    /// ```
    pub fn count(mut self, on: bool) -> Self {
        self.count = on;
        self
    }

    /// Enable or disable byte counts (`12 MB / 40 MB`).
    ///
    /// ```
    /// let d = execra::interpret::ProgressDetector::new().bytes(false);
    /// assert_eq!(d.detect("12 MB / 40 MB"), None);
    /// ```
    pub fn bytes(mut self, on: bool) -> Self {
        self.bytes = on;
        self
    }

    /// Strip ANSI escapes before detecting (on by default).
    ///
    /// ```
    /// let d = execra::interpret::ProgressDetector::new().strip_ansi(false);
    /// assert!(d.detect("50%").is_some());
    /// ```
    pub fn strip_ansi(mut self, on: bool) -> Self {
        self.strip_ansi = on;
        self
    }

    /// Detect progress in one line (stateless).
    ///
    /// ```
    /// use execra::{interpret::ProgressDetector, Progress};
    /// let d = ProgressDetector::new();
    /// assert_eq!(d.detect("[3/4] Linking"), Some(Progress::count(3, 4)));
    /// assert_eq!(d.detect("done"), None);
    /// ```
    #[inline]
    pub fn detect(&self, text: &str) -> Option<Progress> {
        // The common case, a line that cannot hold progress: rejected by one
        // byte scan (no ANSI stripping, no regex).
        let m = markers(text.as_bytes());
        // (After an escape byte the scan stops: go the full way.)
        let wanted = ESC
            | if self.percent { PERCENT } else { 0 }
            | if self.count { SLASH } else { 0 }
            | if self.bytes { SLASH | OF } else { 0 };
        if m & wanted == 0 {
            return None;
        }
        self.detect_marked(text)
    }

    /// [`detect`](Self::detect) for a line that has the markers.
    fn detect_marked(&self, text: &str) -> Option<Progress> {
        let text = if self.strip_ansi {
            strip_ansi(text)
        } else {
            std::borrow::Cow::Borrowed(text)
        };
        if self.bytes {
            if let Some((done, total)) = detect_bytes(&text) {
                return Some(Progress::bytes(done, Some(total)));
            }
        }
        if self.percent {
            if let Some(f) = detect_percent(&text) {
                return Some(Progress::fraction(f));
            }
        }
        if self.count {
            if let Some((done, total)) = detect_count(&text) {
                return Some(Progress::count(done, total));
            }
        }
        None
    }

    /// Detect progress and return it only when it differs from the last
    /// value returned (stateful; what the [`Interpreter`] impl uses).
    ///
    /// ```
    /// let mut d = execra::interpret::ProgressDetector::new();
    /// assert!(d.detect_change("10%").is_some());
    /// assert!(d.detect_change("10%").is_none());
    /// assert!(d.detect_change("11%").is_some());
    /// ```
    #[inline]
    pub fn detect_change(&mut self, text: &str) -> Option<Progress> {
        let p = self.detect(text)?;
        if self.last.as_ref() == Some(&p) {
            return None;
        }
        self.last = Some(p.clone());
        Some(p)
    }

    #[inline]
    fn events(&mut self, text: &str) -> Vec<InterpreterEvent> {
        match self.detect_change(text) {
            Some(progress) => vec![InterpreterEvent::Progress { progress }],
            None => Vec::new(),
        }
    }
}

impl Interpreter for ProgressDetector {
    fn on_line(&mut self, _ctx: &Context, line: &Line) -> Vec<InterpreterEvent> {
        self.events(&line.text)
    }

    fn on_redraw(&mut self, _ctx: &Context, line: &Line) -> Vec<InterpreterEvent> {
        self.events(&line.text)
    }

    fn on_exit(&mut self, _ctx: &Context, _exit: &ExitCode) -> Vec<InterpreterEvent> {
        Vec::new()
    }

    fn name(&self) -> &str {
        "ProgressDetector"
    }

    /// When no line can hold progress: none of the bytes a report needs
    /// (`%`, `/`, `o` of `of`) nor an escape is in `text` (a vectorised
    /// search over all the lines at once rather than a scan per line).
    fn ignores_lines(&self, text: &str) -> bool {
        let b = text.as_bytes();
        // (`o` first: a line of prose has one. A marker this detector does
        // not look for still sends the lines the long way: no harm.)
        let marked = (self.bytes && memchr::memchr2(b'o', b'O', b).is_some())
            || memchr::memchr3(b'%', b'/', 0x1b, b).is_some();
        !marked
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(text: &str) -> Option<Progress> {
        ProgressDetector::new().detect(text)
    }

    #[test]
    fn percentages() {
        assert_eq!(detect_percent("42%"), Some(0.42));
        assert_eq!(detect_percent("progress: 42.5 %"), Some(0.425));
        assert_eq!(detect_percent("100%|██████████| 50/50"), Some(1.0));
        assert_eq!(detect_percent("v1.42%"), None);
        assert_eq!(detect_percent("250% faster"), None);
        assert_eq!(detect_percent("no"), None);
        // curl -# bar
        assert_eq!(
            detect_percent("##################################                        58.3%"),
            Some(0.583)
        );
        // wget
        assert_eq!(
            d("ubuntu.iso          45%[========>            ] 540.00M  50.2MB/s    eta 13s"),
            Some(Progress::fraction(0.45))
        );
        // git
        assert_eq!(
            d("Receiving objects:  45% (450/1000), 1.20 MiB | 2.30 MiB/s"),
            Some(Progress::fraction(0.45))
        );
    }

    #[test]
    fn counters() {
        assert_eq!(detect_count("12/300"), Some((12, 300)));
        assert_eq!(detect_count("[12/300]"), Some((12, 300)));
        assert_eq!(detect_count("(3 / 4)"), Some((3, 4)));
        assert_eq!(
            detect_count("    Building [=======>                 ] 12/300: serde(build)"),
            Some((12, 300))
        );
        assert_eq!(detect_count("2024/11/26"), None);
        assert_eq!(detect_count("/usr/lib/3/4"), None);
        assert_eq!(detect_count("400/300"), None);
        assert_eq!(detect_count("1.5/2"), None);
        assert_eq!(detect_count("0/0"), None);
        // ninja
        assert_eq!(
            d("[37/120] Building CXX object src/CMakeFiles/app.dir/main.cpp.o"),
            Some(Progress::count(37, 120))
        );
    }

    #[test]
    fn bytes_with_units() {
        assert_eq!(
            detect_bytes("12.3 MiB / 1.2 GiB"),
            Some((
                (12.3 * 1024.0 * 1024.0_f64).round() as u64,
                (1.2 * 1024.0 * 1024.0 * 1024.0_f64).round() as u64
            ))
        );
        assert_eq!(detect_bytes("12MB of 40MB"), Some((12_000_000, 40_000_000)));
        assert_eq!(detect_bytes("512 B / 2 kB"), Some((512, 2000)));
        assert_eq!(detect_bytes("1KiB/4KiB"), Some((1024, 4096)));
        // pip (shared unit)
        assert_eq!(
            detect_bytes("   ━━━━━━━━━━━━━━━━━━━━╸━━━━━━━━━ 12.3/40.5 MB 5.1 MB/s eta 0:00:06"),
            Some((12_300_000, 40_500_000))
        );
        // docker pull
        assert_eq!(
            detect_bytes("a1b2c3d4e5f6: Downloading [=====>       ]  12.3MB/40.5MB"),
            Some((12_300_000, 40_500_000))
        );
        // a speed is not a total
        assert_eq!(detect_bytes("5.1 MB/s"), None);
        assert_eq!(detect_bytes("12 MB / 0 MB"), None);
    }

    #[test]
    fn bytes_win_over_percent_and_count() {
        assert_eq!(
            d("45% 12MB of 40MB [3/9]"),
            Some(Progress::bytes(12_000_000, Some(40_000_000)))
        );
        assert_eq!(d("45% [3/9]"), Some(Progress::fraction(0.45)));
        // ffmpeg: no total, nothing detected
        assert_eq!(
            d("frame=  100 fps= 25 q=28.0 size=     512kB time=00:00:04.00 bitrate=1048.6kbits/s speed=1.0x"),
            None
        );
    }

    #[test]
    fn ignores_lines_only_when_no_line_can_hold_progress() {
        use crate::Interpreter;
        let d = ProgressDetector::new();
        assert!(d.ignores_lines("1\n2\r\n3"));
        assert!(d.ignores_lines(""));
        for marked in ["1\n2%\n3", "a/b", "1 of 2", "1 OF 2", "\x1b[0m"] {
            assert!(!d.ignores_lines(marked), "{marked:?}");
        }
        // Without byte counts, an `o` is nothing to it.
        assert!(ProgressDetector::new()
            .bytes(false)
            .ignores_lines("foo\nbar"));
        assert!(!ProgressDetector::new().ignores_lines("foo\nbar"));
        // And a chain ignores what all of its members ignore.
        let mut chain = crate::interpret::Chain::new();
        chain.push(Box::new(ProgressDetector::new().bytes(false)));
        assert!(chain.ignores_lines("foo"));
        chain.push(Box::new(ProgressDetector::new()));
        assert!(!chain.ignores_lines("foo"));
    }

    #[test]
    fn the_pre_scan_rejects_only_lines_without_markers() {
        assert_eq!(markers(b"4999999"), 0);
        assert_eq!(markers(b"compiling foo v1.0"), 0);
        assert_eq!(markers(b"12%"), PERCENT);
        assert_eq!(markers(b"a/b"), SLASH);
        assert_eq!(markers(b"3 OF 4"), OF);
        assert_eq!(markers(b"3 oF 4"), OF);
        assert_eq!(markers(b"o"), 0, "a trailing `o` is not `of`");
        assert_eq!(markers(b"1% \x1b[0m 2/3"), PERCENT | ESC);
        let d = ProgressDetector::new();
        assert_eq!(d.detect("4999999"), None);
        assert_eq!(
            d.detect("12 MB OF 40 MB"),
            Some(Progress::bytes(12_000_000, Some(40_000_000)))
        );
        // Escapes split a marker: found after stripping.
        assert_eq!(
            d.detect("3 o\x1b[0mf 4 kB"),
            Some(Progress::bytes(3000, Some(4000)))
        );
        assert_eq!(d.detect("42\x1b[1m%"), Some(Progress::fraction(0.42)));
        // Without stripping, markers after an escape still count.
        let raw = ProgressDetector::new().strip_ansi(false);
        assert_eq!(raw.detect("\x1b[1m 50%"), Some(Progress::fraction(0.5)));
        assert_eq!(ProgressDetector::new().percent(false).detect("50%"), None);
    }

    /// The pre-scan never changes a verdict: the detector agrees with the
    /// regexes run on every line (ANSI stripped first).
    mod pre_scan {
        use super::super::*;
        use proptest::prelude::*;

        fn by_regex(text: &str) -> Option<Progress> {
            let text = strip_ansi(text);
            let all = |re: &Regex| re.is_match(&text);
            if all(bytes_re()) {
                if let Some(p) = bytes_re().captures_iter(&text).find_map(|c| {
                    let total_unit = unit_bytes(c.get(4)?.as_str())?;
                    let done_unit = match c.get(2) {
                        Some(u) => unit_bytes(u.as_str())?,
                        None => total_unit,
                    };
                    let done = number(c.get(1)?.as_str())? * done_unit;
                    let total = number(c.get(3)?.as_str())? * total_unit;
                    (total > 0.0)
                        .then(|| Progress::bytes(done.round() as u64, Some(total.round() as u64)))
                }) {
                    return Some(p);
                }
            }
            if let Some(v) = percent_re()
                .captures_iter(&text)
                .filter_map(|c| number(c.get(1)?.as_str()))
                .find(|v| (0.0..=100.0).contains(v))
            {
                return Some(Progress::fraction((v / 100.0) as f32));
            }
            count_re().captures_iter(&text).find_map(|c| {
                let done: u64 = c.get(1)?.as_str().parse().ok()?;
                let total: u64 = c.get(2)?.as_str().parse().ok()?;
                (total > 0 && done <= total).then(|| Progress::count(done, total))
            })
        }

        /// Lines made of the pieces progress reports are made of (and of
        /// what looks like them), so matches are common.
        fn line() -> impl Strategy<Value = String> {
            let piece = prop_oneof![
                "[0-9]{1,4}",
                "[0-9]{1,3}\\.[0-9]",
                Just("%".to_string()),
                Just("/".to_string()),
                Just(" / ".to_string()),
                Just(" of ".to_string()),
                Just(" OF ".to_string()),
                Just(" oF ".to_string()),
                Just("o".to_string()),
                Just("f".to_string()),
                Just("\x1b[1m".to_string()),
                Just("\x1b[0m".to_string()),
                "(k|M|G|Ki|Mi)?[bB]",
                "[ a-z:\\[\\]]{1,3}",
                // Whole reports: `12 MiB of 40 MiB`, `3/4`, `OF`, escapes.
                "[0-9]{1,3} ?(kB|MiB|B)? ?(/| of | OF | Of |o\x1b\\[0mf)[0-9]{1,3} ?(kB|MiB|GB|B)?",
            ];
            prop::collection::vec(piece, 0..8).prop_map(|v| v.concat())
        }

        proptest! {
            #[test]
            fn agrees_with_the_regexes(text in line()) {
                prop_assert_eq!(ProgressDetector::new().detect(&text), by_regex(&text));
            }
        }
    }

    #[test]
    fn ansi_and_change_only() {
        let mut det = ProgressDetector::new();
        assert_eq!(
            det.detect_change("\x1b[1m\x1b[36m    Building\x1b[0m [=>   ] 1/3"),
            Some(Progress::count(1, 3))
        );
        assert_eq!(det.detect_change("    Building [=>   ] 1/3: foo"), None);
        assert_eq!(
            det.detect_change("    Building [==>  ] 2/3"),
            Some(Progress::count(2, 3))
        );
        assert_eq!(
            ProgressDetector::new()
                .strip_ansi(false)
                .detect("\x1b[1m2/3"),
            None
        );
    }
}
