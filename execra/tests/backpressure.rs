//! Backpressure subscriptions, batched consumption, coalesced state events
//! and bounded memory for finished jobs — with real processes.

mod common;

use std::time::Duration;

use common::*;
use execra::{
    Command, Context, Event, EventRef, ExitCode, FailureReason, Finding, Interpreter,
    InterpreterEvent, Lag, Line, Outcome, Progress, RawOutputPolicy, Runtime, SubscribeOptions,
};

/// Guard against hangs: a test fails loudly instead of blocking CI.
async fn within<T>(secs: u64, what: &str, f: impl std::future::Future<Output = T>) -> T {
    match tokio::time::timeout(Duration::from_secs(secs), f).await {
        Ok(v) => v,
        Err(_) => panic!("{what} did not finish within {secs} s"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_backpressure_subscriber_gets_every_line_of_millions_in_order() {
    // A small output buffer: without backpressure, this consumer would be
    // skipped thousands of lines (the second, ordinary subscriber is).
    let rt = Runtime::builder()
        .output_buffer(1000, 1 << 20)
        .build()
        .unwrap();
    let h = rt.spawn(Command::new("seq").arg("2000000")).unwrap();
    let mut slow = h.subscribe_with(SubscribeOptions::backpressure().max_lag_bytes(64 * 1024));
    let mut lossy = h.subscribe();
    let lossy = tokio::spawn(async move {
        let (mut lines, mut skipped) = (0u64, 0u64);
        let mut last = 0u64;
        while let Some(ev) = lossy.next().await {
            match ev {
                Event::OutputAppended { line, .. } => {
                    let n: u64 = line.parse().unwrap();
                    assert!(n > last, "lines arrive in order");
                    last = n;
                    lines += 1;
                    if lines % 100_000 == 0 {
                        // Slow, but not as slow as the backpressure reader.
                        tokio::time::sleep(Duration::from_millis(20)).await;
                    }
                }
                Event::OutputSkipped { count, .. } => skipped += count,
                _ => {}
            }
        }
        (lines, skipped)
    });
    let consumer = async {
        let mut next = 1u64;
        let mut batch = Vec::new();
        while slow.next_batch(&mut batch, 256).await > 0 {
            for ev in batch.drain(..) {
                match ev {
                    Event::OutputAppended { line, .. } => {
                        assert_eq!(line, next.to_string(), "every line, in order");
                        next += 1;
                        if next % 20_000 == 0 {
                            // Deliberately slow: 100 pauses of 10 ms.
                            tokio::time::sleep(Duration::from_millis(10)).await;
                        }
                    }
                    Event::OutputSkipped { count, .. } => {
                        panic!("a backpressure subscriber was skipped {count} lines")
                    }
                    _ => {}
                }
            }
        }
        next - 1
    };
    let got = within(120, "the slow consumer", consumer).await;
    assert_eq!(got, 2_000_000);
    assert!(h.await.is_success());
    let (lines, skipped) = lossy.await.unwrap();
    assert_eq!(
        lines + skipped,
        2_000_000,
        "the ordinary subscriber gets every line or a count"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_child_waits_for_a_backpressure_subscriber() {
    // `seq` cannot finish while nobody reads: the job is still running
    // after the subscriber sat idle, and it finishes once it reads.
    let rt = Runtime::new();
    let h = rt.spawn(Command::new("seq").arg("3000000")).unwrap();
    let mut s = h.subscribe_with(SubscribeOptions::backpressure().max_lag_bytes(64 * 1024));
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(
        h.try_outcome().is_none(),
        "the job went on without the backpressure subscriber"
    );
    assert_eq!(rt.running(), vec![h.id()]);
    let mut lines = 0u64;
    let mut batch = Vec::new();
    within(60, "reading", async {
        while s.next_batch(&mut batch, 1024).await > 0 {
            for e in batch.drain(..) {
                match e {
                    Event::OutputAppended { redraw: false, .. } => lines += 1,
                    Event::OutputAppended { line, .. } => {
                        panic!("a held pipe made a redraw: {line}")
                    }
                    _ => {}
                }
            }
        }
    })
    .await;
    assert_eq!(lines, 3_000_000);
    assert!(h.await.is_success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backpressure_subscriber_that_never_reads_does_not_make_the_job_uncancellable() {
    let rt = Runtime::new();
    let h = rt.spawn(Command::new("seq").arg("100000000")).unwrap();
    let stalled = h.subscribe_with(SubscribeOptions::backpressure().max_lag_bytes(4096));
    let watcher = h.subscribe();
    let watcher = tokio::spawn(collect(watcher));
    tokio::time::sleep(Duration::from_millis(300)).await;
    h.cancel().unwrap();
    let outcome = within(30, "the cancelled job", h).await;
    assert!(matches!(outcome, Outcome::Cancelled { .. }), "{outcome:?}");
    let evs = watcher.await.unwrap();
    assert_eq!(kinds(&evs).last(), Some(&"finalized"));
    drop(stalled);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_timeout_ends_a_job_held_by_a_subscriber_that_never_reads() {
    let rt = Runtime::new();
    let h = rt
        .spawn(
            Command::new("seq")
                .arg("100000000")
                .timeout(Duration::from_millis(400)),
        )
        .unwrap();
    let _stalled = h.subscribe_with(SubscribeOptions::backpressure().max_lag_bytes(4096));
    let outcome = within(30, "the timed-out job", h).await;
    assert!(
        matches!(
            outcome,
            Outcome::Failed {
                reason: FailureReason::Timeout,
                ..
            }
        ),
        "{outcome:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropping_a_backpressure_subscriber_mid_job_releases_the_pipe() {
    let rt = Runtime::new();
    let h = rt.spawn(Command::new("seq").arg("2000000")).unwrap();
    let mut s = h.subscribe_with(SubscribeOptions::backpressure().max_lag_bytes(4096));
    let mut n = 0;
    while n < 1000 {
        if let Some(Event::OutputAppended { .. }) = s.next().await {
            n += 1;
        }
    }
    assert!(h.try_outcome().is_none());
    drop(s);
    assert!(within(30, "the released job", h).await.is_success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panicking_backpressure_consumer_releases_the_pipe() {
    let rt = Runtime::new();
    let h = rt.spawn(Command::new("seq").arg("2000000")).unwrap();
    let mut s = h.subscribe_with(SubscribeOptions::backpressure().max_lag_bytes(4096));
    let task = tokio::spawn(async move {
        let mut n = 0;
        while let Some(ev) = s.next().await {
            if let Event::OutputAppended { .. } = ev {
                n += 1;
                if n == 500 {
                    panic!("consumer bug (expected by this test)");
                }
            }
        }
    });
    assert!(task.await.unwrap_err().is_panic());
    assert!(within(30, "the released job", h).await.is_success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_tail_written_just_before_exit_reaches_a_slow_backpressure_subscriber() {
    // The child exits with its last lines still in the pipe; the drain
    // deadline (100 ms here) must not cut them off while the subscriber is
    // slower than that.
    let rt = Runtime::builder()
        .drain_timeout(Duration::from_millis(100))
        .build()
        .unwrap();
    let h = rt.spawn(Command::new("seq").arg("200000")).unwrap();
    let mut s = h.subscribe_with(SubscribeOptions::backpressure().max_lag_bytes(8192));
    let mut next = 1u64;
    within(60, "reading", async {
        while let Some(ev) = s.next().await {
            if let Event::OutputAppended { line, .. } = ev {
                assert_eq!(line, next.to_string());
                next += 1;
                if next % 50_000 == 0 {
                    tokio::time::sleep(Duration::from_millis(300)).await;
                }
            }
        }
    })
    .await;
    assert_eq!(next - 1, 200_000);
    assert!(h.await.is_success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lag_skip_is_the_default() {
    assert_eq!(SubscribeOptions::default().lag, Lag::Skip);
    assert_eq!(SubscribeOptions::backpressure().lag, Lag::Backpressure);
}

/// One progress update per line; a phase and a finding at fixed lines.
struct Chatty;
impl Interpreter for Chatty {
    fn on_line(&mut self, _: &Context, line: &Line) -> Vec<InterpreterEvent> {
        let n: u64 = line.text.parse().unwrap_or(0);
        let mut evs = vec![
            InterpreterEvent::Progress {
                progress: Progress::count(n, 100_000),
            },
            InterpreterEvent::Label {
                text: format!("at {n}"),
            },
        ];
        if n == 50_000 {
            evs.push(InterpreterEvent::EnterPhase {
                name: "second-half".into(),
                label: None,
            });
            evs.push(InterpreterEvent::Finding {
                finding: Finding::info("half", "half way"),
            });
        }
        evs
    }
    fn on_exit(&mut self, _: &Context, _: &ExitCode) -> Vec<InterpreterEvent> {
        vec![]
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn superseded_progress_is_coalesced_for_late_subscribers() {
    let rt = Runtime::new();
    let h = rt
        .spawn(Command::new("seq").arg("100000").interpreter(Chatty))
        .unwrap();
    let id = h.id();
    assert!(h.await.is_success());
    let evs = collect(rt.subscribe_job(id)).await;
    let structural: Vec<&Event> = evs
        .iter()
        .filter(|e| {
            !matches!(
                e,
                Event::OutputAppended { .. } | Event::OutputSkipped { .. }
            )
        })
        .collect();
    assert!(
        structural.len() < 20,
        "200,000 state updates were kept: {} structural events",
        structural.len()
    );
    let progress: Vec<&Progress> = evs
        .iter()
        .filter_map(|e| match e {
            Event::ProgressUpdated { progress, .. } => Some(progress),
            _ => None,
        })
        .collect();
    assert_eq!(progress.last(), Some(&&Progress::count(100_000, 100_000)));
    let labels: Vec<&str> = evs
        .iter()
        .filter_map(|e| match e {
            Event::LabelUpdated { label, .. } => Some(label.as_str()),
            _ => None,
        })
        .collect();
    assert_eq!(labels.last(), Some(&"at 100000"));
    let k = kinds(&evs);
    for must in [
        "phase_entered",
        "finding_emitted",
        "phase_exited",
        "finalized",
    ] {
        assert!(k.contains(&must), "{must} missing from the replay: {k:?}");
    }
    // Progress reported before the phase change is still before it.
    let phase_at = k.iter().position(|k| *k == "phase_entered").unwrap();
    assert!(k[..phase_at].contains(&"progress_updated"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_live_subscriber_still_sees_progress_move() {
    let rt = Runtime::new();
    let h = rt
        .spawn(Command::sh("for i in 1 2 3 4 5; do echo $i; sleep 0.05; done").interpreter(Chatty))
        .unwrap();
    let evs = collect(h.subscribe()).await;
    let updates = evs
        .iter()
        .filter(|e| matches!(e, Event::ProgressUpdated { .. }))
        .count();
    assert!(
        updates >= 4,
        "a subscriber keeping up saw {updates} updates"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memory_only_keeps_a_huge_line_bounded() {
    let rt = Runtime::builder()
        .raw_output(RawOutputPolicy::MemoryOnly)
        .build()
        .unwrap();
    // 64 MiB without a newline: arrives as 64 pieces of 1 MiB.
    let h = rt
        .spawn(Command::sh("head -c 67108864 /dev/zero | tr '\\0' x"))
        .unwrap();
    let id = h.id();
    assert!(h.await.is_success());
    let kept: usize = rt.output(id).unwrap().iter().map(|l| l.text.len()).sum();
    assert!(kept > 0, "the newest output is kept");
    assert!(
        kept <= execra::MEMORY_OUTPUT_BYTES,
        "MemoryOnly kept {kept} bytes"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn finished_jobs_share_one_output_budget() {
    let rt = Runtime::builder()
        .finished_output_budget(3 << 20)
        .raw_output(RawOutputPolicy::MemoryOnly)
        .build()
        .unwrap();
    let mut ids = Vec::new();
    // 10 jobs of ~2 MiB each (2000 lines of 1000 bytes); each keeps its
    // last 1024 lines, twice (event log and MemoryOnly ring).
    for _ in 0..10 {
        let h = rt
            .spawn(Command::sh("yes $(printf '%01000d' 0) | head -n 2000"))
            .unwrap();
        ids.push(h.id());
        assert!(h.await.is_success());
    }
    let oldest = collect(rt.subscribe_job(ids[0])).await;
    assert!(
        output_lines(&oldest).is_empty(),
        "the oldest job kept output past the budget"
    );
    assert!(
        oldest
            .iter()
            .any(|e| matches!(e, Event::OutputSkipped { .. })),
        "a late subscriber is told output was dropped"
    );
    assert_eq!(kinds(&oldest).last(), Some(&"finalized"));
    assert!(rt.output(ids[0]).unwrap().is_empty());
    let newest = collect(rt.subscribe_job(ids[9])).await;
    assert!(
        !output_lines(&newest).is_empty(),
        "the newest job keeps its tail"
    );
    assert!(!rt.output(ids[9]).unwrap().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_subscriber_that_was_there_misses_no_progress_even_when_late_reading() {
    let rt = Runtime::new();
    let h = rt
        .spawn(Command::new("seq").arg("5000").interpreter(Chatty))
        .unwrap();
    let s = h.subscribe();
    // Read nothing until the job is over (the log gets sealed meanwhile).
    assert!(h.await.is_success());
    let evs = collect(s).await;
    let updates = evs
        .iter()
        .filter(|e| matches!(e, Event::ProgressUpdated { .. }))
        .count();
    assert_eq!(
        updates, 5000,
        "coalescing took events from a live subscriber"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn next_batch_respects_max_and_ends_with_zero() {
    let rt = Runtime::new();
    let h = rt.spawn(Command::new("seq").arg("10000")).unwrap();
    let id = h.id();
    assert!(h.await.is_success());
    // Through the runtime, with backpressure options (the job is over: the
    // replay is what the finished log keeps, every line reported).
    let mut s = rt.subscribe_job_with(id, SubscribeOptions::backpressure());
    let mut batch = Vec::new();
    let (mut total, mut lines, mut skipped) = (0usize, 0u64, 0u64);
    loop {
        let n = within(30, "next_batch", s.next_batch(&mut batch, 100)).await;
        assert!(n <= 100, "took {n} events for a max of 100");
        assert_eq!(batch.len(), n);
        if n == 0 {
            break;
        }
        total += n;
        for e in batch.drain(..) {
            match e {
                Event::OutputAppended { .. } => lines += 1,
                Event::OutputSkipped { count, .. } => skipped += count,
                _ => {}
            }
        }
    }
    assert_eq!(lines + skipped, 10_000);
    assert!(total > 100, "several batches");
    assert_eq!(s.next_batch(&mut batch, 10).await, 0, "stays ended");
}

#[cfg(feature = "interpret")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn next_batch_with_lends_every_line_in_order_to_a_slow_backpressure_consumer() {
    // A ProgressDetector too: lines without markers skip it in bulk
    // (`Interpreter::ignores_lines`), the progress lines in between must
    // still be seen, in their place.
    let rt = Runtime::builder()
        .output_buffer(1000, 1 << 20)
        .build()
        .unwrap();
    let script = "seq 1 300000; echo 50%; seq 300001 600000; echo 100%";
    let h = rt
        .spawn(
            Command::new("sh")
                .args(["-c", script])
                .interpreter(execra::interpret::ProgressDetector::new()),
        )
        .unwrap();
    let mut s = h.subscribe_with(SubscribeOptions::backpressure().max_lag_bytes(64 * 1024));
    let consumer = async {
        let (mut next, mut calls, mut max_seen) = (1u64, 0usize, 0usize);
        let mut progress = Vec::new();
        let mut kinds = Vec::new();
        loop {
            let mut in_call = 0usize;
            let n = s
                .next_batch_with(512, |ev| {
                    in_call += 1;
                    match ev {
                        EventRef::Output(o) => {
                            assert!(!o.redraw);
                            if let Some(pct) = o.line.strip_suffix('%') {
                                progress.push((next, pct.to_string()));
                            } else {
                                assert_eq!(o.line, next.to_string(), "every line, in order");
                                next += 1;
                            }
                        }
                        EventRef::Other(Event::OutputSkipped { count, .. }) => {
                            panic!("a backpressure subscriber was skipped {count} lines")
                        }
                        EventRef::Other(Event::ProgressUpdated { progress: p, .. }) => {
                            progress.push((next, format!("{:?}", p.as_fraction())));
                        }
                        EventRef::Other(e) => kinds.push(e.kind()),
                    }
                })
                .await;
            assert_eq!(n, in_call, "the count is the number of events lent");
            assert!(n <= 512, "lent {n} events for a max of 512");
            if n == 0 {
                break;
            }
            calls += 1;
            max_seen = max_seen.max(n);
            if calls % 100 == 0 {
                // Deliberately slow.
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        }
        (next - 1, progress, kinds, max_seen)
    };
    let (lines, progress, kinds, max_seen) = within(120, "the consumer", consumer).await;
    assert_eq!(lines, 600_000);
    assert!(max_seen > 1, "several events per call");
    // Each progress line, then its progress event, where it was printed.
    assert_eq!(
        progress,
        [
            (300_001, "50".to_string()),
            (300_001, "Some(0.5)".to_string()),
            (600_001, "100".to_string()),
            (600_001, "Some(1.0)".to_string()),
        ]
    );
    assert_eq!(kinds.first(), Some(&"job_created"));
    assert_eq!(kinds.last(), Some(&"finalized"));
    assert!(h.await.is_success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn next_batch_with_lends_redraws_and_replays_a_finished_job() {
    let rt = Runtime::new();
    let h = rt
        .spawn(Command::new("sh").args(["-c", "printf 'half\\rdone\\nend\\n'"]))
        .unwrap();
    let id = h.id();
    assert!(h.await.is_success());
    // A late subscriber: the replay of the finished job's log.
    let mut s = rt.subscribe_job(id);
    let mut seen = Vec::new();
    while within(
        30,
        "next_batch_with",
        s.next_batch_with(2, |ev| match ev {
            EventRef::Output(o) => seen.push(format!(
                "{}{}",
                o.line,
                if o.redraw { " (redraw)" } else { "" }
            )),
            EventRef::Other(e) => seen.push(e.kind().to_string()),
        }),
    )
    .await
        > 0
    {}
    let output: Vec<&str> = seen
        .iter()
        .map(String::as_str)
        .filter(|k| !k.contains('_') && *k != "exited" && *k != "finalized")
        .collect();
    assert_eq!(output, ["half (redraw)", "done", "end"]);
    assert_eq!(seen.last().map(String::as_str), Some("finalized"));
    let mut none = 0;
    assert_eq!(s.next_batch_with(10, |_| none += 1).await, 0, "stays ended");
    assert_eq!(none, 0);
}
