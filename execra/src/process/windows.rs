//! Windows: the child is created suspended, assigned to a Job Object with
//! kill-on-close, and only then resumed — so it runs nothing outside the
//! job, and terminating the job (or closing the handle, also when the host
//! dies) ends the whole tree. If the assignment fails, the spawn fails.

use std::io;

use crate::command::Launch;
use crate::job::JobId;

use super::identity::ProcId;
use super::{build, describe_spawn_error, Containment, ResourceUsage, Spawned};

use windows_sys::Win32::Foundation::INVALID_HANDLE_VALUE;
use windows_sys::Win32::Foundation::{CloseHandle, HANDLE};
use windows_sys::Win32::System::Diagnostics::ToolHelp::{
    CreateToolhelp32Snapshot, Thread32First, Thread32Next, TH32CS_SNAPTHREAD, THREADENTRY32,
};
use windows_sys::Win32::System::JobObjects::{
    AssignProcessToJobObject, CreateJobObjectW, JobObjectExtendedLimitInformation,
    SetInformationJobObject, TerminateJobObject, JOBOBJECT_EXTENDED_LIMIT_INFORMATION,
    JOB_OBJECT_LIMIT_KILL_ON_JOB_CLOSE,
};
use windows_sys::Win32::System::Threading::{
    OpenThread, ResumeThread, CREATE_NO_WINDOW, CREATE_SUSPENDED, THREAD_SUSPEND_RESUME,
};

/// A Job Object holding the child and everything it starts.
#[derive(Debug)]
pub(crate) struct ProcessTree {
    job: HANDLE,
    leader: ProcId,
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
        job: JobId,
    ) -> io::Result<Spawned> {
        let (mut cmd, pty) = build(launch, job)?;
        let mut flags = CREATE_SUSPENDED;
        if launch.spec.hide_window {
            flags |= CREATE_NO_WINDOW;
        }
        cmd.creation_flags(flags);
        let mut child = cmd
            .spawn()
            .map_err(|e| describe_spawn_error(&launch.spec.program, e))?;
        let pid = child.id().unwrap_or(0);
        let tree = Self::attach(&child).and_then(|tree| {
            resume_threads(pid)?;
            Ok(tree)
        });
        match tree {
            Ok(tree) => Ok(Spawned {
                leader_usage: super::watch_leader(pid),
                child,
                tree,
                pid,
                pty,
            }),
            Err(e) => {
                // Never run untracked: the suspended child never ran.
                let _ = child.start_kill();
                Err(e)
            }
        }
    }

    /// The main process's identity (pid only on Windows).
    pub(crate) fn leader(&self) -> &ProcId {
        &self.leader
    }

    /// Pausing needs suspending every thread; not supported on Windows.
    pub(crate) fn pause(&self, _frozen: bool) -> io::Result<()> {
        Err(io::Error::new(
            io::ErrorKind::Unsupported,
            "pause/resume is not supported on Windows",
        ))
    }

    /// Not measured on Windows.
    pub(crate) fn usage(&self, _leader: Option<ResourceUsage>) -> Option<ResourceUsage> {
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
            let pid = child.id().unwrap_or(0);
            Ok(ProcessTree {
                job,
                leader: ProcId::of(pid),
            })
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

/// Resume every thread of the (suspended) process `pid`: the main thread
/// of a process created with `CREATE_SUSPENDED`, found through a thread
/// snapshot since std does not expose its handle.
fn resume_threads(pid: u32) -> io::Result<()> {
    // SAFETY: plain Win32 calls; the snapshot and thread handles are closed
    // on every path; `entry` is a properly sized THREADENTRY32.
    unsafe {
        let snap = CreateToolhelp32Snapshot(TH32CS_SNAPTHREAD, 0);
        if snap == INVALID_HANDLE_VALUE {
            return Err(io::Error::last_os_error());
        }
        let mut entry: THREADENTRY32 = std::mem::zeroed();
        entry.dwSize = std::mem::size_of::<THREADENTRY32>() as u32;
        let mut resumed = 0;
        let mut ok = Thread32First(snap, &mut entry);
        while ok != 0 {
            if entry.th32OwnerProcessID == pid {
                let thread = OpenThread(THREAD_SUSPEND_RESUME, 0, entry.th32ThreadID);
                if !thread.is_null() {
                    if ResumeThread(thread) != u32::MAX {
                        resumed += 1;
                    }
                    CloseHandle(thread);
                }
            }
            ok = Thread32Next(snap, &mut entry);
        }
        CloseHandle(snap);
        if resumed == 0 {
            return Err(io::Error::other(
                "could not resume the new process after assigning it to its job object",
            ));
        }
    }
    Ok(())
}
