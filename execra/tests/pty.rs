//! PTY mode: real programs that see a terminal.
#![cfg(unix)]

mod common;

use std::path::Path;
use std::time::Duration;

use common::*;
use execra::{Command, Event, FailureReason, Outcome, PtySize, Runtime, StdinMode};

const BOUND: Duration = Duration::from_secs(30);

/// Every output text (lines and redraws) until the job ends.
fn texts(evs: &[Event]) -> Vec<String> {
    evs.iter()
        .filter_map(|e| match e {
            Event::OutputAppended { line, .. } => Some(line.clone()),
            _ => None,
        })
        .collect()
}

/// Wait for an output event (line or redraw) whose text contains `needle`.
async fn wait_for_text(s: &mut execra::EventStream, needle: &str) -> Vec<Event> {
    let mut seen = Vec::new();
    let found = tokio::time::timeout(BOUND, async {
        while let Some(ev) = s.next().await {
            let hit = matches!(&ev, Event::OutputAppended { line, .. } if line.contains(needle));
            seen.push(ev);
            if hit {
                return true;
            }
        }
        false
    })
    .await;
    assert!(
        matches!(found, Ok(true)),
        "never saw {needle:?}; got {:?}",
        texts(&seen)
    );
    seen
}

const ISATTY: &str = "for fd in 0 1 2; do if [ -t $fd ]; then echo \"fd$fd tty\"; else echo \"fd$fd pipe\"; fi; done";

#[tokio::test]
async fn the_program_sees_a_terminal_only_under_pty() {
    let rt = Runtime::new();
    let h = rt
        .spawn(Command::sh(ISATTY).pty(PtySize::default()))
        .unwrap();
    let evs = collect(h.subscribe()).await;
    assert!(h.await.is_success());
    assert_eq!(output_lines(&evs), ["fd0 tty", "fd1 tty", "fd2 tty"]);
    // All of it arrives as stdout: a terminal is one stream.
    assert!(evs.iter().all(|e| !matches!(
        e,
        Event::OutputAppended {
            stream: execra::Stream::Stderr,
            ..
        }
    )));

    let h = rt.spawn(Command::sh(ISATTY)).unwrap();
    let evs = collect(h.subscribe()).await;
    assert_eq!(output_lines(&evs), ["fd0 pipe", "fd1 pipe", "fd2 pipe"]);
}

#[tokio::test]
async fn stderr_is_merged_into_the_one_stream() {
    let rt = Runtime::new();
    let h = rt
        .spawn(Command::sh("echo out; echo err >&2; echo out2").pty(PtySize::default()))
        .unwrap();
    let evs = collect(h.subscribe()).await;
    assert_eq!(output_lines(&evs), ["out", "err", "out2"]);
}

#[tokio::test]
async fn ansi_is_stripped_by_default_and_kept_on_request() {
    let rt = Runtime::new();
    let script = r"printf '\033[1;31mred\033[0m plain\n'";
    let h = rt
        .spawn(Command::sh(script).pty(PtySize::default()))
        .unwrap();
    let evs = collect(h.subscribe()).await;
    assert_eq!(output_lines(&evs), ["red plain"]);

    let h = rt
        .spawn(Command::sh(script).pty(PtySize::default()).keep_ansi(true))
        .unwrap();
    let evs = collect(h.subscribe()).await;
    assert_eq!(output_lines(&evs), ["\x1b[1;31mred\x1b[0m plain"]);
}

#[tokio::test]
async fn the_raw_log_keeps_the_escapes() {
    let dir = tempfile::tempdir().unwrap();
    let rt = Runtime::builder()
        .log_dir(dir.path())
        .raw_output(execra::RawOutputPolicy::Persist)
        .build()
        .unwrap();
    let h = rt
        .spawn(Command::sh(r"printf '\033[32mgreen\033[0m\n'").pty(PtySize::default()))
        .unwrap();
    let id = h.id();
    let evs = collect(h.subscribe()).await;
    assert_eq!(output_lines(&evs), ["green"]);
    let raw = find_file_containing(dir.path(), &id.to_string());
    assert!(raw.contains("\x1b[32mgreen"), "raw log: {raw:?}");
}

