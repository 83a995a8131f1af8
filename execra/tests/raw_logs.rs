//! Raw output logs: plain and gzipped files, reading them back (also while
//! they are written), an unwritable log directory, retention, owner-only
//! files.

mod common;

use std::fs;
use std::path::Path;
use std::time::{Duration, SystemTime};

use execra::store::Store;
use execra::{
    Command, Event, Job, JobId, JobState, Outcome, RawOutputPolicy, RetentionPolicy, Runtime,
    Stream,
};

fn tmp() -> tempfile::TempDir {
    tempfile::tempdir().expect("tempdir")
}

fn texts(rt: &Runtime, id: JobId) -> Vec<(Stream, String)> {
    rt.output(id)
        .expect("output")
        .into_iter()
        .map(|l| (l.stream, l.text))
        .collect()
}

#[tokio::test]
async fn log_dir_implies_persist_with_prefixed_lines() {
    let dir = tmp();
    let logs = dir.path().join("nested/logs");
    let rt = Runtime::builder().log_dir(&logs).build().expect("build");
    assert!(logs.is_dir(), "the log dir is created at build");
    let h = rt
        .spawn(Command::sh(
            "echo out1; echo err1 >&2; printf 'draft\\rfinal\\n'",
        ))
        .expect("spawn");
    let id = h.id();
    assert!(h.await.is_success());

    let text = fs::read_to_string(logs.join(format!("{id}.log"))).expect("log file");
    assert!(text.contains("[stdout] out1\n"), "{text:?}");
    assert!(text.contains("[stderr] err1\n"), "{text:?}");
    // Redraws are provisional: only the line's final text is logged.
    assert!(text.ends_with("[stdout] final\n") || text.contains("[stdout] final\n"));
    assert!(!text.contains("draft"), "{text:?}");

    let mut got = texts(&rt, id);
    got.sort_by_key(|(s, t)| (s.as_str(), t.clone()));
    assert_eq!(
        got,
        vec![
            (Stream::Stderr, "err1".to_string()),
            (Stream::Stdout, "final".to_string()),
            (Stream::Stdout, "out1".to_string()),
        ]
    );
}

#[tokio::test]
async fn a_big_log_is_complete_and_in_order() {
    let dir = tmp();
    let rt = Runtime::builder()
        .log_dir(dir.path())
        .raw_output(RawOutputPolicy::Persist)
        .build()
        .expect("build");
    let h = rt
        .spawn(Command::sh(
            "i=0; while [ $i -lt 20000 ]; do echo line$i; i=$((i+1)); done",
        ))
        .expect("spawn");
    let id = h.id();
    assert!(h.await.is_success());
    let lines = rt.output(id).expect("output");
    assert_eq!(lines.len(), 20_000);
    assert!(lines
        .iter()
        .enumerate()
        .all(|(i, l)| l.text == format!("line{i}") && l.stream == Stream::Stdout));
}

#[cfg(feature = "gzip")]
#[tokio::test]
async fn gzip_on_finalize_replaces_the_plain_log() {
    use std::io::Read;

    let dir = tmp();
    let rt = Runtime::builder()
        .log_dir(dir.path())
        .raw_output(RawOutputPolicy::PersistGzipOnFinalize)
        .build()
        .expect("build");
    let h = rt
        .spawn(Command::sh("echo zipped; echo also >&2"))
        .expect("spawn");
    let id = h.id();
    assert!(h.await.is_success());
    let mut got = texts(&rt, id);
    got.sort_by_key(|(s, t)| (s.as_str(), t.clone()));
    assert_eq!(
        got,
        vec![
            (Stream::Stderr, "also".to_string()),
            (Stream::Stdout, "zipped".to_string()),
        ]
    );
    let gz = dir.path().join(format!("{id}.log.gz"));
    assert!(gz.is_file(), "gzipped log exists");
    assert!(
        !dir.path().join(format!("{id}.log")).exists(),
        "plain log removed"
    );
    let mut text = String::new();
    flate2::read::GzDecoder::new(fs::File::open(&gz).expect("open"))
        .read_to_string(&mut text)
        .expect("gunzip");
    let mut lines: Vec<&str> = text.lines().collect();
    lines.sort();
    assert_eq!(lines, vec!["[stderr] also", "[stdout] zipped"]);
}

