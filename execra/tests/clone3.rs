//! Linux, cgroup path: a job without a terminal is created inside its
//! cgroup by `clone3(CLONE_INTO_CGROUP)` (`process/clone3.rs`). Its program
//! is in the job's cgroup from the start, and everything a user can see —
//! exit codes, signals, spawn errors, stdin, environment, working
//! directory, process group, signal state, open descriptors — is the same
//! as on the process-group path, which std/tokio spawn.
//!
//! Which path a job took is read from the runtime's `tracing` output
//! (`entry="clone3"` in the job's span). CI runs as root, where the cgroup
//! path works; set `EXECRA_TEST_NO_CGROUP=1` on a machine without a
//! writable cgroup2 to skip the path assertions (the comparisons still
//! run, and say so).
#![cfg(target_os = "linux")]

mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::Duration;

use common::*;
use execra::{
    Command, Containment, Event, FailureReason, JobId, Outcome, Runtime, StdinMode, Stream,
};

/// These tests create cgroups and count this process's descriptors: one
/// at a time.
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// Is the cgroup path expected to work here?
fn cgroup_expected() -> bool {
    std::env::var_os("EXECRA_TEST_NO_CGROUP").is_none()
}

/// What a user sees of one run: output lines (the job id replaced by
/// `<id>`) and the failure, if any.
#[derive(Debug, PartialEq)]
struct Seen {
    lines: Vec<String>,
    failure: Option<FailureReason>,
}

async fn run(rt: &Runtime, cmd: Command) -> (JobId, Seen, Outcome) {
    let h = rt.spawn(cmd).expect("spawn");
    let id = h.id();
    let evs = collect(h.subscribe()).await;
    let outcome = h.await;
    // Per stream, stdout's first: the order between two pipes is not
    // defined (a test compared it once and flaked).
    let mut lines: Vec<(Stream, String)> = evs
        .iter()
        .filter_map(|e| match e {
            Event::OutputAppended {
                stream,
                line,
                redraw: false,
                ..
            } => Some((*stream, line.replace(&id.to_string(), "<id>"))),
            _ => None,
        })
        .collect();
    lines.sort_by_key(|(stream, _)| *stream != Stream::Stdout);
    let lines = lines.into_iter().map(|(_, l)| l).collect();
    let failure = outcome.failure().cloned();
    (id, Seen { lines, failure }, outcome)
}

/// Did job `id` start (or fail to start) through `clone3`, per the
/// captured `tracing` output?
fn took_clone3(capture: &Capture, id: JobId) -> bool {
    capture
        .text()
        .lines()
        .any(|l| l.contains(&id.to_string()) && l.contains("entry=\"clone3\""))
}

/// The cgroup directory name of job `id`.
fn cgroup_name(id: JobId) -> String {
    format!("execra-{}", id.to_string().replace('-', ""))
}

#[tokio::test]
async fn program_starts_inside_its_cgroup_through_clone3() {
    let _serial = SERIAL.lock().await;
    let (capture, _guard) = Capture::install();
    let rt = contained_runtime(Containment::Auto);
    // The shell's own cgroup, and that of the first program it starts.
    let (id, seen, outcome) = run(
        &rt,
        Command::sh("cat /proc/$$/cgroup; cat /proc/self/cgroup"),
    )
    .await;
    assert!(outcome.is_success(), "{outcome:?}");
    let v2: Vec<&String> = seen.lines.iter().filter(|l| l.starts_with("0::")).collect();
    assert_eq!(v2.len(), 2, "{seen:?}");
    if !cgroup_expected() {
        eprintln!("path: no cgroup (EXECRA_TEST_NO_CGROUP set): {v2:?}");
        return;
    }
    let want = format!("/{}", cgroup_name(id));
    for l in v2 {
        assert!(l.ends_with(&want), "not in the job's cgroup {want}: {l}");
    }
    assert!(
        took_clone3(&capture, id),
        "the job did not start through clone3:\n{}",
        capture.text()
    );
}

