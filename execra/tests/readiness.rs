//! Readiness: an interpreter reports that the job is up; `JobHandle::ready`
//! awaits it, and never outlives the job.

mod common;

use std::time::Duration;

use common::{collect, kinds};
use execra::{
    Command, Context, Event, ExitCode, Interpreter, InterpreterEvent, Line, Outcome, Runtime,
};

/// Ready when a line contains `listening on`.
struct Listening;

impl Interpreter for Listening {
    fn on_line(&mut self, _ctx: &Context, line: &Line) -> Vec<InterpreterEvent> {
        if line.text.contains("listening on") {
            vec![InterpreterEvent::Ready {
                message: Some(line.text.clone()),
            }]
        } else {
            Vec::new()
        }
    }
    fn on_exit(&mut self, _ctx: &Context, _exit: &ExitCode) -> Vec<InterpreterEvent> {
        Vec::new()
    }
}

const BOUND: Duration = Duration::from_secs(20);

#[tokio::test]
async fn a_server_that_becomes_ready_after_a_delay_is_awaited() {
    let rt = Runtime::new();
    let job = rt
        .spawn(
            Command::sh("echo starting; sleep 0.3; echo 'listening on :8080'; echo 'listening on :8080'; exec sleep 30")
                .interpreter(Listening),
        )
        .unwrap();
    let msg = tokio::time::timeout(BOUND, job.ready())
        .await
        .expect("ready() did not resolve")
        .expect("job ended before it was ready");
    assert_eq!(msg.as_deref(), Some("listening on :8080"));
    // Still running: readiness is not the end.
    assert!(job.try_outcome().is_none());
    job.cancel().unwrap();
    let evs = collect(job.subscribe()).await;
    let readies = kinds(&evs).iter().filter(|k| **k == "ready").count();
    assert_eq!(readies, 1, "ready is reported once: {:?}", kinds(&evs));
    // `ready` comes after the output line that caused it.
    let ready_at = evs.iter().position(|e| e.kind() == "ready").unwrap();
    let line_at = evs
        .iter()
        .position(|e| matches!(e, Event::OutputAppended { line, .. } if line.contains("listening")))
        .unwrap();
    assert!(line_at < ready_at);
    assert!(matches!(job.await, Outcome::Cancelled { .. }));
}

#[tokio::test]
async fn ready_after_the_job_ended_answers_from_the_log() {
    let rt = Runtime::new();
    let job = rt
        .spawn(Command::sh("echo 'listening on :1'").interpreter(Listening))
        .unwrap();
    // Wait for the end first.
    let evs = collect(job.subscribe()).await;
    assert!(matches!(evs.last(), Some(Event::Finalized { outcome, .. }) if outcome.is_success()));
    assert!(tokio::time::timeout(BOUND, job.ready())
        .await
        .unwrap()
        .is_ok());
}

#[tokio::test]
async fn a_job_that_ends_without_being_ready_does_not_hang_the_caller() {
    let rt = Runtime::new();
    let job = rt
        .spawn(Command::sh("echo booting; sleep 0.2; exit 3").interpreter(Listening))
        .unwrap();
    let err = tokio::time::timeout(BOUND, job.ready())
        .await
        .expect("ready() outlived the job")
        .expect_err("the job never printed 'listening on'");
    assert_eq!(
        err.outcome.failure(),
        Some(&execra::FailureReason::NonZeroExit { code: 3 })
    );
    assert!(err.to_string().contains("without becoming ready"), "{err}");
}

#[tokio::test]
async fn a_job_without_an_interpreter_is_never_ready() {
    let rt = Runtime::new();
    let job = rt.spawn(Command::sh("echo 'listening on :8080'")).unwrap();
    let err = tokio::time::timeout(BOUND, job.ready())
        .await
        .unwrap()
        .unwrap_err();
    assert!(err.outcome.is_success());
}

#[cfg(feature = "interpret")]
#[tokio::test]
async fn a_rules_ready_pattern_reports_readiness() {
    use execra::interpret::RuleInterpreter;
    use execra::rules;

    let rt = Runtime::new();
    let interp = RuleInterpreter::flat(rules![
        ready, "up on port $1", r"listening on :(\d+)";
    ]);
    let job = rt
        .spawn(
            Command::sh("sleep 0.2; echo 'listening on :8080'; exec sleep 30").interpreter(interp),
        )
        .unwrap();
    let msg = tokio::time::timeout(BOUND, job.ready())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(msg.as_deref(), Some("up on port 8080"));
    job.cancel().unwrap();
    job.await;
}
