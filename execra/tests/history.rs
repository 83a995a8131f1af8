//! History: jobs and events in SQLite, read back by later runtimes, queried,
//! pruned, recovered after a crash, shared between processes.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant, SystemTime};

use execra::store::{JobsFilter, Store, StoreError, SCHEMA_VERSION};
use execra::{
    Command, Context, Error, Event, ExitCode, FailureReason, Finding, Interpreter,
    InterpreterEvent, JobId, JobState, Line, Outcome, Progress, RetentionPolicy, Runtime,
};

/// Progress per line, a finding, a summary, and a label change.
struct Chatty;

impl Interpreter for Chatty {
    fn on_line(&mut self, _ctx: &Context, line: &Line) -> Vec<InterpreterEvent> {
        let mut v = vec![InterpreterEvent::Progress {
            progress: Progress::indeterminate(line.text.clone()),
        }];
        if line.text == "warn" {
            v.push(InterpreterEvent::Finding {
                finding: Finding::warning("w.code", "a warning"),
            });
            v.push(InterpreterEvent::Label {
                text: "relabelled".into(),
            });
        }
        v
    }

    fn on_exit(&mut self, _ctx: &Context, _exit: &ExitCode) -> Vec<InterpreterEvent> {
        vec![InterpreterEvent::Summary {
            text: "done here".into(),
        }]
    }
}

fn tmp() -> tempfile::TempDir {
    tempfile::tempdir().expect("tempdir")
}

fn history_rt(path: &Path) -> Runtime {
    Runtime::builder()
        .history(path)
        .build()
        .expect("runtime with history")
}

async fn wait_started(h: &execra::JobHandle) -> u32 {
    let mut events = h.subscribe();
    while let Some(ev) = events.next().await {
        if let Event::JobStarted { pid, .. } = ev {
            return pid;
        }
    }
    panic!("job never started");
}

#[tokio::test]
async fn a_finished_job_is_durable_before_its_handle_resolves() {
    let dir = tmp();
    // Parent directories are created.
    let path = dir.path().join("a/b/history.db");
    let rt = history_rt(&path);
    let h = rt
        .spawn(
            Command::sh("echo one; echo warn; echo err >&2; exit 3")
                .label("lbl")
                .tag("t1")
                .tag("t2")
                .interpreter(Chatty),
        )
        .expect("spawn");
    let id = h.id();
    let outcome = h.await;
    assert!(matches!(
        outcome.failure(),
        Some(FailureReason::NonZeroExit { code: 3 })
    ));

    // No flush: the handle resolved, so everything is on disk already.
    let store = Store::open(&path).expect("open");
    let job = store.load_job(id).expect("load").expect("stored");
    assert_eq!(job.state, JobState::Finalized);
    assert_eq!(job.label.as_deref(), Some("relabelled"));
    assert_eq!(job.command.tags, vec!["t1".to_string(), "t2".to_string()]);
    assert_eq!(job.exit, Some(ExitCode::from_code(3)));
    assert_eq!(job.outcome.as_ref(), Some(&outcome));
    assert!(job.started_at.is_some());

    let events = store.list_events(id, 1000).expect("events");
    let kinds: Vec<&str> = events.iter().map(|e| e.kind()).collect();
    assert_eq!(kinds.first(), Some(&"job_created"));
    assert_eq!(kinds.get(1), Some(&"job_started"));
    assert_eq!(kinds.last(), Some(&"finalized"));
    assert!(kinds.contains(&"exited"));
    assert!(kinds.contains(&"finding_emitted"));
    assert!(kinds.contains(&"label_updated"));
    assert_eq!(
        kinds.iter().filter(|k| **k == "progress_updated").count(),
        3
    );
    assert!(!kinds.contains(&"output_appended"), "{kinds:?}");
    assert!(matches!(events.last(), Some(Event::Finalized { outcome: o, .. }) if *o == outcome));
}

