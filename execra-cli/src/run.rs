//! `execra run`: spawn, stream, draw progress, map the verdict to an exit
//! code.
//!
//! Output is lossless: the job is subscribed with
//! [`Lag::Backpressure`](execra::Lag::Backpressure), so when our stdout is
//! slow (a terminal, a pipe, a disk) the job waits, as in a shell pipe. It is
//! read in batches, each line lent as text borrowed from the job's log
//! ([`EventStream::next_batch_with`](execra::EventStream::next_batch_with)),
//! and written through buffered writers. Stdin is passed on: a pipe or file
//! as is, a terminal by forwarding, `/dev/null` with `--no-stdin`. When our
//! stdout is closed or cannot be written, the job is cancelled (exit 141 for
//! a closed pipe).

use std::io::{BufWriter, IsTerminal, Write};
use std::time::Duration;

use execra::interpret::ProgressDetector;
use execra::{
    Command, Event, EventRef, FailureReason, Outcome, Progress, RawOutputPolicy, Runtime,
    StdinMode, Stream, SubscribeOptions,
};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::args::RunArgs;
use crate::style::Style;
use crate::{CliError, Paths};

/// Exit code for a timed-out job (as `timeout(1)`), wall-clock or idle.
pub const EXIT_TIMEOUT: u8 = 124;
/// Exit code when the program could not be started for another reason.
pub const EXIT_SPAWN_FAILED: u8 = 125;
/// Exit code when the program exists but could not be executed.
pub const EXIT_NOT_EXECUTABLE: u8 = 126;
/// Exit code when the program was not found.
pub const EXIT_NOT_FOUND: u8 = 127;
/// Exit code for a cancelled job (Ctrl-C).
pub const EXIT_CANCELLED: u8 = 130;
/// Exit code when our stdout was closed (`execra run … | head`), as for a
/// program killed by `SIGPIPE`; the job is cancelled.
pub const EXIT_BROKEN_PIPE: u8 = 141;

/// Open the runtime every subcommand shares: history plus the raw logs
/// (read in either form; new ones gzipped).
pub fn open_runtime(paths: &Paths) -> Result<Runtime, CliError> {
    open_runtime_with(
        paths,
        execra::Containment::Auto,
        false,
        RawOutputPolicy::PersistGzipOnFinalize,
    )
}

/// [`open_runtime`] with a chosen containment (`execra run --containment`),
/// raw log (`--raw-log`) and, for `execra run` (one job per process), the
/// host as a child subreaper.
pub fn open_runtime_with(
    paths: &Paths,
    containment: execra::Containment,
    subreaper: bool,
    raw_log: RawOutputPolicy,
) -> Result<Runtime, CliError> {
    Runtime::builder()
        .containment(containment)
        .subreaper(subreaper)
        .history(&paths.db)
        .log_dir(&paths.logs)
        .raw_output(raw_log)
        .build()
        .map_err(|e| CliError::new(format!("cannot open history {}: {e}", paths.db.display())))
}

pub async fn run(a: RunArgs, paths: &Paths, _style: Style) -> Result<u8, CliError> {
    let Some((program, args)) = a.command.split_first() else {
        return Err(CliError::usage("missing program after `--`"));
    };
    let rt = open_runtime_with(paths, a.containment, !a.no_subreaper, a.raw_log)?;
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
    for (k, v) in &a.secret_env {
        cmd = cmd.secret_env(k.clone(), v.clone());
    }
    if a.pty || a.pty_size.is_some() {
        cmd = cmd.pty(a.pty_size.unwrap_or_default());
    }
    if let Some(e) = &a.encoding {
        execra::output::encoding_for_label(e).map_err(CliError::usage)?;
        cmd = cmd.encoding(e.clone());
    }
    if let Some(d) = a.idle_timeout {
        cmd = cmd.idle_timeout(d);
    }
    // Stdin: `/dev/null` on request; a pipe or file is handed to the job as
    // is; a terminal is read here and forwarded (the job runs in its own
    // process group, which may not read the terminal itself), and so is
    // anything for a job on a PTY (its stdin is the PTY).
    let pty = a.pty || a.pty_size.is_some();
    let forward = !a.no_stdin && (pty || std::io::stdin().is_terminal());
    cmd = cmd.stdin(if a.no_stdin {
        StdinMode::Null
    } else if forward {
        StdinMode::Interactive
    } else {
        StdinMode::Inherit
    });
    let handle = rt.spawn(cmd)?;
    let id = handle.id();
    // Backpressure: the job waits for the terminal (or the file, or the
    // pipe) as it would in a shell pipe; no line is ever skipped.
    let events = handle.subscribe_with(SubscribeOptions::backpressure());
    if forward {
        forward_stdin(rt.clone(), id);
    }
    // The consumer runs on a thread of its own (with a one-thread async
    // runtime for its timers and signals), so writing our output runs in
    // parallel with the job's driver reading and decoding its pipes.
    let consumer = spawn_consumer(rt.clone(), id, events, Ui::new(a.json));
    let mut ui = match consumer.await {
        Ok(r) => r?,
        Err(e) => {
            // The consumer panicked: make sure the job does not outlive us.
            let _ = rt.cancel(id);
            return Err(CliError::new(format!(
                "internal error while streaming: {e}"
            )));
        }
    };
    let outcome = handle.await;
    ui.finish();
    // History is durable once the handle resolved; nothing else to wait for.
    let exit = rt.job(id).and_then(|j| j.exit);
    match ui.broken.take() {
        Some(e) if e.kind() == std::io::ErrorKind::BrokenPipe => {
            // As a program killed by SIGPIPE would exit in a shell pipe.
            return Ok(EXIT_BROKEN_PIPE);
        }
        Some(e) => {
            return Err(CliError::new(format!(
                "cannot write the job's output ({e}); job {id} was cancelled"
            )));
        }
        None => {}
    }
    if !a.json && !outcome.is_success() {
        eprintln!("execra: job {id} {}", outcome.message());
    }
    Ok(exit_code(&outcome, exit.and_then(|e| e.code)))
}

