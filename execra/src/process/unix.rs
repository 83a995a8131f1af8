//! Unix: the child leads a new process group, and on Linux it is also put
//! into its own cgroup when one can be created (see `cgroup.rs`): created
//! inside it by `clone3` (`clone3.rs`) when it has no terminal, else (or
//! where `clone3` is refused) moving itself there from `pre_exec`.
//!
//! Without a cgroup, signals go to the process group (through
//! [`identity::signal_group`], which never signals a reused group id) and,
//! on Linux, to every live descendant of the main process found in `/proc`
//! and to every process carrying the job's `EXECRA_JOB_ID` marker in its
//! environment ([`identity::marked`]): that reaches a process whose parent
//! already exited, as after a double fork, unless it scrubbed its
//! environment — which the host, as a child subreaper, adopts and kills
//! (`orphans.rs`). Each such job is listed for the host-death watchdog
//! (`hostwatch.rs`) while it runs.

use std::io;
#[cfg(target_os = "linux")]
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;

use crate::command::Launch;
use crate::job::JobId;

#[cfg(target_os = "linux")]
use super::cgroup::JobCgroup;
use super::hostwatch::HostWatch;
use super::identity::{self, ProcId};
use super::pty::PtyMaster;
use super::{build, describe_spawn_error, Child, Containment, ResourceUsage, Spawned};

/// A job's process tree: its process group, and its cgroup where there is
/// one.
#[derive(Debug)]
pub(crate) struct ProcessTree {
    leader: ProcId,
    #[cfg(target_os = "linux")]
    cgroup: Option<JobCgroup>,
    /// Descendants seen while stopping (process-group path), so a process
    /// orphaned between `terminate` and `kill` still gets the `SIGKILL`.
    seen: Mutex<Vec<ProcId>>,
    /// The job id, as the child's `EXECRA_JOB_ID` carries it.
    job: String,
    /// Process-group path: the job as listed for the host-death watchdog
    /// (`hostwatch.rs`); taken (unlisted) when leftovers are kept.
    watch: Mutex<Option<HostWatch>>,
    /// Frozen as far as this process knows: set by [`pause`](Self::pause),
    /// and by [`external_pause`](Self::external_pause) when another
    /// process froze or thawed the tree.
    requested: AtomicBool,
    /// The frozen state [`external_pause`](Self::external_pause) saw last.
    seen_frozen: AtomicBool,
    /// Orphans adopted by the host as a child subreaper (Linux).
    #[cfg(target_os = "linux")]
    orphans: super::orphans::Scope,
}

impl ProcessTree {
    /// Start `launch` in a new process group (and cgroup, where possible).
    pub(crate) fn spawn(
        launch: &Launch,
        containment: Containment,
        job: JobId,
    ) -> io::Result<Spawned> {
        // Before the process exists, so no other job takes it for one of
        // its adopted orphans (`orphans.rs`).
        #[cfg(target_os = "linux")]
        let orphans = super::orphans::Scope::reserve();
        #[cfg(target_os = "linux")]
        {
            // A `pre_exec` hook makes std fork + execvp instead of
            // posix_spawn, and execvp runs a file it cannot execute (no ELF
            // header, no `#!`) through `/bin/sh`; posix_spawn fails it. Keep
            // one behaviour: such a file takes the process-group path.
            let cgroup = match containment {
                Containment::Auto if !runs_via_shell_fallback(launch) => JobCgroup::create(job),
                _ => None,
            };
            if let Some(cg) = cgroup {
                // The watchdog starts before the job (with the cgroup's
                // parent): it is never taken for one of the job's orphans.
                //
                // Without a terminal, the child is created inside the
                // cgroup (`clone3.rs`); else, or where that is refused, it
                // moves itself there from `pre_exec`.
                if launch.pty.is_none() {
                    match super::clone3::spawn(launch, job, cg.dir()) {
                        Ok(child) => {
                            tracing::debug!(entry = "clone3", "started inside the job's cgroup");
                            return Self::attach(Child::Raw(child), None, job, Some(cg), orphans);
                        }
                        Err(super::clone3::SpawnError::Failed(e)) => {
                            tracing::debug!(entry = "clone3", error = %e, "could not start");
                            return Err(e);
                        }
                        Err(super::clone3::SpawnError::Unavailable(e)) => {
                            tracing::debug!(error = %e, "clone3 into the cgroup refused; entering it from pre_exec");
                        }
                    }
                }
                let (mut cmd, pty) = build(launch, job)?;
                new_group(&mut cmd, &pty);
                enter_in_pre_exec(&mut cmd, &cg)?;
                match cmd.spawn() {
                    Ok(child) => {
                        // The child has its copies of a terminal's slave
                        // side: drop ours, so the master reads end-of-file
                        // once the child's are closed.
                        drop(cmd);
                        tracing::debug!(entry = "pre_exec", "started inside the job's cgroup");
                        return Self::attach(child.into(), pty, job, Some(cg), orphans);
                    }
                    Err(_) => {
                        // Entering the cgroup may be what failed (no
                        // permission to move a process there): retry once
                        // on the process-group path, which reports the
                        // real error if the program itself cannot start.
                        drop((cg, cmd, pty));
                        let (child, pty) = spawn_in_group(launch, job)?;
                        super::cgroup::mark_unusable();
                        return Self::attach(child.into(), pty, job, None, orphans);
                    }
                }
            }
        }
        #[cfg(not(target_os = "linux"))]
        let _ = containment;
        let (child, pty) = spawn_in_group(launch, job)?;
        Self::attach(
            child.into(),
            pty,
            job,
            #[cfg(target_os = "linux")]
            None,
            #[cfg(target_os = "linux")]
            orphans,
        )
    }

