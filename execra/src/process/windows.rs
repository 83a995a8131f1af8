//! Windows: the child is created suspended, assigned to a Job Object with
//! kill-on-close, and only then resumed — so it runs nothing outside the
//! job, and terminating the job (or closing the handle, also when the host
//! dies) ends the whole tree. If the assignment fails, the spawn fails.
//!
//! Pause suspends every thread of every process in the job (the job's
//! process list, then a Toolhelp thread snapshot), repeating until a pass
//! finds no new thread, and resume resumes exactly the threads it
//! suspended. Usage is the job's accounting: user and kernel time of every
//! process that ran in it, and its peak committed memory. Kept leftovers
//! lose kill-on-close before the handle closes. All of this runs in CI
//! under wine (`.ci/wine`, `tests/tree.rs`).

use std::io;
use std::sync::{Mutex, PoisonError};

use crate::command::Launch;
use crate::job::JobId;

use super::identity::ProcId;
use super::{build, describe_spawn_error, Containment, ResourceUsage, Spawned};

use windows_sys::Win32::Foundation::INVALID_HANDLE_VALUE;
use windows_sys::Win32::Foundation::{CloseHandle, FILETIME, HANDLE};
use windows_sys::Win32::System::Diagnostics::ToolHelp::{
    CreateToolhelp32Snapshot, Thread32First, Thread32Next, TH32CS_SNAPTHREAD, THREADENTRY32,
};
use windows_sys::Win32::System::JobObjects::{
    AssignProcessToJobObject, CreateJobObjectW, JobObjectBasicAccountingInformation,
    JobObjectBasicProcessIdList, JobObjectExtendedLimitInformation, QueryInformationJobObject,
    SetInformationJobObject, TerminateJobObject, JOBOBJECTINFOCLASS,
    JOBOBJECT_BASIC_ACCOUNTING_INFORMATION, JOBOBJECT_BASIC_PROCESS_ID_LIST,
    JOBOBJECT_EXTENDED_LIMIT_INFORMATION, JOB_OBJECT_LIMIT_KILL_ON_JOB_CLOSE,
};
use windows_sys::Win32::System::ProcessStatus::{K32GetProcessMemoryInfo, PROCESS_MEMORY_COUNTERS};
use windows_sys::Win32::System::Threading::{
    GetProcessIdOfThread, GetProcessTimes, OpenProcess, OpenThread, ResumeThread, SuspendThread,
    CREATE_NO_WINDOW, CREATE_SUSPENDED, PROCESS_QUERY_LIMITED_INFORMATION,
    THREAD_QUERY_LIMITED_INFORMATION, THREAD_SUSPEND_RESUME,
};

/// A Job Object holding the child and everything it starts.
#[derive(Debug)]
pub(crate) struct ProcessTree {
    job: HANDLE,
    leader: ProcId,
    /// Threads (owner pid, thread id) suspended by
    /// [`pause`](Self::pause)`(true)`, resumed (each once) by `pause(false)`.
    suspended: Mutex<Vec<(u32, u32)>>,
    /// The main process (query rights only), kept open so its times and
    /// memory can be read after it exited; null if it could not be opened.
    leader_handle: HANDLE,
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
                child: child.into(),
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

    /// Suspend (`frozen`) or resume every thread of every process in the
    /// job. Suspending repeats until a pass over the job's processes finds
    /// no thread left running (a process started between two passes is
    /// caught by the next one); if it fails, what it suspended is resumed.
    /// Resuming resumes exactly the threads that were suspended (each
    /// checked to still belong to the same process).
    pub(crate) fn pause(&self, frozen: bool) -> io::Result<()> {
        let mut held = self
            .suspended
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if !frozen {
            resume_held(&mut held);
            return Ok(());
        }
        if !held.is_empty() {
            return Ok(());
        }
        let res = self.suspend_all(&mut held);
        if res.is_err() {
            resume_held(&mut held);
        }
        res
    }

    /// Suspend every thread of the job's processes not in `held` yet,
    /// pass after pass, until a pass finds none.
    fn suspend_all(&self, held: &mut Vec<(u32, u32)>) -> io::Result<()> {
        for _ in 0..64 {
            let pids = self.pids()?;
            let mut new = 0;
            for_each_thread(|owner, tid| {
                if !pids.contains(&owner) || held.contains(&(owner, tid)) {
                    return;
                }
                // SAFETY: plain Win32 calls; the handle is checked and closed.
                unsafe {
                    let thread = OpenThread(THREAD_SUSPEND_RESUME, 0, tid);
                    if thread.is_null() {
                        return; // exited meanwhile
                    }
                    if SuspendThread(thread) != u32::MAX {
                        held.push((owner, tid));
                        new += 1;
                    }
                    CloseHandle(thread);
                }
            })?;
            if new == 0 {
                return Ok(());
            }
        }
        Err(io::Error::other(
            "the job kept starting threads while it was being paused",
        ))
    }