#[tokio::test]
async fn a_new_runtime_reads_jobs_back_from_history() {
    let dir = tmp();
    let path = dir.path().join("h.db");
    let (id, outcome) = {
        let rt = history_rt(&path);
        let h = rt
            .spawn(
                Command::sh("echo hi")
                    .label("keep me")
                    .tag("x")
                    .interpreter(Chatty),
            )
            .expect("spawn");
        let id = h.id();
        (id, h.await)
    };
    let rt = history_rt(&path);
    assert!(rt.recent(10).is_empty(), "not in memory");
    let job = rt.job(id).expect("from history");
    assert_eq!(job.label.as_deref(), Some("keep me"));
    assert_eq!(job.state, JobState::Finalized);
    assert_eq!(job.outcome, Some(outcome.clone()));
    assert_eq!(job.exit, Some(ExitCode::from_code(0)));
    assert!(rt.job(JobId::new()).is_none());

    // Stored events replay through subscribe_job.
    let mut replay = rt.subscribe_job(id);
    let mut kinds = Vec::new();
    while let Some(ev) = replay.next().await {
        kinds.push(ev.kind());
    }
    assert_eq!(kinds.first(), Some(&"job_created"));
    assert_eq!(kinds.last(), Some(&"finalized"));

    let found = rt.jobs().with_tag("x").run(&rt).expect("query");
    assert_eq!(found.len(), 1);
    assert_eq!(found[0].outcome, Some(outcome));
    // Cancelling a job only in history is a no-op.
    rt.cancel(id).expect("finished job");
}

#[tokio::test]
async fn jobs_query_resolves_against_history() {
    let dir = tmp();
    let path = dir.path().join("h.db");
    let rt = Runtime::builder()
        .history(&path)
        .max_finished_jobs(0)
        .build()
        .expect("build");
    let before = SystemTime::now();
    let mut ids = Vec::new();
    for (i, script) in ["exit 0", "exit 1", "exit 0"].iter().enumerate() {
        let tag = if i == 1 { "odd" } else { "even" };
        let h = rt
            .spawn(Command::sh(*script).label(format!("q{i}")).tag(tag))
            .expect("spawn");
        ids.push(h.id());
        h.await;
    }
    let middle = rt.job(ids[1]).expect("job").created_at;

    let all = rt.jobs().run(&rt).expect("all");
    let got: Vec<JobId> = all.iter().map(|j| j.id).collect();
    assert_eq!(got, vec![ids[2], ids[1], ids[0]], "newest first");

    let even = rt.jobs().with_tag("even").run(&rt).expect("tag");
    assert_eq!(
        even.iter().map(|j| j.id).collect::<Vec<_>>(),
        vec![ids[2], ids[0]]
    );
    assert_eq!(
        rt.jobs()
            .with_tag("even")
            .limit(1)
            .run(&rt)
            .expect("lim")
            .len(),
        1
    );
    let fin = rt
        .jobs()
        .with_state(JobState::Finalized)
        .created_after(before)
        .run(&rt)
        .expect("state");
    assert_eq!(fin.len(), 3);
    assert!(rt
        .jobs()
        .with_state(JobState::Running)
        .run(&rt)
        .expect("state")
        .is_empty());
    let after = rt.jobs().created_after(middle).run(&rt).expect("after");
    assert_eq!(after.iter().map(|j| j.id).collect::<Vec<_>>(), vec![ids[2]]);
    let before_mid = rt.jobs().created_before(middle).run(&rt).expect("before");
    assert_eq!(
        before_mid.iter().map(|j| j.id).collect::<Vec<_>>(),
        vec![ids[0]]
    );
}

#[tokio::test]
async fn cancelled_and_spawn_failed_jobs_are_recorded() {
    let dir = tmp();
    let path = dir.path().join("h.db");
    let rt = history_rt(&path);
    let h = rt.spawn(Command::new("sleep").arg("30")).expect("spawn");
    wait_started(&h).await;
    h.cancel().expect("cancel");
    let id = h.id();
    assert!(matches!(h.await, Outcome::Cancelled { .. }));
    let bad = rt
        .spawn(Command::new("/definitely/not/a/program"))
        .expect("spawn");
    let bad_id = bad.id();
    bad.await;

    let store = Store::open(&path).expect("open");
    assert_eq!(
        store.load_job(id).expect("load").expect("job").state,
        JobState::Cancelled
    );
    let kinds: Vec<&str> = store
        .list_events(id, 100)
        .expect("events")
        .iter()
        .map(|e| e.kind())
        .collect();
    assert!(kinds.contains(&"cancelled"), "{kinds:?}");
    let failed = store.load_job(bad_id).expect("load").expect("job");
    assert!(matches!(
        failed.outcome.as_ref().and_then(|o| o.failure()),
        Some(FailureReason::SpawnFailed { .. })
    ));
}