    fn attach(
        child: Child,
        pty: Option<PtyMaster>,
        job: JobId,
        #[cfg(target_os = "linux")] cgroup: Option<JobCgroup>,
        #[cfg(target_os = "linux")] mut orphans: super::orphans::Scope,
    ) -> io::Result<Spawned> {
        let pid = child
            .id()
            .ok_or_else(|| io::Error::other("child exited before it could be tracked"))?;
        // The child is not reaped yet, so this pid is still this process:
        // its identity recorded now is the leader's.
        let leader = ProcId::of(pid);
        #[cfg(target_os = "linux")]
        orphans.set_leader(&leader);
        let job = job.to_string();
        #[cfg(target_os = "linux")]
        let contained = cgroup.is_some();
        #[cfg(not(target_os = "linux"))]
        let contained = false;
        // Without a cgroup, the host-death watchdog needs to know the job.
        let watch = (!contained)
            .then(|| HostWatch::register(&job, &leader))
            .flatten();
        let tree = ProcessTree {
            #[cfg(target_os = "linux")]
            orphans,
            leader,
            #[cfg(target_os = "linux")]
            cgroup,
            seen: Mutex::new(Vec::new()),
            job,
            watch: Mutex::new(watch),
            requested: AtomicBool::new(false),
            seen_frozen: AtomicBool::new(false),
        };
        Ok(Spawned {
            leader_usage: super::watch_leader(pid),
            child,
            tree,
            pid,
            pty,
        })
    }

    /// The main process's identity, recorded right after spawn.
    pub(crate) fn leader(&self) -> &ProcId {
        &self.leader
    }

    /// Ask the whole tree to stop (`SIGTERM`).
    pub(crate) fn terminate(&self) {
        #[cfg(target_os = "linux")]
        if let Some(cg) = &self.cgroup {
            cg.terminate();
            return;
        }
        self.signal_all(libc::SIGTERM);
        #[cfg(target_os = "linux")]
        self.orphans.signal(libc::SIGTERM);
    }

    /// Kill the whole tree (`SIGKILL`), and reap the orphans the host
    /// adopted from it as a subreaper (Linux, see `orphans.rs`).
    pub(crate) fn kill(&self) {
        #[cfg(target_os = "linux")]
        if let Some(cg) = &self.cgroup {
            cg.kill();
            self.orphans.kill();
            return;
        }
        self.signal_all(libc::SIGKILL);
        #[cfg(target_os = "linux")]
        self.orphans.kill();
    }

