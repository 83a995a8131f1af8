//! `execra run`: spawn, stream, draw progress, map the verdict to an exit
//! code.

use std::io::{IsTerminal, Write};
use std::time::Duration;

use execra::interpret::ProgressDetector;
use execra::{Command, Event, FailureReason, Outcome, Progress, RawOutputPolicy, Runtime, Stream};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::args::RunArgs;
use crate::style::Style;
use crate::{CliError, Paths};

/// Exit code for a timed-out job (as `timeout(1)`).
pub const EXIT_TIMEOUT: u8 = 124;
/// Exit code when the program could not be started for another reason.
pub const EXIT_SPAWN_FAILED: u8 = 125;
/// Exit code when the program exists but could not be executed.
pub const EXIT_NOT_EXECUTABLE: u8 = 126;
/// Exit code when the program was not found.
pub const EXIT_NOT_FOUND: u8 = 127;
/// Exit code for a cancelled job (Ctrl-C).
pub const EXIT_CANCELLED: u8 = 130;

/// Open the runtime every subcommand shares: history plus gzipped raw logs.
pub fn open_runtime(paths: &Paths) -> Result<Runtime, CliError> {
    open_runtime_with(paths, execra::Containment::Auto)
}

/// [`open_runtime`] with a chosen containment (`execra run --containment`).
pub fn open_runtime_with(
    paths: &Paths,
    containment: execra::Containment,
) -> Result<Runtime, CliError> {
    Runtime::builder()
        .containment(containment)
        .history(&paths.db)
        .log_dir(&paths.logs)
        .raw_output(RawOutputPolicy::PersistGzipOnFinalize)
        .build()
        .map_err(|e| CliError::new(format!("cannot open history {}: {e}", paths.db.display())))
}

pub async fn run(a: RunArgs, paths: &Paths, _style: Style) -> Result<u8, CliError> {
    let Some((program, args)) = a.command.split_first() else {
        return Err(CliError::usage("missing program after `--`"));
    };
    let rt = open_runtime_with(paths, a.containment)?;
    let mut cmd = Command::new(program.clone())
        .args(args.iter().cloned())
        .tags(a.tags.iter().cloned())
        .interpreter(ProgressDetector::new());
    if let Some(l) = &a.label {
        cmd = cmd.label(l.clone());
    }
    if let Some(t) = a.timeout {
        cmd = cmd.timeout(t);
    }
    if let Some(d) = &a.cwd {
        cmd = cmd.cwd(d.clone());
    }
    for (k, v) in &a.env {
        cmd = cmd.env(k.clone(), v.clone());
    }
    let handle = rt.spawn(cmd)?;
    let id = handle.id();
    let mut events = handle.subscribe();
    let mut ui = Ui::new(a.json);
    let mut cancelled = false;
    let mut stop = stop_signals();
    loop {
        tokio::select! {
            ev = events.next() => match ev {
                Some(ev) => ui.event(&ev),
                None => break,
            },
            _ = stop.recv(), if !cancelled => {
                cancelled = true;
                ui.note("cancelling: stopping the job's whole process tree…");
                rt.cancel(id)?;
            }
        }
    }
    let outcome = handle.await;
    ui.finish();
    let exit = rt.job(id).and_then(|j| j.exit);
    if !a.json && !outcome.is_success() {
        eprintln!("execra: job {id} {}", outcome.message());
    }
    Ok(exit_code(&outcome, exit.and_then(|e| e.code)))
}

/// Ctrl-C, and on Unix also SIGTERM and SIGHUP (terminal closed): each
/// cancels the job the runtime's way instead of killing this process and
/// orphaning the job.
fn stop_signals() -> tokio::sync::mpsc::UnboundedReceiver<()> {
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    let ctrl_c = tx.clone();
    tokio::spawn(async move {
        while tokio::signal::ctrl_c().await.is_ok() {
            if ctrl_c.send(()).is_err() {
                break;
            }
        }
    });
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        for kind in [SignalKind::terminate(), SignalKind::hangup()] {
            if let Ok(mut sig) = signal(kind) {
                let tx = tx.clone();
                tokio::spawn(async move {
                    while sig.recv().await.is_some() {
                        if tx.send(()).is_err() {
                            break;
                        }
                    }
                });
            }
        }
    }
    drop(tx);
    rx
}

/// The CLI's exit code for a job's verdict.
pub fn exit_code(outcome: &Outcome, code: Option<i32>) -> u8 {
    match outcome {
        Outcome::Succeeded { .. } => 0,
        Outcome::Cancelled { .. } => EXIT_CANCELLED,
        Outcome::Failed { reason, .. } => match reason {
            FailureReason::NonZeroExit { code } => clamp_code(*code),
            FailureReason::KnownError { .. } => code.map(clamp_code).unwrap_or(1),
            FailureReason::Signal { signal } => 128u8.saturating_add((*signal).clamp(0, 127) as u8),
            FailureReason::Timeout => EXIT_TIMEOUT,
            FailureReason::SpawnFailed { error } => {
                if error.contains("not found") {
                    EXIT_NOT_FOUND
                } else if error.contains("permission denied") {
                    EXIT_NOT_EXECUTABLE
                } else {
                    EXIT_SPAWN_FAILED
                }
            }
        },
    }
}