    /// The ids of the processes in the job now.
    fn pids(&self) -> io::Result<Vec<u32>> {
        let mut words = 64usize;
        loop {
            // The list is a header (two u32) and `words - 1` more entries.
            let mut buf = vec![0usize; words + 1];
            let len = u32::try_from(buf.len() * std::mem::size_of::<usize>())
                .map_err(|_| io::Error::other("too many processes in the job"))?;
            // SAFETY: `buf` is large enough for the header and is aligned
            // for JOBOBJECT_BASIC_PROCESS_ID_LIST; `len` is its size.
            let ok = unsafe {
                QueryInformationJobObject(
                    self.job,
                    JobObjectBasicProcessIdList,
                    buf.as_mut_ptr().cast(),
                    len,
                    std::ptr::null_mut(),
                )
            };
            // SAFETY: as above; the header was written (or is zeroed).
            let head = unsafe { &*(buf.as_ptr() as *const JOBOBJECT_BASIC_PROCESS_ID_LIST) };
            let (assigned, listed) = (
                head.NumberOfAssignedProcesses as usize,
                head.NumberOfProcessIdsInList as usize,
            );
            if ok == 0 && assigned <= listed {
                return Err(io::Error::last_os_error());
            }
            if assigned > listed {
                words = assigned + 16;
                continue;
            }
            // The ids start where `ProcessIdList` does: after the header.
            let offset = std::mem::offset_of!(JOBOBJECT_BASIC_PROCESS_ID_LIST, ProcessIdList)
                / std::mem::size_of::<usize>();
            return Ok(buf[offset..offset + listed]
                .iter()
                .filter_map(|p| u32::try_from(*p).ok())
                .collect());
        }
    }

    /// One of the job's information records.
    fn query<T>(&self, class: JOBOBJECTINFOCLASS) -> Option<T> {
        // SAFETY: `T` is the plain C struct matching `class` (callers pass
        // matching pairs); it is zeroed, then filled by the call.
        unsafe {
            let mut info: T = std::mem::zeroed();
            let ok = QueryInformationJobObject(
                self.job,
                class,
                &mut info as *mut T as *mut _,
                u32::try_from(std::mem::size_of::<T>()).ok()?,
                std::ptr::null_mut(),
            );
            (ok != 0).then_some(info)
        }
    }

    /// CPU time of every process that ran in the job (the job's
    /// accounting, 100 ns units) and its peak committed memory. Where the
    /// job's accounting is empty (wine 8 reports zeros), the main process's
    /// own times and peak memory instead (`whole_tree: false`).
    pub(crate) fn usage(&self, _leader: Option<ResourceUsage>) -> Option<ResourceUsage> {
        let acct: Option<JOBOBJECT_BASIC_ACCOUNTING_INFORMATION> =
            self.query(JobObjectBasicAccountingInformation);
        let limits: Option<JOBOBJECT_EXTENDED_LIMIT_INFORMATION> =
            self.query(JobObjectExtendedLimitInformation);
        let us = |t: i64| u64::try_from(t).unwrap_or(0) / 10;
        let job_peak = limits
            .map(|l| l.PeakJobMemoryUsed as u64)
            .filter(|b| *b > 0);
        if let Some(a) = acct.filter(|a| a.TotalUserTime > 0 || a.TotalKernelTime > 0) {
            return Some(ResourceUsage {
                user_cpu_us: us(a.TotalUserTime),
                system_cpu_us: us(a.TotalKernelTime),
                peak_memory_bytes: job_peak.or_else(|| self.leader_peak()),
                whole_tree: true,
            });
        }
        let (user, kernel) = self.leader_times()?;
        Some(ResourceUsage {
            user_cpu_us: user,
            system_cpu_us: kernel,
            peak_memory_bytes: self.leader_peak(),
            whole_tree: false,
        })
    }

    /// The main process's user and kernel time, in microseconds.
    fn leader_times(&self) -> Option<(u64, u64)> {
        if self.leader_handle.is_null() {
            return None;
        }
        // SAFETY: our own process handle; zeroed FILETIMEs filled by the call.
        unsafe {
            let mut t: [FILETIME; 4] = std::mem::zeroed();
            let [c, e, k, u] = &mut t;
            if GetProcessTimes(self.leader_handle, c, e, k, u) == 0 {
                return None;
            }
            let us = |f: &FILETIME| {
                (u64::from(f.dwHighDateTime) << 32 | u64::from(f.dwLowDateTime)) / 10
            };
            Some((us(&t[3]), us(&t[2])))
        }
    }

