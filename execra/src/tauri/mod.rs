//! Tauri v2 integration (feature `tauri`): run jobs from a Tauri app and
//! stream their typed events to the webview.
//!
//! - [`init`] / [`init_with`] / [`PluginBuilder`] build the plugin. It
//!   manages an [`execra::Runtime`](crate::Runtime) and registers async,
//!   read-only commands (`recent`, `job`, `running`, paged `output`) and
//!   `cancel`, each behind a Tauri permission (see `TAURI.md`); they reject
//!   with a typed [`CommandError`]. There is deliberately **no command that
//!   spawns a program**: jobs are started from Rust only, so a compromised
//!   frontend can never run an arbitrary binary.
//! - On `RunEvent::Exit` the plugin stops every job's process tree and
//!   flushes history before the app's process ends; on `ExitRequested` the
//!   app may choose to wait for running jobs ([`ExitDecision`]).
//! - [`ExecraExt::execra`] gives any [`Manager`] (an `App`, `AppHandle`,
//!   `WebviewWindow`…) a [`RuntimeRef`], whose [`task`](RuntimeRef::task)
//!   starts a [`TaskBuilder`]: where to send the job's events (an IPC
//!   [`Channel`](tauri::ipc::Channel) to the webview that asked, the event
//!   bus, Rust observers), batching, synthetic progress ("creep"), then
//!   `spawn()` or `.await`.
//! - [`Message`], [`OutputBatch`] and [`BatchConfig`] describe batched
//!   delivery; [`typescript_bindings`] renders the TypeScript declarations
//!   of the whole wire protocol (checked in as `guest-js/bindings.ts`, part
//!   of the `tauri-plugin-execra-api` npm package in `guest-js/`).
//!
//! The example app in `examples/desktop/` (repository root) uses all of
//! this in a real window; `TAURI.md` walks through it.
//!
//! ```no_run
//! use execra::tauri::{ExecraExt, Message};
//! use execra::{Command, JobId};
//! use tauri::ipc::Channel;
//!
//! #[tauri::command]
//! fn build<R: tauri::Runtime>(
//!     app: tauri::AppHandle<R>,
//!     events: Channel<Message>,
//! ) -> Result<JobId, execra::tauri::CommandError> {
//!     Ok(app
//!         .execra()
//!         .task(Command::new("cargo").arg("build"))
//!         .label("Build")
//!         .ipc_channel(events)
//!         .spawn_tracked()?)
//! }
//! ```

mod batch;
mod commands;
mod creep;
mod task;
mod ts;

use tauri::plugin::{Builder, TauriPlugin};
use tauri::{AppHandle, Manager, RunEvent};

pub use batch::{BatchConfig, BatchLine, Batcher, Message, OutputBatch, OutputBatchKind};
pub use commands::{
    CommandError, CommandErrorKind, OutputPage, OUTPUT_PAGE_BYTES, OUTPUT_PAGE_LINES,
    OUTPUT_PAGE_MAX_LINES,
};
pub use creep::{Creep, CREEP_TICK};
pub use task::{Observer, TaskBuilder, TaskFuture};
pub use ts::typescript_bindings;

use crate::event::Event;
use crate::job::{Job, JobId};
use crate::output::OutputLine;
use crate::runtime::{Error, EventStream, Runtime};
use crate::Command;

/// The plugin's name: commands are invoked as `plugin:execra|<command>` and
/// permissions are named `execra:<permission>`.
pub const PLUGIN_NAME: &str = "execra";

/// The runtime the plugin manages (Tauri state).
pub(crate) struct Managed(pub(crate) Runtime);

/// The plugin with a fresh in-memory [`Runtime`] (no history, no files).
pub fn init<R: tauri::Runtime>() -> TauriPlugin<R> {
    init_with(Runtime::new())
}

/// The plugin with the given runtime (e.g. one built with a history file).
/// Same as `PluginBuilder::new(runtime).build()`.
///
/// Register it in your app's `setup` hook when the runtime needs a path
/// from Tauri (the app data directory):
///
/// ```no_run
/// use tauri::Manager;
///
/// fn plugin_setup<R: tauri::Runtime>(app: &mut tauri::App<R>) -> Result<(), Box<dyn std::error::Error>> {
///     let dir = app.path().app_data_dir()?;
///     let rt = execra::Runtime::builder()
///         .history(dir.join("history.sqlite"))
///         .log_dir(dir.join("logs"))
///         .raw_output(execra::RawOutputPolicy::Persist)
///         .build()?;
///     app.handle().plugin(execra::tauri::init_with(rt))?;
///     Ok(())
/// }
/// ```
pub fn init_with<R: tauri::Runtime>(runtime: Runtime) -> TauriPlugin<R> {
    PluginBuilder::new(runtime).build()
}