fn clamp_code(c: i32) -> u8 {
    match u8::try_from(c) {
        Ok(0) | Err(_) => 1,
        Ok(c) => c,
    }
}

/// What the terminal shows while the job runs.
struct Ui {
    json: bool,
    bar: Option<ProgressBar>,
    show_bar: bool,
    phase: Option<String>,
    redraw: Option<String>,
}

impl Ui {
    fn new(json: bool) -> Self {
        Ui {
            json,
            bar: None,
            show_bar: !json && std::io::stderr().is_terminal(),
            phase: None,
            redraw: None,
        }
    }

    fn bar(&mut self) -> Option<&ProgressBar> {
        if !self.show_bar {
            return None;
        }
        if self.bar.is_none() {
            let bar = ProgressBar::with_draw_target(Some(1000), ProgressDrawTarget::stderr());
            bar.enable_steady_tick(Duration::from_millis(100));
            self.bar = Some(bar);
        }
        self.bar.as_ref()
    }

    fn print(&self, stream: Stream, line: &str) {
        let write = || match stream {
            Stream::Stdout => {
                let mut out = std::io::stdout().lock();
                let _ = writeln!(out, "{line}");
            }
            Stream::Stderr => eprintln!("{line}"),
        };
        match &self.bar {
            Some(bar) => bar.suspend(write),
            None => write(),
        }
    }

    fn note(&self, msg: &str) {
        if !self.json {
            match &self.bar {
                Some(bar) => bar.suspend(|| eprintln!("execra: {msg}")),
                None => eprintln!("execra: {msg}"),
            }
        }
    }

    fn message(&self) -> String {
        let mut m = self.phase.clone().unwrap_or_default();
        if let Some(r) = &self.redraw {
            if !m.is_empty() {
                m.push_str(" · ");
            }
            let r: String = r.trim().chars().take(60).collect();
            m.push_str(&r);
        }
        m
    }

    fn event(&mut self, ev: &Event) {
        if self.json {
            if let Ok(s) = serde_json::to_string(ev) {
                let mut out = std::io::stdout().lock();
                let _ = writeln!(out, "{s}");
            }
            return;
        }
        match ev {
            Event::OutputAppended {
                stream,
                line,
                redraw: false,
                ..
            } => {
                self.redraw = None;
                self.print(*stream, line);
            }
            Event::OutputAppended {
                line, redraw: true, ..
            } => {
                self.redraw = Some(line.clone());
                let msg = self.message();
                if let Some(bar) = self.bar() {
                    bar.set_message(msg);
                }
            }
            Event::OutputSkipped { count, .. } => {
                self.note(&format!("{count} output lines skipped (terminal too slow)"));
            }
            Event::PhaseEntered { name, label, .. } => {
                self.phase = Some(label.clone().unwrap_or_else(|| name.clone()));
                let msg = self.message();
                if let Some(bar) = self.bar() {
                    bar.set_message(msg);
                }
            }
            Event::PhaseUpdated { label, .. } => {
                self.phase = Some(label.clone());
                let msg = self.message();
                if let Some(bar) = self.bar() {
                    bar.set_message(msg);
                }
            }
            Event::ProgressUpdated { progress, .. } => {
                let frac = progress.as_fraction();
                let hint = match progress {
                    Progress::Indeterminate { hint } => hint.clone(),
                    _ => None,
                };
                if let Some(bar) = self.bar() {
                    match frac {
                        Some(f) => {
                            bar.set_style(bar_style());
                            bar.set_position((f * 1000.0) as u64);
                        }
                        None => {
                            bar.set_style(spinner_style());
                            if let Some(h) = hint {
                                bar.set_message(h);
                            }
                        }
                    }
                }
            }
            Event::WarningDetected { message, .. } => self.note(&format!("warning: {message}")),
            Event::PromptDetected { prompt, .. } => {
                self.note(&format!("waiting for input: {prompt}"))
            }
            _ => {}
        }
    }

    fn finish(&mut self) {
        if let Some(bar) = self.bar.take() {
            bar.finish_and_clear();
        }
    }
}

fn bar_style() -> ProgressStyle {
    ProgressStyle::with_template("{spinner} [{bar:30}] {percent:>3}% {msg}")
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .progress_chars("=> ")
}

fn spinner_style() -> ProgressStyle {
    ProgressStyle::with_template("{spinner} {msg}")
        .unwrap_or_else(|_| ProgressStyle::default_spinner())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exit_codes() {
        let failed = |reason| Outcome::Failed {
            reason,
            summary: None,
            findings: vec![],
        };
        assert_eq!(
            exit_code(&failed(FailureReason::NonZeroExit { code: 3 }), Some(3)),
            3
        );
        assert_eq!(
            exit_code(&failed(FailureReason::NonZeroExit { code: 300 }), None),
            1
        );
        assert_eq!(
            exit_code(&failed(FailureReason::Signal { signal: 9 }), None),
            137
        );
        assert_eq!(
            exit_code(&failed(FailureReason::Timeout), None),
            EXIT_TIMEOUT
        );
        assert_eq!(
            exit_code(&Outcome::Cancelled { findings: vec![] }, None),
            EXIT_CANCELLED
        );
    }
}
