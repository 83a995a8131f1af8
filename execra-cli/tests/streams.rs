//! `execra run` never drops output, keeps stdout and stderr apart, passes
//! stdin on, and ends promptly when its own output goes away.

use std::io::{BufRead, BufReader, Read, Write};
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::time::{Duration, Instant};

fn execra() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_execra"));
    c.env("NO_COLOR", "1");
    c
}

fn run_args(db: &Path, args: &[&str]) -> Command {
    let mut c = execra();
    c.arg("--db").arg(db).arg("run").args(args);
    c
}

/// Wait for a child, failing the test (and killing it) after `secs`.
fn wait_within(child: &mut Child, secs: u64, what: &str) -> ExitStatus {
    let start = Instant::now();
    loop {
        if let Some(s) = child.try_wait().expect("try_wait") {
            return s;
        }
        if start.elapsed() > Duration::from_secs(secs) {
            let _ = child.kill();
            panic!("{what} did not end within {secs} s");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// `execra logs ID`.
fn logs(db: &Path, id: &str) -> Output {
    execra()
        .arg("--db")
        .arg(db)
        .args(["logs", id])
        .output()
        .expect("execra logs")
}

fn last_job(db: &Path) -> execra::Job {
    let out = execra()
        .arg("--db")
        .arg(db)
        .args(["ls", "--json", "--limit", "1"])
        .output()
        .expect("execra ls");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    serde_json::from_str(text.lines().next().expect("one job in history")).expect("job json")
}

#[test]
fn output_is_byte_identical_to_the_tool_alone() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("h.sqlite");
    let ours = run_args(&db, &["--", "seq", "1", "1000000"])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let theirs = Command::new("seq").args(["1", "1000000"]).output().unwrap();
    assert!(ours.status.success());
    assert_eq!(ours.stdout.len(), theirs.stdout.len());
    assert!(ours.stdout == theirs.stdout, "output differs from seq's");
    let stderr = String::from_utf8_lossy(&ours.stderr);
    assert!(!stderr.contains("skipped"), "{stderr}");
    // The raw log (gzipped on its writer thread) holds every line too,
    // complete once `execra run` has returned.
    let id = last_job(&db).id.to_string();
    let logged = execra()
        .arg("--db")
        .arg(&db)
        .args(["logs", &id])
        .output()
        .unwrap();
    assert!(logged.status.success(), "{logged:?}");
    assert!(
        logged.stdout == theirs.stdout,
        "the raw log differs from seq's output"
    );
}

#[test]
fn a_slow_reader_gets_every_line() {
    // Our stdout is a pipe read slowly: the job waits, nothing is dropped.
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("h.sqlite");
    let mut child = run_args(&db, &["--", "seq", "1", "300000"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut next = 1u64;
    for line in lines {
        assert_eq!(line.unwrap(), next.to_string());
        next += 1;
        if next % 50_000 == 0 {
            std::thread::sleep(Duration::from_millis(300));
        }
    }
    assert_eq!(next - 1, 300_000);
    assert!(wait_within(&mut child, 30, "execra run").success());
    let mut err = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut err)
        .unwrap();
    assert!(!err.contains("skipped"), "{err}");
}

#[test]
fn stdout_and_stderr_stay_on_their_own_streams() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("h.sqlite");
    let out: Output = run_args(
        &db,
        &["--", "sh", "-c", "echo out1; echo err1 >&2; echo out2"],
    )
    .stdin(Stdio::null())
    .output()
    .unwrap();
    assert!(out.status.success());
    assert_eq!(String::from_utf8_lossy(&out.stdout), "out1\nout2\n");
    assert_eq!(String::from_utf8_lossy(&out.stderr), "err1\n");
}

#[test]
fn piped_stdin_reaches_the_job() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("h.sqlite");
    let mut child = run_args(&db, &["--", "cat"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(b"data\n").unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
    assert_eq!(String::from_utf8_lossy(&out.stdout), "data\n");
}

#[test]
fn no_stdin_gives_the_job_dev_null() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("h.sqlite");
    let mut child = run_args(&db, &["--no-stdin", "--", "cat"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    // Keep our end open: the job must not wait for it.
    let _keep = child.stdin.take();
    assert!(wait_within(&mut child, 30, "execra run --no-stdin -- cat").success());
    let mut out = String::new();
    child
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut out)
        .unwrap();
    assert_eq!(out, "");
}

/// `execra run … | head -1`: our stdout closes early.
fn closed_stdout_ends_promptly(script: &str) {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("h.sqlite");
    let mut child = run_args(&db, &["--", "sh", "-c", script])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut first = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut first)
        .unwrap();
    assert_eq!(first, "1\n");
    // The reader is dropped here, as `head -1` exits.
    let status = wait_within(&mut child, 30, "execra run | head -1");
    assert_eq!(status.code(), Some(141), "exit as a SIGPIPE'd program");
    let mut err = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut err)
        .unwrap();
    assert!(!err.contains("panicked"), "{err}");
    let job = last_job(&db);
    assert!(
        matches!(
            job.state,
            execra::JobState::Cancelled | execra::JobState::Finalized
        ),
        "history records the job as ended: {:?}",
        job.state
    );
}

#[test]
fn a_closed_stdout_cancels_the_job_promptly() {
    closed_stdout_ends_promptly("seq 1 10000000");
}

#[test]
fn a_closed_stdout_ends_a_job_whose_child_ignores_sigpipe() {
    closed_stdout_ends_promptly("trap '' PIPE; seq 1 10000000");
}

#[cfg(target_os = "linux")]
#[test]
fn a_full_disk_is_a_clear_error_and_the_job_is_cancelled() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("h.sqlite");
    let full = std::fs::OpenOptions::new()
        .write(true)
        .open("/dev/full")
        .expect("/dev/full is needed for this test");
    let mut child = run_args(&db, &["--", "seq", "1", "10000000"])
        .stdin(Stdio::null())
        .stdout(full)
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let status = wait_within(&mut child, 30, "execra run > /dev/full");
    assert_eq!(status.code(), Some(1));
    let mut err = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut err)
        .unwrap();
    assert!(err.contains("No space left"), "{err}");
    assert_eq!(last_job(&db).state, execra::JobState::Cancelled);
}