#[tokio::test]
async fn an_unwritable_log_dir_is_reported_and_the_job_still_runs() {
    let dir = tmp();
    let logs = dir.path().join("logs");
    let rt = Runtime::builder().log_dir(&logs).build().expect("build");
    // The directory turns into a file after build: nothing can be created
    // in it (even as root).
    fs::remove_dir(&logs).expect("rmdir");
    fs::write(&logs, b"not a dir").expect("file");

    let h = rt.spawn(Command::sh("echo still runs")).expect("spawn");
    let id = h.id();
    let mut events = h.subscribe();
    let outcome = h.await;
    assert!(outcome.is_success());
    let mut warned = None;
    while let Some(ev) = events.next().await {
        if let Event::WarningDetected { code, message, .. } = ev {
            warned = Some((code, message));
        }
    }
    let (code, message) = warned.expect("a warning about the raw log");
    assert_eq!(code.as_deref(), Some("execra.raw_log"));
    assert!(message.contains(&id.to_string()), "{message}");
    assert_eq!(rt.output(id).expect("output"), Vec::new());
}

#[tokio::test]
async fn bad_log_dirs_at_build_are_clear_errors() {
    let dir = tmp();
    let file = dir.path().join("f");
    fs::write(&file, b"x").expect("file");
    let err = Runtime::builder()
        .log_dir(&file)
        .build()
        .expect_err("a file is no log dir");
    assert!(err.to_string().contains("not a directory"), "{err}");

    let err = Runtime::builder()
        .raw_output(RawOutputPolicy::Persist)
        .build()
        .expect_err("persist needs a log dir");
    assert!(err.to_string().contains("log_dir"), "{err}");
}

fn age(path: &Path, days: u64) {
    let f = fs::File::options().write(true).open(path).expect("open");
    f.set_modified(SystemTime::now() - Duration::from_secs(days * 24 * 3600))
        .expect("set mtime");
}

#[tokio::test]
async fn old_raw_logs_are_pruned_but_pinned_ones_are_kept() {
    let dir = tmp();
    let logs = dir.path().join("logs");
    let history = dir.path().join("h.db");
    fs::create_dir_all(&logs).expect("mkdir");
    let store = Store::open(&history).expect("store");
    let seed = |tags: &[&str]| {
        let spec = Command::new("true")
            .tags(tags.iter().map(|t| t.to_string()))
            .spec()
            .clone();
        let mut job = Job::queued(JobId::new(), spec);
        job.state = JobState::Finalized;
        job.outcome = Some(Outcome::Succeeded {
            summary: None,
            findings: Vec::new(),
        });
        store.upsert_job(&job).expect("job");
        let path = logs.join(format!("{}.log", job.id));
        fs::write(&path, "[stdout] old\n").expect("log");
        age(&path, 10);
        job.id
    };
    let plain = seed(&[]);
    let pinned = seed(&["pinned"]);
    let fresh = seed(&[]);
    fs::File::options()
        .write(true)
        .open(logs.join(format!("{fresh}.log")))
        .expect("open")
        .set_modified(SystemTime::now())
        .expect("mtime");
    let unrelated = logs.join("notes.txt");
    fs::write(&unrelated, "keep").expect("write");
    age(&unrelated, 100);

    let rt = Runtime::builder()
        .history(&history)
        .log_dir(&logs)
        .build()
        .expect("build");
    assert!(
        !logs.join(format!("{plain}.log")).exists(),
        "old log pruned"
    );
    assert!(logs.join(format!("{pinned}.log")).exists(), "pinned kept");
    assert!(logs.join(format!("{fresh}.log")).exists(), "fresh kept");
    assert!(unrelated.exists(), "foreign files are not touched");
    assert_eq!(
        rt.output(pinned).expect("output")[0].text,
        "old".to_string()
    );

    // On demand.
    age(&logs.join(format!("{fresh}.log")), 8);
    let report = tokio::task::spawn_blocking(move || rt.prune())
        .await
        .expect("join")
        .expect("prune");
    assert_eq!(report.raw_logs, 1);
    assert!(!logs.join(format!("{fresh}.log")).exists());
}

