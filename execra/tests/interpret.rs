#![cfg(feature = "interpret")]
//! Tests of the interpreter toolkit: rule tables, notes, fallback, redraws,
//! problem matchers, progress detectors, ANSI input and chains — directly and
//! end to end through real processes.

use std::time::Duration;

use execra::interpret::{
    render, strip_ansi, Chain, FallbackPolicy, ProblemMatcher, ProgressDetector, Rule, RuleAction,
    RuleInterpreter, CHAIN_PANIC_CODE,
};
use execra::{
    rules, Command, CommandSpec, Context, ExitCode, Finding, Interpreter, InterpreterEvent as IE,
    JobId, Line, Progress, Severity, Stream,
};

// ---- direct harness ---------------------------------------------------------

struct H<I: Interpreter> {
    i: I,
    spec: CommandSpec,
    job: JobId,
}

fn ctx(spec: &CommandSpec, job: JobId) -> Context<'_> {
    Context {
        job,
        command: spec,
        current_phase: None,
        phase_stack: &[],
        elapsed: Duration::ZERO,
    }
}

impl<I: Interpreter> H<I> {
    fn new(i: I) -> Self {
        H {
            i,
            spec: Command::new("test").spec().clone(),
            job: JobId::new(),
        }
    }
    fn line(&mut self, stream: Stream, text: &str) -> Vec<IE> {
        let line = Line::new(stream, text);
        norm(self.i.on_line(&ctx(&self.spec, self.job), &line))
    }
    fn out(&mut self, text: &str) -> Vec<IE> {
        self.line(Stream::Stdout, text)
    }
    fn err(&mut self, text: &str) -> Vec<IE> {
        self.line(Stream::Stderr, text)
    }
    fn redraw(&mut self, text: &str) -> Vec<IE> {
        let line = Line::new(Stream::Stdout, text);
        norm(self.i.on_redraw(&ctx(&self.spec, self.job), &line))
    }
    fn exit(&mut self, code: i32) -> Vec<IE> {
        self.exit_with(ExitCode::from_code(code))
    }
    fn exit_with(&mut self, exit: ExitCode) -> Vec<IE> {
        norm(self.i.on_exit(&ctx(&self.spec, self.job), &exit))
    }
}

fn progress(p: Progress) -> IE {
    IE::Progress { progress: p }
}

fn table() -> Vec<Rule> {
    rules![
        benign,                          r"^done\.?$";
        progress,    "removing $1",      r"^Removing (\S+)";
        enter_phase, "download", "DL $1", r"^Downloading '([^']+)'";
        enter_phase, "install", "Installing", r"^Installing";
        warning,     "x.held", "$1 held", r"'([^']+)' is held";
        known,       "x.hash", "bad hash", r"(?i)hash check failed";
        summary,     "Installed $1",      r"'([^']+)' was installed";
        byte_progress_mb,                 r"([\d.]+) MB / ([\d.]+) MB";
    ]
}

fn phases(name: &str) -> Option<(f32, f32)> {
    match name {
        "download" => Some((0.0, 0.8)),
        "install" => Some((0.8, 1.0)),
        _ => None,
    }
}

// ---- rule kinds ---------------------------------------------------------------

#[test]
fn each_rule_kind() {
    let mut h = H::new(RuleInterpreter::flat(table()));
    assert_eq!(h.out("done."), vec![]);
    assert_eq!(
        h.out("Removing cache"),
        vec![progress(Progress::indeterminate("removing cache"))]
    );
    assert_eq!(
        h.out("Downloading 'git'"),
        vec![IE::EnterPhase {
            name: "download".into(),
            label: Some("DL git".into())
        }]
    );
    assert_eq!(
        h.out("'vim' is held"),
        vec![IE::Warning {
            code: Some("x.held".into()),
            message: "vim held".into()
        }]
    );
    assert_eq!(
        h.out("HASH CHECK FAILED"),
        vec![IE::KnownError {
            code: "x.hash".into(),
            message: "bad hash".into()
        }]
    );
    assert_eq!(
        h.out("'git' was installed"),
        vec![IE::Summary {
            text: "Installed git".into()
        }]
    );
    assert_eq!(
        h.out("12.5 MB / 50 MB"),
        vec![progress(Progress::bytes_mb(12.5, 50.0))]
    );
    assert_eq!(h.out("unrelated"), vec![]);
    assert_eq!(h.exit(0), vec![]);
}

