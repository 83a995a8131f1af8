//! Processes: spawning a command so that the job owns its whole tree, and
//! stopping, pausing and measuring that tree.
//!
//! The runtime only talks to [`ProcessTree`]: `terminate` asks politely,
//! `kill` insists, `pause`/`resume` freeze and thaw, `usage` measures. What
//! holds the tree depends on the platform and on [`Containment`]:
//!
//! - Linux, [`Containment::Auto`]: a cgroup v2 per job (`cgroup.rs`) where
//!   the host may create one; otherwise as below.
//! - Unix, process group (`unix.rs`): the child leads a new process group;
//!   signals go to the group (through [`identity::signal_group`], which
//!   never signals a reused group id) and, on Linux, to live descendants of
//!   the leader found in `/proc` and to every process whose environment
//!   carries the job's [`JOB_ID_VAR`] marker ([`identity::marked`]), which
//!   every job's child gets.
//! - Windows (`windows.rs`): a Job Object with kill-on-job-close; pause
//!   suspends every thread in it, usage is its accounting. Run under wine
//!   in CI (`.ci/wine`, `tests/tree.rs`).
//!
//! Around those, on Unix:
//!
//! - `hostwatch.rs`: the host-death watchdog without a cgroup (a detached
//!   `sh` that kills every running job's group and marked processes when
//!   the host ends, even by `SIGKILL`), and the launcher both watchdogs
//!   use; why `PR_SET_PDEATHSIG` is not used is in its docs.
//! - `orphans.rs` (Linux): the host as a child subreaper
//!   ([`RuntimeBuilder::subreaper`](crate::RuntimeBuilder::subreaper)):
//!   which adopted orphans belong to a job, and reaping them by pid.
//! - A pause made by another process (`execra pause ID`) is seen by
//!   [`external_pause`], which the driver polls.
//!
//! - `clone3.rs` (Linux): a job with a cgroup and no terminal is started
//!   straight inside it with `clone3(CLONE_INTO_CGROUP)`; [`Child`] is
//!   either that child or tokio's.
//!
//! `identity.rs` is process identity (pid + start time + boot id), used to
//! tell a process from a later one that reuses its pid.

use std::io;
use std::process::Stdio;

use serde::{Deserialize, Serialize};

use crate::command::{Launch, StdinMode};
use crate::job::JobId;

#[cfg(target_os = "linux")]
pub(crate) mod cgroup;
#[cfg(target_os = "linux")]
mod clone3;
#[cfg(unix)]
pub(crate) mod hostwatch;
pub(crate) mod identity;
#[cfg(target_os = "linux")]
pub(crate) mod orphans;
pub(crate) mod pty;
#[cfg(unix)]
mod unix;
#[cfg(unix)]
pub(crate) use unix::ProcessTree;

/// How a job's process tree is held (see
/// [`RuntimeBuilder::containment`](crate::RuntimeBuilder::containment) and
/// the README's "What each platform guarantees").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum Containment {
    /// The strongest the platform allows: on Linux a cgroup v2 per job
    /// where the host may create one (root, or a delegated subtree), else a
    /// process group; on Windows a Job Object; elsewhere a process group.
    #[default]
    Auto,
    /// A process group only, even where a cgroup could be created (Unix;
    /// Windows keeps its Job Object). On Linux, live descendants of the main
    /// process and every process still carrying the job's `EXECRA_JOB_ID`
    /// in its environment are signalled too. Useful to test the fallback
    /// path.
    ProcessGroup,
}