#[tokio::test]
async fn without_history_raw_logs_are_pruned_by_age() {
    let dir = tmp();
    let old = dir.path().join(format!("{}.log", JobId::new()));
    fs::write(&old, "[stdout] x\n").expect("write");
    age(&old, 3);
    let rt = Runtime::builder()
        .log_dir(dir.path())
        .retention(RetentionPolicy {
            keep_raw_for: Duration::from_secs(24 * 3600),
            ..RetentionPolicy::default()
        })
        .build()
        .expect("build");
    assert!(!old.exists());
    assert_eq!(rt.prune().expect("prune").raw_logs, 0);
}

/// The whole `<id>.log.gz`, read by a strict decoder (fails on a stream
/// without its trailer).
#[cfg(feature = "gzip")]
fn gunzip(path: &Path) -> Result<String, String> {
    use std::io::Read;
    let f = fs::File::open(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let mut text = String::new();
    flate2::read::GzDecoder::new(f)
        .read_to_string(&mut text)
        .map_err(|e| format!("{}: {e}", path.display()))?;
    Ok(text)
}

/// issue 12 §1a: once a handle resolves, its gzipped log is complete and no
/// plain log exists — every time, with several jobs finishing at once.
#[cfg(feature = "gzip")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gzip_logs_are_final_when_the_handle_resolves_100_times_under_load() {
    let dir = tmp();
    let rt = Runtime::builder()
        .log_dir(dir.path())
        .raw_output(RawOutputPolicy::PersistGzipOnFinalize)
        .max_concurrent(4)
        .build()
        .expect("build");
    const LINES: usize = 3000;
    let mut tasks = Vec::new();
    for worker in 0..4 {
        let rt = rt.clone();
        let logs = dir.path().to_path_buf();
        tasks.push(tokio::spawn(async move {
            for round in 0..25 {
                let h = rt
                    .spawn(Command::sh(format!(
                        "seq 1 {}; echo done-{worker}-{round} >&2",
                        LINES - 1
                    )))
                    .expect("spawn");
                let id = h.id();
                assert!(h.await.is_success());
                // Checked right after `.await`, before anything else runs.
                let plain = logs.join(format!("{id}.log"));
                let text = gunzip(&logs.join(format!("{id}.log.gz")))
                    .unwrap_or_else(|e| panic!("worker {worker} round {round}: {e}"));
                assert!(!plain.exists(), "plain log of {id} exists");
                let lines: Vec<&str> = text.lines().collect();
                assert_eq!(lines.len(), LINES, "worker {worker} round {round}");
                assert!(lines.contains(&"[stdout] 1"));
                assert!(lines.contains(&format!("[stdout] {}", LINES - 1).as_str()));
                assert!(lines.contains(&format!("[stderr] done-{worker}-{round}").as_str()));
                assert_eq!(rt.output(id).expect("output").len(), LINES);
            }
        }));
    }
    for t in tasks {
        t.await.expect("a worker failed");
    }
    assert_eq!(
        fs::read_dir(dir.path()).expect("ls").count(),
        100,
        "one .log.gz per job and nothing else"
    );
}

/// A log being written is readable: `Runtime::output` and `LogTail` see
/// every line published so far, plain or gzipped.
async fn readable_while_running(policy: RawOutputPolicy) {
    let dir = tmp();
    let rt = Runtime::builder()
        .log_dir(dir.path())
        .raw_output(policy)
        .build()
        .expect("build");
    let gate = dir.path().join("gate");
    let h = rt
        .spawn(Command::sh(format!(
            "echo first; echo second >&2; while [ ! -e {} ]; do sleep 0.02; done; echo third",
            gate.display()
        )))
        .expect("spawn");
    let id = h.id();
    let mut events = h.subscribe();
    let mut seen = 0;
    while seen < 2 {
        match events.next().await.expect("stream ended early") {
            Event::OutputAppended { .. } => seen += 1,
            _ => continue,
        }
    }
    // An output event is published after its line is in the log.
    let mut got = texts(&rt, id);
    got.sort_by_key(|(s, t)| (s.as_str(), t.clone()));
    assert_eq!(
        got,
        vec![
            (Stream::Stderr, "second".to_string()),
            (Stream::Stdout, "first".to_string())
        ]
    );
    let mut tail = execra::output::LogTail::new(dir.path(), id);
    let mut tailed: Vec<String> = tail
        .poll()
        .expect("poll")
        .into_iter()
        .map(|l| l.text)
        .collect();
    tailed.sort();
    assert_eq!(tailed, vec!["first", "second"]);
    fs::write(&gate, b"go").expect("gate");
    assert!(h.await.is_success());
    let rest: Vec<String> = tail
        .poll()
        .expect("poll")
        .into_iter()
        .map(|l| l.text)
        .collect();
    assert_eq!(rest, vec!["third"]);
    assert_eq!(texts(&rt, id).len(), 3);
}

