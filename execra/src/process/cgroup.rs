//! Linux cgroup v2: one cgroup per job, so a job owns every process it
//! starts, whatever they do (`setsid`, double fork, `nohup … &`).
//!
//! - Where: the cgroup2 mount is read from `/proc/self/mountinfo`, the
//!   host's own cgroup from `/proc/self/cgroup` (the `0::` line); a job's
//!   cgroup is `<mount>/<host cgroup>/execra-host-<pid>/execra-<job id>`.
//!   Creating it needs write access there (root, or a delegated subtree
//!   such as a systemd user service); where that fails the job runs on the
//!   process-group path.
//! - Host death: with the first job cgroup, the host starts a watchdog (a
//!   `sh` in its own process group, so terminal signals miss it, and not
//!   the host's child) that blocks
//!   reading a pipe only the host holds. When the host process ends — even
//!   by `SIGKILL` — the read returns and the watchdog writes `cgroup.kill`
//!   of `execra-host-<pid>`, which kills every job tree of that host, then
//!   removes the cgroups. Crash recovery is the second line. (The launcher
//!   is shared with the process-group path's watchdog, `hostwatch.rs`.)
//! - Entry: the child is inside before it runs a single instruction of its
//!   program, and so is everything it starts. Without a terminal it is
//!   created there: `clone3(CLONE_INTO_CGROUP)` with the cgroup's directory
//!   fd (kernel ≥ 5.7, `clone3.rs`), which only takes the cgroup lock for
//!   reading. Otherwise (a PTY job, or `clone3` refused: older kernel,
//!   seccomp) it writes `0` (itself) to the cgroup's `cgroup.procs` from
//!   `pre_exec`, after fork and before exec; that migration takes the lock
//!   for writing and waits for an RCU grace period (milliseconds). If that
//!   write fails too, the job runs on the process-group path.
//! - Polite stop (`terminate`): the cgroup is frozen, every pid in
//!   `cgroup.procs` gets `SIGTERM`, and it is thawed — frozen processes
//!   cannot exit, so no pid read from the list can be reused before it is
//!   signalled.
//! - Kill: `cgroup.kill` (kernel ≥ 5.14); on older kernels, freeze and
//!   `SIGKILL` every listed pid.
//! - Pause/resume: `cgroup.freeze`.
//! - Usage: `cpu.stat` (`user_usec`, `system_usec`) and `memory.peak` when
//!   the memory controller is enabled for the cgroup.
//! - End: the cgroup is removed once it is empty; crash recovery finds and
//!   kills cgroups named after stranded jobs
//!   ([`kill_stranded`]).

use std::ffi::CString;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use crate::job::JobId;

use super::ResourceUsage;

/// Set once creating or entering a cgroup failed: later jobs go straight to
/// the process-group path.
static UNUSABLE: AtomicBool = AtomicBool::new(false);

/// Entering a job cgroup failed where a plain spawn worked (no permission to
/// move a process there): use process groups from now on.
pub(crate) fn mark_unusable() {
    UNUSABLE.store(true, Ordering::Relaxed);
}

/// This host's cgroup for job cgroups (`<mount>/<own>/execra-host-<pid>`),
/// created with its watchdog on first use; `None` where that fails.
fn parent_dir() -> Option<&'static Path> {
    static PARENT: OnceLock<Option<PathBuf>> = OnceLock::new();
    PARENT
        .get_or_init(|| {
            let mount = cgroup2_mount()?;
            let own = own_cgroup()?;
            let own = mount.join(own.trim_start_matches('/'));
            let dir = own.join(format!("execra-host-{}", std::process::id()));
            match std::fs::create_dir(&dir) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
                Err(_) => return None,
            }
            start_watchdog(&dir);
            Some(dir)
        })
        .as_deref()
}

