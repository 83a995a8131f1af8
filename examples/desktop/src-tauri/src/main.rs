//! execra desktop example: a Tauri v2 app that puts a window on a
//! command-line job.
//!
//! - `run_job` (the Run button) starts a fixed shell script (`job.sh`,
//!   shipped with the app) with an interpreter built from `execra::interpret`
//!   and streams its events to the page over an `ipc::Channel`, batched.
//! - `open_viewer` opens a second window whose capability lacks
//!   `execra:allow-cancel`.
//! - The plugin's own commands (`recent`, `job`, `output`, `cancel`) serve
//!   the history list and the Cancel button.
//!
//! The page chooses how many lines the job prints and whether it runs
//! slowly, never *what* runs: there is no command that spawns a program of
//! the page's choosing.
#![cfg_attr(not(debug_assertions), windows_subsystem = "windows")]

use execra::interpret::{Chain, ProblemMatcher, ProgressDetector, RuleInterpreter};
use execra::tauri::{ExecraExt, Message, PluginBuilder};
use execra::{rules, Command, JobId, RawOutputPolicy, Runtime};
use tauri::ipc::Channel;
use tauri::{AppHandle, Manager, WebviewUrl, WebviewWindowBuilder};

/// The job: phases, a `\r` progress bar, many lines, a warning and a
/// compiler-style error. `$1` lines, `$2` = 1 for a slow run (about a
/// minute, with a background child: something to cancel or quit on).
const JOB_SCRIPT: &str = include_str!("../job.sh");

// ANCHOR: phases
/// Each phase's share of the progress bar. One model for both the rule
/// interpreter (real progress scaled into the range) and creep (synthetic
/// progress while a phase prints nothing measurable).
fn phases(name: &str) -> Option<(f32, f32)> {
    match name {
        "prepare" => Some((0.0, 0.05)),
        "build" => Some((0.05, 0.6)),
        "emit" => Some((0.6, 0.95)),
        "check" => Some((0.95, 1.0)),
        _ => None,
    }
}
// ANCHOR_END: phases

// ANCHOR: interpreter
/// Lines → typed events: a rule table for the phases and the summary, the
/// progress detector for the `\r` percentage, and the GCC-style problem
/// matcher for `file:line:col: error: …` findings.
fn interpreter() -> Chain {
    let rules = RuleInterpreter::new(
        rules![
            enter_phase, "prepare", "Preparing",          r"^==> Preparing";
            enter_phase, "build", "Building",             r"^==> Building";
            enter_phase, "emit", "Emitting $1 lines",     r"^==> Emitting (\d+) lines";
            enter_phase, "check", "Checking",             r"^==> Checking";
            summary, "$1 lines, $2 problems",             r"^==> Done: (\d+) lines, (\d+) problems";
        ],
        phases,
    )
    .detector(ProgressDetector::new());
    Chain::new().with(rules).with(ProblemMatcher::gcc())
}
// ANCHOR_END: interpreter

// ANCHOR: run_job
/// The Run button. The page passes an IPC channel; the job's events go to
/// that channel only, batched (output lines coalesced every 25 ms).
#[tauri::command]
fn run_job(
    app: AppHandle,
    lines: u32,
    slow: bool,
    events: Channel<Message>,
) -> Result<JobId, execra::tauri::CommandError> {
    // `sh -c SCRIPT NAME ARGS…`: NAME becomes `$0`, then `$1`, `$2`.
    let cmd = Command::sh(JOB_SCRIPT)
        .arg("job.sh")
        .arg(lines.to_string())
        .arg(if slow { "1" } else { "0" })
        .env("EXECRA_DEMO_JOB", "1")
        .label(format!("demo job ({lines} lines)"))
        .tag("demo");
    let id = app
        .execra()
        .task(cmd)
        .interpreter(interpreter())
        .creep(phases)
        .ipc_channel(events)
        .spawn_tracked()?;
    Ok(id)
}
// ANCHOR_END: run_job

/// Open the second window (capability `viewer`: read-only, no cancel).
#[tauri::command]
async fn open_viewer(app: AppHandle) -> Result<(), String> {
    if app.get_webview_window("viewer").is_some() {
        return Ok(());
    }
    WebviewWindowBuilder::new(&app, "viewer", WebviewUrl::App("viewer.html".into()))
        .title("execra viewer")
        .inner_size(480.0, 320.0)
        .build()
        .map(|_| ())
        .map_err(|e| e.to_string())
}

// ANCHOR: setup
/// The runtime: history and raw logs in the app's data directory, so the
/// history list and each job's output survive a restart.
fn runtime(app: &tauri::App) -> Result<Runtime, Box<dyn std::error::Error>> {
    let dir = app.path().app_data_dir()?;
    std::fs::create_dir_all(&dir)?;
    Ok(Runtime::builder()
        .history(dir.join("history.sqlite"))
        .log_dir(dir.join("logs"))
        .raw_output(RawOutputPolicy::Persist)
        .build()?)
}

fn main() {
    let app = tauri::Builder::default()
        .setup(|app| {
            let rt = runtime(app)?;
            // On quit, the plugin stops every job's process tree before the
            // app exits (RunEvent::Exit); ExitDecision chooses what closing
            // the last window does while a job runs.
            app.handle().plugin(PluginBuilder::new(rt).build())?;
            Ok(())
        })
        .invoke_handler(tauri::generate_handler![run_job, open_viewer])
        .run(tauri::generate_context!());
    if let Err(e) = app {
        eprintln!("execra desktop example: {e}");
        std::process::exit(1);
    }
}
// ANCHOR_END: setup
