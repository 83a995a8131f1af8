//! The host as a child subreaper (`RuntimeBuilder::subreaper(true)`,
//! Linux): a process that scrubs its environment and leaves the job's
//! process group after its parent exited — which the process-group path
//! alone misses (`containment.rs`,
//! `fallback_path_misses_a_scrubbed_double_fork`) — re-parents to the host,
//! is killed when its job stops and is reaped (no zombie left).
//!
//! A separate test binary: the subreaper setting is process-wide and
//! permanent, and must not change what `containment.rs` observes. Tests run
//! one at a time (attribution needs a job that runs alone).
#![cfg(target_os = "linux")]

mod common;

use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use common::*;
use execra::{Command, Containment, Event, JobHandle, Outcome, Runtime};

static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());
static NEXT: AtomicU32 = AtomicU32::new(1);

/// A `sleep` argument no other process on the machine uses.
fn marker() -> String {
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    format!("8{:06}{:03}", std::process::id() % 1_000_000, n)
}

/// Live `sleep <marker>` processes (exec done), with their parent pid.
fn sleepers(marker: &str) -> Vec<(i32, i32)> {
    let mut out = Vec::new();
    for (pid, cmd) in proc_cmdlines() {
        let mut args = cmd.split(|b| *b == 0);
        let is_sleep = args.next().is_some_and(|a| a.ends_with(b"sleep"));
        if !is_sleep || !args.any(|a| a == marker.as_bytes()) || !alive(pid) {
            continue;
        }
        let ppid = std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .ok()
            .and_then(|s| {
                s.rsplit(')')
                    .next()
                    .and_then(|r| r.split_whitespace().nth(1))
                    .and_then(|p| p.parse::<i32>().ok())
            })
            .unwrap_or(0);
        out.push((pid, ppid));
    }
    out
}

