//! Linux: start a job's program straight inside its cgroup with
//! `clone3(CLONE_INTO_CGROUP)` (kernel ≥ 5.7), for launches without a
//! terminal.
//!
//! Moving a running process into a cgroup (writing `cgroup.procs`, as the
//! `pre_exec` path in `unix.rs` does) takes the cgroup threadgroup lock for
//! writing and waits for an RCU grace period: milliseconds per spawn.
//! `CLONE_INTO_CGROUP` creates the child in the cgroup instead (the lock is
//! only taken for reading), so the program is inside from its first
//! instruction at the cost of a plain fork.
//!
//! - Before the clone, everything is prepared in the parent: `argv` and
//!   `envp` (the environment `process::build` gives: `env_clear`, the
//!   launch's variables, `EXECRA_JOB_ID`), the working directory, the
//!   program paths to try (execvp's search: a name with `/` as is, else
//!   each `PATH` entry of the child's environment — `/bin:/usr/bin`, glibc's
//!   default, when it has none — an empty entry meaning the working
//!   directory), the pipes (`O_CLOEXEC`) and an error pipe.
//! - `clone3` with `CLONE_INTO_CGROUP | CLONE_PIDFD` and `SIGCHLD` as the
//!   exit signal, without `CLONE_VM`: fork semantics, the child has its own
//!   copy of memory.
//! - The child makes async-signal-safe system calls only (no allocation,
//!   no lock): `setpgid(0, 0)`, `dup2` of the pipes onto 0/1/2, `chdir`,
//!   `SIGPIPE` back to its default (Rust ignores it; as `std` does), an
//!   empty signal mask, then `execve` of each candidate, going on after
//!   `ENOENT`/`ENOTDIR`/`EACCES` like execvp (`EACCES` is reported if any
//!   candidate gave it). On failure it writes the errno to the error pipe
//!   and exits with 127.
//! - The parent reads the error pipe: end-of-file means the exec succeeded
//!   (the pipe is close-on-exec); an errno means it did not, and the child
//!   is reaped. The errors read like the other paths'
//!   (`describe_spawn_error`).
//! - [`RawChild`] is the started child: its pipes as tokio pipe ends and
//!   its exit read from the pidfd (readable once it exited, then
//!   `waitid(P_PIDFD)`).
//!
//! Where `clone3` or `CLONE_INTO_CGROUP` is refused ([`SpawnError::Unavailable`];
//! old kernel, seccomp filter), the caller falls back to the `pre_exec`
//! path; after `ENOSYS`, `E2BIG`, `EINVAL` or `EPERM` from the call itself
//! this process does not try again.

use std::collections::BTreeMap;
use std::ffi::{CString, OsStr, OsString};
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::process::ExitStatus;
use std::sync::atomic::{AtomicBool, Ordering};

use tokio::io::unix::AsyncFd;
use tokio::net::unix::pipe;

use crate::command::{Launch, StdinMode};
use crate::job::JobId;

use super::{describe_spawn_error, JOB_ID_VAR};

/// `struct clone_args` of `<linux/sched.h>` up to `cgroup` (version 2,
/// 88 bytes), which `CLONE_INTO_CGROUP` needs.
#[repr(C)]
#[derive(Default)]
struct CloneArgs {
    flags: u64,
    pidfd: u64,
    child_tid: u64,
    parent_tid: u64,
    exit_signal: u64,
    stack: u64,
    stack_size: u64,
    tls: u64,
    set_tid: u64,
    set_tid_size: u64,
    cgroup: u64,
}

/// `CLONE_PIDFD` (`<linux/sched.h>`).
const CLONE_PIDFD: u64 = 0x0000_1000;
/// `CLONE_INTO_CGROUP` (`<linux/sched.h>`, kernel 5.7).
const CLONE_INTO_CGROUP: u64 = 0x2_0000_0000;
/// `P_PIDFD` (`<linux/wait.h>`, kernel 5.4).
const P_PIDFD: libc::idtype_t = 3;
/// glibc's default search path (`_CS_PATH`), which execvp uses when the
/// environment has no `PATH`.
const DEFAULT_PATH: &[u8] = b"/bin:/usr/bin";

/// Set once the kernel refused `clone3` itself (not this one cgroup): later
/// spawns go straight to the `pre_exec` path.
static UNAVAILABLE: AtomicBool = AtomicBool::new(false);

