//! Streams benchmark (issue 11): `execra run` against the raw tool in one
//! run, and peak RSS growth for the memory bounds.
//!
//! ```text
//! cargo build --release -p execra-cli
//! cargo run --release -p execra-bench --bin streams-bench [-- --reps N --execra PATH]
//! ```
//!
//! - **CLI**: `seq 1 5000000 > file` and `execra run -- seq 1 5000000 >
//!   file` (stderr to `/dev/null`, a fresh history per rep), interleaved rep
//!   by rep in alternating order; files compared byte for byte. The ratio is
//!   the median of the per-rep ratios. Also the CPU time (user + system)
//!   each side used, from `getrusage(RUSAGE_CHILDREN)`. `--cli-only` skips
//!   the memory scenarios.
//! - **Memory** (each in a fresh child process; peak RSS growth = `VmHWM`
//!   after − `VmRSS` before, with `VmHWM` reset first): a job emitting
//!   1,000,000 progress events; 1,000 finished jobs of 1 MiB output each
//!   (with the default finished-output budget, and with the budget off for
//!   comparison); a 1 GiB line under `RawOutputPolicy::MemoryOnly`.

#[path = "../mem.rs"]
#[allow(dead_code)]
mod mem;

use std::path::PathBuf;
use std::process::{Command as Proc, Stdio};
use std::time::Instant;

use execra::{
    Command, Context, Event, ExitCode, Interpreter, InterpreterEvent, Line, Progress,
    RawOutputPolicy, Runtime,
};

/// One `Progress` per line.
struct EveryLine;
impl Interpreter for EveryLine {
    fn on_line(&mut self, _: &Context, line: &Line) -> Vec<InterpreterEvent> {
        let n: u64 = line.text.parse().unwrap_or(0);
        vec![InterpreterEvent::Progress {
            progress: Progress::count(n, 1_000_000),
        }]
    }
    fn on_exit(&mut self, _: &Context, _: &ExitCode) -> Vec<InterpreterEvent> {
        Vec::new()
    }
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    if v.is_empty() {
        return f64::NAN;
    }
    v[v.len() / 2]
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) == Some("child") {
        child(&args[2..]);
        return;
    }
    let mut reps = 5usize;
    let mut lines = 5_000_000u64;
    let mut execra = PathBuf::from("target/release/execra");
    let mut memory = true;
    let mut it = args.iter().skip(1);
    while let Some(a) = it.next() {
        match a.as_str() {
            "--reps" => reps = it.next().and_then(|v| v.parse().ok()).unwrap_or(reps),
            "--lines" => lines = it.next().and_then(|v| v.parse().ok()).unwrap_or(lines),
            "--execra" => execra = it.next().map(PathBuf::from).unwrap_or(execra),
            "--cli-only" => memory = false,
            other => {
                eprintln!(
                    "usage: streams-bench [--reps N] [--lines N] [--execra PATH] [--cli-only] (got {other:?})"
                );
                std::process::exit(2);
            }
        }
    }
    let load = || std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    println!("load average at start: {}", load().trim());
    cli(&execra, reps, lines);
    if !memory {
        println!("load average at end: {}", load().trim());
        return;
    }
    println!();
    println!("| Memory scenario | peak RSS growth | notes |");
    println!("|---|---|---|");
    for scenario in [
        "progress",
        "progress-nosub",
        "finished",
        "finished-unbounded",
        "bigline-memoryonly",
    ] {
        let me = std::env::current_exe().expect("own path");
        let out = Proc::new(me)
            .args(["child", scenario])
            .stderr(Stdio::inherit())
            .output()
            .expect("run child");
        print!("{}", String::from_utf8_lossy(&out.stdout));
    }
    println!();
    println!("load average at end: {}", load().trim());
}

