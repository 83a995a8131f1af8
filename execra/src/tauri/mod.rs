//! Tauri v2 integration (feature `tauri`): run jobs from a Tauri app and
//! stream their typed events to the webview.
//!
//! - [`init`] / [`init_with`] build the plugin. It manages an
//!   [`execra::Runtime`](crate::Runtime) and registers read-only commands
//!   (`recent`, `job`, `running`, `output`) and `cancel`, each behind a Tauri
//!   permission (see `TAURI.md`). There is deliberately **no command that
//!   spawns a program**: jobs are started from Rust only, so a compromised
//!   frontend can never run an arbitrary binary.
//! - [`ExecraExt::execra`] gives any [`Manager`] (an `App`, `AppHandle`,
//!   `WebviewWindow`…) a [`RuntimeRef`], whose [`task`](RuntimeRef::task)
//!   starts a [`TaskBuilder`]: where to send the job's events (the event bus,
//!   an IPC [`Channel`](tauri::ipc::Channel), Rust observers), batching,
//!   synthetic progress ("creep"), then `spawn()` or `.await`.
//! - [`Message`], [`OutputBatch`] and [`BatchConfig`] describe batched
//!   delivery; [`typescript_bindings`] renders the TypeScript declarations
//!   of the whole wire protocol (checked in as `guest-js/bindings.ts`).
//!
//! ```no_run
//! use execra::tauri::{ExecraExt, BatchConfig};
//! use execra::Command;
//!
//! #[tauri::command]
//! async fn build<R: tauri::Runtime>(app: tauri::AppHandle<R>) -> Result<String, String> {
//!     let id = app
//!         .execra()
//!         .task(Command::new("cargo").arg("build"))
//!         .label("Build")
//!         .channel_batched("build-events")
//!         .spawn_tracked()
//!         .map_err(|e| e.to_string())?;
//!     Ok(id.to_string())
//! }
//! ```

mod batch;
mod commands;
mod creep;
mod task;
mod ts;

use tauri::plugin::{Builder, TauriPlugin};
use tauri::{AppHandle, Manager};

pub use batch::{BatchConfig, BatchLine, Batcher, Message, OutputBatch, OutputBatchKind};
pub use creep::{Creep, CREEP_TICK};
pub use task::{CreepFn, Observer, TaskBuilder, TaskFuture};
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
///
/// ```no_run
/// # fn demo() -> Result<(), Box<dyn std::error::Error>> {
/// let rt = execra::Runtime::builder().history("/tmp/history.sqlite").build()?;
/// tauri::Builder::<tauri::test::MockRuntime>::new().plugin(execra::tauri::init_with(rt));
/// # Ok(()) }
/// ```
pub fn init_with<R: tauri::Runtime>(runtime: Runtime) -> TauriPlugin<R> {
    Builder::new(PLUGIN_NAME)
        .invoke_handler(commands::handler())
        .setup(move |app, _api| {
            app.manage(Managed(runtime));
            Ok(())
        })
        .build()
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

    /// A job's kept output lines (see [`Runtime::output`]).
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
