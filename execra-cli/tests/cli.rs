//! The built `execra` binary against temporary history files.

mod common;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{execra, text};

use execra::Event;

/// `execra run -- sh -c SCRIPT` in the background, output discarded.
fn spawn_run(db: &Path, script: &str) -> std::process::Child {
    Command::new(env!("CARGO_BIN_EXE_execra"))
        .arg("--db")
        .arg(db)
        .args(["run", "--", "sh", "-c", script])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start execra run")
}

#[test]
fn run_ls_show_logs_round_trip() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("h.sqlite");
    let out = execra(
        &db,
        &[
            "run",
            "--label",
            "greeting",
            "--tag",
            "demo",
            "--",
            "sh",
            "-c",
            "echo hello; echo oops >&2; printf '50%%\\r100%%\\n'",
        ],
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout), "hello\n100%\n");
    assert!(text(&out.stderr).contains("oops"));

    let ls = execra(&db, &["ls"]);
    assert!(ls.status.success());
    let ls = text(&ls.stdout);
    assert!(ls.contains("greeting") && ls.contains("succeeded"), "{ls}");

    let json = execra(&db, &["ls", "--json", "--tag", "demo"]);
    let job: execra::Job =
        serde_json::from_str(text(&json.stdout).lines().next().unwrap()).unwrap();
    assert_eq!(job.label.as_deref(), Some("greeting"));
    let prefix = &job.id.0.simple().to_string()[..8];

    let show = execra(&db, &["show", prefix, "--events"]);
    assert!(show.status.success(), "{}", text(&show.stderr));
    let show = text(&show.stdout);
    assert!(
        show.contains("sh -c") && show.contains("finalized"),
        "{show}"
    );

    let logs = execra(&db, &["logs", prefix]);
    assert!(logs.status.success(), "{}", text(&logs.stderr));
    assert_eq!(text(&logs.stdout), "hello\n100%\n");
    assert_eq!(text(&logs.stderr), "oops\n");
}

#[test]
fn exit_codes_are_distinct() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("h.sqlite");
    assert_eq!(
        execra(&db, &["run", "--", "sh", "-c", "exit 7"])
            .status
            .code(),
        Some(7)
    );
    assert_eq!(
        execra(&db, &["run", "--timeout", "200ms", "--", "sleep", "30"])
            .status
            .code(),
        Some(124)
    );
    let missing = execra(&db, &["run", "--", "/no/such/program"]);
    assert_eq!(missing.status.code(), Some(127));
    assert!(
        text(&missing.stderr).contains("not found"),
        "{}",
        text(&missing.stderr)
    );
    assert_eq!(
        execra(&db, &["run", "--", "sh", "-c", "kill -9 $$"])
            .status
            .code(),
        Some(137)
    );
}

#[test]
fn usage_errors_exit_2_with_one_readable_line() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("h.sqlite");
    let bad = execra(&db, &["run", "--timeout", "soon", "--", "true"]);
    assert_eq!(bad.status.code(), Some(2));
    assert!(text(&bad.stderr).contains("invalid duration"));
    // Flags meant for the program without `--` are rejected, not swallowed.
    let no_sep = execra(&db, &["run", "ls", "-la"]);
    assert_eq!(no_sep.status.code(), Some(2));
    let unknown = execra(&db, &["show", "ffffffff"]);
    assert_eq!(unknown.status.code(), Some(1));
    assert!(text(&unknown.stderr).starts_with("execra: no job matches"));
    let not_hex = execra(&db, &["show", "zzz"]);
    assert_eq!(not_hex.status.code(), Some(2));
}

#[test]
fn ambiguous_prefix_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("h.sqlite");
    for _ in 0..2 {
        execra(&db, &["run", "--", "true"]);
    }
    // UUID v7 ids made in the same second share their first digits.
    let amb = execra(&db, &["show", "0"]);
    assert_eq!(amb.status.code(), Some(1));
    assert!(
        text(&amb.stderr).contains("ambiguous"),
        "{}",
        text(&amb.stderr)
    );
}

