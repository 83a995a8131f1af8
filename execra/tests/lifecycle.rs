//! Spawn, event order, verdicts, interpreters.

mod common;

use std::time::Duration;

use common::*;
use execra::{
    Command, Context, Event, ExitCode, FailureReason, Finding, Interpreter, InterpreterEvent,
    JobState, Line, Outcome, Progress, Runtime,
};

#[tokio::test]
async fn echo_succeeds_with_ordered_events() {
    let rt = Runtime::new();
    let h = rt
        .spawn(Command::new("echo").arg("hello").label("greet"))
        .unwrap();
    let evs = collect(h.subscribe()).await;
    let outcome = h.await;
    assert!(outcome.is_success(), "{outcome:?}");
    assert_eq!(
        kinds(&evs),
        [
            "job_created",
            "job_started",
            "output_appended",
            "exited",
            "finalized"
        ]
    );
    assert_eq!(output_lines(&evs), ["hello"]);
    let job = rt.recent(1).pop().unwrap();
    assert_eq!(job.state, JobState::Finalized);
    assert_eq!(job.label.as_deref(), Some("greet"));
    assert_eq!(job.exit, Some(ExitCode::from_code(0)));
}

#[tokio::test]
async fn nonzero_exit_and_signal_verdicts() {
    let rt = Runtime::new();
    let o = rt.spawn(Command::sh("exit 3")).unwrap().await;
    assert_eq!(
        o.failure(),
        Some(&FailureReason::NonZeroExit { code: 3 }),
        "{o:?}"
    );
    let o = rt.spawn(Command::sh("kill -9 $$")).unwrap().await;
    assert_eq!(o.failure(), Some(&FailureReason::Signal { signal: 9 }));
}

#[tokio::test]
async fn spawn_failures_are_outcomes_not_panics() {
    let rt = Runtime::new();
    let cases = [
        Command::new("/definitely/not/a/program"),
        Command::new("/etc/hostname"),
        Command::new("true").cwd("/no/such/dir"),
        Command::new("echo").arg("a\0b"),
        Command::new("echo").env("K", "v\0"),
        Command::new(""),
    ];
    for cmd in cases {
        let h = rt.spawn(cmd).unwrap();
        let evs = collect(h.subscribe()).await;
        let o = h.await;
        match &o {
            Outcome::Failed {
                reason: FailureReason::SpawnFailed { error },
                ..
            } => assert!(!error.is_empty()),
            other => panic!("expected SpawnFailed, got {other:?}"),
        }
        assert_eq!(kinds(&evs), ["job_created", "finalized"]);
    }
}

#[tokio::test]
async fn stdout_and_stderr_and_invalid_utf8() {
    let rt = Runtime::new();
    let h = rt
        .spawn(Command::sh(r"printf 'a\377b\n'; printf 'err\n' >&2"))
        .unwrap();
    let evs = collect(h.subscribe()).await;
    assert!(h.await.is_success());
    let mut got: Vec<(String, &str)> = evs
        .iter()
        .filter_map(|e| match e {
            Event::OutputAppended { line, stream, .. } => Some((line.clone(), stream.as_str())),
            _ => None,
        })
        .collect();
    got.sort();
    assert_eq!(
        got,
        [
            ("a\u{FFFD}b".to_string(), "stdout"),
            ("err".to_string(), "stderr")
        ]
    );
}

struct Phases;
impl Interpreter for Phases {
    fn on_line(&mut self, _: &Context, line: &Line) -> Vec<InterpreterEvent> {
        match line.text.as_str() {
            "enter" => vec![InterpreterEvent::EnterPhase {
                name: "work".into(),
                label: Some("Working".into()),
            }],
            "exit" => vec![InterpreterEvent::ExitPhase],
            "update" => vec![InterpreterEvent::UpdatePhase {
                label: "Still working".into(),
            }],
            "nan" => vec![InterpreterEvent::Progress {
                progress: Progress::Determinate(execra::ProgressMetric::Fraction {
                    value: f32::NAN,
                }),
            }],
            "inf" => vec![InterpreterEvent::Progress {
                progress: Progress::fraction(f32::INFINITY),
            }],
            "finding" => vec![InterpreterEvent::Finding {
                finding: Finding::warning("w.code", "careful"),
            }],
            "known" => vec![InterpreterEvent::KnownError {
                code: "k".into(),
                message: "known failure".into(),
            }],
            "panic" => panic!("boom"),
            _ => vec![],
        }
    }
    fn on_exit(&mut self, _: &Context, _: &ExitCode) -> Vec<InterpreterEvent> {
        vec![InterpreterEvent::Summary {
            text: "all done".into(),
        }]
    }
}

