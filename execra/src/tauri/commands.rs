//! The plugin's commands, invoked from the frontend as
//! `invoke("plugin:execra|<name>", args)`.
//!
//! | command   | arguments          | returns          | permission            |
//! |-----------|--------------------|------------------|-----------------------|
//! | `recent`  | `{ limit?: number }` (default 50, at most 1000) | `Job[]`: memory, then history | `execra:allow-recent` (default) |
//! | `job`     | `{ id: JobId }`    | `Job \| null`    | `execra:allow-job` (default) |
//! | `running` | none               | `JobId[]`        | `execra:allow-running` (default) |
//! | `output`  | `{ id: JobId, offset?: number, limit?: number }` | `OutputPage` | `execra:allow-output` (default) |
//! | `cancel`  | `{ id: JobId }`    | `null`           | `execra:allow-cancel` (**not** default) |
//!
//! There is deliberately no command that spawns a program.
//!
//! Every command is `async` and does its work on Tauri's blocking pool
//! (`spawn_blocking`): reading history or a gzipped raw log never holds the
//! main thread. `output` is paged: at most `limit` lines (default
//! [`OUTPUT_PAGE_LINES`], at most [`OUTPUT_PAGE_MAX_LINES`]) and about
//! [`OUTPUT_PAGE_BYTES`] of text per reply; follow `next_offset` for more.
//! Errors are a [`CommandError`] with a stable `kind`.

use serde::Serialize;
use tauri::ipc::Invoke;
use tauri::State;

use crate::job::{Job, JobId};
use crate::output::OutputLine;
use crate::runtime::{Error, Runtime};

use super::Managed;

/// Default and maximum `limit` of `recent`.
const RECENT_DEFAULT: usize = 50;
const RECENT_MAX: usize = 1000;

/// Lines per `output` page when the caller gives no `limit`.
pub const OUTPUT_PAGE_LINES: usize = 1000;
/// The largest `limit` an `output` call may ask for.
pub const OUTPUT_PAGE_MAX_LINES: usize = 10_000;
/// Text per `output` page: a page stops before the line that would take it
/// past this many bytes (it always holds at least one line).
pub const OUTPUT_PAGE_BYTES: usize = 1 << 20;

/// What a failed plugin command rejects with: a stable, machine-readable
/// [`kind`](Self::kind) and a readable message.
///
/// ```
/// use execra::tauri::{CommandError, CommandErrorKind};
/// let e = CommandError::from(execra::Error::UnknownJob(execra::JobId::new()));
/// assert_eq!(e.kind, CommandErrorKind::UnknownJob);
/// assert!(serde_json::to_string(&e).unwrap().contains(r#""kind":"unknown_job""#));
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, thiserror::Error)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[error("{message}")]
pub struct CommandError {
    /// What went wrong, for code to branch on.
    pub kind: CommandErrorKind,
    /// For people; wording may change.
    pub message: String,
}

/// The kinds of [`CommandError`]. New kinds may be added.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum CommandErrorKind {
    /// No job with this id, in memory or in history.
    UnknownJob,
    /// Reading a raw log or another file failed.
    Io,
    /// The history store failed.
    Store,
    /// The runtime was shut down (the app is quitting).
    ShutDown,
    /// The job's stdin is not open.
    StdinClosed,
    /// The command's worker failed (a bug; see the message).
    Internal,
}

impl From<Error> for CommandError {
    fn from(e: Error) -> Self {
        let kind = match &e {
            Error::UnknownJob(_) => CommandErrorKind::UnknownJob,
            Error::Io(_) => CommandErrorKind::Io,
            Error::Store(_) => CommandErrorKind::Store,
            Error::StdinClosed(_) => CommandErrorKind::StdinClosed,
            Error::ShutDown => CommandErrorKind::ShutDown,
        };
        CommandError {
            kind,
            message: e.to_string(),
        }
    }
}

/// One page of a job's kept output (the `output` command's reply).
#[derive(Debug, Clone, PartialEq, Serialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
pub struct OutputPage {
    /// Lines `offset..offset + lines.length`, oldest first.
    pub lines: Vec<OutputLine>,
    /// Index of the first line of this page among the kept lines.
    pub offset: usize,
    /// Where the next page starts; `null` when this page reached the end.
    pub next_offset: Option<usize>,
    /// How many lines are kept in all.
    pub total: usize,
}

impl OutputPage {
    /// The page of `all` starting at `offset`: at most `limit` lines and
    /// about `max_bytes` of text (at least one line when any is left).
    pub fn slice(mut all: Vec<OutputLine>, offset: usize, limit: usize, max_bytes: usize) -> Self {
        let total = all.len();
        let start = offset.min(total);
        let mut end = start;
        let mut bytes = 0usize;
        while end < total && end - start < limit {
            bytes += all[end].text.len();
            if bytes > max_bytes && end > start {
                break;
            }
            end += 1;
        }
        all.truncate(end);
        let lines = all.split_off(start);
        OutputPage {
            lines,
            offset: start,
            next_offset: (end < total).then_some(end),
            total,
        }
    }
}