/// A file that is not executable, and a directory with a script in it.
struct Files {
    dir: tempfile::TempDir,
}

impl Files {
    fn new() -> Files {
        let dir = tempfile::tempdir().expect("tempdir");
        let script = dir.path().join("hello.sh");
        std::fs::write(&script, "#!/bin/sh\necho \"hello from $0\"\n").expect("write");
        std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).expect("chmod");
        // Named like a program that exists in /usr/bin, but not executable.
        let plain = dir.path().join("true");
        std::fs::write(&plain, "not a program\n").expect("write");
        std::fs::set_permissions(&plain, std::fs::Permissions::from_mode(0o644)).expect("chmod");
        Files { dir }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }
}

/// What must be seen of a case.
type Expect = Box<dyn Fn(&Seen) -> bool>;

/// Each case: a name, the command, and what must be seen (on both paths).
fn cases(f: &Files) -> Vec<(&'static str, Command, Expect)> {
    let dir = f.path().display().to_string();
    let ok = |lines: &'static [&'static str]| -> Expect {
        Box::new(move |s: &Seen| s.failure.is_none() && s.lines == lines)
    };
    let spawn_error = |msg: String| -> Expect {
        Box::new(
            move |s: &Seen| matches!(&s.failure, Some(FailureReason::SpawnFailed { error }) if *error == msg),
        )
    };
    let plain = f.path().join("true").display().to_string();
    vec![
        (
            "exit code",
            Command::sh("echo out; echo err >&2; exit 3"),
            Box::new(|s: &Seen| {
                s.failure == Some(FailureReason::NonZeroExit { code: 3 })
                    && s.lines.len() == 2
                    && s.lines.contains(&"out".to_string())
                    && s.lines.contains(&"err".to_string())
            }),
        ),
        (
            "signal",
            Command::sh("kill -TERM $$"),
            Box::new(|s: &Seen| s.failure == Some(FailureReason::Signal { signal: 15 })),
        ),
        (
            "not found",
            Command::new("execra-no-such-program"),
            spawn_error("program not found: execra-no-such-program".into()),
        ),
        (
            "not executable",
            Command::new(plain.clone()),
            spawn_error(format!("permission denied (not executable?): {plain}")),
        ),
        (
            "a directory",
            Command::new("/tmp"),
            spawn_error("permission denied (not executable?): /tmp".into()),
        ),
        (
            "missing working directory",
            Command::new("true").cwd("/execra/no/such/dir"),
            spawn_error("working directory /execra/no/such/dir does not exist".into()),
        ),
        (
            // execvp goes on past a candidate it may not execute.
            "PATH: past a non-executable candidate",
            Command::new("true").env("PATH", format!("{dir}:/usr/bin:/bin")),
            ok(&[]),
        ),
        (
            // ... and reports it even when a later candidate is missing.
            "PATH: only a non-executable candidate",
            Command::new("true").env("PATH", format!("{dir}:/nonexistent")),
            spawn_error("permission denied (not executable?): true".into()),
        ),
        (
            "PATH: the command's own",
            Command::new("hello.sh").env("PATH", format!("/nonexistent:{dir}")),
            Box::new({
                let want = format!("hello from {dir}/hello.sh");
                move |s: &Seen| s.failure.is_none() && s.lines == [want.clone()]
            }),
        ),
        (
            "PATH: an empty entry is the working directory",
            Command::new("hello.sh")
                .env("PATH", "/nonexistent:")
                .cwd(f.path()),
            ok(&["hello from hello.sh"]),
        ),
        (
            "relative program and working directory",
            Command::new("./hello.sh").cwd(f.path()),
            ok(&["hello from ./hello.sh"]),
        ),
        (
            "working directory",
            Command::new("pwd").cwd("/tmp"),
            ok(&["/tmp"]),
        ),
        (
            "env_clear, found on the default search path",
            Command::new("env").env_clear().env("A", "1"),
            ok(&["A=1", "EXECRA_JOB_ID=<id>"]),
        ),
        (
            "job id and extra variables",
            Command::sh("echo \"$EXECRA_JOB_ID $A\"")
                .env("A", "a")
                .env("EXECRA_JOB_ID", "overridden?"),
            ok(&["<id> a"]),
        ),
        (
            "piped stdin",
            Command::new("cat").stdin(StdinMode::Piped(b"one\ntwo\n".to_vec())),
            ok(&["one", "two"]),
        ),
        ("null stdin", Command::sh("cat; echo done"), ok(&["done"])),
        (
            // Its own process group (as the leader).
            "process group",
            Command::sh("[ \"$(cut -d' ' -f5 /proc/$$/stat)\" = $$ ] && echo leader"),
            ok(&["leader"]),
        ),
        (
            // SIGPIPE is back to its default (`yes` dies of it quietly), no
            // signal blocked, no standard signal ignored. (glibc's
            // posix_spawn, which the process-group path may use, sets its
            // internal signals 32 and 33 to "ignore": only 1-31 count.)
            "signal state",
            Command::sh(
                "yes | head -n 1; grep SigBlk /proc/self/status; \
                 ign=$(grep SigIgn /proc/self/status | cut -f2); \
                 echo \"SigIgn 1-31: $(( 0x$ign & 0x7fffffff ))\"",
            ),
            ok(&["y", "SigBlk:\t0000000000000000", "SigIgn 1-31: 0"]),
        ),
        (
            // 0, 1, 2, `ls`'s own directory descriptor, and whatever this
            // test process was given without close-on-exec (cargo's
            // jobserver): the same on both paths.
            "open descriptors",
            Command::new("ls").arg("/proc/self/fd"),
            Box::new(|s: &Seen| {
                s.failure.is_none()
                    && ["0", "1", "2", "3"]
                        .iter()
                        .all(|f| s.lines.iter().any(|l| l == f))
            }),
        ),
    ]
}