#[tokio::test]
async fn bad_history_paths_are_clear_errors() {
    let dir = tmp();
    // A directory.
    let err = Runtime::builder()
        .history(dir.path())
        .build()
        .expect_err("a directory is no history file");
    assert!(err.to_string().contains("is a directory"), "{err}");

    // Not SQLite: refused, and not overwritten.
    let garbage = dir.path().join("garbage.db");
    let bytes: Vec<u8> = (0..10_000u32).map(|i| (i * 7 % 251) as u8).collect();
    std::fs::write(&garbage, &bytes).expect("write");
    let err = Runtime::builder()
        .history(&garbage)
        .build()
        .expect_err("garbage");
    assert!(matches!(err, Error::Store(StoreError::Sqlite(_))), "{err}");
    assert!(err.to_string().contains("not a database"), "{err}");
    assert_eq!(std::fs::read(&garbage).expect("read"), bytes);

    // A future schema.
    let future = dir.path().join("future.db");
    {
        let c = rusqlite::Connection::open(&future).expect("open");
        c.pragma_update(None, "user_version", SCHEMA_VERSION + 1)
            .expect("pragma");
    }
    let err = Runtime::builder()
        .history(&future)
        .build()
        .expect_err("future");
    assert!(
        matches!(
            err,
            Error::Store(StoreError::UnsupportedSchemaVersion { found, supported })
                if found == SCHEMA_VERSION + 1 && supported == SCHEMA_VERSION
        ),
        "{err}"
    );

    // A place nobody can create files in (even root cannot in /proc).
    let err = Runtime::builder()
        .history("/proc/execra-nope/h.db")
        .build()
        .expect_err("unwritable");
    assert!(err.to_string().contains("/proc/execra-nope"), "{err}");
}

/// The body of the read-only-directory test; must run unprivileged (root
/// ignores directory permissions).
fn read_only_directory_body(ro: &Path) {
    let err = Runtime::builder()
        .history(ro.join("h.db"))
        .build()
        .expect_err("read-only");
    assert!(err.to_string().contains("h.db"), "{err}");
    println!("EXECRA_READONLY_OK {err}");
}

/// Unprivileged user and group the root-only parts of tests drop to.
#[cfg(unix)]
const NOBODY: u32 = 65534;

