//! The 1.1 `RUNTIME.md` snippets (Tauri ones: `tauri_snippets`).

use std::time::Duration;

use execra::{
    Command, Context, ExitCode, Interpreter, InterpreterEvent, JobId, Line, RawOutputPolicy,
    RetentionPolicy, Runtime,
};

/// The interpreter the snippets call `MyInterpreter`.
pub struct MyInterpreter;

impl Interpreter for MyInterpreter {
    fn on_line(&mut self, _ctx: &Context, _line: &Line) -> Vec<InterpreterEvent> {
        vec![]
    }
    fn on_exit(&mut self, _ctx: &Context, _exit: &ExitCode) -> Vec<InterpreterEvent> {
        vec![]
    }
}

/// "Runtime".
pub async fn runtime() -> Result<(), Box<dyn std::error::Error>> {
    let rt = Runtime::new();
    let outcome = rt.spawn(Command::new("echo").arg("hi"))?.await;
    assert!(outcome.is_success());
    Ok(())
}

/// "Opt into persistence and tuning with the builder".
pub fn builder(dir: &std::path::Path) -> Result<Runtime, Box<dyn std::error::Error>> {
    let rt = Runtime::builder()
        .history(dir.join("jobs.sqlite"))
        .log_dir(dir.join("raw"))
        .raw_output(execra::RawOutputPolicy::Persist)
        .max_concurrent(4)
        .build()?;
    Ok(rt)
}

/// "Core methods": each signature, used.
pub async fn core_methods(rt: &Runtime, id: JobId) {
    let _: Runtime = Runtime::new();
    let _: execra::RuntimeBuilder = Runtime::builder();
    let _: Result<execra::JobHandle, execra::Error> = rt.spawn(Command::new("true"));
    let _: Result<(), execra::Error> = rt.cancel(id);
    let _: Vec<execra::Job> = rt.recent(10);
    let _: Vec<JobId> = rt.running();
    let _: Option<execra::Job> = rt.job(id);
    let _: execra::JobsQuery = rt.jobs();
    let _: execra::EventStream = rt.subscribe();
    let _: execra::EventStream = rt.subscribe_job(id);
}

/// "Command".
pub fn commands() -> Vec<Command> {
    vec![
        Command::new("git").args(["status", "--short"]),
        Command::new("scoop").args(["install", "git"]),
        Command::new("./tool").arg("--json"),
        Command::shell("echo hello"), // cmd /C on Windows, sh -c elsewhere
        Command::cmd("dir"),
        Command::sh("ls -la"),
        Command::powershell("Get-ChildItem"),
        Command::pwsh("Get-ChildItem"),
        Command::new("tool")
            .args(["--scan", "target"])
            .env("NO_COLOR", "1")
            .cwd("./work")
            .label("Scanning target")
            .tags(["scan".to_string()])
            .timeout(std::time::Duration::from_secs(60))
            .interpreter(MyInterpreter),
    ]
}

/// "JobHandle".
pub async fn job_handle(rt: &Runtime, cmd: Command) -> Result<execra::Outcome, execra::Error> {
    #[allow(unused_mut)]
    let mut handle = rt.spawn(cmd)?;
    let id = handle.id();
    let _ = id;
    let _cancel: fn(&execra::JobHandle) -> Result<(), execra::Error> = |h| h.cancel();
    let mut events = handle.subscribe();

    tokio::spawn(async move {
        while let Some(event) = events.next().await {
            // render, log, or forward
            let _ = event;
        }
    });

    let outcome = handle.await;
    Ok(outcome)
}

/// "Event Subscription".
#[allow(unused_mut)]
pub async fn event_subscription(rt: &Runtime, id: JobId) {
    let mut all = rt.subscribe();
    let mut one_job = rt.subscribe_job(id);

    while let Some(event) = one_job.next().await {
        // ...
        let _ = event;
    }
    drop(all);
}

/// "Persistence": builder knobs.
pub fn persistence(dir: &std::path::Path) -> Result<Runtime, Box<dyn std::error::Error>> {
    Runtime::new(); // no disk writes

    let rt = Runtime::builder()
        .history(dir.join("jobs.sqlite")) // SQLite job/event history
        .log_dir(dir.join("raw")) // raw stdout/stderr files
        .raw_output(RawOutputPolicy::Persist)
        .retention(RetentionPolicy::default())
        .max_concurrent(4)
        .default_grace_period(Duration::from_secs(5))
        .build()?;
    Ok(rt)
}

/// "Raw output policies": every variant named in the docs. A `match` with
/// the 1.1 variants and no wildcard arm is what 2.0 breaks on purpose
/// (`RawOutputPolicy` is `#[non_exhaustive]`).
pub fn raw_output_policies() -> Vec<RawOutputPolicy> {
    vec![
        RawOutputPolicy::Persist,
        RawOutputPolicy::PersistGzipOnFinalize,
        RawOutputPolicy::MemoryOnly,
        RawOutputPolicy::Disabled,
    ]
}