#[tokio::test]
async fn interpreter_events_phases_and_bad_requests() {
    let rt = Runtime::new();
    let h = rt
        .spawn(
            Command::sh("printf 'exit\\nupdate\\nenter\\nupdate\\nnan\\ninf\\nfinding\\n'")
                .interpreter(Phases),
        )
        .unwrap();
    let evs = collect(h.subscribe()).await;
    let o = h.await;
    let k = kinds(&evs);
    // ExitPhase and UpdatePhase with no open phase → interpreter errors.
    assert_eq!(k.iter().filter(|k| **k == "interpreter_error").count(), 2);
    assert!(k.contains(&"phase_entered") && k.contains(&"phase_updated"));
    // The phase still open at exit is closed after `exited`, before `finalized`.
    let exited = k.iter().position(|k| *k == "exited").unwrap();
    let closed = k.iter().rposition(|k| *k == "phase_exited").unwrap();
    assert!(closed > exited && k.last() == Some(&"finalized"));
    let fractions: Vec<f32> = evs
        .iter()
        .filter_map(|e| match e {
            Event::ProgressUpdated { progress, .. } => progress.as_fraction(),
            _ => None,
        })
        .collect();
    assert_eq!(fractions, [0.0, 1.0]);
    match o {
        Outcome::Succeeded { summary, findings } => {
            assert_eq!(summary.as_deref(), Some("all done"));
            assert_eq!(findings.len(), 1);
        }
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn known_error_classifies_failure_but_not_success() {
    let rt = Runtime::new();
    let o = rt
        .spawn(Command::sh("echo known; exit 1").interpreter(Phases))
        .unwrap()
        .await;
    assert_eq!(
        o.failure(),
        Some(&FailureReason::KnownError {
            code: "k".into(),
            message: "known failure".into()
        })
    );
    let o = rt
        .spawn(Command::sh("echo known").interpreter(Phases))
        .unwrap()
        .await;
    assert!(o.is_success());
}

#[tokio::test]
async fn interpreter_panic_disables_it_but_output_continues() {
    let rt = Runtime::new();
    let h = rt
        .spawn(Command::sh("echo panic; echo enter; echo after").interpreter(Phases))
        .unwrap();
    let evs = collect(h.subscribe()).await;
    assert!(h.await.is_success());
    let errors: Vec<_> = evs
        .iter()
        .filter_map(|e| match e {
            Event::InterpreterError { error, line, .. } => Some((error.clone(), line.clone())),
            _ => None,
        })
        .collect();
    assert_eq!(errors.len(), 1);
    assert!(errors[0].0.contains("boom"));
    assert_eq!(errors[0].1.as_deref(), Some("panic"));
    assert_eq!(output_lines(&evs), ["panic", "enter", "after"]);
    assert!(!kinds(&evs).contains(&"phase_entered"));
}

struct PanicOnExit;
impl Interpreter for PanicOnExit {
    fn on_line(&mut self, _: &Context, _: &Line) -> Vec<InterpreterEvent> {
        vec![]
    }
    fn on_exit(&mut self, _: &Context, _: &ExitCode) -> Vec<InterpreterEvent> {
        panic!("exit boom")
    }
}

#[tokio::test]
async fn panic_in_on_exit_still_finalizes() {
    let rt = Runtime::new();
    let h = rt
        .spawn(Command::sh("exit 2").interpreter(PanicOnExit))
        .unwrap();
    let evs = collect(h.subscribe()).await;
    let o = h.await;
    assert_eq!(o.failure(), Some(&FailureReason::NonZeroExit { code: 2 }));
    assert!(kinds(&evs).contains(&"interpreter_error"));
    assert_eq!(kinds(&evs).last(), Some(&"finalized"));
}

#[tokio::test]
async fn late_subscribers_replay_from_the_start() {
    let rt = Runtime::new();
    let h = rt.spawn(Command::sh("echo one; echo two")).unwrap();
    let id = h.id();
    let outcome = (&mut { h }).await;
    assert!(outcome.is_success());
    let evs = collect(rt.subscribe_job(id)).await;
    assert_eq!(kinds(&evs)[0], "job_created");
    assert_eq!(kinds(&evs).last(), Some(&"finalized"));
    assert_eq!(output_lines(&evs), ["one", "two"]);
}

#[tokio::test]
async fn max_concurrent_queues_the_rest() {
    let rt = Runtime::builder().max_concurrent(1).build().unwrap();
    let a = rt.spawn(Command::new("sleep").arg("5")).unwrap();
    let b = rt.spawn(Command::new("true")).unwrap();
    assert!(eventually(|| rt.job(a.id()).unwrap().state == JobState::Running).await);
    assert_eq!(rt.job(b.id()).unwrap().state, JobState::Queued);
    assert_eq!(rt.running().len(), 2);
    a.cancel().unwrap();
    assert!(matches!(a.await, Outcome::Cancelled { .. }));
    assert!(b.await.is_success());
}

#[tokio::test]
async fn finished_jobs_are_evicted_beyond_the_cap() {
    let rt = Runtime::builder().max_finished_jobs(3).build().unwrap();
    let mut ids = Vec::new();
    for _ in 0..6 {
        let h = rt.spawn(Command::new("true")).unwrap();
        ids.push(h.id());
        h.await;
    }
    assert_eq!(rt.recent(100).len(), 3);
    assert!(rt.job(ids[0]).is_none());
    assert!(rt.job(ids[5]).is_some());
    assert!(matches!(
        rt.cancel(ids[0]),
        Err(execra::Error::UnknownJob(_))
    ));
}

#[tokio::test]
async fn query_from_memory() {
    let rt = Runtime::new();
    rt.spawn(Command::new("true").tags(["a".to_string()]))
        .unwrap()
        .await;
    rt.spawn(Command::sh("exit 1").tags(["b".to_string()]))
        .unwrap()
        .await;
    let only_a = rt.jobs().with_tag("a").run(&rt).unwrap();
    assert_eq!(only_a.len(), 1);
    assert_eq!(rt.jobs().limit(1).run(&rt).unwrap().len(), 1);
    assert_eq!(
        rt.jobs()
            .with_state(JobState::Finalized)
            .run(&rt)
            .unwrap()
            .len(),
        2
    );
}

#[test]
fn new_runtime_needs_no_tokio_and_spawn_without_tokio_is_an_error() {
    let rt = Runtime::new();
    let err = rt.spawn(Command::new("true")).unwrap_err();
    assert!(err.to_string().contains("tokio"), "{err}");
}

#[tokio::test]
async fn timeout_finalizes_failed_timeout() {
    let rt = Runtime::new();
    let o = rt
        .spawn(
            Command::new("sleep")
                .arg("30")
                .timeout(Duration::from_millis(200)),
        )
        .unwrap()
        .await;
    assert_eq!(o.failure(), Some(&FailureReason::Timeout));
}

#[tokio::test]
async fn durations_too_large_to_represent_mean_never_not_a_panic() {
    let rt = Runtime::builder()
        .default_grace_period(Duration::MAX)
        .drain_timeout(Duration::MAX)
        .idle_flush(Duration::MAX)
        .build()
        .expect("build");
    let ok = rt
        .spawn(Command::sh("echo hi").timeout(Duration::MAX))
        .expect("spawn")
        .await;
    assert!(ok.is_success(), "{ok:?}");
    // Cancel works with an unrepresentable grace period (TERM is enough).
    let h = rt
        .spawn(Command::new("sleep").arg("30").timeout(Duration::MAX))
        .expect("spawn");
    let mut s = h.subscribe();
    while let Some(ev) = s.next().await {
        if matches!(ev, Event::JobStarted { .. }) {
            break;
        }
    }
    h.cancel().expect("cancel");
    assert!(matches!(h.await, Outcome::Cancelled { .. }));
}

#[test]
fn a_driver_dropped_before_it_first_ran_still_resolves_its_handle() {
    let rt = Runtime::new();
    let tokio_rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio");
    // Spawn, then shut the tokio runtime down before the driver task was
    // ever polled.
    let h = tokio_rt
        .block_on(async { rt.spawn(Command::new("sleep").arg("30")) })
        .expect("spawn");
    drop(tokio_rt);
    let other = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio");
    let outcome = other
        .block_on(async { tokio::time::timeout(Duration::from_secs(10), h).await })
        .expect("the handle resolves");
    assert!(
        outcome.message().contains("shut down"),
        "{}",
        outcome.message()
    );
    assert!(rt.running().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_waits_for_jobs_that_are_finishing() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = dir.path().join("h.sqlite");
    let rt = Runtime::builder().history(&db).build().expect("build");
    let mut bus = rt.subscribe();
    let mut ids = Vec::new();
    for i in 0..60 {
        // Short jobs: many are in the middle of finishing (terminal snapshot,
        // history barrier pending) when shutdown starts.
        let cmd = Command::sh(format!("exit {}", i % 2));
        ids.push(rt.spawn(cmd).expect("spawn").id());
    }
    // Let the first ones reach their finishing window.
    while rt.running().len() > 40 {
        tokio::task::yield_now().await;
    }
    rt.shutdown().await.expect("shutdown");
    let mut finalized = std::collections::HashSet::new();
    while let Some(ev) = bus.next().await {
        if let Event::Finalized { job, .. } = ev {
            assert!(finalized.insert(job), "finalized twice: {job}");
        }
    }
    for id in &ids {
        assert!(finalized.contains(id), "no finalized on the bus for {id}");
    }
    // Everything is durable once shutdown returned.
    let store = execra::store::Store::open(&db).expect("open");
    for id in &ids {
        let job = store.load_job(*id).expect("load").expect("stored");
        assert!(job.state.is_terminal() && job.outcome.is_some(), "{job:?}");
    }
}
