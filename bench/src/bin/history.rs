//! History benchmark (issue 3): a 100,000-line job whose interpreter emits
//! one `Progress` per line, with SQLite history on — ours vs the published
//! `execra` 1.1.0, measured in one run.
//!
//! ```text
//! cargo run --release -p execra-bench --bin history-bench [-- --lines N --runs R]
//! ```
//!
//! What is timed, identically for both crates: from `spawn` until the
//! job's handle resolved (for ours, that is when every row of the job is
//! committed and fsynced; the published crate writes each row synchronously
//! before the handle resolves). Outside the window, for both: building the
//! runtime (opening the file) before, and counting the rows stored
//! (reopening the file, reading every event back) and dropping the
//! runtime (our writer thread's join) after.
//!
//! Figures: event rows persisted per second (rows found in the history file
//! afterwards ÷ the timed window), and the lateness of a 1 ms
//! `tokio::time::interval` task running on the same tokio runtime during
//! the window (p50 / p99 / max). The "no history" row is our runtime
//! without a history file, with one subscriber counting the job's
//! non-output events (there are no rows to count).

use std::time::{Duration, Instant};

use tokio::time::MissedTickBehavior;

struct Ours;
impl execra::Interpreter for Ours {
    fn on_line(
        &mut self,
        _: &execra::Context,
        line: &execra::Line,
    ) -> Vec<execra::InterpreterEvent> {
        let n: f32 = line.text.parse().unwrap_or(0.0);
        vec![execra::InterpreterEvent::Progress {
            progress: execra::Progress::fraction(n / 100_000.0),
        }]
    }
    fn on_exit(
        &mut self,
        _: &execra::Context,
        _: &execra::ExitCode,
    ) -> Vec<execra::InterpreterEvent> {
        Vec::new()
    }
}

struct Published;
impl execra_pub::Interpreter for Published {
    fn on_line(
        &mut self,
        _: &execra_pub::Context,
        line: &execra_pub::Line,
    ) -> Vec<execra_pub::InterpreterEvent> {
        let n: f32 = line.text.parse().unwrap_or(0.0);
        vec![execra_pub::InterpreterEvent::Progress {
            progress: execra_pub::Progress::fraction(n / 100_000.0),
        }]
    }
    fn on_exit(
        &mut self,
        _: &execra_pub::Context,
        _: &execra_pub::ExitCode,
    ) -> Vec<execra_pub::InterpreterEvent> {
        Vec::new()
    }
}

/// Run `job` while a 1 ms interval measures its own lateness; the time
/// and lateness cover exactly the `job` future.
async fn with_ticker<T, F: std::future::Future<Output = T>>(job: F) -> (T, Duration, Vec<f64>) {
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let ticker = {
        let stop = stop.clone();
        tokio::spawn(async move {
            let mut iv = tokio::time::interval(Duration::from_millis(1));
            iv.set_missed_tick_behavior(MissedTickBehavior::Burst);
            let mut late = Vec::new();
            loop {
                let due = iv.tick().await;
                late.push(due.elapsed().as_secs_f64() * 1000.0);
                if stop.load(std::sync::atomic::Ordering::Relaxed) {
                    return late;
                }
            }
        })
    };
    let t = Instant::now();
    let out = job.await;
    let took = t.elapsed();
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let mut late = ticker.await.expect("ticker task");
    late.sort_by(|a, b| a.total_cmp(b));
    (out, took, late)
}

fn pct(v: &[f64], p: f64) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    v[((v.len() - 1) as f64 * p).round() as usize]
}

fn arg(name: &str, default: u64) -> u64 {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let lines = arg("--lines", 100_000);
    let runs = arg("--runs", 3);
    let dir = std::env::temp_dir().join(format!("execra-history-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    println!("| run | impl | event rows | seconds | rows/s | tick lateness p50 / p99 / max (ms) |");
    println!("|---|---|---|---|---|---|");
    for run in 1..=runs {
        // Ours without history (what the job itself costs).
        let rt = execra::Runtime::new();
        let (rows, took, late) = with_ticker(async {
            let h = rt
                .spawn(
                    execra::Command::new("seq")
                        .arg(lines.to_string())
                        .interpreter(Ours),
                )
                .expect("spawn ours");
            let mut events = h.subscribe();
            let mut structural = 0;
            while let Some(ev) = events.next().await {
                structural += usize::from(!ev.is_output());
            }
            assert!(h.await.is_success());
            structural
        })
        .await;
        drop(rt);
        report(
            run,
            "ours, no history (events, not rows)",
            rows,
            took,
            &late,
        );

        // Ours with history.
        let path = dir.join(format!("ours-{run}.sqlite"));
        let rt = execra::Runtime::builder()
            .history(&path)
            .build()
            .expect("open ours");
        let (id, took, late) = with_ticker(async {
            let h = rt
                .spawn(
                    execra::Command::new("seq")
                        .arg(lines.to_string())
                        .interpreter(Ours),
                )
                .expect("spawn ours");
            let id = h.id();
            assert!(h.await.is_success());
            id
        })
        .await;
        drop(rt);
        let rows = execra::store::Store::open(&path)
            .expect("reopen ours")
            .list_events(id, usize::MAX)
            .expect("events")
            .len();
        report(run, "ours", rows, took, &late);

        // Published 1.1.0, the same window.
        let path = dir.join(format!("pub-{run}.sqlite"));
        let rt = execra_pub::Runtime::builder()
            .history(&path)
            .build()
            .expect("open pub");
        let (id, took, late) = with_ticker(async {
            let h = rt
                .spawn(
                    execra_pub::Command::new("seq")
                        .arg(lines.to_string())
                        .interpreter(Published),
                )
                .expect("spawn pub");
            let id = h.id();
            assert!(h.await.is_success());
            id
        })
        .await;
        drop(rt);
        let rows = execra_pub::store::Store::open(&path)
            .expect("reopen pub")
            .list_events(id, usize::MAX)
            .expect("events")
            .len();
        report(run, "published 1.1.0", rows, took, &late);
    }
    let _ = std::fs::remove_dir_all(&dir);
}

fn report(run: u64, name: &str, rows: usize, took: Duration, late: &[f64]) {
    println!(
        "| {run} | {name} | {rows} | {:.2} | {:.0} | {:.2} / {:.2} / {:.2} |",
        took.as_secs_f64(),
        rows as f64 / took.as_secs_f64(),
        pct(late, 0.5),
        pct(late, 0.99),
        late.last().copied().unwrap_or(f64::NAN)
    );
}
