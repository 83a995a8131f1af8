//! Cancellation, timeouts, drain, shutdown: the whole process tree goes.
#![cfg(unix)]

mod common;

use std::time::Duration;

use common::*;
use execra::{Command, Error, Event, FailureReason, JobId, JobState, Outcome, Runtime};

/// Spawn a shell that starts a grandchild `sleep` and reports both pids.
fn tree_cmd() -> Command {
    Command::sh("sleep 300 & echo child=$!; echo shell=$$; wait")
}

async fn pids(h: &execra::JobHandle) -> Vec<i32> {
    let mut s = h.subscribe();
    let mut pids = Vec::new();
    while let Some(ev) = s.next().await {
        if let Event::OutputAppended { line, .. } = ev {
            if let Some((_, p)) = line.split_once('=') {
                pids.push(p.parse().unwrap());
            }
            if pids.len() == 2 {
                break;
            }
        }
    }
    pids
}

#[tokio::test]
async fn cancel_kills_the_whole_group() {
    let rt = Runtime::new();
    let h = rt.spawn(tree_cmd()).unwrap();
    let pids = pids(&h).await;
    assert!(pids.iter().all(|p| alive(*p)));
    rt.cancel(h.id()).unwrap();
    let evs_stream = h.subscribe();
    let o = h.await;
    assert!(matches!(o, Outcome::Cancelled { .. }), "{o:?}");
    let evs = collect(evs_stream).await;
    let k = kinds(&evs);
    assert!(k.contains(&"cancelled"));
    assert_eq!(k.last(), Some(&"finalized"));
    assert!(
        eventually(|| pids.iter().all(|p| !alive(*p))).await,
        "survivors: {pids:?}"
    );
}

#[tokio::test]
async fn term_ignored_leads_to_kill_after_grace() {
    let rt = Runtime::builder()
        .default_grace_period(Duration::from_millis(300))
        .build()
        .unwrap();
    let h = rt
        .spawn(Command::sh(
            "trap '' TERM; echo ready; while :; do sleep 0.05; done",
        ))
        .unwrap();
    let mut s = h.subscribe();
    while let Some(ev) = s.next().await {
        if matches!(ev, Event::OutputAppended { .. }) {
            break;
        }
    }
    h.cancel().unwrap();
    let o = h.await;
    assert!(matches!(o, Outcome::Cancelled { .. }));
}

#[tokio::test]
async fn timeout_uses_the_same_path_and_kills_the_tree() {
    let rt = Runtime::new();
    let h = rt
        .spawn(tree_cmd().timeout(Duration::from_millis(500)))
        .unwrap();
    let pids = pids(&h).await;
    let o = h.await;
    assert_eq!(o.failure(), Some(&FailureReason::Timeout), "{o:?}");
    assert!(eventually(|| pids.iter().all(|p| !alive(*p))).await);
}

#[tokio::test]
async fn cancelled_queued_job_never_starts() {
    let rt = Runtime::builder().max_concurrent(1).build().unwrap();
    let blocker = rt.spawn(Command::new("sleep").arg("30")).unwrap();
    let dir = std::env::temp_dir().join(format!("execra-q-{}", JobId::new()));
    let marker = dir.display().to_string();
    let queued = rt.spawn(Command::new("mkdir").arg(&marker)).unwrap();
    assert_eq!(rt.job(queued.id()).unwrap().state, JobState::Queued);
    let s = queued.subscribe();
    rt.cancel(queued.id()).unwrap();
    assert!(matches!(queued.await, Outcome::Cancelled { .. }));
    let evs = collect(s).await;
    assert_eq!(kinds(&evs), ["job_created", "cancelled", "finalized"]);
    blocker.cancel().unwrap();
    blocker.await;
    assert!(!dir.exists(), "the queued job ran");
}

#[tokio::test]
async fn cancel_unknown_and_finished() {
    let rt = Runtime::new();
    assert!(matches!(rt.cancel(JobId::new()), Err(Error::UnknownJob(_))));
    let h = rt.spawn(Command::new("true")).unwrap();
    let id = h.id();
    assert!(h.await.is_success());
    rt.cancel(id).unwrap();
    assert!(rt.job(id).unwrap().outcome.unwrap().is_success());
}

#[tokio::test]
async fn descendant_holding_pipes_is_bounded_by_drain_timeout() {
    let rt = Runtime::builder()
        .drain_timeout(Duration::from_millis(300))
        .build()
        .unwrap();
    // The shell exits at once; its background child keeps stdout open.
    let h = rt
        .spawn(Command::sh("sleep 300 & echo bg=$!; exit 0"))
        .unwrap();
    let s = h.subscribe();
    let o = tokio::time::timeout(Duration::from_secs(20), h)
        .await
        .expect("job did not finalize after the drain timeout");
    assert!(o.is_success(), "{o:?}");
    let evs = collect(s).await;
    let bg: i32 = output_lines(&evs)[0]
        .strip_prefix("bg=")
        .unwrap()
        .parse()
        .unwrap();
    assert!(eventually(|| !alive(bg)).await, "leftover {bg} survived");
}

#[tokio::test]
async fn leftovers_without_pipes_are_killed_when_the_job_ends() {
    let rt = Runtime::new();
    let h = rt
        .spawn(Command::sh("sleep 300 >/dev/null 2>&1 & echo bg=$!"))
        .unwrap();
    let s = h.subscribe();
    assert!(h.await.is_success());
    let evs = collect(s).await;
    let bg: i32 = output_lines(&evs)[0][3..].parse().unwrap();
    assert!(eventually(|| !alive(bg)).await);
}

#[tokio::test]
async fn shutdown_cancels_everything_and_waits() {
    let rt = Runtime::builder().max_concurrent(2).build().unwrap();
    let mut all = rt.subscribe();
    let hs: Vec<_> = (0..4)
        .map(|_| rt.spawn(Command::new("sleep").arg("60")).unwrap())
        .collect();
    rt.shutdown().await.unwrap();
    for h in &hs {
        assert!(matches!(h.try_outcome(), Some(Outcome::Cancelled { .. })));
    }
    assert!(rt.running().is_empty());
    assert!(matches!(
        rt.spawn(Command::new("true")),
        Err(Error::ShutDown)
    ));
    let mut finalized = 0;
    while let Some(ev) = all.next().await {
        if ev.is_finalized() {
            finalized += 1;
        }
    }
    assert_eq!(finalized, 4);
}
