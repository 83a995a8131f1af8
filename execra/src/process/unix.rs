//! Unix: the child leads a new process group; signals go to the group.

use std::io;

/// The child's process group.
#[derive(Debug)]
pub(crate) struct ProcessTree {
    pgid: libc::pid_t,
}

impl ProcessTree {
    /// Put the child in a new process group (its pid becomes the group id).
    pub(crate) fn configure(cmd: &mut tokio::process::Command, _hide_window: bool) {
        cmd.process_group(0);
    }

    pub(crate) fn attach(child: &tokio::process::Child) -> io::Result<Self> {
        let pid = child
            .id()
            .ok_or_else(|| io::Error::other("child exited before it could be tracked"))?;
        Ok(ProcessTree {
            pgid: pid as libc::pid_t,
        })
    }

    /// Ask the whole group to stop (`SIGTERM`).
    pub(crate) fn terminate(&self) {
        signal_group(self.pgid, libc::SIGTERM);
    }

    /// Kill the whole group (`SIGKILL`).
    pub(crate) fn kill(&self) {
        signal_group(self.pgid, libc::SIGKILL);
    }
}

/// Send `sig` to process group `pgid`. A group that no longer exists is not
/// an error (everything in it already exited).
pub(crate) fn signal_group(pgid: libc::pid_t, sig: libc::c_int) -> bool {
    if pgid <= 1 {
        return false;
    }
    // SAFETY: kill(2) with a negative pid signals a process group; it has no
    // memory-safety preconditions.
    unsafe { libc::kill(-pgid, sig) == 0 }
}
