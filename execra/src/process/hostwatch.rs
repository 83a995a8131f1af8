//! Host death without a cgroup (Unix: the process-group path on Linux, and
//! macOS): a watchdog that kills every running job's tree the moment the
//! host process ends — by `SIGKILL` too — instead of at the next history
//! open.
//!
//! - The watchdog is a detached POSIX `sh` (started through a shell that
//!   exits at once, so it is not the host's child; in its own process
//!   group, so terminal signals miss it) that blocks reading a pipe only
//!   the host holds (the write end is close-on-exec, so no job inherits
//!   it). When the host ends, the read returns end-of-file.
//! - It learns which jobs run from a private state directory
//!   (`$TMPDIR/execra-watch-<host pid>-<nanos>`, mode `0700`): one file per
//!   running job, `job-<id>`, holding the job's process group id, its
//!   leader's start time (Linux; `-` elsewhere) and its job id. The file is
//!   written (atomically, by rename) right after the job is spawned and
//!   removed when the job's tree is done with ([`HostWatch`] is dropped) or
//!   its leftovers are kept on purpose.
//! - On end-of-file it sends `SIGKILL` to every listed process group —
//!   unless (Linux) a process with the group id's pid exists with another
//!   start time, i.e. the id was reused — then (Linux) to every process
//!   whose `/proc/<pid>/environ` holds `EXECRA_JOB_ID=<id>` of a listed job
//!   (three rounds, for children forked meanwhile; `grep -z`), and removes
//!   the directory. On macOS there is no `/proc`: the group is killed
//!   without the reuse check (the window is a job whose main process was
//!   reaped while its pipes drain), and processes that left the group are
//!   not reached.
//! - Best effort: without `sh`, or without a writable temporary directory,
//!   the next history open (crash recovery) is what is left.
//!
//! Why not `PR_SET_PDEATHSIG`: it fires when the *thread* that forked the
//! child exits, not the process, and tokio spawns from whichever worker or
//! blocking thread runs the driver (blocking threads exit when idle), so it
//! would kill healthy jobs; it also reaches only the direct child, not a
//! `setsid` escapee or a double fork. The watchdog covers the whole tree
//! and needs no thread that lives as long as the runtime.

use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, OnceLock};

use super::identity::ProcId;

/// Pids of the watchdogs this process started (they may re-parent to the
/// host when it is a child subreaper: never attributed to a job).
static WATCHDOGS: Mutex<Vec<u32>> = Mutex::new(Vec::new());

/// `true` if `pid` is one of this process's watchdogs.
#[cfg_attr(not(target_os = "linux"), allow(dead_code))]
pub(crate) fn is_watchdog(pid: u32) -> bool {
    WATCHDOGS.lock().map(|w| w.contains(&pid)).unwrap_or(false)
}

/// Start `script` as a detached watchdog: `sh -c script dir`, reading a
/// pipe whose write end this process keeps (and leaks on purpose) for as
/// long as it lives. Returns the watchdog's pid, or `None` if it could not
/// be started.
pub(crate) fn start(script: &str, dir: &Path) -> Option<u32> {
    use std::os::fd::{FromRawFd, OwnedFd};
    use std::os::unix::process::CommandExt;
    let mut fds = [0 as libc::c_int; 2];
    // Both ends close-on-exec, so no child (jobs included) inherits them;
    // the read end reaches the watchdog as its stdin (dup2 clears the
    // flag). Linux creates them so atomically; elsewhere a child forked by
    // another thread between pipe(2) and fcntl(2) could hold the write end
    // (and delay the watchdog until it exits).
    #[cfg(target_os = "linux")]
    // SAFETY: pipe2 fills two fds; both are owned below.
    let made = unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } == 0;
    #[cfg(not(target_os = "linux"))]
    // SAFETY: pipe(2) fills two fds, fcntl(2) flags them; owned below.
    let made = unsafe {
        libc::pipe(fds.as_mut_ptr()) == 0
            && fds
                .iter()
                .all(|&fd| libc::fcntl(fd, libc::F_SETFD, libc::FD_CLOEXEC) == 0)
    };
    if !made {
        return None;
    }
    // SAFETY: fresh fds from pipe(2), owned once each.
    let (read, write) = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
    // Started through a shell that exits at once, so the watchdog is not
    // our child (nothing to reap). An asynchronous list's stdin defaults
    // to /dev/null, hence the pipe goes through fd 3.
    let out = std::process::Command::new("sh")
        .arg("-c")
        .arg(r#"exec 3<&0; sh -c "$1" "$2" <&3 3<&- >/dev/null 2>&1 & echo $!; exit 0"#)
        .arg("sh")
        .arg(script)
        .arg(dir)
        .stdin(std::process::Stdio::from(read))
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .process_group(0)
        .output()
        .ok()?;
    let pid = String::from_utf8_lossy(&out.stdout)
        .trim()
        .parse::<u32>()
        .ok()?;
    if let Ok(mut w) = WATCHDOGS.lock() {
        w.push(pid);
    }
    // The host keeps the write end for as long as it lives.
    std::mem::forget(write);
    Some(pid)
}

