//! A Tauri app that runs a CLI from a button, streams its typed events to
//! the page, and cancels it. See `TAURI.md` for the frontend half.
//!
//! This example runs on Tauri's mock runtime so it works headless:
//! `cargo run -p execra --features tauri --example tauri_app`.
//! In a real app, replace `mock_builder()`/`mock_context(..)` with
//! `tauri::Builder::default()` and `tauri::generate_context!()`.

use std::time::Duration;

use execra::tauri::{BatchConfig, ExecraExt, Message};
use execra::{Command, JobId};
use tauri::ipc::{Channel, InvokeResponseBody};
use tauri::{AppHandle, Runtime};

/// The button's command. The frontend passes an IPC channel; the program
/// and its arguments are fixed here in Rust — the frontend never chooses
/// what runs. Returns the job id (the page uses it to cancel).
#[tauri::command]
fn run_backup<R: Runtime>(app: AppHandle<R>, events: Channel<Message>) -> Result<JobId, String> {
    app.execra()
        .task(Command::sh(
            "for i in 1 2 3 4 5; do echo \"copying part $i\"; sleep 0.2; done",
        ))
        .label("Backup")
        .tag("backup")
        .ipc_channel(events)
        .batch(BatchConfig::default())
        .on_finalized(|_app, outcome| eprintln!("[rust] backup finished: {}", outcome.message()))
        .spawn_tracked()
        .map_err(|e| e.to_string())
}

fn build_app<R: Runtime>(builder: tauri::Builder<R>, ctx: tauri::Context<R>) -> tauri::App<R> {
    builder
        // Read-only commands + `cancel`, behind the `execra:*` permissions.
        .plugin(execra::tauri::init())
        .invoke_handler(tauri::generate_handler![run_backup])
        .build(ctx)
        .expect("build the app")
}

fn main() {
    let app = build_app(
        tauri::test::mock_builder(),
        tauri::test::mock_context(tauri::test::noop_assets()),
    );
    let handle = app.handle().clone();

    // What the page would receive: print each message as JSON.
    let page = Channel::new(|body: InvokeResponseBody| {
        if let Ok(msg) = body.deserialize::<Message>() {
            println!("[page] {}", serde_json::to_string(&msg).unwrap_or_default());
        }
        Ok(())
    });

    tauri::async_runtime::block_on(async move {
        // "Click": start the job.
        let id = run_backup(handle.clone(), page).expect("spawn");
        println!("[page] started job {id}");

        // "Click" on Cancel after a moment (the page would invoke
        // `plugin:execra|cancel`, which needs `execra:allow-cancel`).
        tokio::time::sleep(Duration::from_millis(500)).await;
        handle.execra().cancel(id).expect("cancel");

        // Wait for the verdict.
        let mut events = handle.execra().subscribe_job(id);
        while let Some(ev) = events.next().await {
            if let execra::Event::Finalized { outcome, .. } = ev {
                println!("[page] outcome: {}", outcome.message());
            }
        }
        // Give the forwarder a moment to deliver the last messages.
        tokio::time::sleep(Duration::from_millis(100)).await;
    });
}
