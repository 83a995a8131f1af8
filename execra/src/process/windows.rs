//! Windows: the child is assigned to a Job Object with kill-on-close, so
//! terminating the job (or dropping the handle) ends the whole tree.

use std::io;

use crate::command::Launch;
use crate::job::JobId;

use super::{build, describe_spawn_error, Containment, ResourceUsage, Spawned};

use windows_sys::Win32::Foundation::{CloseHandle, HANDLE};
use windows_sys::Win32::System::JobObjects::{
    AssignProcessToJobObject, CreateJobObjectW, JobObjectExtendedLimitInformation,
    SetInformationJobObject, TerminateJobObject, JOBOBJECT_EXTENDED_LIMIT_INFORMATION,
    JOB_OBJECT_LIMIT_KILL_ON_JOB_CLOSE,
};
use windows_sys::Win32::System::Threading::CREATE_NO_WINDOW;

/// A Job Object holding the child and everything it starts.
#[derive(Debug)]
pub(crate) struct ProcessTree {
    job: HANDLE,
}

// SAFETY: a Job Object handle may be used from any thread.
unsafe impl Send for ProcessTree {}
// SAFETY: the handle is only passed to thread-safe Win32 calls.
unsafe impl Sync for ProcessTree {}

impl ProcessTree {
    /// Start `launch` and assign it to a new Job Object.
    pub(crate) fn spawn(
        launch: &Launch,
        _containment: Containment,
        _job: JobId,
    ) -> io::Result<Spawned> {
        let mut cmd = build(launch);
        if launch.spec.hide_window {
            cmd.creation_flags(CREATE_NO_WINDOW);
        }
        let mut child = cmd
            .spawn()
            .map_err(|e| describe_spawn_error(&launch.spec.program, e))?;
        let pid = child.id().unwrap_or(0);
        match Self::attach(&child) {
            Ok(tree) => Ok(Spawned { child, tree, pid }),
            Err(e) => {
                // Never run untracked.
                let _ = child.start_kill();
                Err(e)
            }
        }
    }

    /// Pausing needs suspending every thread; not supported on Windows.
    pub(crate) fn pause(&self, _frozen: bool) -> io::Result<()> {
        Err(io::Error::new(
            io::ErrorKind::Unsupported,
            "pause/resume is not supported on Windows",
        ))
    }

    /// Not measured on Windows.
    pub(crate) fn usage(&self) -> Option<ResourceUsage> {
        None
    }

    /// Unknown on Windows: kill-on-close ends the tree when the handle
    /// closes.
    pub(crate) fn populated(&self) -> bool {
        false
    }

    /// Kept leftovers stay in the Job Object (closing it kills them; see
    /// the README).
    pub(crate) fn release_leftovers(&self) {}

    /// Nothing to remove (the handle closes on drop).
    pub(crate) fn release(&self) -> bool {
        true
    }

    fn attach(child: &tokio::process::Child) -> io::Result<Self> {
        let raw = child
            .raw_handle()
            .ok_or_else(|| io::Error::other("child exited before it could be tracked"))?;
        // SAFETY: plain Win32 calls on handles we own; every failure is checked.
        unsafe {
            let job = CreateJobObjectW(std::ptr::null(), std::ptr::null());
            if job.is_null() {
                return Err(io::Error::last_os_error());
            }
            let mut info: JOBOBJECT_EXTENDED_LIMIT_INFORMATION = std::mem::zeroed();
            info.BasicLimitInformation.LimitFlags = JOB_OBJECT_LIMIT_KILL_ON_JOB_CLOSE;
            let ok = SetInformationJobObject(
                job,
                JobObjectExtendedLimitInformation,
                &info as *const _ as *const _,
                std::mem::size_of::<JOBOBJECT_EXTENDED_LIMIT_INFORMATION>() as u32,
            );
            if ok == 0 || AssignProcessToJobObject(job, raw as HANDLE) == 0 {
                let err = io::Error::last_os_error();
                CloseHandle(job);
                return Err(err);
            }
            Ok(ProcessTree { job })
        }
    }

    /// Windows has no polite request for a tree: terminate it.
    pub(crate) fn terminate(&self) {
        self.kill();
    }

    /// Terminate every process in the job.
    pub(crate) fn kill(&self) {
        // SAFETY: `self.job` is a valid job handle until drop.
        unsafe {
            TerminateJobObject(self.job, 1);
        }
    }
}

impl Drop for ProcessTree {
    fn drop(&mut self) {
        // SAFETY: closing our own handle once; kill-on-close ends the tree.
        unsafe {
            CloseHandle(self.job);
        }
    }
}