/// CPU time and peak memory a job used, measured when it ended (see
/// [`Runtime::usage`](crate::Runtime::usage)).
///
/// With a cgroup (Linux), CPU time covers the whole tree (`cpu.stat`) and
/// peak memory is the cgroup's `memory.peak` where the memory controller is
/// enabled, else the main process's. Without one, both come from the main
/// process's `rusage` (itself and the children it waited for); on macOS
/// from `proc_pid_rusage` of the main process once it exited (peak memory:
/// its lifetime maximum physical footprint). On Windows, the job object's
/// accounting covers the whole tree; where it reports nothing (wine), the
/// main process's own times and peak memory are used.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[non_exhaustive]
pub struct ResourceUsage {
    /// CPU time spent in user mode, in microseconds.
    #[cfg_attr(feature = "ts", ts(type = "number"))]
    pub user_cpu_us: u64,
    /// CPU time spent in the kernel, in microseconds.
    #[cfg_attr(feature = "ts", ts(type = "number"))]
    pub system_cpu_us: u64,
    /// Peak memory in bytes, where the platform reports it.
    #[cfg_attr(feature = "ts", ts(type = "number | null"))]
    pub peak_memory_bytes: Option<u64>,
    /// `true` when the CPU figures cover the whole tree (a cgroup, a Windows
    /// job object); `false`
    /// when they cover the main process and the children it waited for.
    pub whole_tree: bool,
}

#[cfg(windows)]
mod windows;
#[cfg(windows)]
pub(crate) use windows::ProcessTree;

/// Make this process a child subreaper, so orphaned descendants of its
/// children re-parent to it (Linux; see `orphans.rs`). Elsewhere: nothing.
pub(crate) fn enable_subreaper() -> io::Result<()> {
    #[cfg(target_os = "linux")]
    {
        orphans::enable()
    }
    #[cfg(not(target_os = "linux"))]
    {
        Ok(())
    }
}

/// How often the driver looks for a pause or resume made by another
/// process: `(with a timeout or idle timeout armed, without)`; `None` where
/// it cannot be seen (not Unix).
pub(crate) const PAUSE_PROBE: Option<(std::time::Duration, std::time::Duration)> = if cfg!(unix) {
    Some((
        std::time::Duration::from_millis(250),
        std::time::Duration::from_secs(1),
    ))
} else {
    None
};

/// Did another process freeze (`Some(true)`) or thaw (`Some(false)`) this
/// tree since the last call? Unix (see `unix.rs`); `None` elsewhere.
pub(crate) fn external_pause(tree: &ProcessTree) -> Option<bool> {
    #[cfg(unix)]
    {
        tree.external_pause()
    }
    #[cfg(not(unix))]
    {
        let _ = tree;
        None
    }
}

/// Crash recovery: kill what is left of a stranded job's tree — its cgroup
/// (Linux; killed and removed), its process group, when the recorded
/// leader identity shows the group id was not reused, and (Linux) every
/// process still carrying the job's [`JOB_ID_VAR`] marker, even when the
/// leader is dead.
pub(crate) fn kill_stranded(job: JobId, leader: Option<&identity::ProcId>) {
    #[cfg(target_os = "linux")]
    cgroup::kill_stranded(job);
    if let Some(leader) = leader {
        identity::kill_stranded_group(leader);
    }
    #[cfg(unix)]
    identity::kill_marked(&job.to_string());
    #[cfg(not(unix))]
    let _ = job;
}

/// Watch the main process `pid` until it exits, without reaping it, and
/// return its resource usage (Linux: the raw `waitid` syscall with
/// `WNOWAIT` fills a `rusage` for the zombie — the process and the children
/// it waited for; macOS: `waitid(WNOWAIT)`, then `proc_pid_rusage` of the
/// zombie, see `macos::leader_rusage`). The runtime awaits this before reaping the child, so the
/// figures are always there. Runs on a small thread of its own (a job's
/// lifetime); `None` where unsupported.
pub(crate) fn watch_leader(pid: u32) -> LeaderWatch {
    let (tx, rx) = tokio::sync::oneshot::channel();
    #[cfg(target_os = "linux")]
    {
        let spawned = std::thread::Builder::new()
            .name("execra-leader".into())
            .stack_size(64 * 1024)
            .spawn(move || {
                let _ = tx.send(leader_rusage(pid));
            });
        if let Err(e) = spawned {
            // The closure (and `tx`) is dropped: the receiver reads "no
            // figures" at once.
            let _ = e;
        }
    }
    #[cfg(target_os = "macos")]
    {
        let spawned = std::thread::Builder::new()
            .name("execra-leader".into())
            .stack_size(64 * 1024)
            .spawn(move || {
                let _ = tx.send(macos::leader_rusage(pid));
            });
        if let Err(e) = spawned {
            let _ = e;
        }
    }
    #[cfg(not(any(target_os = "linux", target_os = "macos")))]
    {
        let _ = (pid, tx.send(None));
    }
    LeaderWatch {
        rx: Some(rx),
        usage: None,
    }
}