#[cfg(unix)]
#[tokio::test]
async fn a_read_only_directory_is_a_clear_error() {
    use std::os::unix::fs::PermissionsExt;
    use std::os::unix::process::CommandExt;
    if let Some((role, path)) = role() {
        if role == "readonly" {
            read_only_directory_body(&path);
        }
        return;
    }
    let dir = tmp();
    let ro = dir.path().join("ro");
    std::fs::create_dir(&ro).expect("mkdir");
    std::fs::set_permissions(&ro, std::fs::Permissions::from_mode(0o555)).expect("chmod");
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        read_only_directory_body(&ro);
        return;
    }
    // Root ignores directory permissions (and CI runs as root): run the
    // body in a copy of this test binary as an unprivileged user, in a
    // directory that user can reach.
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).expect("chmod");
    let exe = dir.path().join("test-bin");
    std::fs::copy(std::env::current_exe().expect("current exe"), &exe).expect("copy test binary");
    std::fs::set_permissions(&exe, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    let out = std::process::Command::new(&exe)
        .args([
            "a_read_only_directory_is_a_clear_error",
            "--exact",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(ROLE, "readonly")
        .env(HISTORY, &ro)
        .uid(NOBODY)
        .gid(NOBODY)
        .current_dir(dir.path())
        .stderr(Stdio::inherit())
        .output()
        .expect("run the test body as an unprivileged user (uid 65534)");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && stdout.contains("EXECRA_READONLY_OK"),
        "the read-only-directory body did not pass as uid {NOBODY}: {}: {stdout}",
        out.status
    );
}

#[tokio::test]
async fn retention_prunes_old_events_at_build_and_on_demand_but_keeps_pinned_jobs() {
    let dir = tmp();
    let path = dir.path().join("h.db");
    let old = SystemTime::now() - Duration::from_secs(60 * 24 * 3600);
    let seed = |tags: &[&str]| {
        let store = Store::open(&path).expect("open");
        let spec = Command::new("true")
            .tags(tags.iter().map(|t| t.to_string()))
            .spec()
            .clone();
        let mut job = execra::Job::queued(JobId::new(), spec);
        job.created_at = old;
        job.state = JobState::Finalized;
        job.outcome = Some(Outcome::Succeeded {
            summary: None,
            findings: Vec::new(),
        });
        store.upsert_job(&job).expect("job");
        for _ in 0..5 {
            store
                .insert_event(&Event::ProgressUpdated {
                    job: job.id,
                    progress: Progress::fraction(0.5),
                    at: old,
                })
                .expect("event");
        }
        job.id
    };
    let plain = seed(&[]);
    let pinned = seed(&["pinned"]);

    let rt = history_rt(&path);
    let store = Store::open(&path).expect("open");
    assert!(store.list_events(plain, 100).expect("events").is_empty());
    assert_eq!(store.list_events(pinned, 100).expect("events").len(), 5);
    // The job row stays, with its outcome.
    assert!(rt.job(plain).and_then(|j| j.outcome).is_some());

    // On demand, with a custom pinned tag.
    let later = seed(&[]);
    assert_eq!(store.list_events(later, 100).expect("events").len(), 5);
    let report = tokio::task::spawn_blocking(move || rt.prune())
        .await
        .expect("join")
        .expect("prune");
    assert_eq!(report.events, 5);
    assert!(store.list_events(later, 100).expect("events").is_empty());

    let custom = Runtime::builder()
        .history(&path)
        .retention(RetentionPolicy {
            pinned_tag: "other".into(),
            ..RetentionPolicy::default()
        })
        .build()
        .expect("build");
    drop(custom);
    assert!(store.list_events(pinned, 100).expect("events").is_empty());
}

#[tokio::test]
async fn two_runtimes_share_a_file_and_do_not_strand_each_other() {
    let dir = tmp();
    let path = dir.path().join("h.db");
    let a = history_rt(&path);
    let long = a.spawn(Command::new("sleep").arg("30")).expect("spawn");
    wait_started(&long).await;
    a.flush().await.expect("flush");

    // A second runtime on the same file must not take A's running job for a
    // stranded one.
    let b = history_rt(&path);
    assert_eq!(
        b.job(long.id()).expect("visible to b").state,
        JobState::Running
    );
    let mut handles = Vec::new();
    for i in 0..20 {
        let rt = if i % 2 == 0 { &a } else { &b };
        handles.push(rt.spawn(Command::sh(format!("echo {i}"))).expect("spawn"));
    }
    // A reader lists while both write.
    let store = Store::open(&path).expect("reader");
    let listed = store
        .list_jobs(100, &JobsFilter::default())
        .expect("list while writing");
    assert!(!listed.is_empty());
    for h in handles {
        assert!(h.await.is_success());
    }
    long.cancel().expect("cancel");
    long.await;
    let all = store.list_jobs(100, &JobsFilter::default()).expect("list");
    assert_eq!(all.len(), 21);
    assert!(all.iter().all(|j| j.state.is_terminal()));
    assert_eq!(
        store.load_job(all[20].id).expect("load").map(|j| j.state),
        Some(JobState::Cancelled)
    );
}

// ---------------------------------------------------------------------------
// Crash recovery and multi-process use: this test binary re-executes itself
// with `EXECRA_TEST_ROLE` set to play the other process.

const ROLE: &str = "EXECRA_TEST_ROLE";
const HISTORY: &str = "EXECRA_TEST_HISTORY";

/// Run this test binary's test `name` as a child in role `role`.
fn child(name: &str, role: &str, history: &Path) -> std::process::Child {
    std::process::Command::new(std::env::current_exe().expect("current exe"))
        .args([name, "--exact", "--nocapture", "--test-threads=1"])
        .env(ROLE, role)
        .env(HISTORY, history)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("re-exec the test binary")
}

fn role() -> Option<(String, PathBuf)> {
    let role = std::env::var(ROLE).ok()?;
    let path = std::env::var_os(HISTORY)?;
    Some((role, PathBuf::from(path)))
}

/// The child side: a host that starts `sleep 1000`, reports it, and waits
/// to be killed. On the process-group path: with a cgroup the host's
/// watchdog would kill the tree with the host (`containment.rs` and the
/// CLI's `contain.rs` test that); this test is about recovery.
async fn crash_host(path: &Path) {
    let rt = Runtime::builder()
        .history(path)
        .containment(execra::Containment::ProcessGroup)
        .build()
        .expect("runtime");
    let h = rt
        .spawn(
            Command::new("sleep")
                .arg("1000")
                .label("stranded")
                .tag("crash"),
        )
        .expect("spawn");
    let pid = wait_started(&h).await;
    rt.flush().await.expect("flush");
    println!("EXECRA_JOB {} {pid}", h.id());
    std::future::pending::<()>().await;
}

/// Linux: is `pid` gone (or a zombie nobody reaps)?
fn gone(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => true,
        Ok(s) => s
            .rsplit_once(')')
            .is_some_and(|(_, rest)| rest.trim_start().starts_with(['Z', 'X'])),
    }
}