#[tokio::test]
async fn users_see_the_same_as_on_the_process_group_path() {
    let _serial = SERIAL.lock().await;
    let (capture, _guard) = Capture::install();
    let files = Files::new();
    let auto = contained_runtime(Containment::Auto);
    let group = contained_runtime(Containment::ProcessGroup);
    let mut bad = Vec::new();
    // `Command` is not `Clone`: the cases are built twice.
    for ((name, cmd, expect), (_, same, _)) in cases(&files).into_iter().zip(cases(&files)) {
        let (id, on_cgroup, _) = run(&auto, cmd).await;
        let (_, on_group, _) = run(&group, same).await;
        if !expect(&on_cgroup) || on_cgroup != on_group {
            bad.push(format!(
                "{name}:\n  cgroup path:        {on_cgroup:?}\n  process-group path: {on_group:?}"
            ));
        }
        // A missing working directory is refused before any spawn.
        if cgroup_expected() && name != "missing working directory" && !took_clone3(&capture, id) {
            bad.push(format!("{name}: did not go through clone3"));
        }
    }
    if !cgroup_expected() {
        eprintln!("path: no cgroup (EXECRA_TEST_NO_CGROUP set): compared two process-group runs");
    }
    assert!(bad.is_empty(), "{}", bad.join("\n"));
}

#[tokio::test]
async fn interactive_stdin_reaches_the_program() {
    let _serial = SERIAL.lock().await;
    let (capture, _guard) = Capture::install();
    let rt = contained_runtime(Containment::Auto);
    let h = rt
        .spawn(Command::new("cat").stdin(StdinMode::Interactive))
        .expect("spawn");
    let id = h.id();
    let mut s = h.subscribe();
    h.write_stdin(b"ping\n".to_vec()).expect("write");
    let mut got = None;
    while let Some(ev) = s.next().await {
        if let Event::OutputAppended { line, .. } = ev {
            got = Some(line);
            break;
        }
    }
    assert_eq!(got.as_deref(), Some("ping"));
    h.close_stdin().expect("close");
    let outcome = h.await;
    assert!(outcome.is_success(), "{outcome:?}");
    if cgroup_expected() {
        assert!(took_clone3(&capture, id), "{}", capture.text());
    }
}