/// Why [`spawn`] did not start the program.
#[derive(Debug)]
pub(crate) enum SpawnError {
    /// This path cannot be used here (no `clone3`, the cgroup refused the
    /// child, a file exec would run through `/bin/sh`, a setup step
    /// failed): nothing ran; use the `pre_exec` path.
    Unavailable(io::Error),
    /// The program could not be started (not found, not executable, …):
    /// the error as the user sees it.
    Failed(io::Error),
}

/// A child started by [`spawn`]: its pipes and its pidfd.
#[derive(Debug)]
pub(crate) struct RawChild {
    pid: u32,
    /// The pidfd, registered with tokio (readable once the child exited);
    /// `None` once reaped.
    pidfd: Option<AsyncFd<OwnedFd>>,
    /// The exit status, once reaped.
    status: Option<ExitStatus>,
    /// Our end of the child's stdin pipe (piped or interactive stdin).
    pub stdin: Option<pipe::Sender>,
    /// Our end of the child's stdout pipe.
    pub stdout: Option<pipe::Receiver>,
    /// Our end of the child's stderr pipe.
    pub stderr: Option<pipe::Receiver>,
}

impl RawChild {
    /// The child's pid.
    pub(crate) fn id(&self) -> u32 {
        self.pid
    }

    /// Wait for the child to exit and reap it (closing its stdin first,
    /// like tokio's `Child::wait`). Cancel safe; once reaped, returns the
    /// same status again.
    pub(crate) async fn wait(&mut self) -> io::Result<ExitStatus> {
        drop(self.stdin.take());
        loop {
            if let Some(status) = self.status {
                return Ok(status);
            }
            let Some(fd) = &self.pidfd else {
                return Err(io::Error::other("child already reaped"));
            };
            let mut ready = fd.readable().await?;
            match reap(fd.get_ref().as_raw_fd(), libc::WNOHANG)? {
                Some(status) => {
                    self.status = Some(status);
                    self.pidfd = None;
                }
                None => ready.clear_ready(),
            }
        }
    }
}

impl Drop for RawChild {
    fn drop(&mut self) {
        // Dropped before it was reaped (a driver dropped with its tokio
        // runtime): reap it now if it exited, else from a short thread once
        // it does, so it does not stay a zombie.
        let Some(fd) = self.pidfd.take() else {
            return;
        };
        let fd = fd.into_inner();
        if let Ok(Some(_)) = reap(fd.as_raw_fd(), libc::WNOHANG) {
            return;
        }
        let _ = std::thread::Builder::new()
            .name("execra-reap".into())
            .stack_size(64 * 1024)
            .spawn(move || {
                let _ = reap(fd.as_raw_fd(), 0);
            });
    }
}

/// `waitid(P_PIDFD, fd, WEXITED | flags)`: the exit status once the child
/// was reaped, `None` if it has not exited yet (with `WNOHANG`).
fn reap(fd: RawFd, flags: libc::c_int) -> io::Result<Option<ExitStatus>> {
    loop {
        // SAFETY: a zeroed plain C struct filled by the kernel.
        let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
        // SAFETY: valid pointer; `fd` is a pidfd of our own child.
        let r =
            unsafe { libc::waitid(P_PIDFD, fd as libc::id_t, &mut info, libc::WEXITED | flags) };
        if r < 0 {
            let e = io::Error::last_os_error();
            if e.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return Err(e);
        }
        // SAFETY: waitid filled `info` for a child (or left it zeroed).
        let (pid, status) = unsafe { (info.si_pid(), info.si_status()) };
        if pid == 0 {
            return Ok(None);
        }
        // The wait status `waitpid` would have given.
        let raw = match info.si_code {
            libc::CLD_EXITED => (status & 0xff) << 8,
            libc::CLD_KILLED => status & 0x7f,
            libc::CLD_DUMPED => (status & 0x7f) | 0x80,
            _ => return Err(io::Error::other("unexpected child state from waitid")),
        };
        return Ok(Some(ExitStatus::from_raw(raw)));
    }
}

