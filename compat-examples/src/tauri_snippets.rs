//! The Tauri snippets of the 1.1 `README.md` and `RUNTIME.md` (feature
//! `tauri`). `tauri::generate_context!()` needs an app's `tauri.conf.json`,
//! so the `.run(...)` calls take the context as a parameter instead.
//! In an app, tauri's default `wry` feature makes `AppHandle` mean
//! `AppHandle<Wry>`; this crate builds tauri without a webview toolkit, so
//! the alias below names its mock runtime instead (scaffolding, not an API
//! change).

use execra::tauri::ExecraExt;
use execra::{Command, JobId};
use tauri::{Context, Runtime as TauriRuntime};

/// What `tauri::AppHandle` means in an app built with tauri's defaults.
type AppHandle = tauri::AppHandle<tauri::test::MockRuntime>;

/// README "Tauri": install the plugin.
pub fn install<R: TauriRuntime>(builder: tauri::Builder<R>, context: Context<R>) {
    builder.plugin(execra::tauri::init()).run(context).unwrap();
}

/// README / RUNTIME.md: `app.execra()` from commands.
#[tauri::command]
pub fn run_tool(app: AppHandle, args: Vec<String>) -> Result<JobId, String> {
    app.execra()
        .task(Command::new("scrcpy").args(args))
        .channel("scrcpy:log")
        .spawn_tracked()
        .map_err(|e| e.to_string())
}

#[tauri::command]
pub fn cancel(app: AppHandle, id: JobId) -> Result<(), String> {
    app.execra().cancel(id).map_err(|e| e.to_string())
}

#[tauri::command]
pub fn history(app: AppHandle) -> Vec<execra::Job> {
    app.execra().recent(20)
}

/// README: typed hooks.
pub async fn run_with_backend_state(app: AppHandle, cmd: Command) -> Result<(), String> {
    let outcome = app
        .execra()
        .task(cmd)
        .on_created(|app, job| {
            // remember the current backend job id
            let _ = (app, job);
        })
        .on_output(|app, stream, line| {
            // update your app-owned Rust state here
            let _ = (app, line, stream.as_str());
        })
        .on_finalized(|app, outcome| {
            // clear current-job state or trigger follow-up work
            let _ = (app, outcome);
        })
        .await;

    outcome.into_result().map(|_| ())
}

/// README / RUNTIME.md: persisted Tauri history.
pub fn persisted<R: TauriRuntime>(builder: tauri::Builder<R>) -> tauri::Builder<R> {
    builder.plugin(execra::tauri::init_with(
        execra::Runtime::builder()
            .history("./jobs.sqlite")
            .max_concurrent(2)
            .build()
            .expect("open Execra runtime"),
    ))
}

/// RUNTIME.md: `RuntimeRef::task(cmd)` returns a `TaskBuilder`.
pub async fn task_builder(app: AppHandle, cmd: Command) {
    let _ = app
        .execra()
        .task(cmd)
        .label("Installing git")
        .tag("scoop")
        .interpreter(crate::scoop_install::ScoopInstall::new())
        .channel("operation")
        .on_created(|app, job| {
            // record the current backend job id
            let _ = (app, job);
        })
        .on_output(|app, stream, line| {
            // mirror output into app-owned Rust state
            let _ = (app, stream.as_str(), line);
        })
        .on_interpreter_error(|_app, interpreter, error, line| {
            log::warn!("interpreter error in {interpreter}: {error} ({line:?})");
        })
        .on_finalized(|app, outcome| {
            // clear backend state or trigger follow-up work
            let _ = (app, outcome);
        })
        .await;
}
