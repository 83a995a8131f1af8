//! Foundation benchmarks (issue 2): this workspace's `execra` side by side
//! with the published `execra` 1.1.0 and a raw `tokio::process` baseline.
//!
//! ```text
//! cargo run --release -p execra-bench -- all [--runs N] [--pub-bigline-mib M]
//! cargo run --release -p execra-bench -- lines|bigline|finished|spawn|redraw …
//! ```
//!
//! Every measurement runs in a fresh child process (this binary re-executed
//! as `child <impl> <scenario> <params>`), so peak RSS is per scenario.

mod mem;
mod mixed;
mod ours;
mod published;
mod raw;
mod report;
mod scenario;

use std::collections::BTreeMap;
use std::io::Read;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use scenario::{ReadBy, Spec, GIB};

const LINES: u64 = 1_000_000;
const FINISHED_TOTAL: usize = 20_000;
const FINISHED_WAVE: usize = 100;
const FINISHED_CHECKPOINTS: [usize; 3] = [5_000, 10_000, 20_000];
const FINISHED_CONCURRENCY: usize = 8;
const SPAWN_JOBS: usize = 500;
const REDRAWS: u64 = 50;
const CHILD_TIMEOUT: Duration = Duration::from_secs(900);

const IMPLS: [Impl; 3] = [Impl::Raw, Impl::Ours, Impl::Pub];

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Impl {
    Raw,
    Ours,
    Pub,
    /// All three in one process, interleaved (the spawn scenario).
    Mixed,
}

impl Impl {
    fn name(self) -> &'static str {
        match self {
            Impl::Raw => "raw",
            Impl::Ours => "ours",
            Impl::Pub => "pub",
            Impl::Mixed => "mixed",
        }
    }

    fn parse(s: &str) -> Option<Impl> {
        IMPLS
            .into_iter()
            .chain([Impl::Mixed])
            .find(|i| i.name() == s)
    }
}

const SCENARIOS: [&str; 5] = ["lines", "bigline", "finished", "spawn", "redraw"];

fn usage() -> ! {
    eprintln!(
        "usage: execra-bench (all | {}) … [--runs N] [--pub-bigline-mib M]\n\
         \x20      execra-bench child (raw|ours|pub) <scenario> <params…>",
        SCENARIOS.join(" | ")
    );
    std::process::exit(2)
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some("child") {
        child(&args[1..]);
        return;
    }
    let mut runs = 1usize;
    let mut pub_bigline = GIB;
    let mut chosen: Vec<&str> = Vec::new();
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--runs" => {
                runs = it
                    .next()
                    .and_then(|v| v.parse().ok())
                    .filter(|&n| n > 0)
                    .unwrap_or_else(|| usage())
            }
            "--pub-bigline-mib" => {
                pub_bigline = it
                    .next()
                    .and_then(|v| v.parse::<u64>().ok())
                    .filter(|&n| n > 0)
                    .map(|m| m << 20)
                    .unwrap_or_else(|| usage())
            }
            "all" => chosen.extend(SCENARIOS),
            s => match SCENARIOS.iter().find(|&&x| x == s) {
                Some(x) => chosen.push(x),
                None => usage(),
            },
        }
    }
    if chosen.is_empty() {
        usage();
    }
    chosen.dedup();
    parent(&chosen, runs, pub_bigline, &args);
}