/// Everything the child needs, prepared before the clone: it only reads
/// this (its own copy) and makes system calls.
struct Prepared {
    /// `argv`, NUL-terminated strings and a null pointer; points into
    /// `_strings`.
    argv: Vec<*const libc::c_char>,
    /// `envp`, likewise.
    envp: Vec<*const libc::c_char>,
    /// The paths to `execve`, in order.
    candidates: Vec<CString>,
    cwd: Option<CString>,
    /// The fds the child puts on 0, 1 and 2 (`None`: leave it).
    stdio: [Option<RawFd>; 3],
    /// The write end of the error pipe.
    err: RawFd,
    /// Owns what `argv` and `envp` point to.
    _strings: Vec<CString>,
}

/// Start `launch` (without a terminal) as job `job` inside the cgroup at
/// `cgroup` (see the module docs).
pub(crate) fn spawn(launch: &Launch, job: JobId, cgroup: &Path) -> Result<RawChild, SpawnError> {
    use SpawnError::Unavailable;
    if UNAVAILABLE.load(Ordering::Relaxed) {
        return Err(Unavailable(io::Error::from_raw_os_error(libc::ENOSYS)));
    }
    debug_assert!(launch.pty.is_none());
    let program = &launch.spec.program;
    let dir = open(
        &cstring(cgroup.as_os_str().as_bytes()).map_err(Unavailable)?,
        libc::O_PATH | libc::O_DIRECTORY,
    )
    .map_err(Unavailable)?;

    // Pipes: our ends (as tokio pipe ends) and the child's.
    let (stdin, child_in) = match launch.stdin {
        StdinMode::Null => (
            None,
            Some(open(c"/dev/null", libc::O_RDONLY).map_err(Unavailable)?),
        ),
        StdinMode::Inherit => (None, None),
        StdinMode::Piped(_) | StdinMode::Interactive => {
            let (r, w) = pipe2().map_err(Unavailable)?;
            (
                Some(pipe::Sender::from_owned_fd(w).map_err(Unavailable)?),
                Some(r),
            )
        }
    };
    let (out_r, out_w) = pipe2().map_err(Unavailable)?;
    let stdout = pipe::Receiver::from_owned_fd(out_r).map_err(Unavailable)?;
    let (err_r, err_w) = pipe2().map_err(Unavailable)?;
    let stderr = pipe::Receiver::from_owned_fd(err_r).map_err(Unavailable)?;
    let (status_r, status_w) = pipe2().map_err(Unavailable)?;

    let mut p = prepare(launch, job).map_err(Unavailable)?;
    p.stdio = [
        child_in.as_ref().map(AsRawFd::as_raw_fd),
        Some(out_w.as_raw_fd()),
        Some(err_w.as_raw_fd()),
    ];
    p.err = status_w.as_raw_fd();

    let mut pidfd: libc::c_int = -1;
    let mut args = CloneArgs {
        flags: CLONE_INTO_CGROUP | CLONE_PIDFD,
        pidfd: std::ptr::addr_of_mut!(pidfd) as u64,
        exit_signal: libc::SIGCHLD as u64,
        cgroup: dir.as_raw_fd() as u64,
        ..CloneArgs::default()
    };
    // SAFETY: clone3 without CLONE_VM duplicates this process like fork:
    // the child gets a copy of memory (this stack included) and runs only
    // `exec_child`, which makes async-signal-safe system calls on data
    // prepared above and never returns.
    let r = unsafe {
        libc::syscall(
            libc::SYS_clone3,
            std::ptr::addr_of_mut!(args),
            std::mem::size_of::<CloneArgs>(),
        )
    };
    if r == 0 {
        // SAFETY: in the child, see above.
        unsafe { exec_child(&p) }
    }
    if r < 0 {
        let e = io::Error::last_os_error();
        if matches!(
            e.raw_os_error(),
            Some(libc::ENOSYS | libc::E2BIG | libc::EINVAL | libc::EPERM)
        ) {
            UNAVAILABLE.store(true, Ordering::Relaxed);
        }
        return Err(Unavailable(e));
    }
    // SAFETY: the kernel wrote a new pidfd, which we now own.
    let pidfd = unsafe { OwnedFd::from_raw_fd(pidfd) };
    // A pid is positive and fits.
    let pid = r as u32;
    // The child's ends are the child's now.
    drop((child_in, out_w, err_w, status_w, dir, p));

    // The error pipe: end-of-file once the exec succeeded (close-on-exec).
    let mut buf = [0u8; 4];
    let n = read_full(&status_r, &mut buf);
    drop(status_r);
    let lost = match n {
        Ok(0) => None,
        Ok(4) => {
            let errno = i32::from_ne_bytes(buf);
            let _ = reap(pidfd.as_raw_fd(), 0);
            let e = io::Error::from_raw_os_error(errno);
            // A file exec cannot run directly (neither ELF nor `#!`):
            // execvp would run it through `/bin/sh`, and the `pre_exec`
            // path does. Nothing of the program ran: it can start again.
            if errno == libc::ENOEXEC {
                return Err(Unavailable(e));
            }
            return Err(SpawnError::Failed(describe_spawn_error(program, e)));
        }
        Ok(_) => Some(io::Error::other("short read from the exec status pipe")),
        Err(e) => Some(e),
    };
    if let Some(e) = lost {
        kill_and_reap(pid);
        return Err(SpawnError::Failed(describe_spawn_error(program, e)));
    }
    // `AsyncFd::with_interest` is deprecated from tokio 1.54 in favour of
    // the unsafe `register_with_interest` (not in the 1.38 we support). Its
    // safety condition — the descriptor stays open while registered —
    // holds: the `AsyncFd` owns its `OwnedFd`.
    #[allow(deprecated)]
    let registered = AsyncFd::with_interest(pidfd, tokio::io::Interest::READABLE);
    let pidfd = match registered {
        Ok(fd) => fd,
        Err(e) => {
            kill_and_reap(pid);
            return Err(SpawnError::Failed(describe_spawn_error(program, e)));
        }
    };
    Ok(RawChild {
        pid,
        pidfd: Some(pidfd),
        status: None,
        stdin,
        stdout: Some(stdout),
        stderr: Some(stderr),
    })
}