#[tokio::test]
async fn a_plain_log_is_readable_while_the_job_runs() {
    readable_while_running(RawOutputPolicy::Persist).await;
}

#[cfg(feature = "gzip")]
#[tokio::test]
async fn a_gzipped_log_is_readable_while_the_job_runs() {
    readable_while_running(RawOutputPolicy::PersistGzipOnFinalize).await;
}

/// issue 12 §3: the history file (with its -wal and -shm), the raw logs and
/// the directories created for them are readable by their owner only.
#[cfg(unix)]
#[tokio::test]
async fn history_and_raw_logs_are_owner_only() {
    use std::os::unix::fs::PermissionsExt;

    let mode = |p: &Path| {
        fs::metadata(p)
            .unwrap_or_else(|e| panic!("{}: {e}", p.display()))
            .permissions()
            .mode()
            & 0o777
    };
    // Even with a permissive umask, nothing is group/world readable.
    // SAFETY: umask only changes this process's file-creation mask.
    let old = unsafe { libc::umask(0) };
    let dir = tmp();
    let db = dir.path().join("state/history/h.db");
    let logs = dir.path().join("logs/raw");
    let built = Runtime::builder()
        .history(&db)
        .log_dir(&logs)
        .raw_output(RawOutputPolicy::Persist)
        .build();
    // SAFETY: as above.
    unsafe { libc::umask(old) };
    let rt = built.expect("build");
    let h = rt.spawn(Command::sh("echo secret-ish")).expect("spawn");
    let id = h.id();
    assert!(h.await.is_success());
    rt.flush().await.expect("flush");

    for d in ["state", "state/history", "logs", "logs/raw"] {
        assert_eq!(mode(&dir.path().join(d)), 0o700, "{d}");
    }
    let wal = dir.path().join("state/history/h.db-wal");
    let shm = dir.path().join("state/history/h.db-shm");
    for f in [&db, &wal, &shm, &logs.join(format!("{id}.log"))] {
        assert_eq!(mode(f), 0o600, "{}", f.display());
    }
}