fn cli(execra: &PathBuf, reps: usize, lines: u64) {
    let dir = std::env::temp_dir().join(format!("streams-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let raw_file = dir.join("seq.txt");
    let ours_file = dir.join("execra.txt");
    let n = lines.to_string();
    let (mut raw_t, mut ours_t, mut ratios) = (Vec::new(), Vec::new(), Vec::new());
    let (mut raw_cpu, mut ours_cpu) = (Vec::new(), Vec::new());
    let mut identical = true;
    for rep in 0..reps {
        let run_raw = || {
            let f = std::fs::File::create(&raw_file).expect("create");
            let cpu = children_cpu();
            let t = Instant::now();
            let st = Proc::new("seq")
                .args(["1", &n])
                .stdout(f)
                .status()
                .expect("seq");
            assert!(st.success());
            (t.elapsed().as_secs_f64(), children_cpu() - cpu)
        };
        let run_ours = || {
            let f = std::fs::File::create(&ours_file).expect("create");
            let db = dir.join(format!("h{rep}.sqlite"));
            let cpu = children_cpu();
            let t = Instant::now();
            let st = Proc::new(execra)
                .arg("--db")
                .arg(&db)
                .args(["run", "--", "seq", "1", &n])
                .stdin(Stdio::null())
                .stdout(f)
                .stderr(Stdio::null())
                .status()
                .expect("execra run (build it: cargo build --release -p execra-cli)");
            assert!(st.success(), "execra run failed: {st}");
            (t.elapsed().as_secs_f64(), children_cpu() - cpu)
        };
        let ((r, rc), (o, oc)) = if rep % 2 == 0 {
            let r = run_raw();
            (r, run_ours())
        } else {
            let o = run_ours();
            (run_raw(), o)
        };
        identical &= std::fs::read(&raw_file).ok() == std::fs::read(&ours_file).ok();
        raw_t.push(r);
        ours_t.push(o);
        raw_cpu.push(rc);
        ours_cpu.push(oc);
        ratios.push(o / r);
    }
    let _ = std::fs::remove_dir_all(&dir);
    println!();
    println!("| `seq 1 {lines} > file` | raw `seq` | `execra run -- seq` | execra ÷ seq (median of per-rep ratios) | byte-identical |");
    println!("|---|---|---|---|---|");
    println!(
        "| median of {reps} interleaved reps (min) | {:.3} s ({:.3}) | {:.3} s ({:.3}) | {:.2} | {} |",
        median(&mut raw_t.clone()),
        raw_t.iter().cloned().fold(f64::MAX, f64::min),
        median(&mut ours_t.clone()),
        ours_t.iter().cloned().fold(f64::MAX, f64::min),
        median(&mut ratios),
        if identical { "yes, every rep" } else { "**NO**" }
    );
    println!("per-rep seconds raw: {raw_t:.3?}");
    println!("per-rep seconds ours: {ours_t:.3?}");
    println!(
        "CPU seconds (user + system, median): raw {:.3}, ours {:.3} (execra's threads and seq)",
        median(&mut raw_cpu),
        median(&mut ours_cpu)
    );
}

/// User + system CPU seconds of all waited-for children so far (the CLI's
/// threads and the job it ran included).
fn children_cpu() -> f64 {
    // SAFETY: getrusage fills the struct it is given.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    if unsafe { libc::getrusage(libc::RUSAGE_CHILDREN, &mut ru) } != 0 {
        return f64::NAN;
    }
    let secs = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    secs(ru.ru_utime) + secs(ru.ru_stime)
}

fn child(args: &[String]) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio");
    rt.block_on(async {
        let scenario = args.first().map(String::as_str).unwrap_or("");
        match scenario {
            "progress-nosub" => {
                let rt = Runtime::new();
                warm(&rt).await;
                let probe = mem::Probe::start();
                let h = rt
                    .spawn(Command::new("seq").arg("1000000").interpreter(EveryLine))
                    .expect("spawn");
                let id = h.id();
                assert!(h.await.is_success());
                let replayed = rt
                    .recent(1)
                    .first()
                    .map(|j| j.id == id)
                    .unwrap_or(false);
                let mut late = rt.subscribe_job(id);
                let mut n = 0u64;
                while let Some(e) = late.next().await {
                    n += u64::from(matches!(e, Event::ProgressUpdated { .. }));
                }
                println!(
                    "| same, no subscriber while it runs | {:.1} MiB | a late subscriber replays {n} (job in memory: {replayed}) |",
                    probe.peak_growth_kib() as f64 / 1024.0
                );
            }
            "progress" => {
                let rt = Runtime::new();
                warm(&rt).await;
                let probe = mem::Probe::start();
                let h = rt
                    .spawn(Command::new("seq").arg("1000000").interpreter(EveryLine))
                    .expect("spawn");
                // A live subscriber that keeps up (sees every update it can).
                let mut s = h.subscribe();
                let mut live = 0u64;
                let mut batch = Vec::new();
                while s.next_batch(&mut batch, 1024).await > 0 {
                    live += batch
                        .drain(..)
                        .filter(|e| matches!(e, Event::ProgressUpdated { .. }))
                        .count() as u64;
                }
                let id = h.id();
                assert!(h.await.is_success());
                let mut late = rt.subscribe_job(id);
                let mut replayed = 0u64;
                while let Some(e) = late.next().await {
                    replayed += u64::from(matches!(e, Event::ProgressUpdated { .. }));
                }
                println!(
                    "| job emitting 1,000,000 `progress_updated` (`seq 1000000`, one per line) | {:.1} MiB | live subscriber saw {live} updates; a late subscriber replays {replayed} |",
                    probe.peak_growth_kib() as f64 / 1024.0
                );
            }
            "finished" | "finished-unbounded" => {
                let mut b = Runtime::builder().max_concurrent(2);
                if scenario == "finished-unbounded" {
                    b = b.finished_output_budget(usize::MAX);
                }
                let rt = b.build().expect("runtime");
                warm(&rt).await;
                let probe = mem::Probe::start();
                for _ in 0..100 {
                    let hs: Vec<_> = (0..10)
                        .map(|_| {
                            rt.spawn(Command::sh("yes $(printf '%01023d' 0) | head -n 1024"))
                                .expect("spawn")
                        })
                        .collect();
                    for h in hs {
                        assert!(h.await.is_success());
                    }
                }
                let what = if scenario == "finished" {
                    "1,000 finished jobs of 1 MiB output each (default budget, 32 MiB)"
                } else {
                    "same, budget off (`finished_output_budget(usize::MAX)`) — what it was before"
                };
                println!(
                    "| {what} | {:.1} MiB | RSS growth at the end {:.1} MiB, {} jobs in memory |",
                    probe.peak_growth_kib() as f64 / 1024.0,
                    probe.rss_growth_kib() as f64 / 1024.0,
                    rt.recent(usize::MAX).len()
                );
            }
            "bigline-memoryonly" => {
                let rt = Runtime::builder()
                    .raw_output(RawOutputPolicy::MemoryOnly)
                    .build()
                    .expect("runtime");
                warm(&rt).await;
                let probe = mem::Probe::start();
                let h = rt
                    .spawn(Command::sh("head -c 1073741824 /dev/zero | tr '\\0' x"))
                    .expect("spawn");
                let mut s = h.subscribe();
                let (mut got, mut skipped) = (0u64, 0u64);
                let mut batch = Vec::new();
                while s.next_batch(&mut batch, 64).await > 0 {
                    for e in batch.drain(..) {
                        match e {
                            Event::OutputAppended { line, .. } => got += line.len() as u64,
                            Event::OutputSkipped { count, .. } => skipped += count,
                            _ => {}
                        }
                    }
                }
                let id = h.id();
                assert!(h.await.is_success());
                let kept: usize = rt
                    .output(id)
                    .expect("output")
                    .iter()
                    .map(|l| l.text.len())
                    .sum();
                println!(
                    "| 1 GiB line without newline, `MemoryOnly` | {:.1} MiB | {} MiB delivered to a `Lag::Skip` subscriber (+{skipped} 1 MiB pieces reported skipped); ring keeps {:.1} MiB |",
                    probe.peak_growth_kib() as f64 / 1024.0,
                    got >> 20,
                    kept as f64 / 1048576.0
                );
            }
            other => eprintln!("unknown scenario {other:?}"),
        }
    });
}

async fn warm(rt: &Runtime) {
    let h = rt.spawn(Command::new("true")).expect("spawn warm-up");
    assert!(h.await.is_success());
}