/// The main process's exit as seen by [`watch_leader`], and its usage.
#[derive(Debug)]
pub(crate) struct LeaderWatch {
    rx: Option<tokio::sync::oneshot::Receiver<Option<ResourceUsage>>>,
    usage: Option<ResourceUsage>,
}

impl LeaderWatch {
    /// Wait until the main process exited (it is not reaped yet). Cancel
    /// safe: calling it again after completion returns at once.
    pub(crate) async fn exited(&mut self) {
        if let Some(rx) = &mut self.rx {
            let v = rx.await;
            self.rx = None;
            self.usage = v.ok().flatten();
        }
    }

    /// The main process's usage, once [`exited`](Self::exited) returned.
    pub(crate) fn usage(&self) -> Option<ResourceUsage> {
        self.usage.clone()
    }
}

#[cfg(target_os = "macos")]
mod macos {
    //! macOS resource usage of a job's main process. Compile-checked only
    //! (`cargo check --target x86_64-apple-darwin`); not yet run on a Mac.

    use std::io;

    use super::ResourceUsage;

    /// Wait (without reaping) until `pid` exited, then read its usage with
    /// `proc_pid_rusage` (which also answers for a zombie): CPU times and
    /// `ri_lifetime_max_phys_footprint` as the peak memory.
    pub(super) fn leader_rusage(pid: u32) -> Option<ResourceUsage> {
        let p = libc::pid_t::try_from(pid).ok()?;
        loop {
            // SAFETY: a zeroed plain C struct filled by the kernel.
            let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
            // SAFETY: valid pointer; WNOWAIT leaves the child for tokio to
            // reap.
            let r = unsafe {
                libc::waitid(
                    libc::P_PID,
                    pid as libc::id_t,
                    &mut info,
                    libc::WEXITED | libc::WNOWAIT,
                )
            };
            if r == 0 {
                break;
            }
            if io::Error::last_os_error().kind() != io::ErrorKind::Interrupted {
                return None;
            }
        }
        // SAFETY: a zeroed plain C struct filled by the kernel.
        let mut ri: libc::rusage_info_v4 = unsafe { std::mem::zeroed() };
        // SAFETY: the buffer is a `rusage_info_v4`, as the flavor says.
        let r = unsafe {
            libc::proc_pid_rusage(
                p,
                libc::RUSAGE_INFO_V4,
                (&mut ri as *mut libc::rusage_info_v4).cast::<libc::rusage_info_t>(),
            )
        };
        if r != 0 {
            return None;
        }
        // Without the tick rate the CPU figures cannot be told: none.
        let hz = tb_frequency()?;
        let peak = ri.ri_lifetime_max_phys_footprint;
        Some(ResourceUsage {
            user_cpu_us: ticks_to_us(ri.ri_user_time, hz),
            system_cpu_us: ticks_to_us(ri.ri_system_time, hz),
            peak_memory_bytes: (peak > 0).then_some(peak),
            whole_tree: false,
        })
    }

    /// `ri_user_time`/`ri_system_time` count Mach time-base ticks (1 ns on
    /// Intel, 1/24 MHz on Apple silicon), converted with `hw.tbfrequency`,
    /// which stays the hardware's under Rosetta (where
    /// `mach_timebase_info` reports 1/1).
    fn ticks_to_us(ticks: u64, hz: u64) -> u64 {
        let us = u128::from(ticks) * 1_000_000 / u128::from(hz.max(1));
        u64::try_from(us).unwrap_or(u64::MAX)
    }

    /// `sysctl hw.tbfrequency`: time-base ticks per second.
    fn tb_frequency() -> Option<u64> {
        let mut hz: u64 = 0;
        let mut len = std::mem::size_of::<u64>();
        // SAFETY: a NUL-terminated name and a u64 buffer of `len` bytes.
        let r = unsafe {
            libc::sysctlbyname(
                c"hw.tbfrequency".as_ptr(),
                (&mut hz as *mut u64).cast(),
                &mut len,
                std::ptr::null_mut(),
                0,
            )
        };
        (r == 0 && len == std::mem::size_of::<u64>() && hz > 0).then_some(hz)
    }
}

