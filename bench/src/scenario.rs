//! The scenarios, their parameters and workloads.

use std::time::Duration;

use crate::report::Report;

pub const GIB: u64 = 1 << 30;

/// `\r`-redraws, 20 ms apart, then a newline.
pub const REDRAW_SCRIPT: &str =
    r#"for i in $(seq 1 50); do printf "\r%d%%" $((i*2)); sleep 0.02; done; printf "\n""#;

/// One line of `bytes` × `x`, no newline.
pub fn bigline_script(bytes: u64) -> String {
    format!("head -c {bytes} /dev/zero | tr '\\0' x")
}

/// How the `lines` subscriber reads (the batched ways are ours only).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReadBy {
    /// `next()`, one event at a time.
    Next,
    /// `next_batch(&mut Vec<Event>, 1024)`.
    Batch,
    /// `next_batch_with(4096, |ev| …)`: lines lent as borrowed text.
    Borrow,
}

impl ReadBy {
    fn name(self) -> &'static str {
        match self {
            ReadBy::Next => "next",
            ReadBy::Batch => "batch",
            ReadBy::Borrow => "borrow",
        }
    }
}

/// One measurement, run in a fresh process.
#[derive(Debug, Clone)]
pub enum Spec {
    /// `seq n`, one subscriber: a spawned task (`on_main = false`), or the
    /// `block_on` thread itself, which is not a worker (`on_main = true`);
    /// reading as `read` says.
    Lines { n: u64, on_main: bool, read: ReadBy },
    /// One line of `bytes` without a newline.
    BigLine { bytes: u64 },
    /// `total` `true` jobs, `wave` at a time; RSS at each checkpoint.
    Finished {
        total: usize,
        wave: usize,
        checkpoints: Vec<usize>,
        max_concurrent: usize,
    },
    /// `n` `true` jobs, one after another or with a concurrency limit.
    Spawn { n: usize, concurrent: Option<usize> },
    /// [`REDRAW_SCRIPT`].
    Redraw,
}

impl Spec {
    /// Arguments after `child <impl>` that rebuild this spec.
    pub fn to_args(&self) -> Vec<String> {
        match self {
            Spec::Lines { n, on_main, read } => vec![
                "lines".into(),
                n.to_string(),
                if *on_main { "main" } else { "task" }.into(),
                read.name().into(),
            ],
            Spec::BigLine { bytes } => vec!["bigline".into(), bytes.to_string()],
            Spec::Finished {
                total,
                wave,
                checkpoints,
                max_concurrent,
            } => vec![
                "finished".into(),
                total.to_string(),
                wave.to_string(),
                checkpoints
                    .iter()
                    .map(|c| c.to_string())
                    .collect::<Vec<_>>()
                    .join(","),
                max_concurrent.to_string(),
            ],
            Spec::Spawn { n, concurrent } => vec![
                "spawn".into(),
                n.to_string(),
                concurrent.map_or("seq".into(), |c| c.to_string()),
            ],
            Spec::Redraw => vec!["redraw".into()],
        }
    }

    pub fn from_args(args: &[String]) -> Option<Spec> {
        let num = |i: usize| args.get(i)?.parse::<u64>().ok();
        Some(match args.first()?.as_str() {
            "lines" => Spec::Lines {
                n: num(1)?,
                on_main: args.get(2)? == "main",
                read: [ReadBy::Batch, ReadBy::Borrow]
                    .into_iter()
                    .find(|r| args.get(3).is_some_and(|a| a == r.name()))
                    .unwrap_or(ReadBy::Next),
            },
            "bigline" => Spec::BigLine { bytes: num(1)? },
            "finished" => Spec::Finished {
                total: num(1)? as usize,
                wave: num(2)? as usize,
                checkpoints: args
                    .get(3)?
                    .split(',')
                    .map(|c| c.parse().ok())
                    .collect::<Option<_>>()?,
                max_concurrent: num(4)? as usize,
            },
            "spawn" => Spec::Spawn {
                n: num(1)? as usize,
                concurrent: match args.get(2)?.as_str() {
                    "seq" => None,
                    c => Some(c.parse().ok()?),
                },
            },
            "redraw" => Spec::Redraw,
            _ => return None,
        })
    }
}

/// Output events of the redraw scenario: how many arrived before `Exited`,
/// how many of them were redraws, and when (since spawn).
pub fn put_arrivals(r: &mut Report, before_exit: u64, redraws: u64, arrivals: &[Duration]) {
    let ms = |d: Option<&Duration>| d.map_or(0.0, |d| d.as_secs_f64() * 1e3);
    let first = ms(arrivals.first());
    let last = ms(arrivals.last());
    r.put("before_exit", before_exit)
        .put("redraws_before_exit", redraws)
        .put("first_ms", first)
        .put("spread_ms", last - first);
}

/// Repetitions of the spawn scenario inside one child; the median is reported.
pub const SPAWN_REPS: usize = 5;

/// Runs `f` `reps` times; returns each run's seconds and the total failures
/// (`f` returns its own failure count).
pub async fn timed<F, Fut>(reps: usize, mut f: F) -> (Vec<f64>, usize)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = usize>,
{
    let mut secs = Vec::with_capacity(reps);
    let mut failed = 0;
    for _ in 0..reps {
        let t0 = std::time::Instant::now();
        failed += f().await;
        secs.push(t0.elapsed().as_secs_f64());
    }
    (secs, failed)
}

/// `secs` = median of the repetitions, `secs_reps` = all of them.
pub fn put_reps(r: &mut Report, secs: &[f64]) {
    let mut v = secs.to_vec();
    v.sort_by(f64::total_cmp);
    let median = v.get(v.len() / 2).copied().unwrap_or(0.0);
    let all: Vec<String> = secs.iter().map(|s| format!("{s:.3}")).collect();
    r.put("secs", median).put("secs_reps", all.join(";"));
}