fn find_file_containing(dir: &Path, name_part: &str) -> String {
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            let s = find_file_containing(&p, name_part);
            if !s.is_empty() {
                return s;
            }
        } else if p.to_string_lossy().contains(name_part) {
            return String::from_utf8_lossy(&std::fs::read(&p).unwrap()).into_owned();
        }
    }
    String::new()
}

#[tokio::test]
async fn a_read_p_prompt_is_answered_through_write_stdin() {
    let rt = Runtime::new();
    let h = rt
        .spawn(
            // bash prints read's prompt only when stdin is a terminal.
            Command::new("bash")
                .args(["-c", "read -p 'Your name? ' name; echo \"hello, $name\""])
                .stdin(StdinMode::Interactive)
                .pty(PtySize::default()),
        )
        .unwrap();
    let mut s = h.subscribe();
    wait_for_text(&mut s, "Your name? ").await;
    h.write_stdin("ada\n").unwrap();
    let seen = wait_for_text(&mut s, "hello, ada").await;
    assert!(tokio::time::timeout(BOUND, h).await.unwrap().is_success());
    // The terminal echoes what was typed, as a terminal does.
    assert!(texts(&seen).iter().any(|t| t.contains("ada")));
}

#[tokio::test]
async fn close_stdin_is_end_of_file_through_the_terminal() {
    let rt = Runtime::new();
    let h = rt
        .spawn(
            Command::sh("while read l; do echo \"got $l\"; done; echo eof")
                .stdin(StdinMode::Interactive)
                .pty(PtySize::default()),
        )
        .unwrap();
    let mut s = h.subscribe();
    h.write_stdin("one\n").unwrap();
    wait_for_text(&mut s, "got one").await;
    h.close_stdin().unwrap();
    wait_for_text(&mut s, "eof").await;
    assert!(tokio::time::timeout(BOUND, h).await.unwrap().is_success());
}