/// The invoke handler with every command.
pub(super) fn handler<R: tauri::Runtime>() -> impl Fn(Invoke<R>) -> bool + Send + Sync + 'static {
    tauri::generate_handler![recent, job, running, output, cancel]
}

/// Run `f` on the runtime on Tauri's blocking pool.
async fn blocking<T, F>(state: State<'_, Managed>, f: F) -> Result<T, CommandError>
where
    T: Send + 'static,
    F: FnOnce(Runtime) -> Result<T, Error> + Send + 'static,
{
    let rt = state.0.clone();
    match tauri::async_runtime::spawn_blocking(move || f(rt)).await {
        Ok(r) => r.map_err(CommandError::from),
        Err(e) => Err(CommandError {
            kind: CommandErrorKind::Internal,
            message: format!("command worker failed: {e}"),
        }),
    }
}

/// The newest jobs, newest first: those in memory, then (with history)
/// those of earlier runs of the app.
#[tauri::command]
async fn recent(state: State<'_, Managed>, limit: Option<usize>) -> Result<Vec<Job>, CommandError> {
    let n = limit.unwrap_or(RECENT_DEFAULT).min(RECENT_MAX);
    blocking(state, move |rt| {
        let mut jobs = rt.recent(n);
        if jobs.len() < n {
            for stored in rt.jobs().limit(n).run(&rt)? {
                if !jobs.iter().any(|j| j.id == stored.id) {
                    jobs.push(stored);
                }
            }
            jobs.sort_by_key(|j| std::cmp::Reverse(j.created_at));
            jobs.truncate(n);
        }
        Ok(jobs)
    })
    .await
}

/// One job's snapshot, or `null`.
#[tauri::command]
async fn job(state: State<'_, Managed>, id: JobId) -> Result<Option<Job>, CommandError> {
    blocking(state, move |rt| Ok(rt.job(id))).await
}

/// Ids of queued and running jobs.
#[tauri::command]
async fn running(state: State<'_, Managed>) -> Result<Vec<JobId>, CommandError> {
    blocking(state, |rt| Ok(rt.running())).await
}

/// One page of a job's kept output (empty unless the runtime keeps output).
#[tauri::command]
async fn output(
    state: State<'_, Managed>,
    id: JobId,
    offset: Option<usize>,
    limit: Option<usize>,
) -> Result<OutputPage, CommandError> {
    let offset = offset.unwrap_or(0);
    let limit = limit
        .unwrap_or(OUTPUT_PAGE_LINES)
        .clamp(1, OUTPUT_PAGE_MAX_LINES);
    blocking(state, move |rt| {
        let all = rt.output(id)?;
        Ok(OutputPage::slice(all, offset, limit, OUTPUT_PAGE_BYTES))
    })
    .await
}

/// Request cancellation of a job.
#[tauri::command]
async fn cancel(state: State<'_, Managed>, id: JobId) -> Result<(), CommandError> {
    blocking(state, move |rt| rt.cancel(id)).await
}

#[cfg(test)]
mod tests {
    use std::time::SystemTime;

    use super::*;
    use crate::event::Stream;

    fn lines(n: usize, len: usize) -> Vec<OutputLine> {
        (0..n)
            .map(|i| OutputLine {
                stream: Stream::Stdout,
                text: format!("{i:0len$}"),
                at: SystemTime::now(),
            })
            .collect()
    }

    #[test]
    fn pages_stop_at_the_line_limit_and_the_byte_cap() {
        let p = OutputPage::slice(lines(10, 4), 2, 3, 1 << 20);
        assert_eq!(p.lines.len(), 3);
        assert_eq!(p.lines[0].text, "0002");
        assert_eq!((p.offset, p.next_offset, p.total), (2, Some(5), 10));

        // 10 bytes a line, 25 bytes a page: two lines.
        let p = OutputPage::slice(lines(10, 10), 0, 100, 25);
        assert_eq!(p.lines.len(), 2);
        assert_eq!(p.next_offset, Some(2));

        // A line longer than the cap still comes, alone.
        let p = OutputPage::slice(lines(3, 100), 1, 100, 25);
        assert_eq!(p.lines.len(), 1);
        assert_eq!(p.next_offset, Some(2));

        // The last page, and past the end.
        let p = OutputPage::slice(lines(3, 1), 2, 100, 25);
        assert_eq!((p.lines.len(), p.next_offset), (1, None));
        let p = OutputPage::slice(lines(3, 1), 9, 100, 25);
        assert_eq!((p.lines.len(), p.offset, p.next_offset), (0, 3, None));
    }
}