/// What the watchdog runs: wait for the host to end (EOF on stdin), then
/// kill every job tree of the host and remove the cgroups.
const WATCHDOG: &str = r#"read _ ; echo 1 > "$0/cgroup.kill" 2>/dev/null
i=0; while [ $i -lt 250 ]; do
  for d in "$0"/execra-*/; do [ -d "$d" ] && rmdir "$d" 2>/dev/null; done
  rmdir "$0" 2>/dev/null && exit 0
  sleep 0.02; i=$((i+1))
done"#;

/// Start the host-death watchdog for `dir` (see the module docs). Best
/// effort: without `sh`, recovery at the next history open is what is left.
fn start_watchdog(dir: &Path) {
    let _ = super::hostwatch::start(WATCHDOG, dir);
}

/// The cgroup2 mount point, from `/proc/self/mountinfo`.
pub(crate) fn cgroup2_mount() -> Option<PathBuf> {
    let text = std::fs::read_to_string("/proc/self/mountinfo").ok()?;
    parse_mountinfo(&text)
}

/// Find the first `cgroup2` mount in mountinfo text.
fn parse_mountinfo(text: &str) -> Option<PathBuf> {
    for line in text.lines() {
        let Some((left, right)) = line.split_once(" - ") else {
            continue;
        };
        if right.split_whitespace().next() != Some("cgroup2") {
            continue;
        }
        let mount = left.split_whitespace().nth(4)?;
        return Some(PathBuf::from(unescape_octal(mount)));
    }
    None
}

