//! The published `execra` 1.1.0 from crates.io, called through its public
//! API only.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::{Duration, Instant};

use execra_pub::{Command, Event, Runtime};
use tokio::sync::watch;

use crate::mem::Probe;
use crate::report::Report;
use crate::scenario::{self, Spec};

/// If `Finalized` itself is lost (lagged broadcast), stop waiting for it this
/// long after the handle resolved.
const FINALIZED_GRACE: Duration = Duration::from_secs(10);

async fn warmup(rt: &Runtime) {
    let h = rt.spawn(Command::new("true")).expect("pub: spawn warm-up");
    assert!(h.await.is_success(), "pub: warm-up job failed");
}

#[derive(Default)]
struct Counts {
    events: AtomicU64,
    bytes: AtomicU64,
    /// Nanoseconds since start at the last event seen.
    last_ns: AtomicU64,
    finalized: AtomicBool,
}

/// Subscribes, counts `OutputAppended` in a spawned task or (`on_main`) in
/// this task, awaits the job and the consumer. The consumer stops at
/// `Finalized`, or [`FINALIZED_GRACE`] after the handle resolved if
/// `Finalized` never comes. Returns the counts and the elapsed time up to the
/// later of "job resolved" and "last event consumed".
async fn run_counted(
    rt: &Runtime,
    cmd: Command,
    what: &str,
    on_main: bool,
) -> (Arc<Counts>, f64, bool) {
    let t0 = Instant::now();
    let mut h = rt
        .spawn(cmd)
        .unwrap_or_else(|e| panic!("pub: spawn {what}: {e}"));
    let mut events = h.subscribe();
    let counts = Arc::new(Counts::default());
    let c = Arc::clone(&counts);
    let consumer = async move {
        while let Some(ev) = events.next().await {
            match ev {
                Event::OutputAppended { line, .. } => {
                    c.events.fetch_add(1, Relaxed);
                    c.bytes.fetch_add(line.len() as u64, Relaxed);
                }
                Event::Finalized { .. } => {
                    c.finalized.store(true, Relaxed);
                    c.last_ns.store(t0.elapsed().as_nanos() as u64, Relaxed);
                    break;
                }
                _ => {}
            }
            c.last_ns.store(t0.elapsed().as_nanos() as u64, Relaxed);
        }
    };
    let (done_tx, mut done_rx) = watch::channel(false);
    let give_up = async move {
        let _ = done_rx.wait_for(|done| *done).await;
        tokio::time::sleep(FINALIZED_GRACE).await;
    };
    // The stream is dropped, never polled again, if we give up.
    let consume = async move {
        tokio::select! {
            _ = consumer => {}
            _ = give_up => {}
        }
    };
    let waiter = async move {
        let outcome = h.await;
        let resolved = t0.elapsed().as_secs_f64();
        let _ = done_tx.send(true);
        (outcome, resolved)
    };
    let (outcome, resolved) = if on_main {
        tokio::join!(waiter, consume).0
    } else {
        let consume = tokio::spawn(consume);
        let w = waiter.await;
        consume.await.expect("pub: consumer task");
        w
    };
    let last = counts.last_ns.load(Relaxed) as f64 / 1e9;
    (counts, resolved.max(last), outcome.is_success())
}

pub async fn run(spec: &Spec) -> Report {
    let mut r = Report::default();
    match spec {
        Spec::Lines { n, on_main, .. } => {
            let rt = Runtime::new();
            warmup(&rt).await;
            let probe = Probe::start();
            let (c, secs, ok) =
                run_counted(&rt, Command::new("seq").arg(n.to_string()), "seq", *on_main).await;
            r.put("secs", secs)
                .put("delivered", c.events.load(Relaxed))
                .put("skipped", "n/a")
                .put("event_size_bytes", std::mem::size_of::<Event>())
                .put("finalized_seen", c.finalized.load(Relaxed))
                .put("success", ok)
                .put("peak_growth_kib", probe.peak_growth_kib())
                .put("base_rss_kib", probe.base_kib())
                .put("peak_reset", probe.peak_reset());
        }
        Spec::BigLine { bytes } => {
            let rt = Runtime::new();
            warmup(&rt).await;
            let probe = Probe::start();
            let cmd = Command::sh(scenario::bigline_script(*bytes));
            let (c, secs, ok) = run_counted(&rt, cmd, "bigline", false).await;
            r.put("secs", secs)
                .put("input_bytes", bytes)
                .put("bytes_delivered", c.bytes.load(Relaxed))
                .put("events", c.events.load(Relaxed))
                .put("finalized_seen", c.finalized.load(Relaxed))
                .put("success", ok)
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
            // 1.1.0 has no finished-job cap.
            let rt = Runtime::builder()
                .max_concurrent(*max_concurrent)
                .build()
                .expect("pub: build runtime");
            warmup(&rt).await;
            let probe = Probe::start();
            let t0 = Instant::now();
            let (mut done, mut failed) = (0usize, 0usize);
            while done < *total {
                let batch: Vec<_> = (0..*wave)
                    .map(|_| rt.spawn(Command::new("true")).expect("pub: spawn true"))
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
            let mut h = rt
                .spawn(Command::sh(scenario::REDRAW_SCRIPT))
                .expect("pub: spawn redraw");
            let mut events = h.subscribe();
            let consumer = tokio::spawn(async move {
                let (mut before, mut after, mut exited) = (0u64, 0u64, false);
                let mut arrivals: Vec<Duration> = Vec::new();
                while let Some(ev) = events.next().await {
                    match ev {
                        Event::OutputAppended { .. } if !exited => {
                            before += 1;
                            arrivals.push(t0.elapsed());
                        }
                        Event::OutputAppended { .. } => after += 1,
                        Event::Exited { .. } => exited = true,
                        Event::Finalized { .. } => break,
                        _ => {}
                    }
                }
                (before, after, arrivals)
            });
            h.await;
            let (before, after, arrivals) = tokio::time::timeout(FINALIZED_GRACE, consumer)
                .await
                .expect("pub: redraw job's Finalized never arrived")
                .expect("pub: consumer task");
            scenario::put_arrivals(&mut r, before, 0, &arrivals);
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
        let rt = b.build().expect("pub: build runtime");
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
                        .expect("pub: spawn true")
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
                    .expect("pub: spawn true");
                if !h.await.is_success() {
                    failed += 1;
                }
            }
        }
        failed
    }
}
