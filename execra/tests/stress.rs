//! Many short jobs with random cancels and timeouts: every handle resolves
//! exactly once, no zombies, no leaked file descriptors.
#![cfg(target_os = "linux")]

use std::collections::HashSet;
use std::time::Duration;

use execra::{Command, Event, FailureReason, Outcome, Runtime};

fn open_fds() -> usize {
    std::fs::read_dir("/proc/self/fd")
        .map(|d| d.count())
        .unwrap_or(0)
}

/// Direct children of this process (any state, zombies included).
fn children() -> Vec<String> {
    let mut out = Vec::new();
    if let Ok(tasks) = std::fs::read_dir("/proc/self/task") {
        for t in tasks.flatten() {
            if let Ok(s) = std::fs::read_to_string(t.path().join("children")) {
                out.extend(s.split_whitespace().map(str::to_string));
            }
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_thousand_jobs_with_random_cancels_and_timeouts() {
    let jobs: u64 = std::env::var("EXECRA_STRESS_JOBS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10_000);
    let fds_before = open_fds();
    let rt = Runtime::builder()
        .max_concurrent(16)
        .max_finished_jobs(100)
        .default_grace_period(Duration::from_millis(200))
        .build()
        .unwrap();
    let mut all = rt.subscribe();
    let counter = tokio::spawn(async move {
        let mut finalized = HashSet::new();
        while let Some(ev) = all.next().await {
            if let Event::Finalized { job, .. } = ev {
                assert!(finalized.insert(job), "finalized twice: {job}");
            }
        }
        finalized.len()
    });

    let mut seed = 0x2545_F491_4F6C_DD1Du64;
    let mut rand = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    let mut handles = Vec::new();
    for _ in 0..jobs {
        let kind = rand() % 4;
        let cmd = match kind {
            0 => Command::new("true"),
            1 => Command::sh("echo out; echo err >&2"),
            2 => Command::new("sleep")
                .arg("10")
                .timeout(Duration::from_millis(rand() % 50)),
            // Never finishes by itself: always cancelled below.
            _ => Command::new("sleep").arg("10"),
        };
        let h = rt.spawn(cmd).unwrap();
        if kind == 3 || rand() % 3 == 0 {
            h.cancel().unwrap();
        }
        handles.push(h);
        // Keep the number of unresolved handles bounded.
        if handles.len() >= 256 {
            for h in handles.drain(..) {
                check(h.await);
            }
        }
    }
    for h in handles.drain(..) {
        check(h.await);
    }
    assert!(rt.running().is_empty());
    rt.shutdown().await.unwrap();
    let finalized = counter.await.unwrap();
    assert_eq!(finalized as u64, jobs);
    drop(rt);

    // Every child was reaped and every pipe closed.
    let mut settled = false;
    for _ in 0..200 {
        if children().is_empty() && open_fds() <= fds_before + 2 {
            settled = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert!(
        settled,
        "children left: {:?}; fds before {fds_before}, after {}",
        children(),
        open_fds()
    );
}

fn check(o: Outcome) {
    match o {
        Outcome::Succeeded { .. } | Outcome::Cancelled { .. } => {}
        Outcome::Failed {
            reason: FailureReason::Timeout,
            ..
        } => {}
        other => panic!("unexpected outcome {other:?}"),
    }
}