/// Not a benchmark harness, a probe for BENCHMARKS.md ("Raw logs: finishing
/// a 100 MiB log"): `cargo test --release -p execra --test raw_logs --
/// --ignored --nocapture finishing_a_100_mib_log_probe`.
///
/// For each policy (no raw log, plain, gzip), interleaved rep by rep: the
/// job writes 100 MiB of `seq` lines; *finishing* is `finalized.at −
/// exited.at` (the verdict and closing the log; the handle resolves right
/// after `finalized`), *total* is spawn → handle resolved. For scale, the
/// plain log is also compressed after the job the way the previous design
/// did it (on a thread, after the handle resolved): how long a reader had to
/// wait for a final `.log.gz` then.
#[cfg(feature = "gzip")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore]
async fn finishing_a_100_mib_log_probe() {
    use std::time::Instant;

    const REPS: usize = 5;
    let dir = tmp();
    let policies = [
        ("disabled", RawOutputPolicy::Disabled),
        ("persist", RawOutputPolicy::Persist),
        ("gzip", RawOutputPolicy::PersistGzipOnFinalize),
    ];
    let mut finishing: Vec<Vec<Duration>> = vec![Vec::new(); policies.len()];
    let mut total: Vec<Vec<Duration>> = vec![Vec::new(); policies.len()];
    let mut sizes = vec![0u64; policies.len()];
    let mut after: Vec<Duration> = Vec::new();
    for rep in 0..REPS {
        for k in 0..policies.len() {
            // Rotate the order so no policy always runs first.
            let i = (k + rep) % policies.len();
            let (name, policy) = policies[i];
            let logs = dir.path().join(format!("{name}-{rep}"));
            let rt = Runtime::builder()
                .log_dir(&logs)
                .raw_output(policy)
                .build()
                .expect("build");
            let start = Instant::now();
            let h = rt
                .spawn(Command::sh("seq 1 20000000 | head -c 104857600"))
                .expect("spawn");
            let id = h.id();
            assert!(h.await.is_success());
            total[i].push(start.elapsed());
            let mut events = rt.subscribe_job(id);
            let (mut exited, mut finalized) = (None, None);
            while let Some(ev) = events.next().await {
                match ev {
                    Event::Exited { at, .. } => exited = Some(at),
                    Event::Finalized { at, .. } => finalized = Some(at),
                    _ => {}
                }
            }
            let (Some(e), Some(f)) = (exited, finalized) else {
                panic!("{name}: no exited/finalized event");
            };
            finishing[i].push(f.duration_since(e).unwrap_or_default());
            if policy == RawOutputPolicy::Persist {
                use std::io::Write;
                let t = Instant::now();
                let plain = logs.join(format!("{id}.log"));
                let mut input = fs::File::open(&plain).expect("plain log");
                let out = fs::File::create(logs.join("old.gz")).expect("create");
                let mut enc = flate2::write::GzEncoder::new(
                    std::io::BufWriter::new(out),
                    flate2::Compression::fast(),
                );
                std::io::copy(&mut input, &mut enc).expect("compress");
                let mut out = enc.finish().expect("finish");
                out.flush().expect("flush");
                out.get_ref().sync_all().expect("sync");
                after.push(t.elapsed());
                fs::remove_file(logs.join("old.gz")).expect("rm");
            }
            // (No directory for `disabled`.)
            sizes[i] = fs::read_dir(&logs)
                .into_iter()
                .flatten()
                .flatten()
                .map(|e| e.metadata().map(|m| m.len()).unwrap_or(0))
                .sum();
            let _ = fs::remove_dir_all(&logs);
        }
    }
    let median = |v: &mut Vec<Duration>| {
        v.sort();
        v[v.len() / 2]
    };
    println!("| policy | finishing (median of {REPS}) | total spawn → resolved | log size |");
    println!("|---|---|---|---|");
    for (i, (name, _)) in policies.iter().enumerate() {
        println!(
            "| {name} | {:.2} ms | {:.0} ms | {:.1} MiB |",
            median(&mut finishing[i]).as_secs_f64() * 1e3,
            median(&mut total[i]).as_secs_f64() * 1e3,
            sizes[i] as f64 / (1024.0 * 1024.0)
        );
    }
    println!(
        "previous design, compressing after the handle resolved: {:.0} ms",
        median(&mut after).as_secs_f64() * 1e3
    );
    println!("raw finishing: {finishing:?}");
    println!("raw total: {total:?}");
}

/// A retention pass is a `tracing` event with what it removed (never file
/// contents).
#[tokio::test]
async fn a_retention_pass_is_traced_with_its_counts() {
    let (capture, _default) = common::Capture::install();

    let dir = tmp();
    for _ in 0..2 {
        let old = dir.path().join(format!("{}.log", JobId::new()));
        fs::write(&old, "[stdout] private-output\n").expect("write");
        age(&old, 30);
    }
    // Built on this thread: the build-time pass runs here.
    let _rt = Runtime::builder()
        .log_dir(dir.path())
        .build()
        .expect("build");
    let text = capture.text();
    let line = text
        .lines()
        .find(|l| l.contains("retention pass done"))
        .unwrap_or_else(|| panic!("no retention event in {text:?}"));
    assert!(line.contains("raw_logs=2"), "{line}");
    assert!(line.contains("execra::retention"), "{line}");
    assert!(!text.contains("private-output"), "{text}");
}