#[cfg(target_os = "linux")]
fn leader_rusage(pid: u32) -> Option<ResourceUsage> {
    let pid = libc::id_t::try_from(pid).ok()?;
    loop {
        // SAFETY: zeroed plain C structs filled by the kernel.
        let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
        let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
        // SAFETY: the raw waitid syscall takes a fifth `struct rusage *`
        // argument (glibc's wrapper does not expose it); both pointers are
        // valid for the call. WNOWAIT leaves the child for tokio to reap.
        let r = unsafe {
            libc::syscall(
                libc::SYS_waitid,
                libc::P_PID,
                pid,
                &mut info as *mut libc::siginfo_t,
                libc::WEXITED | libc::WNOWAIT,
                &mut ru as *mut libc::rusage,
            )
        };
        if r == 0 {
            let us = |t: libc::timeval| {
                u64::try_from(t.tv_sec).unwrap_or(0) * 1_000_000
                    + u64::try_from(t.tv_usec).unwrap_or(0)
            };
            return Some(ResourceUsage {
                user_cpu_us: us(ru.ru_utime),
                system_cpu_us: us(ru.ru_stime),
                // ru_maxrss is in KiB on Linux.
                peak_memory_bytes: u64::try_from(ru.ru_maxrss).ok().map(|k| k * 1024),
                whole_tree: false,
            });
        }
        if std::io::Error::last_os_error().kind() != io::ErrorKind::Interrupted {
            return None;
        }
    }
}

/// A job's tree reached from outside the process that runs it (the CLI's
/// `cancel`, `pause`, `resume`): its cgroup, found by the job id, else its
/// process group and the leader's live descendants, signalled only through
/// [`identity::signal_tree`] with the leader identity recorded at spawn
/// (never a reused group id), plus (Linux) every process carrying the job's
/// [`JOB_ID_VAR`] marker.
#[cfg(unix)]
#[derive(Debug)]
pub(crate) struct RecordedTree {
    leader: Option<identity::ProcId>,
    job: String,
    #[cfg(target_os = "linux")]
    cgroup: Option<std::path::PathBuf>,
}

#[cfg(unix)]
impl RecordedTree {
    /// Locate the tree of `job`.
    pub(crate) fn find(job: JobId, leader: Option<identity::ProcId>) -> Self {
        RecordedTree {
            leader: leader.filter(|l| l.start.is_some() && l.boot.is_some()),
            job: job.to_string(),
            #[cfg(target_os = "linux")]
            cgroup: cgroup::find(job),
        }
    }

    /// What holds the tree: `"cgroup"`, `"process group"` (a verified
    /// leader identity, or processes marked with the job id) or `None`
    /// when it cannot be reached safely.
    pub(crate) fn holder(&self) -> Option<&'static str> {
        #[cfg(target_os = "linux")]
        if self.cgroup.is_some() {
            return Some("cgroup");
        }
        if self.leader.is_some() || !identity::marked(&self.job).is_empty() {
            return Some("process group");
        }
        None
    }

    /// Send `sig` to the whole tree. `true` if anything was signalled.
    #[cfg(unix)]
    pub(crate) fn signal(&self, sig: i32) -> bool {
        #[cfg(target_os = "linux")]
        if let Some(dir) = &self.cgroup {
            return cgroup::signal_dir(dir, sig) > 0;
        }
        let mut seen = identity::marked(&self.job);
        match &self.leader {
            Some(l) => identity::signal_tree(l, sig, &mut seen),
            None => seen
                .iter()
                .fold(false, |any, p| identity::signal_process(p, sig) | any),
        }
    }

    /// Kill the whole tree (`cgroup.kill`, else `SIGKILL` to the group and
    /// the marked processes).
    #[cfg(unix)]
    pub(crate) fn kill(&self) -> bool {
        #[cfg(target_os = "linux")]
        if let Some(dir) = &self.cgroup {
            let had = cgroup::populated(dir);
            cgroup::kill_dir(dir);
            return had;
        }
        let hit = self.signal(libc::SIGKILL);
        identity::kill_marked(&self.job) > 0 || hit
    }

    /// Freeze or thaw the tree (`cgroup.freeze`, else `SIGSTOP`/`SIGCONT`).
    #[cfg(unix)]
    pub(crate) fn pause(&self, frozen: bool) -> bool {
        #[cfg(target_os = "linux")]
        if let Some(dir) = &self.cgroup {
            return cgroup::freeze_dir(dir, frozen).is_ok();
        }
        self.signal(if frozen { libc::SIGSTOP } else { libc::SIGCONT })
    }

    /// `true` while anything of the tree is still running.
    #[cfg(unix)]
    pub(crate) fn alive(&self) -> bool {
        #[cfg(target_os = "linux")]
        if let Some(dir) = &self.cgroup {
            return cgroup::populated(dir);
        }
        self.signal(0)
    }
}

