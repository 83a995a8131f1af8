//! `guest-js/bindings.ts` is what the code generates, and agrees with serde.
//!
//! Regenerate with `EXECRA_UPDATE_TS=1 cargo test -p execra --features tauri
//! --test ts_bindings`.
#![cfg(feature = "tauri")]

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use execra::tauri::{typescript_bindings, BatchConfig, Batcher, Message};
use execra::{
    Action, CommandSpec, Event, ExitCode, FailureReason, Finding, JobId, Outcome, PhaseId,
    Progress, RelatedEntity, Stream,
};

fn bindings_path() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("guest-js/bindings.ts")
}

#[test]
fn checked_in_bindings_are_up_to_date() {
    let generated = typescript_bindings();
    let path = bindings_path();
    if std::env::var("EXECRA_UPDATE_TS").is_ok_and(|v| v == "1") {
        std::fs::write(&path, &generated).expect("write bindings");
        return;
    }
    let current = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        current == generated,
        "{} is out of date; regenerate with \
         `EXECRA_UPDATE_TS=1 cargo test -p execra --features tauri --test ts_bindings`",
        path.display()
    );
}

#[test]
fn bindings_use_the_wire_conventions() {
    let ts = typescript_bindings();
    assert!(!ts.contains("bigint"), "integers must be `number`");
    for decl in [
        "export type JobId = string",
        "export type PhaseId = string",
        "export type SystemTime = { secs_since_epoch: number, nanos_since_epoch: number }",
        "export type Duration = { secs: number, nanos: number }",
        "export type Message = Event | OutputBatch",
    ] {
        assert!(ts.contains(decl), "missing `{decl}`");
    }
    assert!(
        ts.contains("\"location\""),
        "RelatedEntity has a location variant"
    );
}

/// Every tag value and field name serde writes for sample values is
/// declared in the bindings.
#[test]
fn every_serialized_key_and_tag_is_declared() {
    let ts = typescript_bindings();
    let job = JobId::new();
    let at = SystemTime::now();
    let finding = Finding::warning("w1", "careful")
        .with_action(Action::command("retry", "prog", ["a"]))
        .with_related(RelatedEntity::File("/tmp/x".into()));
    let mut spec = CommandSpec::new("prog");
    spec.timeout = Some(Duration::from_secs(3));
    spec.cwd = Some("/tmp".into());
    spec.env = vec![("K".into(), "V".into())];
    let outcomes = [
        Outcome::Succeeded {
            summary: Some("ok".into()),
            findings: vec![finding.clone()],
        },
        Outcome::Failed {
            reason: FailureReason::KnownError {
                code: "c".into(),
                message: "m".into(),
            },
            summary: None,
            findings: vec![],
        },
        Outcome::Failed {
            reason: FailureReason::NonZeroExit { code: 2 },
            summary: None,
            findings: vec![],
        },
        Outcome::Failed {
            reason: FailureReason::Signal { signal: 9 },
            summary: None,
            findings: vec![],
        },
        Outcome::Failed {
            reason: FailureReason::SpawnFailed { error: "e".into() },
            summary: None,
            findings: vec![],
        },
        Outcome::Failed {
            reason: FailureReason::Timeout,
            summary: None,
            findings: vec![],
        },
        Outcome::Cancelled { findings: vec![] },
    ];
    let mut events = vec![
        Event::JobCreated {
            job,
            command: spec,
            at,
        },
        Event::JobStarted { job, pid: 1, at },
        Event::PhaseEntered {
            job,
            phase: PhaseId::new(),
            name: "n".into(),
            label: Some("l".into()),
            at,
        },
        Event::PhaseUpdated {
            job,
            phase: PhaseId::new(),
            label: "l".into(),
            at,
        },
        Event::PhaseExited {
            job,
            phase: PhaseId::new(),
            at,
        },
        Event::LabelUpdated {
            job,
            label: "l".into(),
            at,
        },
        Event::OutputAppended {
            job,
            stream: Stream::Stderr,
            line: "x".into(),
            redraw: true,
            at,
        },
        Event::OutputSkipped { job, count: 3, at },
        Event::WarningDetected {
            job,
            code: None,
            message: "m".into(),
            at,
        },
        Event::KnownErrorDetected {
            job,
            code: "c".into(),
            message: "m".into(),
            at,
        },
        Event::FindingEmitted {
            job,
            finding: finding.clone(),
            at,
        },
        Event::PromptDetected {
            job,
            prompt: "p".into(),
            at,
        },
        Event::InterpreterError {
            job,
            interpreter: "i".into(),
            error: "e".into(),
            line: None,
            at,
        },
        Event::Exited {
            job,
            code: ExitCode::from_signal(9),
            at,
        },
        Event::Cancelled { job, at },
    ];
    for p in [
        Progress::Unknown,
        Progress::indeterminate("h"),
        Progress::fraction(0.5),
        Progress::count(1, 2),
        Progress::bytes(1, None),
    ] {
        events.push(Event::ProgressUpdated {
            job,
            progress: p,
            at,
        });
    }
    for outcome in outcomes {
        events.push(Event::Finalized { job, outcome, at });
    }
    let mut values: Vec<serde_json::Value> = events
        .iter()
        .map(|e| serde_json::to_value(e).expect("serialize"))
        .collect();
    for a in [
        Action::link("l", "https://example.org"),
        Action::instruction("l", "t"),
    ] {
        values.push(serde_json::to_value(a).expect("serialize"));
    }
    for r in [
        RelatedEntity::Package("p".into()),
        RelatedEntity::Url("u".into()),
        RelatedEntity::Other("o".into()),
        RelatedEntity::Location {
            path: "src/x.rs".into(),
            line: Some(3),
            column: Some(1),
            end_line: None,
            end_column: None,
        },
    ] {
        values.push(serde_json::to_value(r).expect("serialize"));
    }
    let mut batcher = Batcher::new(BatchConfig::default());
    let mut msgs: Vec<Message> = Vec::new();
    batcher.push(events[6].clone(), &mut msgs);
    batcher.flush_into(&mut msgs);
    values.push(serde_json::to_value(&msgs[0]).expect("serialize"));

    let mut checked = 0;
    for v in &values {
        check(&ts, v, &mut checked);
    }
    assert!(checked > 100, "checked {checked} keys");
}

fn check(ts: &str, v: &serde_json::Value, checked: &mut usize) {
    match v {
        serde_json::Value::Object(map) => {
            for (k, val) in map {
                assert!(
                    ts.contains(&format!("{k}:"))
                        || ts.contains(&format!("{k}?:"))
                        || ts.contains(&format!("\"{k}\":")),
                    "field `{k}` not declared"
                );
                if matches!(k.as_str(), "kind" | "unit") {
                    let tag = val.as_str().expect("tag is a string");
                    assert!(
                        ts.contains(&format!("\"{tag}\"")),
                        "tag `{tag}` not declared"
                    );
                }
                *checked += 1;
                check(ts, val, checked);
            }
        }
        serde_json::Value::Array(items) => {
            for i in items {
                check(ts, i, checked);
            }
        }
        _ => {}
    }
}