    /// The main process's peak memory: its peak commit (private bytes),
    /// else its peak working set.
    fn leader_peak(&self) -> Option<u64> {
        if self.leader_handle.is_null() {
            return None;
        }
        // SAFETY: our own process handle; a zeroed, properly sized record.
        unsafe {
            let mut m: PROCESS_MEMORY_COUNTERS = std::mem::zeroed();
            let size = std::mem::size_of::<PROCESS_MEMORY_COUNTERS>() as u32;
            m.cb = size;
            if K32GetProcessMemoryInfo(self.leader_handle, &mut m, size) == 0 {
                return None;
            }
            [m.PeakPagefileUsage, m.PeakWorkingSetSize]
                .into_iter()
                .map(|b| b as u64)
                .find(|b| *b > 0)
        }
    }

    /// `true` while a process of the job is still running.
    pub(crate) fn populated(&self) -> bool {
        self.query::<JOBOBJECT_BASIC_ACCOUNTING_INFORMATION>(JobObjectBasicAccountingInformation)
            .is_some_and(|a| a.ActiveProcesses > 0)
    }

    /// Kept leftovers: drop kill-on-close, so closing the handle (at drop)
    /// leaves them running.
    pub(crate) fn release_leftovers(&self) {
        // SAFETY: a zeroed limit record (no limits) for our own job handle.
        unsafe {
            let info: JOBOBJECT_EXTENDED_LIMIT_INFORMATION = std::mem::zeroed();
            let ok = SetInformationJobObject(
                self.job,
                JobObjectExtendedLimitInformation,
                &info as *const _ as *const _,
                std::mem::size_of::<JOBOBJECT_EXTENDED_LIMIT_INFORMATION>() as u32,
            );
            if ok == 0 {
                tracing::warn!(
                    error = %io::Error::last_os_error(),
                    "could not release the job's leftovers; they end when its handle closes"
                );
            }
        }
    }

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
                suspended: Mutex::new(Vec::new()),
                leader_handle: OpenProcess(PROCESS_QUERY_LIMITED_INFORMATION, 0, pid),
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
        // SAFETY: closing our own handles once; kill-on-close ends the tree.
        unsafe {
            if !self.leader_handle.is_null() {
                CloseHandle(self.leader_handle);
            }
            CloseHandle(self.job);
        }
    }
}

/// Resume (once each) the threads in `held`, and forget them. A thread id
/// now used by another process is left alone.
fn resume_held(held: &mut Vec<(u32, u32)>) {
    for (owner, tid) in held.drain(..) {
        // SAFETY: plain Win32 calls; the handle is checked and closed.
        unsafe {
            let thread = OpenThread(
                THREAD_SUSPEND_RESUME | THREAD_QUERY_LIMITED_INFORMATION,
                0,
                tid,
            );
            if thread.is_null() {
                continue;
            }
            if GetProcessIdOfThread(thread) == owner {
                ResumeThread(thread);
            }
            CloseHandle(thread);
        }
    }
}

/// Call `f(owner pid, thread id)` for every thread in the system (a
/// Toolhelp snapshot).
fn for_each_thread(mut f: impl FnMut(u32, u32)) -> io::Result<()> {
    // SAFETY: plain Win32 calls; the snapshot handle is closed on every
    // path; `entry` is a properly sized THREADENTRY32.
    unsafe {
        let snap = CreateToolhelp32Snapshot(TH32CS_SNAPTHREAD, 0);
        if snap == INVALID_HANDLE_VALUE {
            return Err(io::Error::last_os_error());
        }
        let mut entry: THREADENTRY32 = std::mem::zeroed();
        entry.dwSize = std::mem::size_of::<THREADENTRY32>() as u32;
        let mut ok = Thread32First(snap, &mut entry);
        while ok != 0 {
            f(entry.th32OwnerProcessID, entry.th32ThreadID);
            ok = Thread32Next(snap, &mut entry);
        }
        CloseHandle(snap);
    }
    Ok(())
}

/// Resume every thread of the (suspended) process `pid`: the main thread
/// of a process created with `CREATE_SUSPENDED`, found through a thread
/// snapshot since std does not expose its handle.
fn resume_threads(pid: u32) -> io::Result<()> {
    let mut resumed = 0;
    for_each_thread(|owner, tid| {
        if owner != pid {
            return;
        }
        // SAFETY: plain Win32 calls; the handle is checked and closed.
        unsafe {
            let thread = OpenThread(THREAD_SUSPEND_RESUME, 0, tid);
            if !thread.is_null() {
                if ResumeThread(thread) != u32::MAX {
                    resumed += 1;
                }
                CloseHandle(thread);
            }
        }
    })?;
    if resumed == 0 {
        return Err(io::Error::other(
            "could not resume the new process after assigning it to its job object",
        ));
    }
    Ok(())
}
