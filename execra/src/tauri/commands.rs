//! The plugin's commands, invoked from the frontend as
//! `invoke("plugin:execra|<name>", args)`.
//!
//! | command   | arguments          | returns          | permission            |
//! |-----------|--------------------|------------------|-----------------------|
//! | `recent`  | `{ limit?: number }` (default 50, at most 1000) | `Job[]` | `execra:allow-recent` (default) |
//! | `job`     | `{ id: JobId }`    | `Job \| null`    | `execra:allow-job` (default) |
//! | `running` | none               | `JobId[]`        | `execra:allow-running` (default) |
//! | `output`  | `{ id: JobId }`    | `OutputLine[]`   | `execra:allow-output` (default) |
//! | `cancel`  | `{ id: JobId }`    | `null`           | `execra:allow-cancel` (**not** default) |
//!
//! There is deliberately no command that spawns a program. Errors are
//! readable strings (`"unknown job: …"`).

use tauri::ipc::Invoke;
use tauri::State;

use crate::job::{Job, JobId};
use crate::output::OutputLine;

use super::Managed;

/// Default and maximum `limit` of `recent`.
const RECENT_DEFAULT: usize = 50;
const RECENT_MAX: usize = 1000;

/// The invoke handler with every command.
pub(super) fn handler<R: tauri::Runtime>() -> impl Fn(Invoke<R>) -> bool + Send + Sync + 'static {
    tauri::generate_handler![recent, job, running, output, cancel]
}

/// The newest jobs in memory, newest first.
#[tauri::command]
fn recent(state: State<'_, Managed>, limit: Option<usize>) -> Vec<Job> {
    state
        .0
        .recent(limit.unwrap_or(RECENT_DEFAULT).min(RECENT_MAX))
}

/// One job's snapshot, or `null`.
#[tauri::command]
fn job(state: State<'_, Managed>, id: JobId) -> Option<Job> {
    state.0.job(id)
}

/// Ids of queued and running jobs.
#[tauri::command]
fn running(state: State<'_, Managed>) -> Vec<JobId> {
    state.0.running()
}

/// A job's kept output lines (empty unless the runtime keeps output).
#[tauri::command]
fn output(state: State<'_, Managed>, id: JobId) -> Result<Vec<OutputLine>, String> {
    state.0.output(id).map_err(|e| e.to_string())
}

/// Request cancellation of a job.
#[tauri::command]
fn cancel(state: State<'_, Managed>, id: JobId) -> Result<(), String> {
    state.0.cancel(id).map_err(|e| e.to_string())
}