/// `execra run ARGS` on a pseudo-terminal (through `script(1)`), with
/// `input` typed into it.
#[cfg(target_os = "linux")]
fn on_a_terminal(db: &Path, args: &str, input: &[u8], expect: &str) -> (ExitStatus, String) {
    let cmdline = format!(
        "{} --db {} run {args}",
        env!("CARGO_BIN_EXE_execra"),
        db.display()
    );
    let mut child = Command::new("script")
        .args(["-qec", &cmdline, "/dev/null"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("script(1) (util-linux) is needed for the terminal tests");
    let mut stdin = child.stdin.take().unwrap();
    let mut stdout = child.stdout.take().unwrap();
    let reader = std::thread::spawn(move || {
        let mut all = Vec::new();
        let mut buf = [0u8; 4096];
        while let Ok(n) = stdout.read(&mut buf) {
            if n == 0 {
                break;
            }
            all.extend_from_slice(&buf[..n]);
        }
        String::from_utf8_lossy(&all).into_owned()
    });
    // Let the job start and wait on the terminal before typing.
    std::thread::sleep(Duration::from_millis(700));
    stdin.write_all(input).unwrap();
    stdin.flush().unwrap();
    let status = wait_within(&mut child, 30, "execra run on a terminal");
    drop(stdin);
    let out = reader.join().unwrap();
    assert!(out.contains(expect), "expected {expect:?} in {out:?}");
    (status, out)
}

#[cfg(target_os = "linux")]
#[test]
fn an_interactive_read_gets_what_is_typed_on_the_terminal() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("h.sqlite");
    let (status, _) = on_a_terminal(
        &db,
        "-- sh -c 'read x; echo got $x'",
        b"hello\n",
        "got hello",
    );
    assert!(status.success(), "{status:?}");
}

#[cfg(target_os = "linux")]
#[test]
fn ctrl_c_on_the_terminal_cancels_the_job() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("h.sqlite");
    let (status, _) = on_a_terminal(&db, "-- sleep 60", b"\x03", "cancelling");
    assert_eq!(status.code(), Some(130));
    assert_eq!(last_job(&db).state, execra::JobState::Cancelled);
}

