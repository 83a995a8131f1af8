//! The JSON wire format is a contract with frontends: pin it.

use std::path::PathBuf;
use std::time::{Duration, SystemTime};

use execra::{
    Action, CommandSpec, Event, ExitCode, FailureReason, Finding, JobId, Outcome, PhaseId,
    Progress, RelatedEntity, Severity, Stream,
};
use serde_json::{json, Value};
use uuid::Uuid;

fn t() -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_millis(1_700_000_000_123)
}

fn at() -> Value {
    json!({"secs_since_epoch": 1_700_000_000u64, "nanos_since_epoch": 123_000_000u32})
}

fn job() -> JobId {
    JobId(Uuid::from_u128(1))
}

const JOB: &str = "00000000-0000-0000-0000-000000000001";
const PHASE: &str = "00000000-0000-0000-0000-000000000002";

fn finding() -> Finding {
    Finding {
        severity: Severity::Warning,
        code: "c".into(),
        message: "m".into(),
        action: Some(Action::link("Docs", "https://example.invalid")),
        related: Some(RelatedEntity::File(PathBuf::from("a.txt"))),
        at: t(),
    }
}

fn finding_json() -> Value {
    json!({
        "severity": "warning", "code": "c", "message": "m",
        "action": {"kind": "link", "label": "Docs", "url": "https://example.invalid"},
        "related": {"kind": "file", "value": "a.txt"},
        "at": at()
    })
}

fn check(ev: Event, want: Value) {
    let got = serde_json::to_value(&ev).unwrap();
    assert_eq!(got, want, "{}", ev.kind());
    let back: Event = serde_json::from_value(got).unwrap();
    assert_eq!(back, ev);
    assert_eq!(want["kind"], ev.kind());
}

#[test]
fn every_event_variant() {
    let (job, phase) = (job(), PhaseId(Uuid::from_u128(2)));
    let spec = CommandSpec {
        hide_window: false,
        ..CommandSpec::new("echo")
    };
    check(
        Event::JobCreated {
            job,
            command: spec,
            at: t(),
        },
        json!({"kind": "job_created", "job": JOB, "at": at(), "command": {
            "program": "echo", "args": [], "env": [], "env_clear": false, "cwd": null,
            "label": null, "tags": [], "timeout": null, "hide_window": false}}),
    );
    check(
        Event::JobStarted {
            job,
            pid: 42,
            at: t(),
        },
        json!({"kind": "job_started", "job": JOB, "pid": 42, "at": at()}),
    );
    check(
        Event::PhaseEntered {
            job,
            phase,
            name: "dl".into(),
            label: Some("Download".into()),
            at: t(),
        },
        json!({"kind": "phase_entered", "job": JOB, "phase": PHASE, "name": "dl", "label": "Download", "at": at()}),
    );
    check(
        Event::PhaseUpdated {
            job,
            phase,
            label: "x".into(),
            at: t(),
        },
        json!({"kind": "phase_updated", "job": JOB, "phase": PHASE, "label": "x", "at": at()}),
    );
    check(
        Event::PhaseExited {
            job,
            phase,
            at: t(),
        },
        json!({"kind": "phase_exited", "job": JOB, "phase": PHASE, "at": at()}),
    );
    check(
        Event::ProgressUpdated {
            job,
            progress: Progress::fraction(0.5),
            at: t(),
        },
        json!({"kind": "progress_updated", "job": JOB, "at": at(),
               "progress": {"kind": "determinate", "unit": "fraction", "value": 0.5}}),
    );
    check(
        Event::LabelUpdated {
            job,
            label: "l".into(),
            at: t(),
        },
        json!({"kind": "label_updated", "job": JOB, "label": "l", "at": at()}),
    );
    check(
        Event::OutputAppended {
            job,
            stream: Stream::Stderr,
            line: "x".into(),
            redraw: false,
            at: t(),
        },
        json!({"kind": "output_appended", "job": JOB, "stream": "stderr", "line": "x", "at": at()}),
    );
    check(
        Event::OutputAppended {
            job,
            stream: Stream::Stdout,
            line: "5%".into(),
            redraw: true,
            at: t(),
        },
        json!({"kind": "output_appended", "job": JOB, "stream": "stdout", "line": "5%", "redraw": true, "at": at()}),
    );
    check(
        Event::OutputSkipped {
            job,
            count: 7,
            at: t(),
        },
        json!({"kind": "output_skipped", "job": JOB, "count": 7, "at": at()}),
    );
    check(
        Event::WarningDetected {
            job,
            code: None,
            message: "w".into(),
            at: t(),
        },
        json!({"kind": "warning_detected", "job": JOB, "code": null, "message": "w", "at": at()}),
    );
    check(
        Event::KnownErrorDetected {
            job,
            code: "k".into(),
            message: "m".into(),
            at: t(),
        },
        json!({"kind": "known_error_detected", "job": JOB, "code": "k", "message": "m", "at": at()}),
    );
    check(
        Event::FindingEmitted {
            job,
            finding: finding(),
            at: t(),
        },
        json!({"kind": "finding_emitted", "job": JOB, "finding": finding_json(), "at": at()}),
    );
    check(
        Event::PromptDetected {
            job,
            prompt: "p?".into(),
            at: t(),
        },
        json!({"kind": "prompt_detected", "job": JOB, "prompt": "p?", "at": at()}),
    );
    check(
        Event::InterpreterError {
            job,
            interpreter: "I".into(),
            error: "e".into(),
            line: Some("l".into()),
            at: t(),
        },
        json!({"kind": "interpreter_error", "job": JOB, "interpreter": "I", "error": "e", "line": "l", "at": at()}),
    );
    check(
        Event::Exited {
            job,
            code: ExitCode::from_signal(9),
            at: t(),
        },
        json!({"kind": "exited", "job": JOB, "code": {"code": null, "signal": 9}, "at": at()}),
    );
    check(
        Event::Finalized {
            job,
            outcome: Outcome::Cancelled { findings: vec![] },
            at: t(),
        },
        json!({"kind": "finalized", "job": JOB, "outcome": {"kind": "cancelled", "findings": []}, "at": at()}),
    );
    check(
        Event::Cancelled { job, at: t() },
        json!({"kind": "cancelled", "job": JOB, "at": at()}),
    );
}