/// What the plugin does when the app is asked to quit while jobs run (see
/// [`PluginBuilder::on_exit_requested`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ExitDecision {
    /// Quit now (the default). On `RunEvent::Exit` the plugin stops every
    /// job's process tree (`Runtime::shutdown`: TERM, then KILL after the
    /// grace period) and flushes history before the process ends.
    #[default]
    Exit,
    /// Keep the app alive until every running job has finished on its own,
    /// then quit with the requested exit code.
    WaitForJobs,
    /// Do not quit (`prevent_exit`): the app takes over, e.g. asks the
    /// user, then calls `app.exit(..)` itself.
    Stay,
}

/// The decision callback of [`PluginBuilder::on_exit_requested`].
pub type ExitRequestedFn<R> = dyn Fn(&AppHandle<R>, &[JobId]) -> ExitDecision + Send + Sync;

/// Builds the plugin: the runtime it manages and what it does when the app
/// quits.
///
/// Whatever the decision on `ExitRequested`, the plugin always calls
/// [`Runtime::shutdown`] on `RunEvent::Exit` and blocks the exit until every
/// job is finalized: Tauri ends the process with `exit()`, so without this
/// hook a running job's processes would outlive the app.
///
/// ```no_run
/// use execra::tauri::{ExitDecision, PluginBuilder};
///
/// fn plugin<R: tauri::Runtime>() -> tauri::plugin::TauriPlugin<R> {
///     PluginBuilder::new(execra::Runtime::new())
///         // Closing the last window while a job runs: let it finish first.
///         .on_exit_requested(|_app, _running| ExitDecision::WaitForJobs)
///         .build()
/// }
/// ```
pub struct PluginBuilder<R: tauri::Runtime> {
    runtime: Runtime,
    on_exit_requested: Option<Box<ExitRequestedFn<R>>>,
}

impl<R: tauri::Runtime> std::fmt::Debug for PluginBuilder<R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PluginBuilder")
            .field("runtime", &self.runtime)
            .field("on_exit_requested", &self.on_exit_requested.is_some())
            .finish()
    }
}

impl<R: tauri::Runtime> PluginBuilder<R> {
    /// A plugin managing `runtime`.
    pub fn new(runtime: Runtime) -> Self {
        PluginBuilder {
            runtime,
            on_exit_requested: None,
        }
    }

    /// Decide what happens when the app is asked to quit (last window
    /// closed, `app.exit(..)`) while jobs are queued or running: `f` gets
    /// their ids. Not called when no job runs. Default: [`ExitDecision::Exit`].
    pub fn on_exit_requested<F>(mut self, f: F) -> Self
    where
        F: Fn(&AppHandle<R>, &[JobId]) -> ExitDecision + Send + Sync + 'static,
    {
        self.on_exit_requested = Some(Box::new(f));
        self
    }

    /// The plugin.
    pub fn build(self) -> TauriPlugin<R> {
        let runtime = self.runtime;
        let decide = self.on_exit_requested;
        Builder::new(PLUGIN_NAME)
            .invoke_handler(commands::handler())
            .setup(move |app, _api| {
                app.manage(Managed(runtime));
                Ok(())
            })
            .on_event(move |app, event| match event {
                RunEvent::ExitRequested { code, api, .. } => {
                    let Some(decide) = &decide else { return };
                    let running = app.execra().running();
                    if running.is_empty() {
                        return;
                    }
                    match decide(app, &running) {
                        ExitDecision::Exit => {}
                        ExitDecision::Stay => api.prevent_exit(),
                        ExitDecision::WaitForJobs => {
                            api.prevent_exit();
                            exit_when_done(app.clone(), running, code.unwrap_or(0));
                        }
                    }
                }
                RunEvent::Exit => stop_all(app),
                _ => {}
            })
            .build()
    }
}

