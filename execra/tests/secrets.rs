//! Secret values never leave the process: not through a spawn error, not
//! through output that splits a secret across two segments.

mod common;

use std::time::Duration;

use common::*;
use execra::{
    Command, Event, FailureReason, Outcome, Runtime, StdinMode, Stream, SECRET_PLACEHOLDER,
};

const SECRET: &str = "s3cr3t-value-42";

fn all_text(evs: &[Event]) -> String {
    serde_json::to_string(evs).expect("events serialize")
}

#[tokio::test]
async fn a_nul_byte_in_a_secret_names_the_variable_never_the_value() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = dir.path().join("h.sqlite");
    let rt = Runtime::builder().history(&db).build().expect("build");
    let h = rt
        // Letters outside hex digits, so no job id or timestamp can contain them.
        .spawn(Command::new("true").secret_env("TOKEN", "pqr\0xyzzy"))
        .expect("spawn");
    let id = h.id();
    let s = h.subscribe();
    let outcome = h.await;
    let error = match &outcome {
        Outcome::Failed {
            reason: FailureReason::SpawnFailed { error },
            ..
        } => error.clone(),
        other => panic!("expected a spawn failure, got {other:?}"),
    };
    assert!(error.contains("TOKEN"), "the variable is named: {error}");
    let evs = collect(s).await;
    rt.flush().await.expect("flush");
    let stored = execra::store::Store::open(&db).expect("open");
    let job = stored.load_job(id).expect("load").expect("stored");
    for shown in [
        error,
        all_text(&evs),
        serde_json::to_string(&job).expect("job serializes"),
        format!("{outcome:?}"),
    ] {
        assert!(
            !shown.contains("pqr") && !shown.contains("xyzzy"),
            "secret leaked: {shown}"
        );
    }
    // A non-secret value is shown, to help find the bad byte.
    let o = rt
        .spawn(Command::new("true").arg("x\0y"))
        .expect("spawn")
        .await;
    assert!(o.message().contains("argument 1"), "{}", o.message());
}

#[tokio::test]
async fn a_secret_split_by_an_idle_flush_is_never_shown_in_part() {
    let rt = Runtime::builder()
        .idle_flush(Duration::from_millis(20))
        .build()
        .expect("build");
    // The first half of the secret, then the line waits for stdin: the idle
    // flush shows the unfinished line provisionally. Then the rest.
    let h = rt
        .spawn(
            Command::sh(
                r#"printf 'key=%.6s' "$TOKEN"; read x; printf '%s end\n' "${TOKEN#??????}""#,
            )
            .secret_env("TOKEN", SECRET)
            .stdin(StdinMode::Interactive),
        )
        .expect("spawn");
    let mut s = h.subscribe();
    let mut seen = Vec::new();
    // Wait for the provisional view of the unfinished line.
    while let Some(ev) = s.next().await {
        let provisional = matches!(&ev, Event::OutputAppended { redraw: true, .. });
        seen.push(ev);
        if provisional {
            break;
        }
    }
    h.write_stdin("go\n").expect("stdin");
    while let Some(ev) = s.next().await {
        seen.push(ev);
    }
    assert!(h.await.is_success());
    let text = all_text(&seen);
    assert!(
        !text.contains("s3cr3t"),
        "a part of the secret leaked: {text}"
    );
    let redraws: Vec<_> = seen
        .iter()
        .filter_map(|e| match e {
            Event::OutputAppended {
                line, redraw: true, ..
            } => Some(line.as_str()),
            _ => None,
        })
        .collect();
    assert_eq!(
        redraws,
        ["key="],
        "the provisional view stops before the secret"
    );
    assert_eq!(
        output_lines(&seen),
        [format!("key={SECRET_PLACEHOLDER} end")]
    );
}

#[tokio::test]
async fn a_secret_cut_by_the_line_cap_is_masked_in_events_and_the_raw_log() {
    let dir = tempfile::tempdir().expect("tempdir");
    let rt = Runtime::builder()
        .max_line_length(64)
        .log_dir(dir.path())
        .build()
        .expect("build");
    // 60 bytes, then the secret: the 64-byte cap cuts it after "s3cr".
    let h = rt
        .spawn(Command::sh(r#"printf '%060d%s tail\n' 0 "$TOKEN""#).secret_env("TOKEN", SECRET))
        .expect("spawn");
    let id = h.id();
    let s = h.subscribe();
    assert!(h.await.is_success());
    let evs = collect(s).await;
    let text = all_text(&evs);
    assert!(
        !text.contains("s3cr"),
        "a part of the secret leaked: {text}"
    );
    let lines = output_lines(&evs);
    let zeros = "0".repeat(60);
    assert_eq!(
        lines.concat(),
        format!("{zeros}{SECRET_PLACEHOLDER} tail"),
        "{lines:?}"
    );
    assert_eq!(lines.len(), 2, "the cap still splits the line: {lines:?}");
    let logged = rt.output(id).expect("raw log");
    let joined: String = logged
        .iter()
        .filter(|l| l.stream == Stream::Stdout)
        .map(|l| l.text.as_str())
        .collect();
    assert_eq!(joined, format!("{zeros}{SECRET_PLACEHOLDER} tail"));
    let raw = std::fs::read_to_string(dir.path().join(format!("{id}.log"))).expect("log file");
    assert!(!raw.contains(SECRET), "{raw}");
    assert!(!raw.contains("s3cr3"), "{raw}");
}
