//! The 1.1 `README.md` snippets (Tauri ones: `tauri_snippets`).

use execra::{Command, Runtime};

/// "Quick Start" (the body of its `#[tokio::main] async fn main`).
pub async fn quick_start() -> Result<(), Box<dyn std::error::Error>> {
    let rt = Runtime::new();

    let outcome = rt
        .spawn(Command::new("echo").arg("hello").label("greet"))?
        .await;

    outcome.into_result()?;
    Ok(())
}

/// "Persistence": off by default.
pub fn persistence_off() -> Runtime {
    let rt = execra::Runtime::new(); // no files are created
    rt
}

/// "Persistence": opt in. (The snippet's relative paths are made relative
/// to `dir` so a test can run it.)
pub fn persistence_on(dir: &std::path::Path) -> Result<Runtime, Box<dyn std::error::Error>> {
    let history = dir.join("jobs.sqlite");
    let raw = dir.join("raw");
    let rt = execra::Runtime::builder()
        .history(history)
        .log_dir(raw)
        .raw_output(execra::RawOutputPolicy::Persist)
        .max_concurrent(4)
        .build()?;
    Ok(rt)
}