#[test]
fn first_match_wins() {
    let mut h = H::new(RuleInterpreter::flat(rules![
        benign, r"^'x' is held";
        warning, "held", "$1 held", r"'([^']+)' is held";
    ]));
    assert_eq!(h.out("'x' is held"), vec![]);
    assert_eq!(h.out("'y' is held").len(), 1);
}

#[test]
fn rule_builders_and_table_extension() {
    let r = Rule::new(
        r"^ok (\d+)$",
        RuleAction::Summary {
            template: "n=$1".into(),
        },
    );
    assert_eq!(r.pattern(), r"^ok (\d+)$");
    let mut h = H::new(RuleInterpreter::flat(vec![]).rule(r));
    assert_eq!(h.out("ok 7"), vec![IE::Summary { text: "n=7".into() }]);
    assert!(Rule::try_new("(", RuleAction::Benign).is_err());
    let empty: Vec<Rule> = rules![];
    assert!(empty.is_empty());
    // Patterns and templates may be `String`s built at run time.
    let pat = format!("^{}$", regex::escape("a.b"));
    let code = String::from("dyn.code");
    let t = rules![warning, code.clone(), "saw $0", pat; benign, pat.as_str();];
    assert_eq!(t.len(), 2);
    let mut h = H::new(RuleInterpreter::flat(t));
    assert_eq!(
        h.out("a.b"),
        vec![IE::Warning {
            code: Some(code),
            message: "saw a.b".into()
        }]
    );
    assert_eq!(h.out("axb"), vec![]);
}

#[test]
#[should_panic(expected = "(unclosed")]
fn invalid_regex_panics_at_construction_with_pattern() {
    let _ = rules![benign, r"(unclosed"];
}

#[test]
fn render_templates() {
    let re = regex::Regex::new(r"(a)(b)?(c)(d)(e)(f)(g)(h)(i)(j)").unwrap();
    let caps = re.captures("acdefghij").unwrap();
    assert_eq!(render("$1-$2-$3", &caps), "a--c");
    assert_eq!(render("$10!", &caps), "j!");
    assert_eq!(render("${1}0", &caps), "a0");
    assert_eq!(render("$$1 $x $", &caps), "$1 $x $");
    assert_eq!(render("$0", &caps), "acdefghij");
    assert_eq!(render("$99", &caps), "");
    assert_eq!(render("plain ünïcode", &caps), "plain ünïcode");
}

// ---- phases -------------------------------------------------------------------------

#[test]
fn phase_transitions_and_boundary_progress() {
    let mut h = H::new(RuleInterpreter::new(table(), phases));
    assert_eq!(
        h.out("Downloading 'git'"),
        vec![
            IE::EnterPhase {
                name: "download".into(),
                label: Some("DL git".into())
            },
            progress(Progress::fraction(0.0)),
        ]
    );
    // Byte progress scaled into 0.0..0.8.
    assert_eq!(
        h.out("50 MB / 100 MB"),
        vec![progress(Progress::fraction(0.4))]
    );
    // Same value again: not repeated.
    assert_eq!(h.out("50 MB / 100 MB"), vec![]);
    // A second download phase: exit first, then boundary 0.0 again.
    assert_eq!(
        h.out("Downloading 'vim'"),
        vec![
            IE::ExitPhase,
            IE::EnterPhase {
                name: "download".into(),
                label: Some("DL vim".into())
            },
            progress(Progress::fraction(0.0)),
        ]
    );
    assert_eq!(
        h.out("Installing"),
        vec![
            IE::ExitPhase,
            IE::EnterPhase {
                name: "install".into(),
                label: Some("Installing".into())
            },
            progress(Progress::fraction(0.8)),
        ]
    );
    assert_eq!(
        h.out("1 MB / 2 MB"),
        vec![progress(Progress::fraction(0.9))]
    );
}