    /// Freeze (`true`) or thaw (`false`) the whole tree: `cgroup.freeze`,
    /// else `SIGSTOP`/`SIGCONT` to the group and live descendants.
    pub(crate) fn pause(&self, frozen: bool) -> io::Result<()> {
        self.requested.store(frozen, Ordering::SeqCst);
        #[cfg(target_os = "linux")]
        if let Some(cg) = &self.cgroup {
            return cg.freeze(frozen);
        }
        self.signal_all(if frozen { libc::SIGSTOP } else { libc::SIGCONT });
        Ok(())
    }

    /// Did another process freeze (`Some(true)`) or thaw (`Some(false)`)
    /// the tree since the last call (`execra pause|resume`, i.e.
    /// `Store::pause_job`)? Reads the tree's state — `frozen` in the
    /// cgroup's `cgroup.events`, else (Linux) whether the main process is
    /// stopped (`T` in `/proc/<pid>/stat`) — and reports a *change* that
    /// this process did not ask for; from then on it counts as this
    /// process's own state (a later [`pause`](Self::pause) undoes it).
    /// `None`: no change, or the state cannot be read (macOS without a
    /// cgroup). Polled by the driver (`runtime/stop.rs`, `Fired::Probe`).
    pub(crate) fn external_pause(&self) -> Option<bool> {
        let now = self.frozen_now()?;
        let before = self.seen_frozen.swap(now, Ordering::SeqCst);
        if now == before || now == self.requested.load(Ordering::SeqCst) {
            return None;
        }
        self.requested.store(now, Ordering::SeqCst);
        Some(now)
    }

    /// Is the tree frozen right now, as far as can be read?
    fn frozen_now(&self) -> Option<bool> {
        #[cfg(target_os = "linux")]
        if let Some(cg) = &self.cgroup {
            return cg.frozen();
        }
        self.leader.start?;
        // A main process that exited (or whose pid was reused) is not
        // stopped.
        Some(match identity::stat(self.leader.pid) {
            Some(s) => Some(s.start) == self.leader.start && !s.dead && s.stopped,
            None => false,
        })
    }

    /// Resource usage: the cgroup's figures where there is one (peak
    /// memory from the main process's `leader` figures if the cgroup has no
    /// `memory.peak`), else `leader`'s.
    pub(crate) fn usage(&self, leader: Option<ResourceUsage>) -> Option<ResourceUsage> {
        #[cfg(target_os = "linux")]
        if let Some(mut u) = self.cgroup.as_ref().and_then(JobCgroup::usage) {
            if u.peak_memory_bytes.is_none() {
                u.peak_memory_bytes = leader.and_then(|l| l.peak_memory_bytes);
            }
            return Some(u);
        }
        leader
    }

    /// `true` while anything of the tree may still run: the cgroup is
    /// populated, or (process group) a signal-0 probe reaches the group or
    /// a process signalled while stopping it is still alive.
    pub(crate) fn populated(&self) -> bool {
        #[cfg(target_os = "linux")]
        if let Some(cg) = &self.cgroup {
            return cg.populated();
        }
        identity::signal_group(&self.leader, 0)
            || self
                .seen
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .iter()
                .any(|p| p.alive() == Some(true))
    }

    /// Let leftovers go (`Command::keep_leftovers`): they leave the job's
    /// cgroup for the host's (or, without one, the host-death watchdog's
    /// list), so nothing kills them later.
    pub(crate) fn release_leftovers(&self) {
        drop(self.watch.lock().unwrap_or_else(|e| e.into_inner()).take());
        #[cfg(target_os = "linux")]
        if let Some(cg) = &self.cgroup {
            cg.release_leftovers();
        }
    }

    /// Forget the tree's kernel objects (remove an empty cgroup). `true`
    /// once nothing is left to remove.
    pub(crate) fn release(&self) -> bool {
        // The job is done: it no longer keeps later jobs from running
        // alone (`orphans.rs`).
        #[cfg(target_os = "linux")]
        self.orphans.leave();
        #[cfg(target_os = "linux")]
        if let Some(cg) = &self.cgroup {
            return !cg.populated() && cg.remove();
        }
        true
    }

