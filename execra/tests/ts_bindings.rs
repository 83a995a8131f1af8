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

/// The region of `text` between `// ANCHOR: name` and `// ANCHOR_END: name`
/// (the marker lines excluded).
fn anchor(text: &str, name: &str) -> Option<String> {
    let start = format!("// ANCHOR: {name}");
    let end = format!("// ANCHOR_END: {name}");
    let mut out = Vec::new();
    let mut inside = false;
    for line in text.lines() {
        if line.trim() == start {
            inside = true;
        } else if line.trim() == end {
            return Some(out.join("\n"));
        } else if inside {
            out.push(line);
        }
    }
    None
}

/// Every code block of `TAURI.md` marked `<!-- snippet: PATH[#ANCHOR] -->`
/// is the example app's source, verbatim (the app itself is compiled and
/// driven by `bash .ci/e2e`).
#[test]
fn tauri_md_snippets_match_the_example() {
    let crate_dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    let repo = crate_dir.parent().expect("repository root");
    let guide = std::fs::read_to_string(crate_dir.join("TAURI.md")).expect("read TAURI.md");
    let lines: Vec<&str> = guide.lines().collect();
    let mut checked = 0;
    for (i, line) in lines.iter().enumerate() {
        let Some(spec) = line
            .strip_prefix("<!-- snippet: ")
            .and_then(|l| l.strip_suffix(" -->"))
        else {
            continue;
        };
        let fence = lines.get(i + 1).copied().unwrap_or_default();
        assert!(
            fence.starts_with("```"),
            "TAURI.md line {}: no code block after the marker",
            i + 2
        );
        let body: Vec<&str> = lines[i + 2..]
            .iter()
            .take_while(|l| !l.starts_with("```"))
            .copied()
            .collect();
        let block = body.join("\n");
        let (path, name) = match spec.split_once('#') {
            Some((p, n)) => (p, Some(n)),
            None => (spec, None),
        };
        let source = std::fs::read_to_string(repo.join(path))
            .unwrap_or_else(|e| panic!("TAURI.md cites {path}: {e}"));
        let want = match name {
            Some(n) => anchor(&source, n).unwrap_or_else(|| panic!("{path} has no anchor {n}")),
            None => source.trim_end().to_string(),
        };
        assert!(
            block == want,
            "TAURI.md's snippet of {spec} differs from the source:\n--- TAURI.md\n{block}\n--- {spec}\n{want}"
        );
        checked += 1;
    }
    assert!(checked >= 8, "only {checked} snippets found");
}