/// What the process-group watchdog runs (`$0` is the state directory):
/// wait for the host to end, then kill every listed job's group and marked
/// processes, and remove the directory.
const WATCHDOG: &str = r#"read _
ids=
for f in "$0"/job-*; do
  [ -f "$f" ] || continue
  read -r pgid start id < "$f" || continue
  case "$pgid" in ''|*[!0-9]*) continue ;; esac
  [ -n "$id" ] && ids="$ids -e EXECRA_JOB_ID=$id"
  if [ "$start" != - ] && [ -r "/proc/$pgid/stat" ]; then
    s=$(cat "/proc/$pgid/stat" 2>/dev/null)
    s=${s##*\)}
    set -- $s
    if [ $# -ge 20 ]; then shift 19; [ "$1" = "$start" ] || continue; fi
  fi
  [ "$pgid" -gt 1 ] && kill -s KILL -- "-$pgid" 2>/dev/null
done
if [ -n "$ids" ] && [ -d /proc/self ]; then
  n=0
  while [ $n -lt 3 ]; do
    p=$(grep -lzxF $ids /proc/[0-9]*/environ 2>/dev/null | sed -n 's#^/proc/\([0-9]*\)/environ$#\1#p')
    [ -n "$p" ] || break
    kill -s KILL $p 2>/dev/null
    n=$((n+1))
  done
fi
rm -f "$0"/job-* "$0"/.tmp-* 2>/dev/null
rmdir "$0" 2>/dev/null
exit 0"#;

/// Start the watchdog now if it is not running yet (before a job's process
/// is spawned, so the watchdog is older than any job).
pub(crate) fn ensure_started() {
    let _ = state_dir();
}

/// This host's state directory, created with its watchdog on first use;
/// `None` where that fails.
fn state_dir() -> Option<&'static Path> {
    static DIR: OnceLock<Option<PathBuf>> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir = create_private_dir()?;
        match start(WATCHDOG, &dir) {
            Some(_) => Some(dir),
            None => {
                let _ = std::fs::remove_dir(&dir);
                None
            }
        }
    })
    .as_deref()
}

/// A new `0700` directory under the temporary directory, with a name no
/// other process holds.
fn create_private_dir() -> Option<PathBuf> {
    use std::os::unix::fs::DirBuilderExt;
    let base = std::env::temp_dir();
    for attempt in 0..8u32 {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0);
        let dir = base.join(format!(
            "execra-watch-{}-{}{attempt}",
            std::process::id(),
            nanos
        ));
        match std::fs::DirBuilder::new().mode(0o700).create(&dir) {
            Ok(()) => return Some(dir),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
            Err(_) => return None,
        }
    }
    None
}

/// A running job as the watchdog sees it: its file in the state directory,
/// removed when this is dropped.
#[derive(Debug)]
pub(crate) struct HostWatch {
    file: PathBuf,
}

impl HostWatch {
    /// List the job `job`, whose process group is led by `leader`, for the
    /// watchdog (started on first use). `None` where no watchdog runs.
    pub(crate) fn register(job: &str, leader: &ProcId) -> Option<HostWatch> {
        let dir = state_dir()?;
        let file = dir.join(format!("job-{job}"));
        let tmp = dir.join(format!(".tmp-{job}"));
        let start = leader
            .start
            .map_or_else(|| "-".to_string(), |s| s.to_string());
        let line = format!("{} {start} {job}\n", leader.pid);
        std::fs::write(&tmp, line).ok()?;
        if std::fs::rename(&tmp, &file).is_err() {
            let _ = std::fs::remove_file(&tmp);
            return None;
        }
        Some(HostWatch { file })
    }
}

impl Drop for HostWatch {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.file);
    }
}