/// The job's main process: started by tokio, or (Linux, cgroup path, no
/// terminal) by `clone3` straight into its cgroup (`clone3.rs`).
#[derive(Debug)]
pub(crate) enum Child {
    /// Started by `tokio::process::Command`.
    Tokio(tokio::process::Child),
    /// Started by `clone3(CLONE_INTO_CGROUP)`.
    #[cfg(target_os = "linux")]
    Raw(clone3::RawChild),
}

/// Our end of a child's stdin pipe.
pub(crate) type ChildStdin = Box<dyn tokio::io::AsyncWrite + Unpin + Send>;

/// Our end of a child's stdout or stderr pipe.
pub(crate) type ChildOutput = Box<dyn tokio::io::AsyncRead + Unpin + Send>;

impl From<tokio::process::Child> for Child {
    fn from(child: tokio::process::Child) -> Self {
        Child::Tokio(child)
    }
}

impl Child {
    /// The process id, while it is not reaped.
    #[cfg(unix)]
    pub(crate) fn id(&self) -> Option<u32> {
        match self {
            Child::Tokio(c) => c.id(),
            #[cfg(target_os = "linux")]
            Child::Raw(c) => Some(c.id()),
        }
    }

    /// Wait for the process to exit and reap it (its stdin is closed
    /// first). Cancel safe.
    pub(crate) async fn wait(&mut self) -> io::Result<std::process::ExitStatus> {
        match self {
            Child::Tokio(c) => c.wait().await,
            #[cfg(target_os = "linux")]
            Child::Raw(c) => c.wait().await,
        }
    }

    /// Our end of its stdin pipe, if it has one and it was not taken.
    pub(crate) fn take_stdin(&mut self) -> Option<ChildStdin> {
        match self {
            Child::Tokio(c) => c.stdin.take().map(|s| Box::new(s) as ChildStdin),
            #[cfg(target_os = "linux")]
            Child::Raw(c) => c.stdin.take().map(|s| Box::new(s) as ChildStdin),
        }
    }

    /// Our end of its stdout pipe, if it has one and it was not taken.
    pub(crate) fn take_stdout(&mut self) -> Option<ChildOutput> {
        match self {
            Child::Tokio(c) => c.stdout.take().map(|s| Box::new(s) as ChildOutput),
            #[cfg(target_os = "linux")]
            Child::Raw(c) => c.stdout.take().map(|s| Box::new(s) as ChildOutput),
        }
    }

    /// Our end of its stderr pipe, if it has one and it was not taken.
    pub(crate) fn take_stderr(&mut self) -> Option<ChildOutput> {
        match self {
            Child::Tokio(c) => c.stderr.take().map(|s| Box::new(s) as ChildOutput),
            #[cfg(target_os = "linux")]
            Child::Raw(c) => c.stderr.take().map(|s| Box::new(s) as ChildOutput),
        }
    }
}

/// A started child with its pipes and its tree.
pub(crate) struct Spawned {
    /// Resource usage of the main process, ready once it exited (before
    /// it is reaped).
    pub leader_usage: LeaderWatch,
    pub child: Child,
    pub tree: ProcessTree,
    pub pid: u32,
    /// The terminal's master side, for a [`Command::pty`](crate::Command::pty) job.
    pub pty: Option<pty::PtyMaster>,
}