/// Run [`consume`] on its own thread; the result (or the panic) comes back
/// through the returned channel.
fn spawn_consumer(
    rt: Runtime,
    id: execra::JobId,
    events: execra::EventStream,
    ui: Ui,
) -> tokio::sync::oneshot::Receiver<Result<Ui, CliError>> {
    let (tx, rx) = tokio::sync::oneshot::channel();
    let run = move || {
        let result = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| CliError::new(format!("could not start the output thread: {e}")))
            .and_then(|local| local.block_on(consume(rt, id, events, ui)));
        let _ = tx.send(result);
    };
    if let Err(e) = std::thread::Builder::new()
        .name("execra-output".into())
        .spawn(run)
    {
        eprintln!("execra: could not start the output thread: {e}");
    }
    rx
}

/// Stream the job's events to the terminal until its stream ends; cancel it
/// on Ctrl-C / SIGTERM / SIGHUP or when our output cannot be written.
async fn consume(
    rt: Runtime,
    id: execra::JobId,
    mut events: execra::EventStream,
    mut ui: Ui,
) -> Result<Ui, CliError> {
    let mut cancelled = false;
    let mut stop = stop_signals();
    // One timer for the whole run, re-armed when output starts waiting in
    // the buffers (not a new timer per batch).
    let flush_timer = tokio::time::sleep(FLUSH_DELAY);
    tokio::pin!(flush_timer);
    let mut armed: Option<tokio::time::Instant> = None;
    /// What woke the loop.
    enum Wake {
        Events(usize),
        Flush,
        Stop,
    }
    loop {
        if ui.flush_at != armed {
            armed = ui.flush_at;
            if let Some(at) = armed {
                flush_timer.as_mut().reset(at);
            }
        }
        let wake = tokio::select! {
            // Lines are lent straight from the job's log into our buffers:
            // no string or event is built per line.
            n = events.next_batch_with(BATCH, |ev| ui.event(ev)) => Wake::Events(n),
            _ = &mut flush_timer, if armed.is_some() => Wake::Flush,
            _ = stop.recv(), if !cancelled => Wake::Stop,
        };
        match wake {
            Wake::Events(0) => break,
            Wake::Events(_) => {
                if ui.broken.is_some() && !cancelled {
                    // Nobody reads our output any more (`| head`, disk
                    // full): stop the job the runtime's way.
                    cancelled = true;
                    rt.cancel(id)?;
                }
            }
            Wake::Flush => ui.flush(),
            Wake::Stop => {
                cancelled = true;
                ui.note("cancelling: stopping the job's whole process tree…");
                rt.cancel(id)?;
            }
        }
    }
    Ok(ui)
}

/// Events taken per wake-up.
const BATCH: usize = 4096;

/// Our stdout's buffer: written out when full, and when the job's output
/// pauses (see [`FLUSH_DELAY`]).
const OUT_BUFFER: usize = 128 * 1024;

/// How long written output may sit in the buffer before it is shown.
const FLUSH_DELAY: Duration = Duration::from_millis(15);