#[test]
fn phase_without_range_reports_bytes() {
    let mut h = H::new(RuleInterpreter::new(table(), |_: &str| None));
    assert_eq!(h.out("Downloading 'git'").len(), 1);
    assert_eq!(
        h.out("1 MB / 2 MB"),
        vec![progress(Progress::bytes_mb(1.0, 2.0))]
    );
}

// ---- notes --------------------------------------------------------------------------

#[test]
fn notes_block_until_blank_line() {
    let mut h = H::new(RuleInterpreter::flat(table()).notes("Notes", "scoop.notes"));
    assert_eq!(h.out("  Notes  "), vec![]);
    assert_eq!(h.out("-----"), vec![]);
    assert_eq!(h.out("Run 'git config' once."), vec![]);
    // Lines in the block are not matched against rules.
    assert_eq!(h.out("'git' was installed"), vec![]);
    assert_eq!(
        h.out(""),
        vec![IE::Finding {
            finding: finding_info("scoop.notes", "Run 'git config' once.\n'git' was installed")
        }]
    );
    // After the block, rules apply again.
    assert_eq!(h.out("'git' was installed").len(), 1);
    assert_eq!(h.exit(0), vec![]);
}

#[test]
fn notes_block_cut_off_by_exit_is_flushed() {
    let mut h = H::new(RuleInterpreter::flat(vec![]).notes("Notes", "n"));
    h.out("Notes");
    h.out("first");
    h.out("----- not a separator here");
    let evs = h.exit(0);
    assert_eq!(
        evs,
        vec![IE::Finding {
            finding: finding_info("n", "first\n----- not a separator here")
        }]
    );
}

#[test]
fn empty_notes_block_is_dropped_and_trigger_restarts() {
    let mut h = H::new(RuleInterpreter::flat(vec![]).notes("Notes", "n"));
    h.out("Notes");
    assert_eq!(h.out(""), vec![]);
    h.out("Notes");
    h.out("a");
    let evs = h.out("Notes");
    assert_eq!(evs.len(), 1, "a new trigger ends the running block");
    h.out("b");
    assert_eq!(h.exit(1).len(), 1);
}

/// A finding event with the timestamp normalised (see [`norm`]).
fn finding_info(code: &str, msg: &str) -> Finding {
    let mut f = Finding::info(code, msg);
    f.at = std::time::UNIX_EPOCH;
    f
}

/// `Finding`s carry a timestamp; normalise it so events compare by content.
fn norm(evs: Vec<IE>) -> Vec<IE> {
    evs.into_iter()
        .map(|e| match e {
            IE::Finding { mut finding } => {
                finding.at = std::time::UNIX_EPOCH;
                IE::Finding { finding }
            }
            e => e,
        })
        .collect()
}

// ---- fallback -----------------------------------------------------------------------

#[test]
fn fallback_prefers_first_failed_line() {
    let mut h = H::new(RuleInterpreter::flat(table()).fallback(FallbackPolicy::default()));
    h.out("Connecting...");
    h.err("warning: something");
    h.out("Download FAILED: timeout");
    h.out("Extraction failed too");
    h.err("last words");
    assert_eq!(
        h.exit(2),
        vec![IE::KnownError {
            code: "command_error".into(),
            message: "Download FAILED: timeout".into()
        }]
    );
    assert_eq!(h.exit(2), vec![], "never fires twice");
}

#[test]
fn fallback_uses_last_stderr_line() {
    let mut h =
        H::new(RuleInterpreter::flat(table()).fallback(FallbackPolicy::default().code("x.err")));
    h.err("first problem");
    h.err("the real reason");
    h.err("   ");
    h.err("done");
    assert_eq!(
        h.exit(1),
        vec![IE::KnownError {
            code: "x.err".into(),
            message: "the real reason".into()
        }]
    );
}