#[cfg(target_os = "linux")]
#[tokio::test]
async fn after_the_host_is_killed_the_next_runtime_finalizes_and_kills_stranded_jobs() {
    if let Some((role, path)) = role() {
        if role == "crash" {
            crash_host(&path).await;
        }
        return;
    }
    let dir = tmp();
    let path = dir.path().join("h.db");
    let mut host = child(
        "after_the_host_is_killed_the_next_runtime_finalizes_and_kills_stranded_jobs",
        "crash",
        &path,
    );
    let stdout = host.stdout.take().expect("stdout");
    let reader = tokio::task::spawn_blocking(move || {
        for line in BufReader::new(stdout).lines() {
            let line = line.expect("line");
            // The harness may print "test name ... " on the same line first.
            if let Some((_, rest)) = line.split_once("EXECRA_JOB ") {
                let (id, pid) = rest.split_once(' ').expect("two fields");
                return (
                    id.parse::<JobId>().expect("job id"),
                    pid.parse::<u32>().expect("pid"),
                );
            }
        }
        panic!("the host never reported its job");
    });
    let (id, pid) = match tokio::time::timeout(Duration::from_secs(60), reader).await {
        Ok(r) => r.expect("join"),
        Err(_) => {
            let _ = host.kill();
            panic!("the host did not report its job within 60 s");
        }
    };
    assert!(!gone(pid), "sleep runs while the host lives");

    host.kill().expect("SIGKILL the host");
    host.wait().expect("reap the host");
    assert!(!gone(pid), "sleep outlives its host");
    assert_eq!(
        Store::open(&path)
            .expect("open")
            .load_job(id)
            .expect("load")
            .map(|j| j.state),
        Some(JobState::Running)
    );

    let rt = history_rt(&path);
    let job = rt.job(id).expect("job in history");
    assert_eq!(job.state, JobState::Finalized);
    assert_eq!(job.label.as_deref(), Some("stranded"));
    assert_eq!(
        job.outcome,
        Some(Outcome::Failed {
            reason: FailureReason::SpawnFailed {
                error: "host process exited".into()
            },
            summary: None,
            findings: Vec::new(),
        })
    );
    let events = Store::open(&path)
        .expect("open")
        .list_events(id, 100)
        .expect("events");
    assert!(matches!(events.last(), Some(Event::Finalized { .. })));

    // The stranded process group was killed (no event to wait on: poll).
    let deadline = Instant::now() + Duration::from_secs(10);
    while !gone(pid) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(gone(pid), "the stranded sleep {pid} was killed");
}