/// Wait (on Tauri's async runtime) until every job in `jobs` is finalized,
/// then quit with `code`.
fn exit_when_done<R: tauri::Runtime>(app: AppHandle<R>, jobs: Vec<JobId>, code: i32) {
    let rt = app.execra().runtime().clone();
    tauri::async_runtime::spawn(async move {
        for id in jobs {
            let mut events = rt.subscribe_job(id);
            while let Some(ev) = events.next().await {
                if matches!(ev, Event::Finalized { .. }) {
                    break;
                }
            }
        }
        app.exit(code);
    });
}

/// The exit hook: stop every job's tree and flush history, blocking the
/// (main) thread that runs the exit until it is done.
fn stop_all<R: tauri::Runtime>(app: &AppHandle<R>) {
    let Some(state) = app.try_state::<Managed>() else {
        return;
    };
    let rt = state.0.clone();
    let wait = move || {
        let _ = tauri::async_runtime::block_on(async move { rt.shutdown().await });
    };
    // Tauri delivers `Exit` on its event-loop thread, outside any tokio
    // runtime: block right there (the jobs' drivers run on Tauri's async
    // runtime). Inside a runtime (a custom event loop), block a helper
    // thread instead: tokio forbids `block_on` on its own threads.
    if tokio::runtime::Handle::try_current().is_ok() {
        let _ = std::thread::spawn(wait).join();
    } else {
        wait();
    }
}

/// Access to the execra runtime from anything that implements [`Manager`].
pub trait ExecraExt<R: tauri::Runtime> {
    /// The runtime managed by the plugin. If the plugin was not installed,
    /// an in-memory runtime is created and managed on first use.
    fn execra(&self) -> RuntimeRef<R>;
}

impl<R: tauri::Runtime, T: Manager<R>> ExecraExt<R> for T {
    fn execra(&self) -> RuntimeRef<R> {
        let runtime = match self.try_state::<Managed>() {
            Some(m) => m.0.clone(),
            None => {
                // Not installed: manage a default runtime. If another thread
                // won the race, `manage` keeps theirs and we read it back.
                self.manage(Managed(Runtime::new()));
                match self.try_state::<Managed>() {
                    Some(m) => m.0.clone(),
                    None => Runtime::new(),
                }
            }
        };
        RuntimeRef {
            app: self.app_handle().clone(),
            runtime,
        }
    }
}

/// The runtime plus the app handle: what [`ExecraExt::execra`] returns.
/// Cheap to clone.
#[derive(Clone)]
pub struct RuntimeRef<R: tauri::Runtime> {
    app: AppHandle<R>,
    runtime: Runtime,
}

impl<R: tauri::Runtime> std::fmt::Debug for RuntimeRef<R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RuntimeRef")
            .field("runtime", &self.runtime)
            .finish()
    }
}

impl<R: tauri::Runtime> RuntimeRef<R> {
    /// Start describing a job: where its events go, then spawn or await it.
    pub fn task(&self, cmd: Command) -> TaskBuilder<R> {
        TaskBuilder::new(self.app.clone(), self.runtime.clone(), cmd)
    }

    /// Cancel a job (see [`Runtime::cancel`]).
    pub fn cancel(&self, id: JobId) -> Result<(), Error> {
        self.runtime.cancel(id)
    }

    /// The `n` newest jobs in memory, newest first.
    pub fn recent(&self, n: usize) -> Vec<Job> {
        self.runtime.recent(n)
    }

    /// Ids of queued or running jobs.
    pub fn running(&self) -> Vec<JobId> {
        self.runtime.running()
    }

    /// A job's snapshot (memory, then history).
    pub fn job(&self, id: JobId) -> Option<Job> {
        self.runtime.job(id)
    }

    /// A job's kept output lines, all of them (see [`Runtime::output`];
    /// the frontend's `output` command pages them).
    pub fn output(&self, id: JobId) -> Result<Vec<OutputLine>, Error> {
        self.runtime.output(id)
    }

    /// Events of every job from now on.
    pub fn subscribe(&self) -> EventStream {
        self.runtime.subscribe()
    }

    /// One job's events from its creation on.
    pub fn subscribe_job(&self, id: JobId) -> EventStream {
        self.runtime.subscribe_job(id)
    }

    /// The underlying runtime.
    pub fn runtime(&self) -> &Runtime {
        &self.runtime
    }

    /// The app handle.
    pub fn app_handle(&self) -> &AppHandle<R> {
        &self.app
    }
}

/// `true` for events a batched sink never delays (everything but output).
pub fn is_structural(event: &Event) -> bool {
    !event.is_output()
}
