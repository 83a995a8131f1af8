//! The spawn scenario with all three contenders in one process, interleaved
//! repetition by repetition (in rotating order), so that load from elsewhere
//! on the machine hits all three alike. Ratios are the median of the paired
//! per-repetition ratios.

use std::time::Instant;

use crate::report::Report;
use crate::{ours, published, raw};

/// Interleaved repetitions per child.
pub const REPS: usize = 7;

/// `rawtask`: raw, each job in a spawned task (one-at-a-time runs only).
const NAMES: [&str; 4] = ["raw", "ours", "pub", "rawtask"];

fn median(v: &[f64]) -> f64 {
    let mut v = v.to_vec();
    v.sort_by(f64::total_cmp);
    match v.len() {
        0 => 0.0,
        n if n % 2 == 1 => v[n / 2],
        n => (v[n / 2 - 1] + v[n / 2]) / 2.0,
    }
}

/// `n` `true` jobs per repetition; `concurrent`: see [`raw::spawn_batch`].
pub async fn spawn(n: usize, concurrent: Option<usize>) -> Report {
    raw::warmup().await;
    let o = ours::Spawner::new(concurrent).await;
    let p = published::Spawner::new(concurrent).await;
    let contenders = if concurrent.is_some() { 3 } else { 4 };
    let mut secs: [Vec<f64>; 4] = Default::default();
    let mut failed = [0usize; 4];
    for rep in 0..REPS {
        for k in 0..contenders {
            let which = (rep + k) % contenders;
            let t0 = Instant::now();
            failed[which] += match which {
                0 => raw::spawn_batch(n, concurrent, false).await,
                1 => o.batch(n, concurrent.is_some()).await,
                2 => p.batch(n, concurrent.is_some()).await,
                _ => raw::spawn_batch(n, concurrent, true).await,
            };
            secs[which].push(t0.elapsed().as_secs_f64());
        }
    }
    let mut r = Report::default();
    for (i, name) in NAMES.iter().enumerate().take(contenders) {
        let all: Vec<String> = secs[i].iter().map(|s| format!("{s:.3}")).collect();
        r.put(&format!("{name}_secs"), median(&secs[i]))
            .put(
                &format!("{name}_secs_min"),
                secs[i].iter().copied().fold(f64::MAX, f64::min),
            )
            .put(&format!("{name}_secs_reps"), all.join(";"))
            .put(&format!("{name}_failed"), failed[i]);
    }
    // Paired ratios: raw's time ÷ the contender's time in the same rep.
    let paired = |base: usize, i: usize| -> f64 {
        let v: Vec<f64> = secs[base]
            .iter()
            .zip(&secs[i])
            .map(|(raw, x)| raw / x)
            .collect();
        median(&v)
    };
    for i in [1, 2] {
        r.put(&format!("{}_ratio", NAMES[i]), paired(0, i));
        if contenders == 4 {
            r.put(&format!("{}_ratio_rawtask", NAMES[i]), paired(3, i));
        }
    }
    r
}