#[tokio::test]
async fn without_interactive_stdin_a_reader_sees_end_of_file_not_a_hang() {
    let rt = Runtime::new();
    let h = rt
        .spawn(Command::sh("cat; echo done").pty(PtySize::default()))
        .unwrap();
    let outcome = tokio::time::timeout(BOUND, h).await.expect("cat waited");
    assert!(outcome.is_success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hundred_thousand_lines_under_pty_lose_nothing() {
    let rt = Runtime::new();
    let h = rt
        .spawn(Command::new("seq").arg("100000").pty(PtySize::default()))
        .unwrap();
    let mut s = h.subscribe();
    let mut next = 1u64;
    let mut skipped = 0;
    while let Some(ev) = s.next().await {
        match ev {
            Event::OutputAppended {
                line,
                redraw: false,
                ..
            } => {
                assert_eq!(line, next.to_string());
                next += 1;
            }
            Event::OutputSkipped { count, .. } => skipped += count,
            _ => {}
        }
    }
    assert_eq!(skipped, 0);
    assert_eq!(next, 100_001);
    assert!(h.await.is_success());
}

#[tokio::test]
async fn resize_reaches_the_program() {
    let rt = Runtime::new();
    let h = rt
        .spawn(
            Command::sh("stty size; read x; stty size")
                .stdin(StdinMode::Interactive)
                .pty(PtySize::new(80, 24)),
        )
        .unwrap();
    let mut s = h.subscribe();
    wait_for_text(&mut s, "24 80").await;
    h.resize_pty(PtySize::new(132, 50)).unwrap();
    h.write_stdin("\n").unwrap();
    wait_for_text(&mut s, "50 132").await;
    assert!(tokio::time::timeout(BOUND, h).await.unwrap().is_success());
    // Resizing a job without a terminal is a clear error.
    let plain = rt.spawn(Command::new("true")).unwrap();
    let err = plain.resize_pty(PtySize::new(10, 10)).unwrap_err();
    assert!(err.to_string().contains("no terminal"), "{err}");
    plain.await;
}

#[tokio::test]
async fn cancel_stops_the_whole_tree_of_a_pty_job() {
    let rt = Runtime::new();
    let h = rt
        .spawn(Command::sh("sleep 60 & echo \"child $!\"; wait").pty(PtySize::default()))
        .unwrap();
    let mut s = h.subscribe();
    let seen = wait_for_text(&mut s, "child ").await;
    let pid: i32 = texts(&seen)
        .iter()
        .find_map(|t| t.strip_prefix("child ").map(|p| p.trim().parse().unwrap()))
        .unwrap();
    assert!(alive(pid));
    h.cancel().unwrap();
    let outcome = tokio::time::timeout(BOUND, h).await.unwrap();
    assert!(matches!(outcome, Outcome::Cancelled { .. }));
    assert!(eventually(|| !alive(pid)).await, "pid {pid} survived");
}

fn git(dir: &Path, args: &[&str]) {
    let st = std::process::Command::new("git")
        .args(["-c", "user.name=t", "-c", "user.email=t@example.invalid"])
        .args(args)
        .current_dir(dir)
        .output()
        .expect("git must be installed for this test");
    assert!(st.status.success(), "git {args:?}: {st:?}");
}

/// A local repository with some objects, and its `file://` URL (so the
/// clone goes through git's transport, which reports progress).
fn source_repo(tmp: &Path) -> String {
    let src = tmp.join("src");
    std::fs::create_dir(&src).unwrap();
    git(&src, &["init", "-q"]);
    for i in 0..50 {
        let body = format!("file {i}\n").repeat(50);
        std::fs::write(src.join(format!("f{i}.txt")), body).unwrap();
    }
    git(&src, &["add", "."]);
    git(&src, &["commit", "-q", "-m", "init"]);
    format!("file://{}", src.display())
}

/// The progress detector turns git's terminal-only progress into
/// `progress_updated` events.
#[cfg(feature = "interpret")]
#[tokio::test]
async fn git_clone_progress_becomes_progress_events_under_pty() {
    use execra::interpret::ProgressDetector;
    let tmp = tempfile::tempdir().unwrap();
    let url = source_repo(tmp.path());
    let rt = Runtime::new();
    let h = rt
        .spawn(
            Command::new("git")
                .args(["clone", &url, "dest"])
                .cwd(tmp.path())
                .pty(PtySize::default())
                .interpreter(ProgressDetector::new()),
        )
        .unwrap();
    let evs = collect(h.subscribe()).await;
    assert!(h.await.is_success());
    let fractions: Vec<f32> = evs
        .iter()
        .filter_map(|e| match e {
            Event::ProgressUpdated { progress, .. } => progress.as_fraction(),
            _ => None,
        })
        .collect();
    assert!(
        fractions.contains(&1.0),
        "{fractions:?} from {:?}",
        texts(&evs)
    );
}

#[tokio::test]
async fn git_clone_reports_progress_only_under_pty() {
    let tmp = tempfile::tempdir().unwrap();
    let url = source_repo(tmp.path());

    let rt = Runtime::new();
    let clone = |dest: &str, pty: bool| {
        let mut c = Command::new("git")
            .args(["clone", &url, dest])
            .cwd(tmp.path());
        if pty {
            c = c.pty(PtySize::default());
        }
        rt.spawn(c).unwrap()
    };
    let h = clone("with-pty", true);
    let evs = collect(h.subscribe()).await;
    assert!(h.await.is_success());
    let t = texts(&evs);
    assert!(
        t.iter()
            .any(|l| l.contains("Receiving objects:") && l.contains('%')),
        "no progress under PTY: {t:?}"
    );

    let h = clone("without-pty", false);
    let evs = collect(h.subscribe()).await;
    assert!(h.await.is_success());
    let t = texts(&evs);
    assert!(
        !t.iter().any(|l| l.contains("Receiving objects:")),
        "progress without a terminal: {t:?}"
    );
}

#[tokio::test]
async fn a_zero_size_terminal_fails_to_start_clearly() {
    let rt = Runtime::new();
    let outcome = rt
        .spawn(Command::new("true").pty(PtySize::new(0, 0)))
        .unwrap()
        .await;
    match outcome.failure() {
        Some(FailureReason::SpawnFailed { error }) => {
            assert!(error.contains("PTY size 0x0"), "{error}")
        }
        other => panic!("expected SpawnFailed, got {other:?}"),
    }
    let h = rt.spawn(Command::new("sleep").arg("5")).unwrap();
    let err = h.resize_pty(PtySize::new(0, 3)).unwrap_err();
    assert!(err.to_string().contains("0x3"), "{err}");
    h.cancel().unwrap();
    h.await;
}
