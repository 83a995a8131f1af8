//! Baseline: plain `tokio::process` with `BufReader::lines()`.

use std::process::Stdio;
use std::sync::Arc;
use std::time::Instant;

use tokio::io::{AsyncBufReadExt, AsyncReadExt, BufReader};
use tokio::process::Command;
use tokio::sync::Semaphore;

use crate::mem::Probe;
use crate::report::Report;
use crate::scenario::{self, Spec};

fn sh(script: &str) -> Command {
    let mut c = Command::new("sh");
    c.arg("-c").arg(script);
    c
}

/// Counts the lines of `cmd`'s stdout, then waits for it.
async fn count_lines(mut cmd: Command) -> (u64, u64) {
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("raw: spawn");
    let stdout = child.stdout.take().expect("raw: stdout is piped");
    let mut lines = BufReader::new(stdout).lines();
    let (mut n, mut bytes) = (0u64, 0u64);
    while let Some(line) = lines.next_line().await.expect("raw: read stdout") {
        n += 1;
        bytes += line.len() as u64;
    }
    let status = child.wait().await.expect("raw: wait");
    assert!(status.success(), "raw: workload failed: {status}");
    (n, bytes)
}

/// One `true` the way a job runtime starts it: own process group, both
/// pipes, read to EOF, wait.
async fn run_true() -> bool {
    let mut child = Command::new("true")
        .process_group(0)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("raw: spawn true");
    let mut out = child.stdout.take().expect("raw: stdout is piped");
    let mut err = child.stderr.take().expect("raw: stderr is piped");
    let (mut a, mut b) = (Vec::new(), Vec::new());
    let (ra, rb) = tokio::join!(out.read_to_end(&mut a), err.read_to_end(&mut b));
    ra.expect("raw: read stdout");
    rb.expect("raw: read stderr");
    child.wait().await.expect("raw: wait").success()
}

pub async fn warmup() {
    run_true().await;
}

pub async fn run(spec: &Spec) -> Report {
    warmup().await;
    let mut r = Report::default();
    match spec {
        Spec::Lines { n, .. } => {
            let probe = Probe::start();
            let t0 = Instant::now();
            let (lines, _) = count_lines(seq(*n)).await;
            let secs = t0.elapsed().as_secs_f64();
            r.put("secs", secs)
                .put("delivered", lines)
                .put("skipped", 0)
                .put("peak_growth_kib", probe.peak_growth_kib())
                .put("base_rss_kib", probe.base_kib())
                .put("peak_reset", probe.peak_reset());
        }
        Spec::BigLine { bytes } => {
            let probe = Probe::start();
            let t0 = Instant::now();
            let (lines, got) = count_lines(sh(&scenario::bigline_script(*bytes))).await;
            r.put("secs", t0.elapsed().as_secs_f64())
                .put("input_bytes", bytes)
                .put("bytes_delivered", got)
                .put("events", lines)
                .put("peak_growth_kib", probe.peak_growth_kib())
                .put("base_rss_kib", probe.base_kib())
                .put("peak_reset", probe.peak_reset());
        }
        Spec::Finished {
            total,
            wave,
            checkpoints,
            ..
        } => {
            let probe = Probe::start();
            let t0 = Instant::now();
            let mut done = 0usize;
            let mut failed = 0usize;
            while done < *total {
                let batch: Vec<_> = (0..*wave).map(|_| tokio::spawn(run_true())).collect();
                for t in batch {
                    if !t.await.expect("raw: join") {
                        failed += 1;
                    }
                }
                done += wave;
                if checkpoints.contains(&done) {
                    r.put(&format!("rss_growth_kib_{done}"), probe.rss_growth_kib());
                }
            }
            r.put("secs", t0.elapsed().as_secs_f64())
                .put("failed", failed)
                .put("peak_growth_kib", probe.peak_growth_kib())
                .put("base_rss_kib", probe.base_kib())
                .put("peak_reset", probe.peak_reset());
        }
        Spec::Spawn { n, concurrent } => {
            let probe = Probe::start();
            let (secs, failed) =
                scenario::timed(scenario::SPAWN_REPS, || spawn_batch(*n, *concurrent, false)).await;
            scenario::put_reps(&mut r, &secs);
            r.put("failed", failed)
                .put("peak_growth_kib", probe.peak_growth_kib())
                .put("base_rss_kib", probe.base_kib())
                .put("peak_reset", probe.peak_reset());
        }
        Spec::Redraw => {
            let t0 = Instant::now();
            let mut child = sh(scenario::REDRAW_SCRIPT)
                .stdout(Stdio::piped())
                .spawn()
                .expect("raw: spawn redraw");
            let stdout = child.stdout.take().expect("raw: stdout is piped");
            let mut lines = BufReader::new(stdout).lines();
            let mut arrivals = Vec::new();
            while let Some(_line) = lines.next_line().await.expect("raw: read") {
                arrivals.push(t0.elapsed());
            }
            child.wait().await.expect("raw: wait");
            scenario::put_arrivals(&mut r, arrivals.len() as u64, 0, &arrivals);
        }
    }
    r
}

fn seq(n: u64) -> Command {
    let mut c = Command::new("seq");
    c.arg(n.to_string());
    c
}

/// `n` `true` jobs, one after another, or all at once with at most `limit`
/// running (a semaphore, like the runtimes' `max_concurrent`). One after
/// another, each job runs in the caller's task, or (`in_task`) in a task of
/// its own like a runtime's per-job driver. Returns how many failed.
pub async fn spawn_batch(n: usize, limit: Option<usize>, in_task: bool) -> usize {
    let mut failed = 0usize;
    if let Some(limit) = limit {
        let permits = Arc::new(Semaphore::new(limit));
        let tasks: Vec<_> = (0..n)
            .map(|_| {
                let permits = Arc::clone(&permits);
                tokio::spawn(async move {
                    let _p = permits.acquire_owned().await.expect("semaphore open");
                    run_true().await
                })
            })
            .collect();
        for t in tasks {
            if !t.await.expect("raw: join") {
                failed += 1;
            }
        }
    } else {
        for _ in 0..n {
            let ok = if in_task {
                tokio::spawn(run_true()).await.expect("raw: join")
            } else {
                run_true().await
            };
            if !ok {
                failed += 1;
            }
        }
    }
    failed
}