#[test]
fn fallback_respects_policy_flags_and_exit_kinds() {
    let policy = FallbackPolicy {
        code: "c".into(),
        from_failed_line: false,
        from_stderr: true,
    };
    let mut h = H::new(RuleInterpreter::flat(vec![]).fallback(policy));
    h.out("it failed");
    h.err("stderr line");
    assert_eq!(
        h.exit(1),
        vec![IE::KnownError {
            code: "c".into(),
            message: "stderr line".into()
        }]
    );

    // Success: nothing.
    let mut h = H::new(RuleInterpreter::flat(vec![]).fallback(FallbackPolicy::default()));
    h.out("failed to do a thing");
    assert_eq!(h.exit(0), vec![]);

    // Killed by a signal: nothing (the signal is more informative).
    let mut h = H::new(RuleInterpreter::flat(vec![]).fallback(FallbackPolicy::default()));
    h.out("failed to do a thing");
    assert_eq!(h.exit_with(ExitCode::from_signal(9)), vec![]);

    // No candidate line: nothing.
    let mut h = H::new(RuleInterpreter::flat(vec![]).fallback(FallbackPolicy::default()));
    h.out("all good");
    assert_eq!(h.exit(3), vec![]);

    // Without .fallback(): nothing.
    let mut h = H::new(RuleInterpreter::flat(vec![]));
    h.err("failed");
    assert_eq!(h.exit(3), vec![]);
}

#[test]
fn rule_known_error_suppresses_fallback() {
    let mut h = H::new(RuleInterpreter::flat(table()).fallback(FallbackPolicy::default()));
    h.out("something failed");
    assert_eq!(h.out("hash check failed").len(), 1);
    assert_eq!(h.exit(1), vec![]);
}

#[test]
fn classified_lines_are_not_fallback_candidates() {
    let mut h = H::new(
        RuleInterpreter::flat(rules![warning, "w", "$0", r"^retry failed"])
            .fallback(FallbackPolicy::default()),
    );
    h.out("retry failed once");
    h.out("install failed");
    assert_eq!(
        h.exit(1),
        vec![IE::KnownError {
            code: "command_error".into(),
            message: "install failed".into()
        }]
    );
}

// ---- redraws ------------------------------------------------------------------------

#[test]
fn redraws_only_do_progress() {
    let mut h = H::new(RuleInterpreter::new(table(), phases).notes("Notes", "n"));
    // A phase/warning/known/summary/notes line seen as a redraw does nothing…
    assert_eq!(h.redraw("Downloading 'git'"), vec![]);
    assert_eq!(h.redraw("'x' is held"), vec![]);
    assert_eq!(h.redraw("hash check failed"), vec![]);
    assert_eq!(h.redraw("'git' was installed"), vec![]);
    assert_eq!(h.redraw("Notes"), vec![]);
    // …and acts once as the final line.
    assert_eq!(h.out("Downloading 'git'").len(), 2);
    // Progress rules run on redraws (scaled into the phase), deduplicated.
    assert_eq!(
        h.redraw("10 MB / 100 MB"),
        vec![progress(Progress::fraction(0.08))]
    );
    assert_eq!(h.redraw("10 MB / 100 MB"), vec![]);
    assert_eq!(
        h.redraw("20 MB / 100 MB"),
        vec![progress(Progress::fraction(0.16))]
    );
    assert_eq!(h.out("20 MB / 100 MB"), vec![]);
    assert_eq!(
        h.redraw("Removing x"),
        vec![progress(Progress::indeterminate("removing x"))]
    );
    // The redraw did not start a notes block.
    assert_eq!(h.out("'git' was installed").len(), 1);
}

#[test]
fn redraws_do_not_feed_the_fallback() {
    let mut h = H::new(RuleInterpreter::flat(vec![]).fallback(FallbackPolicy::default()));
    h.redraw("Continue? (failed once) [y/N] ");
    assert_eq!(h.exit(1), vec![]);
}