/// A measurement in this process: the child side.
fn child(args: &[String]) {
    let (Some(imp), Some(spec)) = (
        args.first().and_then(|s| Impl::parse(s)),
        Spec::from_args(&args[1.min(args.len())..]),
    ) else {
        usage()
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("build tokio runtime");
    let report = rt.block_on(async {
        match imp {
            Impl::Raw => raw::run(&spec).await,
            Impl::Ours => ours::run(&spec).await,
            Impl::Pub => published::run(&spec).await,
            Impl::Mixed => match spec {
                Spec::Spawn { n, concurrent } => mixed::spawn(n, concurrent).await,
                _ => usage(),
            },
        }
    });
    report.print();
}

type Pairs = Vec<(String, String)>;

/// Runs one measurement in a fresh process and returns its `key=value` pairs.
fn run_child(imp: Impl, spec: &Spec) -> Result<Pairs, String> {
    let exe = std::env::current_exe().map_err(|e| format!("current_exe: {e}"))?;
    let mut child = Command::new(exe)
        .arg("child")
        .arg(imp.name())
        .args(spec.to_args())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .map_err(|e| format!("spawn child: {e}"))?;
    let mut stdout = child.stdout.take().ok_or("child stdout not piped")?;
    let reader = std::thread::spawn(move || {
        let mut s = String::new();
        stdout.read_to_string(&mut s).map(|_| s)
    });
    let deadline = Instant::now() + CHILD_TIMEOUT;
    let status = loop {
        match child.try_wait() {
            Ok(Some(st)) => break st,
            Ok(None) if Instant::now() > deadline => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!("timed out after {CHILD_TIMEOUT:?}"));
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(20)),
            Err(e) => return Err(format!("wait child: {e}")),
        }
    };
    let out = reader
        .join()
        .map_err(|_| "stdout reader panicked".to_string())?
        .map_err(|e| format!("read child stdout: {e}"))?;
    if !status.success() {
        return Err(format!("child failed: {status}"));
    }
    Ok(report::parse(&out))
}

/// All runs' results: (scenario label, impl) → one `Pairs` per run.
#[derive(Default)]
struct Results {
    runs: BTreeMap<(String, Impl), Vec<Pairs>>,
    errors: Vec<String>,
}

impl Results {
    fn values(&self, label: &str, imp: Impl, key: &str) -> Vec<f64> {
        self.runs
            .get(&(label.to_string(), imp))
            .into_iter()
            .flatten()
            .filter_map(|p| p.iter().find(|(k, _)| k == key))
            .filter_map(|(_, v)| v.parse().ok())
            .collect()
    }

    fn median(&self, label: &str, imp: Impl, key: &str) -> Option<f64> {
        let mut v = self.values(label, imp, key);
        if v.is_empty() {
            return None;
        }
        v.sort_by(f64::total_cmp);
        let m = v.len() / 2;
        Some(if v.len() % 2 == 1 {
            v[m]
        } else {
            (v[m - 1] + v[m]) / 2.0
        })
    }

    fn worst(&self, label: &str, imp: Impl, key: &str, higher_is_better: bool) -> Option<f64> {
        let v = self.values(label, imp, key);
        let f = if higher_is_better { f64::min } else { f64::max };
        v.into_iter().reduce(f)
    }
}

fn specs(chosen: &[&str], pub_bigline: u64) -> Vec<(String, Impl, Spec)> {
    let conc = std::thread::available_parallelism().map_or(2, |n| n.get());
    let mut out = Vec::new();
    for &s in chosen {
        let mut add = |label: &str, f: &dyn Fn(Impl) -> Spec| {
            for imp in IMPLS {
                if imp == Impl::Raw && label == "lines-main"
                    || imp != Impl::Ours && label.starts_with("lines-b")
                {
                    continue;
                }
                out.push((label.to_string(), imp, f(imp)));
            }
        };
        match s {
            "lines" => {
                add("lines", &|_| Spec::Lines {
                    n: LINES,
                    on_main: false,
                    read: ReadBy::Next,
                });
                // Ours read with `next_batch` and `next_batch_with` (the
                // published crate has neither).
                add("lines-batch", &|_| Spec::Lines {
                    n: LINES,
                    on_main: false,
                    read: ReadBy::Batch,
                });
                add("lines-borrow", &|_| Spec::Lines {
                    n: LINES,
                    on_main: false,
                    read: ReadBy::Borrow,
                });
                // Diagnostic: the subscriber on the block_on thread, which is
                // not a tokio worker (raw has no subscriber, so no variant).
                add("lines-main", &|_| Spec::Lines {
                    n: LINES,
                    on_main: true,
                    read: ReadBy::Next,
                });
            }
            "bigline" => add("bigline", &|imp| Spec::BigLine {
                bytes: if imp == Impl::Pub { pub_bigline } else { GIB },
            }),
            "finished" => add("finished", &|_| Spec::Finished {
                total: FINISHED_TOTAL,
                wave: FINISHED_WAVE,
                checkpoints: FINISHED_CHECKPOINTS.to_vec(),
                max_concurrent: FINISHED_CONCURRENCY,
            }),
            "spawn" => {
                for (label, concurrent) in [("spawn-seq", None), ("spawn-conc", Some(conc))] {
                    out.push((
                        label.to_string(),
                        Impl::Mixed,
                        Spec::Spawn {
                            n: SPAWN_JOBS,
                            concurrent,
                        },
                    ));
                }
            }
            "redraw" => add("redraw", &|_| Spec::Redraw),
            _ => {}
        }
    }
    out
}