/// `--raw-log plain` keeps an uncompressed log that `execra logs` reads;
/// `--raw-log off` keeps none, and `execra logs` says so; the default is
/// gzip.
#[test]
fn raw_log_gzip_plain_or_off() {
    let dir = tempfile::tempdir().expect("temp dir");
    let db = dir.path().join("h.sqlite");
    let log_dir = dir.path().join("logs");
    for (how, ext) in [
        (None, Some("log.gz")),
        (Some("plain"), Some("log")),
        (Some("off"), None),
    ] {
        let mut args = vec![];
        if let Some(h) = how {
            args.extend(["--raw-log", h]);
        }
        args.extend(["--no-stdin", "--", "sh", "-c", "echo one; echo two >&2"]);
        let out = run_args(&db, &args).output().expect("execra run");
        assert_eq!(out.status.code(), Some(0), "{how:?}: {out:?}");
        assert_eq!(String::from_utf8_lossy(&out.stdout), "one\n");
        let id = last_job(&db).id.to_string();
        let files: Vec<String> = ["log", "log.gz"]
            .iter()
            .filter(|e| log_dir.join(format!("{id}.{e}")).exists())
            .map(|e| e.to_string())
            .collect();
        assert_eq!(
            files,
            ext.map(String::from).into_iter().collect::<Vec<_>>(),
            "{how:?}"
        );
        let shown = logs(&db, &id);
        assert!(shown.status.success(), "{how:?}: {shown:?}");
        let (stdout, stderr) = (
            String::from_utf8_lossy(&shown.stdout),
            String::from_utf8_lossy(&shown.stderr),
        );
        if ext.is_some() {
            assert_eq!(
                (stdout.as_ref(), stderr.as_ref()),
                ("one\n", "two\n"),
                "{how:?}"
            );
        } else {
            assert_eq!(stdout, "");
            assert!(stderr.contains("has no raw log"), "{stderr}");
        }
    }
    let bad = run_args(&db, &["--raw-log", "zip", "--", "true"])
        .output()
        .expect("execra run");
    assert_eq!(bad.status.code(), Some(2), "a usage error");
    assert!(String::from_utf8_lossy(&bad.stderr).contains("expected gzip, plain or off"));
}

/// A burst faster than the compressor: whatever part of the gzip log was
/// stored rather than compressed, `execra logs` and `gzip -d` give every
/// line back.
#[test]
fn a_burst_is_logged_whole_whatever_is_compressed() {
    let dir = tempfile::tempdir().expect("temp dir");
    let db = dir.path().join("h.sqlite");
    let out = run_args(&db, &["--no-stdin", "--", "seq", "1", "300000"])
        .output()
        .expect("execra run");
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let want: String = (1..=300_000).map(|i| format!("{i}\n")).collect();
    assert!(out.stdout == want.as_bytes(), "stdout is seq's");
    let id = last_job(&db).id.to_string();
    let shown = logs(&db, &id);
    assert!(shown.status.success(), "{shown:?}");
    assert!(shown.stdout == want.as_bytes(), "the log holds every line");
    let gz = dir.path().join("logs").join(format!("{id}.log.gz"));
    let unzipped = Command::new("gzip")
        .arg("-dc")
        .arg(&gz)
        .output()
        .expect("gzip is installed");
    assert!(unzipped.status.success(), "gzip -d: {unzipped:?}");
    let lines = String::from_utf8_lossy(&unzipped.stdout);
    assert_eq!(lines.lines().count(), 300_000);
    assert_eq!(lines.lines().last(), Some("[stdout] 300000"));
}