#[test]
fn detector_inside_rule_table_scaled_into_phase() {
    let mut h = H::new(RuleInterpreter::new(table(), phases).detector(ProgressDetector::new()));
    h.out("Installing");
    assert_eq!(h.redraw(" 50%"), vec![progress(Progress::fraction(0.9))]);
    assert_eq!(
        h.out("[2/2] linking"),
        vec![progress(Progress::fraction(1.0))]
    );
    let mut flat = H::new(RuleInterpreter::flat(vec![]).detector(ProgressDetector::new()));
    assert_eq!(flat.redraw("[2/4]"), vec![progress(Progress::count(2, 4))]);
}

// ---- ANSI ---------------------------------------------------------------------------

#[test]
fn coloured_input_matches_rules() {
    let mut h = H::new(RuleInterpreter::flat(table()));
    assert_eq!(
        h.out("\x1b[32m'git'\x1b[0m was \x1b[1minstalled\x1b[0m"),
        vec![IE::Summary {
            text: "Installed git".into()
        }]
    );
    let mut raw = H::new(RuleInterpreter::flat(table()).strip_ansi(false));
    assert_eq!(
        raw.out("\x1b[32m'git'\x1b[0m was \x1b[1minstalled\x1b[0m"),
        vec![]
    );
    assert_eq!(strip_ansi("\x1b[31mred\x1b[0m"), "red");
}

#[test]
fn detector_on_real_looking_redraws() {
    let mut h = H::new(ProgressDetector::new());
    let frames = [
        // curl -#
        "#####                                                     8.3%",
        "#####                                                     8.3%",
        "##########################                               45.0%",
        // wget
        "file.iso            67%[============>        ] 670.00M  50.2MB/s    eta 6s",
        // pip
        "   ━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━ 40.5/40.5 MB 5.1 MB/s eta 0:00:00",
        // cargo
        "\x1b[1m\x1b[36m    Building\x1b[0m [=======>                ] 120/300: serde, tokio",
        // ffmpeg, no total: nothing
        "frame=  240 fps= 60 q=28.0 size=    1024kB time=00:00:10.00 bitrate= 838.9kbits/s",
    ];
    let evs: Vec<IE> = frames.iter().flat_map(|f| h.redraw(f)).collect();
    assert_eq!(
        evs,
        vec![
            progress(Progress::fraction(0.083)),
            progress(Progress::fraction(0.45)),
            progress(Progress::fraction(0.67)),
            progress(Progress::bytes(40_500_000, Some(40_500_000))),
            progress(Progress::count(120, 300)),
        ]
    );
}

// ---- problem matchers ---------------------------------------------------------------

#[test]
fn matcher_as_interpreter_ignores_redraws() {
    let mut h = H::new(ProblemMatcher::gcc());
    assert_eq!(h.redraw("a.c:1:1: error: x"), vec![]);
    let evs = h.err("a.c:1:1: error: x");
    assert!(matches!(&evs[..], [IE::Finding { finding }] if finding.severity == Severity::Error));
}

