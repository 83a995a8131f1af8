//! This workspace's `execra`.

use std::time::{Duration, Instant};

use execra::{Command, Event, EventRef, Runtime};

use crate::mem::Probe;
use crate::report::Report;
use crate::scenario::{self, ReadBy, Spec};

async fn warmup(rt: &Runtime) {
    let h = rt.spawn(Command::new("true")).expect("ours: spawn warm-up");
    assert!(h.await.is_success(), "ours: warm-up job failed");
}

pub async fn run(spec: &Spec) -> Report {
    let mut r = Report::default();
    match spec {
        Spec::Lines { n, on_main, read } => {
            let rt = Runtime::new();
            warmup(&rt).await;
            let probe = Probe::start();
            let t0 = Instant::now();
            let h = rt
                .spawn(Command::new("seq").arg(n.to_string()))
                .expect("ours: spawn seq");
            let mut events = h.subscribe();
            let read = *read;
            let consumer = async move {
                let (mut lines, mut skipped, mut finalized) = (0u64, 0u64, false);
                if read == ReadBy::Borrow {
                    // Batched consumption (one wake-up per batch of events),
                    // lines lent as borrowed text.
                    while events
                        .next_batch_with(4096, |ev| match ev {
                            EventRef::Output(_) => lines += 1,
                            EventRef::Other(Event::OutputSkipped { count, .. }) => skipped += count,
                            EventRef::Other(Event::Finalized { .. }) => finalized = true,
                            _ => {}
                        })
                        .await
                        > 0
                    {}
                } else if read == ReadBy::Batch {
                    // Batched consumption (one wake-up per batch of events).
                    let mut batch = Vec::with_capacity(1024);
                    while events.next_batch(&mut batch, 1024).await > 0 {
                        for ev in batch.drain(..) {
                            match ev {
                                Event::OutputAppended { .. } => lines += 1,
                                Event::OutputSkipped { count, .. } => skipped += count,
                                Event::Finalized { .. } => finalized = true,
                                _ => {}
                            }
                        }
                    }
                } else {
                    // The plain documented way.
                    while let Some(ev) = events.next().await {
                        match ev {
                            Event::OutputAppended { .. } => lines += 1,
                            Event::OutputSkipped { count, .. } => skipped += count,
                            Event::Finalized { .. } => finalized = true,
                            _ => {}
                        }
                    }
                }
                (lines, skipped, finalized)
            };
            let (outcome, (lines, skipped, finalized)) = if *on_main {
                let counted = consumer.await;
                (h.await, counted)
            } else {
                let consumer = tokio::spawn(consumer);
                let outcome = h.await;
                (outcome, consumer.await.expect("ours: consumer task"))
            };
            let secs = t0.elapsed().as_secs_f64();
            r.put("secs", secs)
                .put("delivered", lines)
                .put("skipped", skipped)
                .put("event_size_bytes", std::mem::size_of::<Event>())
                .put("finalized_seen", finalized)
                .put("success", outcome.is_success())
                .put("peak_growth_kib", probe.peak_growth_kib())
                .put("base_rss_kib", probe.base_kib())
                .put("peak_reset", probe.peak_reset());
        }
        Spec::BigLine { bytes } => {
            let rt = Runtime::new();
            warmup(&rt).await;
            let probe = Probe::start();
            let t0 = Instant::now();
            let h = rt
                .spawn(Command::sh(scenario::bigline_script(*bytes)))
                .expect("ours: spawn bigline");
            let mut events = h.subscribe();
            let consumer = tokio::spawn(async move {
                let (mut got, mut n, mut skipped) = (0u64, 0u64, 0u64);
                while let Some(ev) = events.next().await {
                    match ev {
                        Event::OutputAppended { line, .. } => {
                            got += line.len() as u64;
                            n += 1;
                        }
                        Event::OutputSkipped { count, .. } => skipped += count,
                        Event::Finalized { .. } => break,
                        _ => {}
                    }
                }
                (got, n, skipped)
            });
            let outcome = h.await;
            let (got, n, skipped) = consumer.await.expect("ours: consumer task");
            r.put("secs", t0.elapsed().as_secs_f64())
                .put("input_bytes", bytes)
                .put("bytes_delivered", got)
                .put("events", n)
                .put("skipped", skipped)
                .put("success", outcome.is_success())
                .put("peak_growth_kib", probe.peak_growth_kib())
                .put("base_rss_kib", probe.base_kib())
                .put("peak_reset", probe.peak_reset());
        }
        Spec::Finished {
            total,
            wave,
            checkpoints,
            max_concurrent,
        } => {
            // Default cap (1000) spelled out, so the figure states what it measures.
            let rt = Runtime::builder()
                .max_finished_jobs(1000)
                .max_concurrent(*max_concurrent)
                .build()
                .expect("ours: build runtime");
            warmup(&rt).await;
            let probe = Probe::start();
            let t0 = Instant::now();
            let (mut done, mut failed) = (0usize, 0usize);
            while done < *total {
                let batch: Vec<_> = (0..*wave)
                    .map(|_| rt.spawn(Command::new("true")).expect("ours: spawn true"))
                    .collect();
                for h in batch {
                    if !h.await.is_success() {
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
                .put("jobs_in_memory", rt.recent(usize::MAX).len())
                .put("peak_growth_kib", probe.peak_growth_kib())
                .put("base_rss_kib", probe.base_kib())
                .put("peak_reset", probe.peak_reset());
        }
        Spec::Spawn { n, concurrent } => {
            let sp = Spawner::new(*concurrent).await;
            let probe = Probe::start();
            let (secs, failed) =
                scenario::timed(scenario::SPAWN_REPS, || sp.batch(*n, concurrent.is_some())).await;
            scenario::put_reps(&mut r, &secs);
            r.put("failed", failed)
                .put("peak_growth_kib", probe.peak_growth_kib())
                .put("base_rss_kib", probe.base_kib())
                .put("peak_reset", probe.peak_reset());
        }
        Spec::Redraw => {
            let rt = Runtime::new();
            warmup(&rt).await;
            let t0 = Instant::now();
            let h = rt
                .spawn(Command::sh(scenario::REDRAW_SCRIPT))
                .expect("ours: spawn redraw");
            let mut events = h.subscribe();
            let (mut before, mut redraws, mut after) = (0u64, 0u64, 0u64);
            let mut exited = false;
            let mut arrivals: Vec<Duration> = Vec::new();
            while let Some(ev) = events.next().await {
                match ev {
                    Event::OutputAppended { redraw, .. } if !exited => {
                        before += 1;
                        redraws += u64::from(redraw);
                        arrivals.push(t0.elapsed());
                    }
                    Event::OutputAppended { .. } => after += 1,
                    Event::Exited { .. } => exited = true,
                    Event::Finalized { .. } => break,
                    _ => {}
                }
            }
            h.await;
            scenario::put_arrivals(&mut r, before, redraws, &arrivals);
            r.put("after_exit", after);
        }
    }
    r
}

/// A runtime for the spawn scenario.
pub struct Spawner {
    rt: Runtime,
}

impl Spawner {
    /// `concurrent`: the runtime's `max_concurrent` (default: nproc).
    pub async fn new(concurrent: Option<usize>) -> Self {
        let mut b = Runtime::builder();
        if let Some(c) = concurrent {
            b = b.max_concurrent(c);
        }
        // Diagnostic: EXECRA_BENCH_CONTAINMENT=process-group measures the
        // fallback (no cgroup per job).
        if std::env::var("EXECRA_BENCH_CONTAINMENT").as_deref() == Ok("process-group") {
            b = b.containment(execra::Containment::ProcessGroup);
        }
        let rt = b.build().expect("ours: build runtime");
        warmup(&rt).await;
        Spawner { rt }
    }

    /// `n` `true` jobs, all spawned then awaited (`all_at_once`) or one after
    /// another. Returns how many failed.
    pub async fn batch(&self, n: usize, all_at_once: bool) -> usize {
        let mut failed = 0usize;
        if all_at_once {
            let all: Vec<_> = (0..n)
                .map(|_| {
                    self.rt
                        .spawn(Command::new("true"))
                        .expect("ours: spawn true")
                })
                .collect();
            for h in all {
                if !h.await.is_success() {
                    failed += 1;
                }
            }
        } else {
            for _ in 0..n {
                let h = self
                    .rt
                    .spawn(Command::new("true"))
                    .expect("ours: spawn true");
                if !h.await.is_success() {
                    failed += 1;
                }
            }
        }
        failed
    }
}