/// mountinfo escapes space, tab, newline and backslash as `\ooo`.
fn unescape_octal(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\' && i + 4 <= b.len() {
            if let Some(v) = std::str::from_utf8(&b[i + 1..i + 4])
                .ok()
                .and_then(|oct| u8::from_str_radix(oct, 8).ok())
            {
                out.push(v);
                i += 4;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The host's cgroup v2 path (the `0::` line of `/proc/self/cgroup`).
fn own_cgroup() -> Option<String> {
    let text = std::fs::read_to_string("/proc/self/cgroup").ok()?;
    text.lines()
        .find_map(|l| l.strip_prefix("0::"))
        .map(|p| p.trim().to_string())
}

fn dir_name(job: JobId) -> String {
    format!("execra-{}", job.0.simple())
}

/// One job's cgroup.
#[derive(Debug)]
pub(crate) struct JobCgroup {
    dir: PathBuf,
}

impl JobCgroup {
    /// Create the job's cgroup, or `None` where this host cannot (no
    /// cgroup2, no write access, or an earlier attempt failed).
    pub(crate) fn create(job: JobId) -> Option<JobCgroup> {
        if UNUSABLE.load(Ordering::Relaxed) {
            return None;
        }
        let dir = parent_dir()?.join(dir_name(job));
        match std::fs::create_dir(&dir) {
            Ok(()) => Some(JobCgroup { dir }),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Some(JobCgroup { dir }),
            Err(_) => {
                UNUSABLE.store(true, Ordering::Relaxed);
                None
            }
        }
    }

    /// The cgroup's directory (for `clone3`'s `CLONE_INTO_CGROUP`).
    pub(crate) fn dir(&self) -> &Path {
        &self.dir
    }

    /// The `cgroup.procs` path as a C string, for the child's `pre_exec`.
    pub(crate) fn procs_path(&self) -> io::Result<CString> {
        CString::new(self.dir.join("cgroup.procs").as_os_str().as_bytes())
            .map_err(|_| io::Error::other("cgroup path contains a NUL byte"))
    }

    /// `SIGTERM` to every process in the cgroup (see [`signal_dir`]).
    pub(crate) fn terminate(&self) {
        signal_dir(&self.dir, libc::SIGTERM);
    }

    /// Kill everything in the cgroup.
    pub(crate) fn kill(&self) {
        kill_dir(&self.dir);
    }

    /// Freeze (`true`) or thaw (`false`) the whole cgroup.
    pub(crate) fn freeze(&self, frozen: bool) -> io::Result<()> {
        write(&self.dir, "cgroup.freeze", if frozen { "1" } else { "0" })
    }

    /// Let what is in the cgroup go (kept leftovers): move every process to
    /// the host's own cgroup, so neither the host's watchdog nor recovery
    /// kills it, then remove the job's cgroup.
    pub(crate) fn release_leftovers(&self) {
        let Some(own) = self.dir.parent().and_then(Path::parent) else {
            return;
        };
        for _ in 0..10 {
            let pids = read_pids(&self.dir);
            if pids.is_empty() {
                break;
            }
            for pid in pids {
                let _ = write(own, "cgroup.procs", &pid.to_string());
            }
        }
        let _ = std::fs::remove_dir(&self.dir);
    }

    /// `true` once the cgroup is frozen (`frozen 1` in `cgroup.events`),
    /// whoever froze it; `None` if that cannot be read.
    pub(crate) fn frozen(&self) -> Option<bool> {
        let s = std::fs::read_to_string(self.dir.join("cgroup.events")).ok()?;
        Some(s.lines().any(|l| l.trim() == "frozen 1"))
    }

    /// `true` while any process is in the cgroup.
    pub(crate) fn populated(&self) -> bool {
        populated(&self.dir)
    }

    /// CPU time and peak memory of everything that ran in the cgroup.
    pub(crate) fn usage(&self) -> Option<ResourceUsage> {
        let stat = std::fs::read_to_string(self.dir.join("cpu.stat")).ok()?;
        let field = |name: &str| {
            stat.lines().find_map(|l| {
                let (k, v) = l.split_once(' ')?;
                (k == name).then(|| v.trim().parse::<u64>().ok()).flatten()
            })
        };
        let peak = std::fs::read_to_string(self.dir.join("memory.peak"))
            .ok()
            .and_then(|s| s.trim().parse::<u64>().ok());
        Some(ResourceUsage {
            user_cpu_us: field("user_usec")?,
            system_cpu_us: field("system_usec")?,
            peak_memory_bytes: peak,
            whole_tree: true,
        })
    }

    /// Remove the cgroup if it is empty. `true` once it is gone.
    pub(crate) fn remove(&self) -> bool {
        match std::fs::remove_dir(&self.dir) {
            Ok(()) => true,
            Err(e) => e.kind() == io::ErrorKind::NotFound,
        }
    }
}

impl Drop for JobCgroup {
    fn drop(&mut self) {
        // An empty cgroup goes now. One still emptying (killed just before,
        // e.g. by a driver dropped with its tokio runtime) goes from a short
        // helper thread; one with leftovers kept on purpose stays.
        if std::fs::remove_dir(&self.dir).is_ok() || !self.populated() {
            return;
        }
        let dir = self.dir.clone();
        let _ = std::thread::Builder::new()
            .name("execra-cgroup-rm".into())
            .spawn(move || {
                let end = Instant::now() + Duration::from_secs(2);
                while populated(&dir) && Instant::now() < end {
                    std::thread::sleep(Duration::from_millis(10));
                }
                let _ = std::fs::remove_dir(&dir);
            });
    }
}

fn write(dir: &Path, file: &str, value: &str) -> io::Result<()> {
    std::fs::write(dir.join(file), value)
}

fn read_pids(dir: &Path) -> Vec<libc::pid_t> {
    std::fs::read_to_string(dir.join("cgroup.procs"))
        .map(|s| s.lines().filter_map(|l| l.trim().parse().ok()).collect())
        .unwrap_or_default()
}

/// `true` while any process is in the cgroup at `dir`.
pub(crate) fn populated(dir: &Path) -> bool {
    match std::fs::read_to_string(dir.join("cgroup.events")) {
        Ok(s) => s.lines().any(|l| l.trim() == "populated 1"),
        Err(_) => false,
    }
}

/// `sig` to every process in the cgroup at `dir`, frozen while listing and
/// signalling so no listed pid can exit and be reused meanwhile; thawed
/// afterwards. Returns how many processes were signalled.
pub(crate) fn signal_dir(dir: &Path, sig: libc::c_int) -> usize {
    let froze = write(dir, "cgroup.freeze", "1").is_ok();
    let mut n = 0;
    for pid in read_pids(dir) {
        // SAFETY: kill(2) on a pid listed in our own (frozen) cgroup.
        if unsafe { libc::kill(pid, sig) } == 0 {
            n += 1;
        }
    }
    if froze {
        let _ = write(dir, "cgroup.freeze", "0");
    }
    n
}

/// Freeze or thaw the cgroup at `dir`.
pub(crate) fn freeze_dir(dir: &Path, frozen: bool) -> io::Result<()> {
    write(dir, "cgroup.freeze", if frozen { "1" } else { "0" })
}

/// `cgroup.kill`, or (kernel < 5.14) freeze and `SIGKILL` every pid.
pub(crate) fn kill_dir(dir: &Path) {
    if write(dir, "cgroup.kill", "1").is_ok() {
        return;
    }
    let froze = write(dir, "cgroup.freeze", "1").is_ok();
    for pid in read_pids(dir) {
        // SAFETY: kill(2) on a pid listed in our own cgroup.
        unsafe {
            libc::kill(pid, libc::SIGKILL);
        }
    }
    if froze {
        let _ = write(dir, "cgroup.freeze", "0");
    }
}

/// Kill a cgroup and wait (up to `wait`) until it is empty, then remove it.
/// `true` if it is gone.
pub(crate) fn kill_and_remove(dir: &Path, wait: Duration) -> bool {
    let end = Instant::now() + wait;
    loop {
        kill_dir(dir);
        if !populated(dir) {
            return match std::fs::remove_dir(dir) {
                Ok(()) => true,
                Err(e) => e.kind() == io::ErrorKind::NotFound,
            };
        }
        if Instant::now() >= end {
            return false;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// Find the cgroup of `job` left by a host that is gone: first beside this
/// process's own job cgroups, then anywhere in the cgroup2 tree (bounded
/// walk).
pub(crate) fn find(job: JobId) -> Option<PathBuf> {
    let name = dir_name(job);
    if let Some(p) = parent_dir() {
        let d = p.join(&name);
        if d.is_dir() {
            return Some(d);
        }
    }
    let mount = cgroup2_mount()?;
    let mut stack = vec![(mount, 0usize)];
    let mut visited = 0usize;
    while let Some((dir, depth)) = stack.pop() {
        visited += 1;
        if visited > 20_000 {
            return None;
        }
        let Ok(rd) = std::fs::read_dir(&dir) else {
            continue;
        };
        for e in rd.flatten() {
            if !e.file_type().map(|t| t.is_dir()).unwrap_or(false) {
                continue;
            }
            if e.file_name().to_str() == Some(name.as_str()) {
                return Some(e.path());
            }
            if depth < 12 {
                stack.push((e.path(), depth + 1));
            }
        }
    }
    None
}

/// Crash recovery: kill and remove the cgroup of a stranded job, if any.
/// Returns `true` if one was found.
pub(crate) fn kill_stranded(job: JobId) -> bool {
    match find(job) {
        Some(dir) => {
            kill_and_remove(&dir, Duration::from_secs(2));
            true
        }
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_cgroup2_mount_in_hybrid_and_unified_layouts() {
        let hybrid = "25 30 0:22 / /sys/fs/cgroup ro,nosuid - tmpfs tmpfs ro,mode=755\n\
                      41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw\n";
        assert_eq!(
            parse_mountinfo(hybrid),
            Some(PathBuf::from("/sys/fs/cgroup/unified"))
        );
        let spaced = "41 31 0:38 / /mnt/my\\040cg rw shared:1 - cgroup2 none rw\n";
        assert_eq!(parse_mountinfo(spaced), Some(PathBuf::from("/mnt/my cg")));
        assert_eq!(parse_mountinfo("1 2 0:1 / / rw - ext4 /dev/sda rw\n"), None);
    }
}