fn parent(chosen: &[&str], runs: usize, pub_bigline: u64, args: &[String]) {
    let plan = specs(chosen, pub_bigline);
    let mut res = Results::default();
    let load_before = loadavg();
    for run in 1..=runs {
        for (label, imp, spec) in &plan {
            let t0 = Instant::now();
            eprint!("[run {run}/{runs}] {label:<10} {:<4} … ", imp.name());
            match run_child(*imp, spec) {
                Ok(pairs) => {
                    eprintln!("{:.1} s", t0.elapsed().as_secs_f64());
                    res.runs
                        .entry((label.clone(), *imp))
                        .or_default()
                        .push(pairs);
                }
                Err(e) => {
                    eprintln!("FAILED: {e}");
                    res.errors
                        .push(format!("run {run} {label} {}: {e}", imp.name()));
                }
            }
        }
    }
    let load = format!("{load_before} (start) → {} (end)", loadavg());
    print_machine(args, runs, &load);
    print_table(&res, pub_bigline);
    print_runs(&res);
}

fn shell_out(cmd: &str, args: &[&str]) -> String {
    Command::new(cmd)
        .args(args)
        .output()
        .ok()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_else(|| "?".into())
}

fn proc_field(file: &str, key: &str) -> String {
    std::fs::read_to_string(file)
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with(key))
                .and_then(|l| l.split_once(':'))
                .map(|(_, v)| v.trim().to_string())
        })
        .unwrap_or_else(|| "?".into())
}

/// The 1/5/15-minute load averages.
fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "?".into())
}

fn print_machine(args: &[String], runs: usize, load: &str) {
    let nproc = std::thread::available_parallelism().map_or(0, |n| n.get());
    let mem_kib: f64 = proc_field("/proc/meminfo", "MemTotal")
        .trim_end_matches("kB")
        .trim()
        .parse()
        .unwrap_or(0.0);
    println!(
        "command: cargo run --release -p execra-bench -- {}",
        args.join(" ")
    );
    println!(
        "date: {}",
        shell_out("date", &["-u", "+%Y-%m-%d %H:%M UTC"])
    );
    println!(
        "machine: nproc {nproc}, {}, {}, RAM {:.1} GiB",
        shell_out("uname", &["-srm"]),
        proc_field("/proc/cpuinfo", "model name"),
        mem_kib / (1 << 20) as f64
    );
    println!("rustc: {}", shell_out("rustc", &["-V"]));
    println!("load average (1/5/15 min): {load}");
    println!("runs: {runs} (table shows the median; per-run figures below)");
    println!();
}

fn fmt_opt(v: Option<f64>, f: impl Fn(f64) -> String) -> String {
    v.map_or("—".into(), f)
}

fn mib(kib: f64) -> f64 {
    kib / 1024.0
}

struct Row {
    scenario: &'static str,
    figure: String,
    cells: [String; 3],
    ratios: [String; 2],
    goal: &'static str,
    met: String,
}

fn met(ok: Option<bool>) -> String {
    match ok {
        Some(true) => "met".into(),
        Some(false) => "**not met**".into(),
        None => "—".into(),
    }
}

fn ratio(a: Option<f64>, b: Option<f64>) -> String {
    match (a, b) {
        (Some(a), Some(b)) if b > 0.0 => format!("{:.2}", a / b),
        _ => "—".into(),
    }
}