    /// Process-group path: [`identity::signal_tree`], with the processes
    /// marked with the job id ([`identity::marked`]; Linux) among those
    /// signalled. A `SIGKILL` rescans for marked processes forked meanwhile.
    fn signal_all(&self, sig: libc::c_int) {
        let mut seen = self.seen.lock().unwrap_or_else(|e| e.into_inner());
        identity::add_marked(&self.job, &mut seen);
        identity::signal_tree(&self.leader, sig, &mut seen);
        if sig == libc::SIGKILL {
            identity::kill_marked(&self.job);
        }
    }
}

/// Would execvp fall back to `/bin/sh` for this program (an executable file
/// that is neither ELF nor `#!`)? Resolved like exec does: a name with `/`
/// relative to the working directory, else through `PATH` (the child's, if
/// the command sets one).
#[cfg(target_os = "linux")]
fn runs_via_shell_fallback(launch: &Launch) -> bool {
    use std::io::Read;
    use std::os::unix::fs::PermissionsExt;
    use std::path::PathBuf;
    let program = &launch.spec.program;
    let candidates: Vec<PathBuf> = if program.contains('/') {
        let p = PathBuf::from(program);
        vec![match &launch.spec.cwd {
            Some(cwd) if p.is_relative() => cwd.join(p),
            _ => p,
        }]
    } else {
        let path = launch
            .env
            .iter()
            .rev()
            .find(|(k, _)| k == "PATH")
            .map(|(_, v)| v.clone())
            .or_else(|| std::env::var("PATH").ok())
            .unwrap_or_default();
        path.split(':')
            .filter(|d| !d.is_empty())
            .map(|d| Path::new(d).join(program))
            .collect()
    };
    for c in candidates {
        let Ok(meta) = std::fs::metadata(&c) else {
            continue;
        };
        if !meta.is_file() || meta.permissions().mode() & 0o111 == 0 {
            continue;
        }
        let mut head = [0u8; 4];
        let n = std::fs::File::open(&c)
            .and_then(|mut f| f.read(&mut head))
            .unwrap_or(0);
        return !(head[..n].starts_with(b"\x7fELF") || head[..n].starts_with(b"#!"));
    }
    false
}

/// Start `launch` on the process-group path (no cgroup). The host-death
/// watchdog starts first, so it is never taken for one of the job's
/// orphans (`orphans.rs`). Our copies of a terminal's slave side are
/// dropped with the command, so the master reads end-of-file once the
/// child's are closed.
fn spawn_in_group(
    launch: &Launch,
    job: JobId,
) -> io::Result<(tokio::process::Child, Option<PtyMaster>)> {
    super::hostwatch::ensure_started();
    let (mut cmd, pty) = build(launch, job)?;
    new_group(&mut cmd, &pty);
    let child = cmd
        .spawn()
        .map_err(|e| describe_spawn_error(&launch.spec.program, e))?;
    drop(cmd);
    Ok((child, pty))
}

/// A new process group led by the child — unless it runs on a terminal,
/// where it leads a new session (and so a group) from `pty`'s `pre_exec`;
/// `setsid` would fail in a process that already leads a group.
fn new_group(cmd: &mut tokio::process::Command, pty: &Option<PtyMaster>) {
    if pty.is_none() {
        cmd.process_group(0);
    }
}

/// In the child, between fork and exec: write `0` (the calling process) to
/// the cgroup's `cgroup.procs`, so the program starts inside the cgroup.
#[cfg(target_os = "linux")]
fn enter_in_pre_exec(cmd: &mut tokio::process::Command, cg: &JobCgroup) -> io::Result<()> {
    let path = cg.procs_path()?;
    let enter = move || {
        // Only async-signal-safe calls here (open/write/close); the path
        // was allocated before fork.
        // SAFETY: `path` is a valid NUL-terminated string; the buffer
        // passed to write(2) is a static byte.
        unsafe {
            let fd = libc::open(path.as_ptr(), libc::O_WRONLY | libc::O_CLOEXEC);
            if fd < 0 {
                return Err(io::Error::last_os_error());
            }
            let n = libc::write(fd, b"0".as_ptr().cast(), 1);
            let err = (n != 1).then(io::Error::last_os_error);
            libc::close(fd);
            match err {
                Some(e) => Err(e),
                None => Ok(()),
            }
        }
    };
    // SAFETY: the closure only makes async-signal-safe system calls.
    unsafe {
        cmd.pre_exec(enter);
    }
    Ok(())
}