/// Build and start the OS process for `launch`, held as `containment`
/// says.
pub(crate) fn spawn(launch: &Launch, containment: Containment, job: JobId) -> io::Result<Spawned> {
    let spec = &launch.spec;
    if spec.program.is_empty() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "program name is empty",
        ));
    }
    // Errors describe values through the spec, where secret values are
    // placeholders: a spawn error must never carry a secret.
    check_nul("program", &spec.program, &spec.program)?;
    for (i, a) in launch.args.iter().enumerate() {
        let shown = spec.args.get(i).map_or(crate::SECRET_PLACEHOLDER, |s| s);
        check_nul(&format!("argument {}", i + 1), a, shown)?;
    }
    for (i, (k, v)) in launch.env.iter().enumerate() {
        check_nul("environment variable name", k, k)?;
        let shown = spec.env.get(i).map_or(crate::SECRET_PLACEHOLDER, |e| &e.1);
        check_nul(&format!("value of environment variable {k}"), v, shown)?;
        if k.is_empty() || k.contains('=') {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("invalid environment variable name {k:?}"),
            ));
        }
    }
    if let Some(cwd) = &spec.cwd {
        if !cwd.is_dir() {
            return Err(io::Error::new(
                io::ErrorKind::NotFound,
                format!("working directory {} does not exist", cwd.display()),
            ));
        }
    }
    ProcessTree::spawn(launch, containment, job)
}

/// The environment variable every job's child gets, set to its job id
/// (also with `env_clear`, and over a value the command sets). Descendants
/// inherit it unless they scrub their environment; on Linux without a
/// cgroup it is how a job finds processes that left its process group
/// ([`identity::marked`]).
pub(crate) const JOB_ID_VAR: &str = "EXECRA_JOB_ID";

/// The OS command for `launch` (job `job`), without containment, and the
/// master side of its terminal for a PTY job.
pub(crate) fn build(
    launch: &Launch,
    job: JobId,
) -> io::Result<(tokio::process::Command, Option<pty::PtyMaster>)> {
    let spec = &launch.spec;
    let mut cmd = tokio::process::Command::new(&spec.program);
    cmd.args(&launch.args);
    if spec.env_clear {
        cmd.env_clear();
    }
    for (k, v) in &launch.env {
        cmd.env(k, v);
    }
    cmd.env(JOB_ID_VAR, job.to_string());
    if let Some(cwd) = &spec.cwd {
        cmd.current_dir(cwd);
    }
    cmd.kill_on_drop(false);
    // A PTY child leads its own session (and so its own process group);
    // otherwise the containment layer puts it in a new group.
    let pty = match launch.pty {
        Some(size) => Some(pty::attach(&mut cmd, size)?),
        None => {
            cmd.stdin(match launch.stdin {
                StdinMode::Null => Stdio::null(),
                StdinMode::Inherit => Stdio::inherit(),
                StdinMode::Piped(_) | StdinMode::Interactive => Stdio::piped(),
            });
            cmd.stdout(Stdio::piped());
            cmd.stderr(Stdio::piped());
            None
        }
    };
    Ok((cmd, pty))
}

/// Reject a NUL byte in `value`; the error shows `shown` (the value as the
/// spec has it: a placeholder for secrets), never `value` itself.
fn check_nul(what: &str, value: &str, shown: &str) -> io::Result<()> {
    if !value.contains('\0') {
        return Ok(());
    }
    let msg = if shown == crate::SECRET_PLACEHOLDER {
        format!("{what} contains a NUL byte (value hidden: it is secret)")
    } else {
        format!("{what} contains a NUL byte: {shown:?}")
    };
    Err(io::Error::new(io::ErrorKind::InvalidInput, msg))
}

pub(crate) fn describe_spawn_error(program: &str, e: io::Error) -> io::Error {
    let what = match e.kind() {
        io::ErrorKind::NotFound => format!("program not found: {program}"),
        io::ErrorKind::PermissionDenied => {
            format!("permission denied (not executable?): {program}")
        }
        _ => format!("could not start {program}: {e}"),
    };
    io::Error::new(e.kind(), what)
}