/// Kill and reap a child whose start could not be followed through.
fn kill_and_reap(pid: u32) {
    let pid = pid as libc::pid_t;
    let mut status = 0;
    // SAFETY: kill(2) and waitpid(2) on our own child, not reaped yet (so
    // its pid is still its own).
    unsafe {
        libc::kill(pid, libc::SIGKILL);
        while libc::waitpid(pid, &mut status, 0) < 0
            && io::Error::last_os_error().kind() == io::ErrorKind::Interrupted
        {}
    }
}

/// `argv`, `envp`, candidates and working directory for `launch`.
fn prepare(launch: &Launch, job: JobId) -> io::Result<Prepared> {
    let spec = &launch.spec;
    let mut env: BTreeMap<OsString, OsString> = if spec.env_clear {
        BTreeMap::new()
    } else {
        std::env::vars_os().collect()
    };
    for (k, v) in &launch.env {
        env.insert(k.into(), v.into());
    }
    env.insert(JOB_ID_VAR.into(), job.to_string().into());

    let program = spec.program.as_bytes();
    let candidates = if program.contains(&b'/') {
        vec![cstring(program)?]
    } else {
        let path = env
            .get(OsStr::new("PATH"))
            .map_or(DEFAULT_PATH, |p| p.as_bytes());
        path.split(|&b| b == b':')
            .map(|dir| {
                if dir.is_empty() {
                    // An empty entry is the working directory.
                    cstring(program)
                } else {
                    let mut full = dir.to_vec();
                    full.push(b'/');
                    full.extend_from_slice(program);
                    cstring(&full)
                }
            })
            .collect::<io::Result<Vec<_>>>()?
    };

    let mut strings = Vec::with_capacity(1 + launch.args.len() + env.len());
    strings.push(cstring(program)?);
    for a in &launch.args {
        strings.push(cstring(a.as_bytes())?);
    }
    let argc = strings.len();
    for (k, v) in env {
        let mut kv = k.into_vec();
        kv.push(b'=');
        kv.extend_from_slice(v.as_bytes());
        strings.push(cstring(&kv)?);
    }
    // The pointers stay valid: the strings' heap buffers do not move when
    // the `Vec` holding them does.
    let ptrs = |s: &[CString]| {
        s.iter()
            .map(|c| c.as_ptr())
            .chain(std::iter::once(std::ptr::null()))
            .collect::<Vec<_>>()
    };
    let argv = ptrs(&strings[..argc]);
    let envp = ptrs(&strings[argc..]);
    let cwd = spec
        .cwd
        .as_ref()
        .map(|d| cstring(d.as_os_str().as_bytes()))
        .transpose()?;
    Ok(Prepared {
        argv,
        envp,
        candidates,
        cwd,
        stdio: [None; 3],
        err: -1,
        _strings: strings,
    })
}