#[test]
fn corrupt_history_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("h.sqlite");
    std::fs::write(&db, vec![0x42u8; 8192]).unwrap();
    let out = execra(&db, &["ls"]);
    assert_eq!(out.status.code(), Some(1));
    let err = text(&out.stderr);
    assert!(
        err.starts_with("execra: ") && err.lines().count() == 1,
        "{err}"
    );
}

#[test]
fn json_lines_parse_back_into_events() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("h.sqlite");
    let out = execra(&db, &["run", "--json", "--", "sh", "-c", "echo a; echo b"]);
    assert!(out.status.success());
    let evs: Vec<Event> = text(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).expect("a JSON event"))
        .collect();
    assert_eq!(evs.first().map(Event::kind), Some("job_created"));
    assert_eq!(evs.last().map(Event::kind), Some("finalized"));
    assert_eq!(evs.iter().filter(|e| e.is_output()).count(), 2);
}

#[cfg(target_os = "linux")]
#[test]
fn sigint_cancels_the_job_and_leaves_no_survivors() {
    stop_signal_cancels(libc::SIGINT);
}

#[cfg(target_os = "linux")]
#[test]
fn sigterm_to_the_cli_cancels_the_job_too() {
    stop_signal_cancels(libc::SIGTERM);
}

#[cfg(target_os = "linux")]
fn stop_signal_cancels(signal: i32) {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("h.sqlite");
    let pidfile = dir.path().join("pid");
    let script = format!("sleep 300 & echo $! > {}; wait", pidfile.display());
    let mut child = spawn_run(&db, &script);
    let start = Instant::now();
    while !pidfile.exists()
        || std::fs::read_to_string(&pidfile)
            .unwrap_or_default()
            .trim()
            .is_empty()
    {
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "job never started"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let sleeper: i32 = std::fs::read_to_string(&pidfile)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    // SAFETY: signalling our own child.
    unsafe { libc::kill(child.id() as i32, signal) };
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(130));
    let alive = || common::alive(sleeper);
    let start = Instant::now();
    while alive() && start.elapsed() < Duration::from_secs(10) {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(!alive(), "the job's grandchild survived");
    let ls = execra(&db, &["ls", "--json"]);
    let job: execra::Job = serde_json::from_str(text(&ls.stdout).lines().next().unwrap()).unwrap();
    assert_eq!(job.state, execra::JobState::Cancelled);
}

#[test]
fn logs_follow_tails_a_job_running_in_another_process() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("h.sqlite");
    let gate = dir.path().join("gate");
    let script = format!(
        "echo first; while [ ! -e {} ]; do sleep 0.05; done; echo second",
        gate.display()
    );
    let mut runner = spawn_run(&db, &script);
    // Wait until the job is in the history as running.
    let start = Instant::now();
    let id = loop {
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "job never showed up"
        );
        let ls = execra(&db, &["ls", "--json", "--state", "running"]);
        if let Some(line) = text(&ls.stdout).lines().next() {
            let job: execra::Job = serde_json::from_str(line).unwrap();
            break job.id.to_string();
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let mut follower = Command::new(env!("CARGO_BIN_EXE_execra"))
        .arg("--db")
        .arg(&db)
        .args(["logs", "--follow", &id])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    // The first line must show while the job still waits (live tail of the
    // gzip stream being written), not only once it ends. A watchdog opens
    // the gate late so a broken tail fails instead of hanging.
    let watchdog_gate = gate.clone();
    std::thread::spawn(move || {
        std::thread::sleep(Duration::from_secs(20));
        let _ = std::fs::write(&watchdog_gate, b"timeout");
    });
    let mut out = std::io::BufReader::new(follower.stdout.take().unwrap());
    let mut first = String::new();
    std::io::BufRead::read_line(&mut out, &mut first).unwrap();
    assert_eq!(first, "first\n");
    assert!(
        !gate.exists(),
        "the first line only showed after the job went on"
    );
    std::fs::write(&gate, b"go").unwrap();
    assert!(runner.wait().unwrap().success());
    let mut rest = String::new();
    std::io::Read::read_to_string(&mut out, &mut rest).unwrap();
    assert!(follower.wait().unwrap().success());
    assert_eq!(rest, "second\n");
}

/// A private copy of the history written by the published execra 1.1
/// (`execra/tests/fixtures/history-1.1.sqlite`).
fn copy_1_1_fixture(dir: &Path) -> std::path::PathBuf {
    let fixture =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../execra/tests/fixtures/history-1.1.sqlite");
    let db = dir.join("h.sqlite");
    std::fs::copy(&fixture, &db).expect("copy the 1.1 fixture");
    db
}

#[test]
fn ls_and_show_display_a_1_1_history_and_run_appends_to_it() {
    let dir = tempfile::tempdir().unwrap();
    let db = copy_1_1_fixture(dir.path());
    let ls = execra(&db, &["ls"]);
    assert!(ls.status.success(), "{}", text(&ls.stderr));
    let ls = text(&ls.stdout);
    for (label, verdict) in [
        ("Install ripgrep 14", "succeeded"),
        ("Exit 2", "failed (exit 2)"),
        ("sleep 100", "failed (signal 9)"),
        ("Install nope", "failed (not_found)"),
        ("Missing tool", "failed (spawn)"),
        ("Too slow", "failed (timeout)"),
        ("Cancelled by user", "cancelled"),
        // 1.1's host crashed while this ran: not shown as running.
        ("Crashed host", "failed (host exited)"),
        ("Real 1.1 job", "succeeded"),
    ] {
        assert!(
            ls.lines()
                .any(|l| l.contains(verdict) && l.trim_end().ends_with(label)),
            "no {label:?} {verdict:?} line in:\n{ls}"
        );
    }
    assert!(!ls.contains("running"), "{ls}");

    let show = execra(
        &db,
        &["show", "01941a2b000070008000000000000001", "--events"],
    );
    assert!(show.status.success(), "{}", text(&show.stderr));
    let show = text(&show.stdout);
    for want in [
        "Install ripgrep 14",
        "scoop install ripgrep",
        "install, pinned",
        "2025-01-01 00:00:01",
        "ripgrep installed",
        "Downloading",
        "[disk_low]",
        "[update_available]",
        "prompt_detected",
    ] {
        assert!(show.contains(want), "no {want:?} in:\n{show}");
    }

    let run = execra(
        &db,
        &["run", "--label", "after-upgrade", "--", "echo", "hi"],
    );
    assert_eq!(run.status.code(), Some(0), "{}", text(&run.stderr));
    let json = execra(&db, &["ls", "--json"]);
    let jobs: Vec<execra::Job> = text(&json.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(jobs.len(), 10, "9 jobs from 1.1 and the new one");
    assert_eq!(jobs[0].label.as_deref(), Some("after-upgrade"));
}

#[test]
fn ls_skips_a_corrupt_row_with_a_warning_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("h.sqlite");
    for label in ["good", "bad"] {
        let out = execra(&db, &["run", "--label", label, "--", "true"]);
        assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    }
    let json = execra(&db, &["ls", "--json"]);
    let jobs: Vec<execra::Job> = text(&json.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let bad = jobs
        .iter()
        .find(|j| j.label.as_deref() == Some("bad"))
        .unwrap()
        .id;
    rusqlite::Connection::open(&db)
        .unwrap()
        .execute(
            "UPDATE jobs SET outcome = '{\"kind\":\"exploded\"}' WHERE id = ?1",
            [bad.0.as_bytes()],
        )
        .unwrap();

    let ls = execra(&db, &["ls"]);
    assert_eq!(ls.status.code(), Some(0), "{}", text(&ls.stderr));
    let (out, err) = (text(&ls.stdout), text(&ls.stderr));
    assert!(out.contains("good") && !out.contains("bad"), "{out}");
    assert!(
        err.contains(&format!("skipping job {bad}")) && err.contains("exploded"),
        "{err}"
    );
}

/// `kill -9` of an `execra run` host: readers tell the truth at once, and a
/// `logs --follow` of its job ends.
#[cfg(unix)]
#[test]
fn a_job_of_a_killed_host_is_not_shown_running_and_follow_ends() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("h.sqlite");
    let mut host = Command::new(env!("CARGO_BIN_EXE_execra"))
        .arg("--db")
        .arg(&db)
        .args(["run", "--", "sleep", "300"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start execra run");
    let start = Instant::now();
    let job = loop {
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "the job never showed up as running"
        );
        let ls = execra(&db, &["ls", "--json", "--state", "running"]);
        if let Some(line) = text(&ls.stdout).lines().next() {
            let job: execra::Job = serde_json::from_str(line).unwrap();
            break job;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    // A live host's job is left alone by readers.
    let show = execra(&db, &["show", &job.id.to_string(), "--json"]);
    let shown: serde_json::Value = serde_json::from_slice(&show.stdout).unwrap();
    assert_eq!(shown["job"]["state"], "running", "{shown}");
    let sleep_pid = {
        let show = execra(&db, &["show", &job.id.to_string(), "--json", "--events"]);
        let v: serde_json::Value = serde_json::from_slice(&show.stdout).unwrap();
        v["events"]
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["kind"] == "job_started")
            .and_then(|e| e["pid"].as_i64())
            .expect("job_started with a pid")
    };

    let mut follower = Command::new(env!("CARGO_BIN_EXE_execra"))
        .arg("--db")
        .arg(&db)
        .args(["logs", "--follow", &job.id.to_string()])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(300));
    assert!(
        follower.try_wait().unwrap().is_none(),
        "follow ended while the job ran"
    );

    host.kill().unwrap(); // SIGKILL
    host.wait().unwrap();

    let ls = execra(&db, &["ls"]);
    assert!(ls.status.success(), "{}", text(&ls.stderr));
    let ls = text(&ls.stdout);
    assert!(!ls.contains("running"), "{ls}");
    assert!(ls.contains("failed (host exited)"), "{ls}");
    let show = execra(&db, &["show", &job.id.to_string()]);
    let show = text(&show.stdout);
    assert!(
        show.contains("failed (host exited)") && show.contains("host process exited"),
        "{show}"
    );

    let start = Instant::now();
    let status = loop {
        if let Some(status) = follower.try_wait().unwrap() {
            break status;
        }
        if start.elapsed() > Duration::from_secs(20) {
            let _ = follower.kill();
            panic!("logs --follow did not end after the host was killed");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(status.success(), "logs --follow failed: {status:?}");

    // Whoever killed it (the reconcile kills a verified stranded group),
    // leave no `sleep 300` behind.
    // SAFETY: kill(2) with a pid read from the history; harmless if gone.
    unsafe { libc::kill(sleep_pid as libc::pid_t, libc::SIGKILL) };
}

/// Job ids start with a timestamp, so jobs started within a minute share
/// their first 8 digits: `ls` must still print ids that `show` accepts.
#[test]
fn ls_prints_ids_that_resolve_to_one_job() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("history.sqlite");
    for word in ["first", "second", "third"] {
        let out = execra(&db, &["run", "--label", word, "--", "true"]);
        assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    }
    let ls = execra(&db, &["ls"]);
    assert!(ls.status.success(), "{}", text(&ls.stderr));
    let ls = text(&ls.stdout);
    let rows: Vec<(&str, &str)> = ls
        .lines()
        .skip(1)
        .filter_map(|row| {
            Some((
                row.split_whitespace().next()?,
                row.split_whitespace().last()?,
            ))
        })
        .collect();
    assert_eq!(rows.len(), 3, "{ls}");
    for (id, label) in rows {
        let show = execra(&db, &["show", id]);
        assert!(
            show.status.success(),
            "`show {id}` from this listing failed: {}\n{ls}",
            text(&show.stderr)
        );
        assert!(text(&show.stdout).contains(label), "{}", text(&show.stdout));
    }
}