fn print_table(res: &Results, pub_bigline: u64) {
    use Impl::*;
    let mut rows: Vec<Row> = Vec::new();
    let has = |label: &str| {
        IMPLS
            .iter()
            .chain(&[Mixed])
            .any(|&i| res.runs.contains_key(&(label.into(), i)))
    };

    if has("lines") {
        let pct = |i| {
            res.median("lines", i, "delivered")
                .map(|d| d / LINES as f64 * 100.0)
        };
        let skipped = res.median("lines", Ours, "skipped");
        rows.push(Row {
            scenario: "1M short lines (`seq 1000000`), 1 subscriber",
            figure: "lines delivered".into(),
            cells: [
                fmt_opt(pct(Ours), |p| {
                    format!("{p:.1} % (+{} skipped, reported)", skipped.unwrap_or(0.0))
                }),
                fmt_opt(pct(Pub), |p| format!("{p:.1} %")),
                fmt_opt(pct(Raw), |p| format!("{p:.1} %")),
            ],
            ratios: ["—".into(), "—".into()],
            goal: "100 %",
            met: met(res
                .worst("lines", Ours, "delivered", true)
                .map(|d| d as u64 == LINES)),
        });
        let rate = |i| res.median("lines", i, "secs").map(|s| LINES as f64 / s);
        let kl = |v: f64| format!("{:.0} k lines/s", v / 1e3);
        rows.push(Row {
            scenario: "",
            figure: "throughput (spawn → Finalized consumed)".into(),
            cells: [
                fmt_opt(rate(Ours), kl),
                fmt_opt(rate(Pub), kl),
                fmt_opt(rate(Raw), kl),
            ],
            ratios: [ratio(rate(Ours), rate(Raw)), ratio(rate(Pub), rate(Raw))],
            goal: "ours ÷ raw ≥ 0.6",
            met: met(rate(Ours).zip(rate(Raw)).map(|(o, r)| o / r >= 0.6)),
        });
        for (label, how) in [
            ("lines-batch", "`next_batch(…, 1024)`"),
            (
                "lines-borrow",
                "`next_batch_with(4096, …)` (lines borrowed)",
            ),
        ] {
            if !has(label) {
                continue;
            }
            let delivered = res.median(label, Ours, "delivered");
            let all = res
                .worst(label, Ours, "delivered", true)
                .map(|d| d as u64 == LINES);
            let rate_batch = res.median(label, Ours, "secs").map(|s| LINES as f64 / s);
            let cell = delivered
                .zip(rate_batch)
                .map(|(d, r)| format!("{:.1} %, {}", d / LINES as f64 * 100.0, kl(r)));
            rows.push(Row {
                scenario: "",
                figure: format!("same, read with {how} (delivered, throughput)"),
                cells: [cell.unwrap_or_else(|| "—".into()), "—".into(), "—".into()],
                ratios: [ratio(rate_batch, rate(Raw)), "—".into()],
                goal: "100 %, ours ÷ raw ≥ 0.6",
                met: met(all
                    .zip(rate_batch.zip(rate(Raw)))
                    .map(|(a, (o, r))| a && o / r >= 0.6)),
            });
        }
        if has("lines-main") {
            let pct = |i| {
                res.median("lines-main", i, "delivered")
                    .map(|d| d / LINES as f64 * 100.0)
            };
            let rate_main = |i| {
                res.median("lines-main", i, "secs")
                    .map(|s| LINES as f64 / s)
            };
            let raw_rate = rate(Raw);
            let cell = |i| {
                let p = pct(i)?;
                let r = rate_main(i)?;
                Some(format!("{p:.1} %, {}", kl(r)))
            };
            rows.push(Row {
                scenario: "",
                figure: "diagnostic: same, subscriber on the `block_on` thread (not a worker)"
                    .into(),
                cells: [
                    cell(Ours).unwrap_or_else(|| "—".into()),
                    cell(Pub).unwrap_or_else(|| "—".into()),
                    "—".into(),
                ],
                ratios: [
                    ratio(rate_main(Ours), raw_rate),
                    ratio(rate_main(Pub), raw_rate),
                ],
                goal: "—",
                met: "—".into(),
            });
        }
        let peak = |i| res.median("lines", i, "peak_growth_kib").map(mib);
        rows.push(Row {
            scenario: "",
            figure: "peak RSS growth".into(),
            cells: [Ours, Pub, Raw].map(|i| fmt_opt(peak(i), |m| format!("{m:.1} MiB"))),
            ratios: ["—".into(), "—".into()],
            goal: "—",
            met: "—".into(),
        });
    }

    if has("bigline") {
        let scale = GIB as f64 / pub_bigline as f64;
        let peak = |i| res.median("bigline", i, "peak_growth_kib").map(mib);
        let pub_cell = fmt_opt(peak(Pub), |m| {
            if scale > 1.0 {
                format!(
                    "≈{:.0} MiB (extrapolated ×{scale:.0} from {:.1} MiB at {} MiB input)",
                    m * scale,
                    m,
                    pub_bigline >> 20
                )
            } else {
                format!("{m:.1} MiB")
            }
        });
        rows.push(Row {
            scenario: "1 GiB line without newline",
            figure: "peak RSS growth".into(),
            cells: [
                fmt_opt(peak(Ours), |m| format!("{m:.1} MiB")),
                pub_cell,
                fmt_opt(peak(Raw), |m| format!("{m:.1} MiB (`lines()`)")),
            ],
            ratios: ["—".into(), "—".into()],
            goal: "< 32 MiB",
            met: met(res
                .worst("bigline", Ours, "peak_growth_kib", false)
                .map(|k| mib(k) < 32.0)),
        });
        let deliv = |i| {
            let b = res.median("bigline", i, "bytes_delivered")?;
            let n = res.median("bigline", i, "events")?;
            let t = res.median("bigline", i, "secs")?;
            Some(format!(
                "{:.0} MiB in {n:.0} events, {t:.1} s",
                b / (1 << 20) as f64
            ))
        };
        rows.push(Row {
            scenario: "",
            figure: "delivered to the subscriber".into(),
            cells: [Ours, Pub, Raw].map(|i| deliv(i).unwrap_or_else(|| "—".into())),
            ratios: ["—".into(), "—".into()],
            goal: "all bytes",
            met: met(res
                .worst("bigline", Ours, "bytes_delivered", true)
                .map(|b| b as u64 == GIB)),
        });
    }

    if has("finished") {
        let g = |i, n: usize| {
            res.median("finished", i, &format!("rss_growth_kib_{n}"))
                .map(mib)
        };
        let cell = |i| {
            let v: Vec<String> = FINISHED_CHECKPOINTS
                .iter()
                .map(|&n| fmt_opt(g(i, n), |m| format!("{m:.1}")))
                .collect();
            format!("{} MiB", v.join(" / "))
        };
        let flat = g(Ours, 5_000)
            .zip(g(Ours, 20_000))
            .map(|(a, b)| b <= a + (a * 0.25).max(4.0));
        rows.push(Row {
            scenario: "20,000 finished `true` jobs (waves of 100)",
            figure: "RSS growth after 5k / 10k / 20k".into(),
            cells: [cell(Ours), cell(Pub), cell(Raw)],
            ratios: ["—".into(), "—".into()],
            goal: "flat: 20k ≤ 5k + max(4 MiB, 25 %)",
            met: met(flat),
        });
        let mem = |i| res.median("finished", i, "jobs_in_memory");
        rows.push(Row {
            scenario: "",
            figure: "jobs still in memory (`recent(usize::MAX)`)".into(),
            cells: [
                fmt_opt(mem(Ours), |v| format!("{v:.0}")),
                fmt_opt(mem(Pub), |v| format!("{v:.0}")),
                "—".into(),
            ],
            ratios: ["—".into(), "—".into()],
            // Informational: the last job is evicted just after its handle
            // resolves, so this can read cap + 1 (see BENCHMARKS.md).
            goal: "—",
            met: "—".into(),
        });
    }

    for (label, name) in [
        ("spawn-seq", "500 `true` jobs, one at a time"),
        ("spawn-conc", "500 `true` jobs, all spawned, nproc at once"),
    ] {
        if !has(label) {
            continue;
        }
        let rate = |who: &str| {
            res.median(label, Mixed, &format!("{who}_secs"))
                .map(|s| SPAWN_JOBS as f64 / s)
        };
        let best = |who: &str| {
            res.median(label, Mixed, &format!("{who}_secs_min"))
                .map(|s| SPAWN_JOBS as f64 / s)
        };
        let js = |who: &str| {
            let (Some(m), Some(b)) = (rate(who), best(who)) else {
                return "—".to_string();
            };
            format!("{m:.0} jobs/s (best {b:.0})")
        };
        let paired = |who: &str| res.median(label, Mixed, &format!("{who}_ratio"));
        let r2 = |v: Option<f64>| fmt_opt(v, |v| format!("{v:.2}"));
        rows.push(Row {
            scenario: name,
            figure: "jobs/s, median of interleaved reps (best)".into(),
            cells: [js("ours"), js("pub"), js("raw")],
            ratios: [
                format!(
                    "{} (best {})",
                    r2(paired("ours")),
                    ratio(best("ours"), best("raw"))
                ),
                format!(
                    "{} (best {})",
                    r2(paired("pub")),
                    ratio(best("pub"), best("raw"))
                ),
            ],
            goal: "ours ÷ raw ≥ 0.9",
            met: met(paired("ours").map(|r| r >= 0.9)),
        });
        let vs_task = |who: &str| res.median(label, Mixed, &format!("{who}_ratio_rawtask"));
        if vs_task("ours").is_some() {
            rows.push(Row {
                scenario: "",
                figure: "diagnostic: vs raw with each job in its own `tokio::spawn` task".into(),
                cells: ["—".into(), "—".into(), js("rawtask")],
                ratios: [r2(vs_task("ours")), r2(vs_task("pub"))],
                goal: "—",
                met: "—".into(),
            });
        }
    }

    if has("redraw") {
        let before = |i| res.median("redraw", i, "before_exit");
        let redraws = res.median("redraw", Ours, "redraws_before_exit");
        rows.push(Row {
            scenario: "50 `\\r` redraws, 20 ms apart",
            figure: "output events before `Exited`".into(),
            cells: [
                fmt_opt(before(Ours), |b| {
                    format!("{b:.0} ({:.0} redraw)", redraws.unwrap_or(0.0))
                }),
                fmt_opt(before(Pub), |b| format!("{b:.0}")),
                fmt_opt(before(Raw), |b| format!("{b:.0} (`lines()` items)")),
            ],
            ratios: ["—".into(), "—".into()],
            goal: "≥ 45 redraws",
            met: met(res
                .worst("redraw", Ours, "redraws_before_exit", true)
                .map(|r| r >= 45.0 && r <= REDRAWS as f64)),
        });
        let timing = |i| {
            let f = res.median("redraw", i, "first_ms")?;
            let s = res.median("redraw", i, "spread_ms")?;
            Some(format!("{f:.0} ms / {s:.0} ms"))
        };
        rows.push(Row {
            scenario: "",
            figure: "first output after spawn / first→last spread".into(),
            cells: [Ours, Pub, Raw].map(|i| timing(i).unwrap_or_else(|| "—".into())),
            ratios: ["—".into(), "—".into()],
            goal: "≈20 ms / ≈1 s",
            met: "—".into(),
        });
    }

    println!("| Scenario | Figure | ours | published 1.1.0 | raw | ours ÷ raw | pub ÷ raw | Goal | Met |");
    println!("|---|---|---|---|---|---|---|---|---|");
    for r in rows {
        println!(
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} |",
            r.scenario,
            r.figure,
            r.cells[0],
            r.cells[1],
            r.cells[2],
            r.ratios[0],
            r.ratios[1],
            r.goal,
            r.met
        );
    }
    if !res.errors.is_empty() {
        println!();
        println!("Errors:");
        for e in &res.errors {
            println!("- {e}");
        }
    }
}

fn print_runs(res: &Results) {
    println!();
    println!("Per-run figures (`key: run1 / run2 / …`):");
    println!();
    println!("```text");
    for ((label, imp), runs) in &res.runs {
        let mut keys: Vec<&str> = Vec::new();
        for p in runs {
            for (k, _) in p {
                if !keys.contains(&k.as_str()) {
                    keys.push(k);
                }
            }
        }
        let cols: Vec<String> = keys
            .iter()
            .map(|k| {
                let vals: Vec<String> = runs
                    .iter()
                    .map(|p| {
                        p.iter()
                            .find(|(kk, _)| kk == k)
                            .map_or("?".into(), |(_, v)| short(v))
                    })
                    .collect();
                format!("{k}: {}", vals.join(" / "))
            })
            .collect();
        println!("{label:<10} {:<4} {}", imp.name(), cols.join(", "));
    }
    println!("```");
}

/// Floats to 4 significant-ish digits, everything else as is.
fn short(v: &str) -> String {
    match v.parse::<f64>() {
        Ok(f) if v.contains('.') => format!("{f:.4}"),
        _ => v.to_string(),
    }
}
