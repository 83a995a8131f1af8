//! The inactivity timeout: no output for a while stops the job.

mod common;

use std::time::Duration;

use common::*;
use execra::{Command, Event, FailureReason, Outcome, Runtime};

const BOUND: Duration = Duration::from_secs(30);

#[tokio::test]
async fn a_silent_job_is_stopped_while_a_chatty_one_with_the_same_setting_survives() {
    let rt = Runtime::new();
    let idle = Duration::from_millis(1500);
    // Silent: prints once, then nothing.
    let silent = rt
        .spawn(Command::sh("echo start; exec sleep 60").idle_timeout(idle))
        .unwrap();
    // Chatty: a line every 100 ms for 3 s — twice the idle timeout in all.
    let chatty = rt
        .spawn(
            Command::sh("i=0; while [ $i -lt 30 ]; do echo $i; sleep 0.1; i=$((i+1)); done")
                .idle_timeout(idle),
        )
        .unwrap();
    let evs = collect(silent.subscribe()).await;
    let outcome = tokio::time::timeout(BOUND, silent).await.unwrap();
    assert_eq!(
        outcome.failure(),
        Some(&FailureReason::IdleTimeout { after_ms: 1500 }),
        "{outcome:?}"
    );
    assert!(
        outcome.message().contains("without output"),
        "{}",
        outcome.message()
    );
    // Stopped with a signal, like the wall-clock timeout.
    let exit = evs.iter().find_map(|e| match e {
        Event::Exited { code, .. } => Some(*code),
        _ => None,
    });
    assert_eq!(exit.and_then(|e| e.signal), Some(15), "{exit:?}");

    let outcome = tokio::time::timeout(BOUND, chatty).await.unwrap();
    assert!(outcome.is_success(), "{outcome:?}");
}

#[tokio::test]
async fn a_job_that_ignores_term_is_killed_after_the_grace_period() {
    let rt = Runtime::builder()
        .default_grace_period(Duration::from_millis(200))
        .build()
        .unwrap();
    let h = rt
        .spawn(
            Command::sh("trap '' TERM; echo armed; while :; do sleep 1; done")
                .idle_timeout(Duration::from_millis(300)),
        )
        .unwrap();
    let outcome = tokio::time::timeout(BOUND, h).await.unwrap();
    assert_eq!(
        outcome.failure(),
        Some(&FailureReason::IdleTimeout { after_ms: 300 })
    );
}

#[tokio::test]
async fn the_wall_clock_timeout_is_told_apart() {
    let rt = Runtime::new();
    let h = rt
        .spawn(
            Command::sh("while :; do echo tick; sleep 0.05; done")
                .idle_timeout(Duration::from_secs(10))
                .timeout(Duration::from_millis(400)),
        )
        .unwrap();
    let outcome = tokio::time::timeout(BOUND, h).await.unwrap();
    assert_eq!(outcome.failure(), Some(&FailureReason::Timeout));
}

#[tokio::test]
async fn a_zero_idle_timeout_is_rejected_clearly() {
    let rt = Runtime::new();
    let outcome = rt
        .spawn(Command::new("true").idle_timeout(Duration::ZERO))
        .unwrap()
        .await;
    match outcome {
        Outcome::Failed {
            reason: FailureReason::SpawnFailed { error },
            ..
        } => assert!(
            error.contains("idle timeout must be greater than zero"),
            "{error}"
        ),
        other => panic!("expected SpawnFailed, got {other:?}"),
    }
}

#[test]
fn the_reason_round_trips_on_the_wire() {
    let r = FailureReason::IdleTimeout { after_ms: 120_000 };
    let json = serde_json::to_string(&r).unwrap();
    assert_eq!(json, r#"{"kind":"idle_timeout","after_ms":120000}"#);
    assert_eq!(serde_json::from_str::<FailureReason>(&json).unwrap(), r);
    assert_eq!(
        r.message(),
        "stopped after 2m without output (idle timeout)"
    );
}