/// Read our stdin (the terminal, or anything for a PTY job) on a plain
/// thread (a blocking read must not hold up the async runtime or its
/// shutdown) and forward it to the job; end-of-file (Ctrl-D) closes the
/// job's stdin.
fn forward_stdin(rt: Runtime, id: execra::JobId) {
    let fallback = rt.clone();
    let spawned = std::thread::Builder::new()
        .name("execra-stdin".into())
        .spawn(move || {
            use std::io::Read;
            let mut buf = vec![0u8; 16 * 1024];
            let mut stdin = std::io::stdin();
            loop {
                match stdin.read(&mut buf) {
                    Ok(0) | Err(_) => {
                        let _ = rt.close_stdin(id);
                        break;
                    }
                    Ok(n) => {
                        if rt.write_stdin(id, buf[..n].to_vec()).is_err() {
                            break;
                        }
                    }
                }
            }
        });
    if spawned.is_err() {
        // No thread: the job reads end-of-file instead of the terminal.
        let _ = fallback.close_stdin(id);
    }
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
            FailureReason::Timeout | FailureReason::IdleTimeout { .. } => EXIT_TIMEOUT,
            FailureReason::SpawnFailed { error } => {
                if error.contains("not found") {
                    EXIT_NOT_FOUND
                } else if error.contains("permission denied") {
                    EXIT_NOT_EXECUTABLE
                } else {
                    EXIT_SPAWN_FAILED
                }
            }
            // A failure kind added after this CLI was written.
            _ => 1,
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
///
/// Output goes through one buffered writer per stream (the job's stdout to
/// ours, its stderr to ours), flushed [`FLUSH_DELAY`] after the first
/// unflushed line, before a redraw, a prompt or a note, and at exit. When
/// both are the same terminal, switching streams flushes the other one
/// first, so lines keep their order on screen.
struct Ui {
    json: bool,
    bar: Option<ProgressBar>,
    show_bar: bool,
    phase: Option<String>,
    redraw: Option<String>,
    out: BufWriter<std::io::Stdout>,
    err: BufWriter<std::io::Stderr>,
    /// Both streams are terminals (likely the same one).
    interleave: bool,
    last: Stream,
    /// When buffered output is due on screen.
    flush_at: Option<tokio::time::Instant>,
    /// Writing our stdout failed (closed pipe, full disk): output is
    /// dropped from then on and the job is cancelled.
    broken: Option<std::io::Error>,
}

impl Ui {
    fn new(json: bool) -> Self {
        let interleave = std::io::stdout().is_terminal() && std::io::stderr().is_terminal();
        Ui {
            json,
            bar: None,
            show_bar: !json && std::io::stderr().is_terminal(),
            phase: None,
            redraw: None,
            out: BufWriter::with_capacity(OUT_BUFFER, std::io::stdout()),
            err: BufWriter::with_capacity(16 * 1024, std::io::stderr()),
            interleave,
            last: Stream::Stdout,
            flush_at: None,
            broken: None,
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

    /// Something was buffered: make sure it is shown soon.
    fn dirty(&mut self) {
        if self.flush_at.is_none() {
            self.flush_at = Some(tokio::time::Instant::now() + FLUSH_DELAY);
        }
    }

    /// Show everything buffered (above the progress bar, if any).
    fn flush(&mut self) {
        self.flush_at = None;
        let (out, err) = (&mut self.out, &mut self.err);
        let mut r = Ok(());
        let mut write = || {
            r = out.flush();
            let _ = err.flush();
        };
        match &self.bar {
            Some(bar) => bar.suspend(write),
            None => write(),
        }
        self.check(r);
    }

    fn check(&mut self, r: std::io::Result<()>) {
        if let Err(e) = r {
            if self.broken.is_none() {
                self.broken = Some(e);
            }
        }
    }

    fn print(&mut self, stream: Stream, line: &str) {
        if self.interleave && stream != self.last {
            self.flush();
        }
        self.last = stream;
        match stream {
            Stream::Stdout => {
                if self.broken.is_some() {
                    return;
                }
                let r = self
                    .out
                    .write_all(line.as_bytes())
                    .and_then(|_| self.out.write_all(b"\n"));
                self.check(r);
            }
            Stream::Stderr => {
                let _ = self
                    .err
                    .write_all(line.as_bytes())
                    .and_then(|_| self.err.write_all(b"\n"));
            }
        }
        self.dirty();
    }

    fn note(&mut self, msg: &str) {
        if !self.json {
            self.flush();
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

    fn event(&mut self, ev: EventRef<'_>) {
        if self.json {
            if self.broken.is_none() {
                // Straight into the buffer (no string per event).
                let r = match ev {
                    EventRef::Output(o) => serde_json::to_writer(&mut self.out, &o.to_event()),
                    EventRef::Other(e) => serde_json::to_writer(&mut self.out, e),
                }
                .map_err(std::io::Error::from)
                .and_then(|_| self.out.write_all(b"\n"));
                self.check(r);
                self.dirty();
            }
            return;
        }
        let ev = match ev {
            EventRef::Output(o) if !o.redraw => {
                self.redraw = None;
                self.print(o.stream, o.line);
                return;
            }
            EventRef::Output(o) => {
                self.flush();
                self.redraw = Some(o.line.to_owned());
                let msg = self.message();
                if let Some(bar) = self.bar() {
                    bar.set_message(msg);
                }
                return;
            }
            EventRef::Other(ev) => ev,
        };
        match ev {
            Event::OutputSkipped { count, .. } => {
                // Not expected with a backpressure subscription; say so if
                // it ever happens rather than lose lines silently.
                self.note(&format!("{count} output lines skipped"));
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
        self.flush();
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