/// The child side: run 30 short jobs.
async fn writer_process(path: &Path) {
    let rt = history_rt(path);
    let mut hs = Vec::new();
    for i in 0..30 {
        hs.push(
            rt.spawn(Command::sh(format!("echo child {i}")).tag("child"))
                .expect("spawn"),
        );
    }
    for h in hs {
        assert!(h.await.is_success());
    }
}

#[tokio::test]
async fn two_processes_write_one_history() {
    if let Some((role, path)) = role() {
        if role == "writer" {
            writer_process(&path).await;
        }
        return;
    }
    let dir = tmp();
    let path = dir.path().join("h.db");
    // Create the file first so both processes open an existing database.
    drop(Store::open(&path).expect("create"));
    let mut other = child("two_processes_write_one_history", "writer", &path);
    let rt = history_rt(&path);
    let mut hs = Vec::new();
    for i in 0..30 {
        hs.push(
            rt.spawn(Command::sh(format!("echo parent {i}")).tag("parent"))
                .expect("spawn"),
        );
    }
    for h in hs {
        assert!(h.await.is_success());
    }
    let status = tokio::task::spawn_blocking(move || other.wait())
        .await
        .expect("join")
        .expect("wait");
    assert!(status.success(), "the other process failed: {status}");
    let store = Store::open(&path).expect("open");
    for tag in ["parent", "child"] {
        let jobs = store
            .list_jobs(
                100,
                &JobsFilter {
                    tag: Some(tag.into()),
                    ..Default::default()
                },
            )
            .expect("list");
        assert_eq!(jobs.len(), 30, "{tag}");
        assert!(jobs.iter().all(|j| j.state == JobState::Finalized));
    }
}

/// Largest file the disk-full child may write (`RLIMIT_FSIZE`).
#[cfg(target_os = "linux")]
const FILE_SIZE_LIMIT: u64 = 256 * 1024;

/// The child side: files may not grow past [`FILE_SIZE_LIMIT`], so the
/// history's writes fail (`EFBIG`, `SIGXFSZ` ignored) as on a full disk.
#[cfg(target_os = "linux")]
async fn disk_full(path: &Path) {
    // SAFETY: plain signal(2)/setrlimit(2) calls on this process.
    unsafe {
        assert_ne!(libc::signal(libc::SIGXFSZ, libc::SIG_IGN), libc::SIG_ERR);
        let limit = libc::rlimit {
            rlim_cur: FILE_SIZE_LIMIT,
            rlim_max: FILE_SIZE_LIMIT,
        };
        assert_eq!(
            libc::setrlimit(libc::RLIMIT_FSIZE, &limit),
            0,
            "setrlimit: {}",
            std::io::Error::last_os_error()
        );
    }
    let rt = history_rt(path);
    let h = rt
        .spawn(
            Command::sh("i=0; while [ $i -lt 20000 ]; do echo line$i; i=$((i+1)); done")
                .interpreter(Chatty),
        )
        .expect("spawn");
    let id = h.id();
    // The job still runs and finalizes.
    assert!(h.await.is_success());
    let err = rt
        .flush()
        .await
        .expect_err("the failed writes are reported");
    assert!(
        matches!(&err, Error::Store(StoreError::WriteFailed { failures, .. }) if *failures > 0),
        "{err:?}"
    );
    // Nothing panicked and the file is still a readable history.
    let store = Store::open(path).expect("reopen");
    let state = store.load_job(id).expect("load").map(|j| j.state);
    assert!(state.is_some());
    println!("EXECRA_DISKFULL_OK {state:?} {err}");
}