fn cstring(bytes: &[u8]) -> io::Result<CString> {
    CString::new(bytes).map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "NUL byte"))
}

/// `open(path, flags | O_CLOEXEC)`.
fn open(path: &std::ffi::CStr, flags: libc::c_int) -> io::Result<OwnedFd> {
    // SAFETY: a valid NUL-terminated path.
    let fd = unsafe { libc::open(path.as_ptr(), flags | libc::O_CLOEXEC) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: a new fd we own.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// A close-on-exec pipe: (read end, write end).
fn pipe2() -> io::Result<(OwnedFd, OwnedFd)> {
    let mut fds = [-1; 2];
    // SAFETY: `fds` has room for the two fds.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: two new fds we own.
    Ok(unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) })
}

/// Read until `buf` is full or end-of-file; the number of bytes read.
fn read_full(fd: &OwnedFd, buf: &mut [u8]) -> io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        // SAFETY: the rest of `buf` is valid for writes.
        let r = unsafe { libc::read(fd.as_raw_fd(), buf[n..].as_mut_ptr().cast(), buf.len() - n) };
        if r < 0 {
            let e = io::Error::last_os_error();
            if e.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return Err(e);
        }
        if r == 0 {
            break;
        }
        n += r as usize;
    }
    Ok(n)
}

/// In the child: set up and exec (see the module docs); never returns.
///
/// # Safety
///
/// Only in the child of `clone3` (fork semantics), with `p` prepared by
/// [`prepare`] and its fds set.
unsafe fn exec_child(p: &Prepared) -> ! {
    if libc::setpgid(0, 0) != 0 {
        child_fail(p.err, errno());
    }
    for (target, fd) in p.stdio.iter().enumerate() {
        let Some(fd) = *fd else { continue };
        let target = target as libc::c_int;
        if fd == target {
            // Already in place: only keep it open across exec.
            if libc::fcntl(fd, libc::F_SETFD, 0) < 0 {
                child_fail(p.err, errno());
            }
            continue;
        }
        while libc::dup2(fd, target) < 0 {
            if errno() != libc::EINTR {
                child_fail(p.err, errno());
            }
        }
    }
    if let Some(cwd) = &p.cwd {
        if libc::chdir(cwd.as_ptr()) != 0 {
            child_fail(p.err, errno());
        }
    }
    // SIGPIPE back to its default (Rust ignores it), as std does.
    let mut dfl: libc::sigaction = std::mem::zeroed();
    dfl.sa_sigaction = libc::SIG_DFL;
    if libc::sigaction(libc::SIGPIPE, &dfl, std::ptr::null_mut()) != 0 {
        child_fail(p.err, errno());
    }
    let mut set: libc::sigset_t = std::mem::zeroed();
    libc::sigemptyset(&mut set);
    if libc::sigprocmask(libc::SIG_SETMASK, &set, std::ptr::null_mut()) != 0 {
        child_fail(p.err, errno());
    }
    // execvp's search: go on past candidates that are missing or not
    // executable; report EACCES if any candidate gave it.
    let mut last = libc::ENOENT;
    let mut eacces = false;
    for c in &p.candidates {
        libc::execve(c.as_ptr(), p.argv.as_ptr(), p.envp.as_ptr());
        last = errno();
        match last {
            libc::EACCES => eacces = true,
            libc::ENOENT | libc::ENOTDIR | libc::ESTALE | libc::ENODEV | libc::ETIMEDOUT => {}
            _ => child_fail(p.err, last),
        }
    }
    child_fail(p.err, if eacces { libc::EACCES } else { last })
}

/// In the child: this thread's `errno`.
///
/// # Safety
///
/// Reads the thread-local `errno` (async-signal-safe).
unsafe fn errno() -> libc::c_int {
    *libc::__errno_location()
}

/// In the child: report `e` on the error pipe `fd` and exit with 127.
///
/// # Safety
///
/// Only in the child of `clone3`, before exec.
unsafe fn child_fail(fd: RawFd, e: libc::c_int) -> ! {
    let bytes = e.to_ne_bytes();
    while libc::write(fd, bytes.as_ptr().cast(), bytes.len()) < 0 && errno() == libc::EINTR {}
    libc::_exit(127)
}