#[test]
fn matcher_multi_line_loop() {
    let mut h = H::new(ProblemMatcher::eslint_stylish());
    let mut evs = Vec::new();
    for l in "src/a.js\n  1:1  error  One  r-one\n  2:2  warning  Two  r-two\n\nsrc/b.js\n  3:3  error  Three  r-three\n".lines() {
        evs.extend(h.out(l));
    }
    let codes: Vec<String> = evs
        .iter()
        .map(|e| match e {
            IE::Finding { finding } => finding.code.clone(),
            other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(codes, ["r-one", "r-two", "r-three"]);
}

// ---- chain --------------------------------------------------------------------------

struct Panicky {
    calls: usize,
}

impl Interpreter for Panicky {
    fn on_line(&mut self, _: &Context, line: &Line) -> Vec<IE> {
        self.calls += 1;
        if line.text.contains("boom") {
            panic!("boom in line");
        }
        vec![IE::Label {
            text: format!("panicky {}", self.calls),
        }]
    }
    fn on_exit(&mut self, _: &Context, _: &ExitCode) -> Vec<IE> {
        vec![IE::Label {
            text: "panicky exit".into(),
        }]
    }
    fn name(&self) -> &str {
        "Panicky"
    }
}

#[test]
fn chain_concatenates_in_order_and_isolates_panics() {
    let mut h = H::new(
        Chain::new()
            .with(Panicky { calls: 0 })
            .with(RuleInterpreter::flat(table()))
            .with(ProgressDetector::new()),
    );
    assert_eq!(
        h.i.name(),
        "Chain[Panicky, RuleInterpreter, ProgressDetector]"
    );
    assert_eq!(
        h.out("'git' was installed 50%"),
        vec![
            IE::Label {
                text: "panicky 1".into()
            },
            IE::Summary {
                text: "Installed git".into()
            },
            progress(Progress::fraction(0.5)),
        ]
    );
    let evs = h.out("boom 60%");
    assert_eq!(evs.len(), 2);
    assert!(
        matches!(&evs[0], IE::Warning { code: Some(c), message } if c == CHAIN_PANIC_CODE && message.contains("Panicky") && message.contains("boom in line"))
    );
    assert_eq!(evs[1], progress(Progress::fraction(0.6)));
    // Disabled for the rest of the job.
    assert_eq!(h.out("70%"), vec![progress(Progress::fraction(0.7))]);
    assert_eq!(h.exit(0), vec![]);
}

// ---- end to end ---------------------------------------------------------------------

/// End-to-end tests through real processes (`sh -c`).
#[cfg(unix)]
mod e2e {
    use super::*;
    use execra::{Event, FailureReason, Outcome, RelatedEntity, Runtime};

    async fn run(cmd: Command) -> (Vec<Event>, Outcome) {
        let rt = Runtime::new();
        let handle = rt.spawn(cmd).expect("spawn");
        let mut sub = handle.subscribe();
        let outcome = tokio::time::timeout(Duration::from_secs(30), handle)
            .await
            .expect("job finished in time");
        let mut events = Vec::new();
        while let Some(e) = sub.next().await {
            let done = e.is_finalized();
            events.push(e);
            if done {
                break;
            }
        }
        (events, outcome)
    }

    fn progresses(events: &[Event]) -> Vec<Progress> {
        events
            .iter()
            .filter_map(|e| match e {
                Event::ProgressUpdated { progress, .. } => Some(progress.clone()),
                _ => None,
            })
            .collect()
    }

    fn kinds(events: &[Event]) -> Vec<&'static str> {
        events
            .iter()
            .filter(|e| !e.is_output())
            .map(|e| e.kind())
            .collect()
    }

    #[tokio::test]
    async fn e2e_rule_table_phases_notes_and_summary() {
        let script = r#"printf "Downloading 'git'\n"
    printf '25 MB / 100 MB\r50 MB / 100 MB\r100 MB / 100 MB\n'
    printf "'vim' is held\n"
    printf 'Installing\n'
    printf "\033[32m'git'\033[0m was installed\n"
    printf 'Notes\n-----\nRun this once.\n'"#;
        let interp = RuleInterpreter::new(table(), phases).notes("Notes", "pkg.notes");
        let (events, outcome) = run(Command::sh(script).interpreter(interp)).await;
        assert_eq!(
            kinds(&events),
            [
                "job_created",
                "job_started",
                "phase_entered",
                "progress_updated",
                "progress_updated",
                "progress_updated",
                "progress_updated",
                "warning_detected",
                "phase_exited",
                "phase_entered",
                "progress_updated",
                "exited",
                "finding_emitted",
                "phase_exited",
                "finalized"
            ]
        );
        // Boundary 0.0, two redraws and the final line scaled into 0.0..0.8,
        // then the install boundary (0.8, reported although unchanged).
        assert_eq!(
            progresses(&events),
            [
                Progress::fraction(0.0),
                Progress::fraction(0.2),
                Progress::fraction(0.4),
                Progress::fraction(0.8),
                Progress::fraction(0.8),
            ]
        );
        match &outcome {
            Outcome::Succeeded { summary, findings } => {
                assert_eq!(summary.as_deref(), Some("Installed git"));
                assert_eq!(findings.len(), 1);
                assert_eq!(findings[0].code, "pkg.notes");
                assert_eq!(findings[0].message, "Run this once.");
            }
            other => panic!("{other:?}"),
        }
    }

    #[tokio::test]
    async fn e2e_rule_known_error_and_fallback() {
        let (events, outcome) = run(Command::sh("echo 'hash check failed' >&2; exit 3")
            .interpreter(RuleInterpreter::flat(table()).fallback(FallbackPolicy::default())))
        .await;
        assert_eq!(
            events
                .iter()
                .filter(|e| e.kind() == "known_error_detected")
                .count(),
            1
        );
        assert_eq!(
            outcome.failure(),
            Some(&FailureReason::KnownError {
                code: "x.hash".into(),
                message: "bad hash".into()
            })
        );

        let (_, outcome) = run(Command::sh(
            "echo working; echo 'fatal: repository not found' >&2; exit 128",
        )
        .interpreter(
            RuleInterpreter::flat(table()).fallback(FallbackPolicy::default().code("git.error")),
        ))
        .await;
        assert_eq!(
            outcome.failure(),
            Some(&FailureReason::KnownError {
                code: "git.error".into(),
                message: "fatal: repository not found".into()
            })
        );
    }

    #[tokio::test]
    async fn e2e_problem_matcher_findings() {
        let script = r#"printf 'src/main.c:12:5: error: use of undeclared identifier '"'"'foo'"'"'\n' >&2
    printf '    foo = 1;\n' >&2
    printf 'src/util.c:7:9: warning: unused variable '"'"'x'"'"' [-Wunused-variable]\n' >&2
    printf '1 error generated.\n' >&2
    exit 1"#;
        let (events, outcome) = run(Command::sh(script).interpreter(ProblemMatcher::gcc())).await;
        assert_eq!(
            events
                .iter()
                .filter(|e| e.kind() == "finding_emitted")
                .count(),
            2
        );
        let findings = outcome.findings();
        assert_eq!(findings.len(), 2);
        assert_eq!(findings[0].severity, Severity::Error);
        assert_eq!(
            findings[0].related,
            Some(RelatedEntity::Location {
                path: "src/main.c".into(),
                line: Some(12),
                column: Some(5),
                end_line: None,
                end_column: None
            })
        );
        assert_eq!(findings[1].code, "-Wunused-variable");
        assert_eq!(
            outcome.failure(),
            Some(&FailureReason::NonZeroExit { code: 1 })
        );
        // The location survives the wire format.
        let json = serde_json::to_string(&findings[0]).unwrap();
        assert!(json.contains(r#""kind":"location""#), "{json}");
        let back: Finding = serde_json::from_str(&json).unwrap();
        assert_eq!(back.related, findings[0].related);
    }

    #[tokio::test]
    async fn e2e_progress_detector_on_redraws() {
        let script = r#"printf 'Fetching  10%%\rFetching  10%%\rFetching  55%%\rFetching 100%%\n'
    printf '\033[1m[1/3]\033[0m a\n[2/3] b\n[3/3] c\n'"#;
        let (events, outcome) = run(Command::sh(script).interpreter(ProgressDetector::new())).await;
        assert!(outcome.is_success());
        assert_eq!(
            progresses(&events),
            [
                Progress::fraction(0.1),
                Progress::fraction(0.55),
                Progress::fraction(1.0),
                Progress::count(1, 3),
                Progress::count(2, 3),
                Progress::count(3, 3),
            ]
        );
        // Redraws were seen while the job ran.
        assert!(events
            .iter()
            .any(|e| matches!(e, Event::OutputAppended { redraw: true, .. })));
    }

    #[tokio::test]
    async fn e2e_chain_rules_and_matcher() {
        let script = r#"printf 'Compiling demo\n'
    printf 'src/lib.rs:3:1: warning: unused import: `std::fs`\n'
    printf 'src/main.rs:2:5: error[E0425]: cannot find value `x` in this scope\n'
    printf 'error: could not compile `demo`\n' >&2
    exit 101"#;
        let chain = Chain::new()
            .with(
                RuleInterpreter::flat(rules![
                    enter_phase,
                    "build",
                    "Building $1",
                    r"^Compiling (\S+)"
                ])
                .fallback(FallbackPolicy::default().code("cargo.error")),
            )
            .with(ProblemMatcher::rustc_short())
            .with(Panicky { calls: 0 });
        let (events, outcome) = run(Command::sh(script).interpreter(chain)).await;
        let findings = outcome.findings();
        assert_eq!(findings.len(), 2);
        assert_eq!(findings[1].code, "E0425");
        assert_eq!(
            outcome.failure(),
            Some(&FailureReason::KnownError {
                code: "cargo.error".into(),
                message: "error: could not compile `demo`".into()
            })
        );
        assert!(events.iter().any(
            |e| matches!(e, Event::PhaseEntered { label: Some(l), .. } if l == "Building demo")
        ));
        assert!(!events.iter().any(|e| e.kind() == "interpreter_error"));
    }

    #[tokio::test]
    async fn e2e_chain_panic_is_isolated() {
        let chain = Chain::new()
            .with(Panicky { calls: 0 })
            .with(ProgressDetector::new());
        let (events, outcome) =
            run(Command::sh("echo 'boom 10%'; echo '20%'").interpreter(chain)).await;
        assert!(outcome.is_success());
        assert!(events.iter().any(|e| matches!(e,
            Event::WarningDetected { code: Some(c), .. } if c == CHAIN_PANIC_CODE)));
        assert_eq!(
            progresses(&events),
            [Progress::fraction(0.1), Progress::fraction(0.2)]
        );
        assert!(!events.iter().any(|e| e.kind() == "interpreter_error"));
    }

    /// Quiet on most lines; `enter X` opens phase X, `where` labels the
    /// current phase, `boom` panics. Counts its calls.
    struct Marks(std::sync::Arc<std::sync::atomic::AtomicUsize>);

    impl Interpreter for Marks {
        fn on_line(&mut self, ctx: &Context, line: &Line) -> Vec<IE> {
            self.0.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            if let Some(name) = line.text.strip_prefix("enter ") {
                return vec![IE::EnterPhase {
                    name: name.into(),
                    label: None,
                }];
            }
            match line.text.as_str() {
                "where" => vec![IE::Label {
                    text: ctx
                        .current_phase
                        .map(|p| p.name.clone())
                        .unwrap_or_default(),
                }],
                "boom" => panic!("boom in line"),
                _ => Vec::new(),
            }
        }
        fn on_exit(&mut self, _: &Context, _: &ExitCode) -> Vec<IE> {
            Vec::new()
        }
        fn name(&self) -> &str {
            "Marks"
        }
    }

    /// Many lines in one write (one pipe read): the interpreter is called
    /// once per line, its events follow their line, the phase it opened is
    /// in the context of the next line, and a panic's error comes before
    /// the line it panicked on; the lines after it still arrive.
    #[tokio::test]
    async fn e2e_events_of_one_read_stay_in_line_order() {
        let calls = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let script = r"printf 'a\nb\nenter build\nwhere\nc\nd\nboom\ne\nf\n'";
        let (events, outcome) = run(Command::sh(script).interpreter(Marks(calls.clone()))).await;
        assert!(outcome.is_success());
        let seen: Vec<String> = events
            .iter()
            .filter_map(|e| match e {
                Event::OutputAppended { line, .. } => Some(format!("out {line}")),
                Event::PhaseEntered { name, .. } => Some(format!("phase {name}")),
                Event::LabelUpdated { label, .. } => Some(format!("label {label}")),
                Event::InterpreterError { line, error, .. } => {
                    assert!(error.contains("boom in line"), "{error}");
                    Some(format!("error on {}", line.as_deref().unwrap_or("?")))
                }
                _ => None,
            })
            .collect();
        assert_eq!(
            seen,
            [
                "out a",
                "out b",
                "out enter build",
                "phase build",
                "out where",
                "label build",
                "out c",
                "out d",
                "error on boom",
                "out boom",
                "out e",
                "out f",
            ]
        );
        // Disabled after the panic: `e` and `f` were not interpreted.
        assert_eq!(calls.load(std::sync::atomic::Ordering::SeqCst), 7);
    }
}