/// This process's open descriptors.
fn open_fds() -> usize {
    std::fs::read_dir("/proc/self/fd")
        .map(|d| d.count())
        .unwrap_or(0)
}

#[tokio::test]
async fn many_jobs_leave_no_descriptor_and_no_zombie_behind() {
    let _serial = SERIAL.lock().await;
    let rt = contained_runtime(Containment::Auto);
    // Warm up: the runtime's own descriptors (signal pipe, watchdogs —
    // a spawn failure may start the process-group one).
    for _ in 0..2 {
        assert!(run(&rt, Command::new("true")).await.2.is_success());
    }
    run(&rt, Command::new("execra-no-such-program")).await;
    let before = open_fds();
    let jobs: Vec<_> = (0..32)
        .map(|i| {
            let cmd = match i % 4 {
                0 => Command::new("true"),
                1 => Command::sh("exit 1"),
                2 => Command::new("cat").stdin(StdinMode::Piped(b"x\n".to_vec())),
                _ => Command::new("execra-no-such-program"),
            };
            rt.spawn(cmd).expect("spawn")
        })
        .collect();
    let mut pids = Vec::new();
    for h in jobs {
        let evs = collect(h.subscribe()).await;
        pids.extend(evs.iter().filter_map(|e| match e {
            Event::JobStarted { pid, .. } => Some(*pid),
            _ => None,
        }));
        h.await;
    }
    assert_eq!(pids.len(), 24, "every startable job started");
    assert!(
        eventually(|| open_fds() <= before).await,
        "descriptors leaked: {before} before, {} after",
        open_fds()
    );
    // Every main process was reaped: none is left as our zombie.
    let me = std::process::id().to_string();
    let zombies: Vec<u32> = pids
        .into_iter()
        .filter(|pid| {
            std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|s| {
                let after = s.rsplit(')').next().unwrap_or("");
                let mut f = after.split_whitespace();
                f.next() == Some("Z") && f.next() == Some(me.as_str())
            })
        })
        .collect();
    assert!(zombies.is_empty(), "unreaped children: {zombies:?}");
}

/// The state of `pid` as our child: `Some('Z')` while it is an unreaped
/// zombie of this process, `None` once it is gone (or not ours).
fn child_state(pid: u32) -> Option<char> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let after = stat.rsplit(')').next()?;
    let mut f = after.split_whitespace();
    let state = f.next()?.chars().next()?;
    (f.next() == Some(std::process::id().to_string().as_str())).then_some(state)
}

/// A job whose tokio runtime shuts down while it runs is killed (the
/// driver's guard) and its main process, dropped unreaped, is still reaped:
/// no zombie stays behind.
#[test]
fn a_job_dropped_with_its_tokio_runtime_is_killed_and_reaped() {
    let _serial = SERIAL.blocking_lock();
    let (capture, _guard) = Capture::install();
    let rt = contained_runtime(Containment::Auto);
    let tokio_rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio");
    let (id, pid) = tokio_rt.block_on(async {
        let h = rt.spawn(Command::new("sleep").arg("30")).expect("spawn");
        let mut s = h.subscribe();
        while let Some(ev) = s.next().await {
            if let Event::JobStarted { pid, .. } = ev {
                return (h.id(), pid);
            }
        }
        panic!("the job never started");
    });
    assert_eq!(child_state(pid).map(|s| s != 'Z'), Some(true), "running");
    drop(tokio_rt);
    let end = std::time::Instant::now() + Duration::from_secs(10);
    while child_state(pid).is_some() && std::time::Instant::now() < end {
        std::thread::sleep(Duration::from_millis(10));
    }
    assert_eq!(child_state(pid), None, "pid {pid} killed and reaped");
    if cgroup_expected() {
        assert!(took_clone3(&capture, id), "{}", capture.text());
    }
}
