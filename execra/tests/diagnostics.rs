//! `tracing` diagnostics: a span per job and events for what an app needs to
//! see (stop requests, escalation to KILL, the verdict), never secrets.

mod common;

use std::time::Duration;

use common::Capture;
use execra::{Command, Event, Outcome, Runtime};

// Current-thread runtime: the job's driver runs on this thread, where the
// subscriber below is the default.
#[tokio::test]
async fn a_cancelled_job_that_ignores_term_shows_its_span_and_the_kill() {
    let (capture, _default) = Capture::install();

    let rt = Runtime::builder()
        .default_grace_period(Duration::from_millis(200))
        .build()
        .expect("build");
    let h = rt
        .spawn(
            Command::sh(r#"trap '' TERM; echo "ready $TOKEN"; sleep 30"#)
                .secret_env("TOKEN", "tr4cing-s3cret")
                .label("stubborn"),
        )
        .expect("spawn");
    let id = h.id();
    let mut events = h.subscribe();
    while let Some(ev) = events.next().await {
        if matches!(ev, Event::OutputAppended { .. }) {
            break;
        }
    }
    h.cancel().expect("cancel");
    assert!(matches!(h.await, Outcome::Cancelled { .. }));

    let log = capture.text();
    for expected in [
        format!("job{{id={id} "),
        "label=\"stubborn\"".to_string(),
        "spawned".to_string(),
        "stopping the job".to_string(),
        "grace period over; killing the process tree".to_string(),
        "job finalized".to_string(),
    ] {
        assert!(log.contains(&expected), "missing {expected:?} in:\n{log}");
    }
    assert!(
        !log.contains("tr4cing-s3cret"),
        "a secret reached the log:\n{log}"
    );
}