/// Runs on any Linux, as any user: the child limits its own file size
/// (`RLIMIT_FSIZE`), which needs no privilege, mount or namespace. The
/// only test of the writer's retry and `StoreError::WriteFailed` path.
#[cfg(target_os = "linux")]
#[tokio::test]
async fn a_full_disk_is_reported_not_a_panic() {
    if let Some((role, path)) = role() {
        if role == "diskfull" {
            disk_full(&path).await;
        }
        return;
    }
    let dir = tmp();
    let path = dir.path().join("h.db");
    let out = child("a_full_disk_is_reported_not_a_panic", "diskfull", &path)
        .wait_with_output()
        .expect("run the disk-full child");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && stdout.contains("EXECRA_DISKFULL_OK"),
        "{}: {stdout}",
        out.status
    );
    eprintln!(
        "{}",
        stdout
            .lines()
            .find(|l| l.contains("EXECRA_DISKFULL_OK"))
            .unwrap_or("")
    );
    // The limit was what failed the writes: the file is at most that big.
    let size = std::fs::metadata(&path).expect("history file").len();
    assert!(size <= FILE_SIZE_LIMIT, "{size}");
}

/// Not a benchmark harness, a quick probe: `cargo test --release -p execra
/// --test history -- --ignored --nocapture history_throughput_probe`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore]
async fn history_throughput_probe() {
    let dir = tmp();
    let path = dir.path().join("h.db");
    probe("no history", &Runtime::new(), None).await;
    probe("history", &history_rt(&path), Some(&path)).await;
}

async fn probe(name: &str, rt: &Runtime, path: Option<&Path>) {
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let ticker = {
        let stop = stop.clone();
        tokio::spawn(async move {
            let mut late = Vec::new();
            let mut iv = tokio::time::interval(Duration::from_millis(1));
            iv.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            let mut expected = tokio::time::Instant::now();
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let t = iv.tick().await;
                let now = tokio::time::Instant::now();
                late.push(now.saturating_duration_since(t.max(expected)));
                expected = now + Duration::from_millis(1);
            }
            late.sort();
            late
        })
    };
    let start = Instant::now();
    let h = rt
        .spawn(Command::sh("seq 1 100000").interpreter(Chatty))
        .expect("spawn");
    let id = h.id();
    h.await;
    let elapsed = start.elapsed();
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let late = ticker.await.expect("ticker");
    let rows = match path {
        Some(p) => Store::open(p)
            .expect("open")
            .list_events(id, usize::MAX)
            .expect("events")
            .len(),
        None => 100_004,
    };
    let p99 = late[late.len() * 99 / 100];
    println!(
        "{name}: rows {rows} in {elapsed:?}: {:.0} rows/s; tick lateness p99 {p99:?}, max {:?}",
        rows as f64 / elapsed.as_secs_f64(),
        late.last()
    );
}

#[tokio::test]
async fn a_query_sees_a_job_spawned_just_before() {
    let dir = tmp();
    let rt = history_rt(&dir.path().join("h.db"));
    let h = rt
        .spawn(Command::new("sleep").arg("30").tag("fresh"))
        .expect("spawn");
    let found = rt.jobs().with_tag("fresh").run(&rt).expect("query");
    assert_eq!(found.iter().map(|j| j.id).collect::<Vec<_>>(), vec![h.id()]);
    h.cancel().expect("cancel");
    h.await;
}

/// Several processes (here threads with their own connections) opening the
/// same fresh history file at once all succeed: the switch to WAL is retried
/// while another opener holds the lock, instead of failing with "database
/// is locked" (which made `execra run` lose its history when an `execra ls`
/// opened the file at the same moment).
#[test]
fn concurrent_opens_of_a_fresh_history_all_succeed() {
    for round in 0..20 {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("h.sqlite");
        let barrier = std::sync::Arc::new(std::sync::Barrier::new(6));
        let openers: Vec<_> = (0..6)
            .map(|_| {
                let (path, barrier) = (path.clone(), barrier.clone());
                std::thread::spawn(move || {
                    barrier.wait();
                    execra::store::Store::open(&path).map(|_| ())
                })
            })
            .collect();
        for o in openers {
            let r = o.join().expect("opener thread");
            assert!(r.is_ok(), "round {round}: {r:?}");
        }
    }
}