#[test]
fn outcomes_and_reasons() {
    let cases = [
        (
            Outcome::Succeeded {
                summary: Some("ok".into()),
                findings: vec![finding()],
            },
            json!({"kind": "succeeded", "summary": "ok", "findings": [finding_json()]}),
        ),
        (
            Outcome::Failed {
                reason: FailureReason::NonZeroExit { code: 2 },
                summary: None,
                findings: vec![],
            },
            json!({"kind": "failed", "reason": {"kind": "non_zero_exit", "code": 2}, "summary": null, "findings": []}),
        ),
        (
            Outcome::Failed {
                reason: FailureReason::Signal { signal: 15 },
                summary: None,
                findings: vec![],
            },
            json!({"kind": "failed", "reason": {"kind": "signal", "signal": 15}, "summary": null, "findings": []}),
        ),
        (
            Outcome::Failed {
                reason: FailureReason::KnownError {
                    code: "c".into(),
                    message: "m".into(),
                },
                summary: None,
                findings: vec![],
            },
            json!({"kind": "failed", "reason": {"kind": "known_error", "code": "c", "message": "m"}, "summary": null, "findings": []}),
        ),
        (
            Outcome::Failed {
                reason: FailureReason::SpawnFailed { error: "e".into() },
                summary: None,
                findings: vec![],
            },
            json!({"kind": "failed", "reason": {"kind": "spawn_failed", "error": "e"}, "summary": null, "findings": []}),
        ),
        (
            Outcome::Failed {
                reason: FailureReason::Timeout,
                summary: None,
                findings: vec![],
            },
            json!({"kind": "failed", "reason": {"kind": "timeout"}, "summary": null, "findings": []}),
        ),
    ];
    for (o, want) in cases {
        assert_eq!(serde_json::to_value(&o).unwrap(), want);
        let back: Outcome = serde_json::from_value(want).unwrap();
        assert_eq!(back, o);
    }
    assert_eq!(
        Outcome::Failed {
            reason: FailureReason::Timeout,
            summary: None,
            findings: vec![]
        }
        .message(),
        "timed out"
    );
    assert_eq!(
        Outcome::Cancelled { findings: vec![] }.into_result(),
        Err("cancelled".into())
    );
}

#[test]
fn progress_shapes_and_constructors() {
    let cases = [
        (Progress::Unknown, json!({"kind": "unknown"})),
        (
            Progress::indeterminate("v"),
            json!({"kind": "indeterminate", "hint": "v"}),
        ),
        (
            Progress::count(3, 4),
            json!({"kind": "determinate", "unit": "count", "done": 3, "total": 4}),
        ),
        (
            Progress::bytes(5, None),
            json!({"kind": "determinate", "unit": "bytes", "done": 5, "total": null}),
        ),
        (
            Progress::bytes_mb(1.5, 3.0),
            json!({"kind": "determinate", "unit": "bytes", "done": 1_500_000, "total": 3_000_000}),
        ),
    ];
    for (p, want) in cases {
        assert_eq!(serde_json::to_value(&p).unwrap(), want);
    }
    assert_eq!(Progress::fraction(f32::NAN).as_fraction(), Some(0.0));
    assert_eq!(Progress::fraction(7.0).as_fraction(), Some(1.0));
    assert_eq!(Progress::fraction(-1.0).as_fraction(), Some(0.0));
    assert_eq!(Progress::count(1, 4).as_fraction(), Some(0.25));
    assert_eq!(Progress::count(1, 0).as_fraction(), None);
    assert_eq!(Progress::default(), Progress::Unknown);
}

#[test]
fn findings_actions_entities_states() {
    let f = Finding::recommendation("r", "m")
        .with_action(Action::command_in("Fix", "git", ["gc"], "/tmp"))
        .with_related(RelatedEntity::Package("git".into()));
    let v = serde_json::to_value(&f).unwrap();
    assert_eq!(v["severity"], "recommendation");
    assert_eq!(
        v["action"],
        json!({"kind": "command", "label": "Fix", "program": "git", "args": ["gc"], "cwd": "/tmp"})
    );
    assert_eq!(v["related"], json!({"kind": "package", "value": "git"}));
    assert_eq!(
        serde_json::to_value(Action::instruction("a", "b")).unwrap(),
        json!({"kind": "instruction", "label": "a", "text": "b"})
    );
    assert_eq!(
        serde_json::to_value(execra::JobState::Finalized).unwrap(),
        json!("finalized")
    );
    assert_eq!(
        serde_json::to_value(Stream::Stdout).unwrap(),
        json!("stdout")
    );
    assert_eq!(job().to_string(), JOB);
}