/// Poll (up to `limit`) for `f`.
async fn within(limit: Duration, mut f: impl FnMut() -> bool) -> bool {
    let end = Instant::now() + limit;
    loop {
        if f() {
            return true;
        }
        if Instant::now() >= end {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Kills what carries its marker when dropped (and reaps it if it is our
/// child), so a failing test leaves nothing running.
struct Reaper(String);

impl Drop for Reaper {
    fn drop(&mut self) {
        for (pid, ppid) in sleepers(&self.0) {
            // SAFETY: kill(2)/waitpid(2) on the process carrying our marker;
            // waitpid only if it is our own child.
            unsafe {
                libc::kill(pid, libc::SIGKILL);
                if ppid == std::process::id() as i32 {
                    libc::waitpid(pid, std::ptr::null_mut(), 0);
                }
            }
        }
    }
}

fn runtime(c: Containment) -> Runtime {
    Runtime::builder()
        .containment(c)
        .subreaper(true)
        .default_grace_period(Duration::from_millis(500))
        .build()
        .expect("runtime (as root, PR_SET_CHILD_SUBREAPER cannot fail)")
}

/// The escape: `env -i setsid sleep <marker>` started from a subshell that
/// exits at once — no marker in its environment, its own session, no
/// parent. Returns the job and the orphan's pid once the host adopted it.
async fn start_scrubbed_orphan(rt: &Runtime, m: &str, tail: &str) -> (JobHandle, i32) {
    let h = rt
        .spawn(Command::sh(format!(
            "(env -i setsid sleep {m} >/dev/null 2>&1 &); echo ready; {tail}"
        )))
        .expect("spawn");
    let me = std::process::id() as i32;
    assert!(
        within(Duration::from_secs(10), || sleepers(m)
            .iter()
            .any(|(_, ppid)| *ppid == me))
        .await,
        "the scrubbed orphan did not re-parent to the host: {:?}",
        sleepers(m)
    );
    let pid = sleepers(m)[0].0;
    (h, pid)
}

/// `true` once `pid` is neither running nor a zombie (reaped).
fn reaped(pid: i32) -> bool {
    !std::path::Path::new(&format!("/proc/{pid}")).exists()
}

async fn cancel_kills_and_reaps(c: Containment) {
    let rt = runtime(c);
    let m = marker();
    let _reaper = Reaper(m.clone());
    let (h, orphan) = start_scrubbed_orphan(&rt, &m, "sleep 300").await;
    let in_cgroup = std::fs::read_to_string(format!("/proc/{orphan}/cgroup"))
        .unwrap_or_default()
        .lines()
        .any(|l| l.starts_with("0::") && l.contains("/execra-"));
    match c {
        Containment::ProcessGroup => assert!(!in_cgroup, "ProcessGroup used a cgroup"),
        _ if std::env::var_os("EXECRA_TEST_NO_CGROUP").is_none() => assert!(
            in_cgroup,
            "expected the cgroup path (run as root, or set EXECRA_TEST_NO_CGROUP=1)"
        ),
        _ => eprintln!("WARNING: EXECRA_TEST_NO_CGROUP set: ran on the process-group path"),
    }
    h.cancel().expect("cancel");
    assert!(matches!(h.await, Outcome::Cancelled { .. }));
    let dead = within(Duration::from_secs(2), || sleepers(&m).is_empty()).await;
    let gone = within(Duration::from_secs(2), || reaped(orphan)).await;
    let path = if in_cgroup { "cgroup" } else { "process group" };
    eprintln!(
        "path: {path} + subreaper — scrubbed orphan after cancel: killed {dead}, reaped {gone}"
    );
    assert!(dead, "the adopted orphan survived the cancel");
    assert!(gone, "the adopted orphan was killed but not reaped");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fallback_cancel_kills_and_reaps_a_scrubbed_orphan() {
    let _serial = SERIAL.lock().await;
    cancel_kills_and_reaps(Containment::ProcessGroup).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cgroup_path_reaps_what_the_cgroup_killed() {
    let _serial = SERIAL.lock().await;
    cancel_kills_and_reaps(Containment::Auto).await;
}

/// Leftovers at job end: the main process exits, its adopted orphan is
/// killed and reaped.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fallback_leftover_orphan_dies_at_job_end() {
    let _serial = SERIAL.lock().await;
    let rt = runtime(Containment::ProcessGroup);
    let m = marker();
    let _reaper = Reaper(m.clone());
    let (h, orphan) = start_scrubbed_orphan(&rt, &m, "sleep 0.5; exit 0").await;
    assert!(h.await.is_success());
    assert!(
        within(Duration::from_secs(2), || sleepers(&m).is_empty()).await,
        "the leftover orphan survived the job's end"
    );
    assert!(within(Duration::from_secs(2), || reaped(orphan)).await);
    eprintln!("path: process group + subreaper — leftover orphan killed and reaped");
}

/// The attribution rule's limit, as documented: with two jobs running at
/// once, an adopted orphan belongs to neither, and survives a cancel.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn orphans_are_not_attributed_while_two_jobs_run() {
    let _serial = SERIAL.lock().await;
    let rt = runtime(Containment::ProcessGroup);
    let m = marker();
    let _reaper = Reaper(m.clone());
    let other = rt.spawn(Command::sh("sleep 300")).expect("spawn");
    let mut s = other.subscribe();
    while let Some(ev) = s.next().await {
        if matches!(ev, Event::JobStarted { .. }) {
            break;
        }
    }
    let (h, _orphan) = start_scrubbed_orphan(&rt, &m, "sleep 300").await;
    h.cancel().expect("cancel");
    assert!(matches!(h.await, Outcome::Cancelled { .. }));
    let survived = !within(Duration::from_millis(500), || sleepers(&m).is_empty()).await;
    eprintln!("path: process group + subreaper, two jobs — orphan survived: {survived}");
    assert!(survived, "an orphan was attributed while two jobs ran");
    other.cancel().expect("cancel");
    assert!(matches!(other.await, Outcome::Cancelled { .. }));
}
