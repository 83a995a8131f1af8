//! `execra` — run a command-line tool with live output and progress, and
//! browse the history of what ran.
//!
//! Every command works on one SQLite history (default: the platform data
//! directory, e.g. `~/.local/share/execra/history.sqlite`; override with
//! `--db` or `EXECRA_DB`). Raw output logs live beside it in `logs/`.
//!
//! Exit codes of `execra run`: the job's own exit code; 128+N when it was
//! killed by signal N; 124 on timeout; 130 when cancelled (Ctrl-C); 127 when
//! the program was not found; 126 when it could not be executed; 125 for any
//! other failure to start. Every other command: 0 on success, 1 on error,
//! 2 on a usage error.

mod args;
mod history;
mod run;
mod style;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;

use args::{Cli, Cmd};

/// A readable, one-line error for the user.
#[derive(Debug)]
pub struct CliError {
    message: String,
    code: u8,
}

impl CliError {
    /// An error with exit code 1.
    pub fn new(message: impl Into<String>) -> Self {
        CliError {
            message: message.into(),
            code: 1,
        }
    }

    /// A usage error (exit code 2).
    pub fn usage(message: impl Into<String>) -> Self {
        CliError {
            message: message.into(),
            code: 2,
        }
    }
}

impl From<execra::Error> for CliError {
    fn from(e: execra::Error) -> Self {
        CliError::new(e.to_string())
    }
}

impl From<execra::store::StoreError> for CliError {
    fn from(e: execra::store::StoreError) -> Self {
        CliError::new(format!("history: {e}"))
    }
}

impl From<std::io::Error> for CliError {
    fn from(e: std::io::Error) -> Self {
        CliError::new(e.to_string())
    }
}

/// Where history and logs live.
pub struct Paths {
    /// The SQLite history file.
    pub db: PathBuf,
    /// The raw log directory.
    pub logs: PathBuf,
}

fn paths(db: Option<PathBuf>) -> Result<Paths, CliError> {
    let db = match db {
        Some(p) => p,
        None => dirs::data_dir()
            .or_else(|| dirs::home_dir().map(|h| h.join(".local/share")))
            .ok_or_else(|| {
                CliError::new("no data directory found: pass --db PATH or set EXECRA_DB")
            })?
            .join("execra")
            .join("history.sqlite"),
    };
    let logs = db
        .parent()
        .map(|p| p.join("logs"))
        .unwrap_or_else(|| PathBuf::from("logs"));
    Ok(Paths { db, logs })
}

/// Send the runtime's `tracing` diagnostics to stderr when asked: `RUST_LOG`
/// (an `EnvFilter` directive) wins, else `-v` picks the level. Nothing is
/// installed otherwise, so nothing is printed.
fn init_diagnostics(verbose: u8) {
    use tracing_subscriber::EnvFilter;
    let filter = match std::env::var("RUST_LOG") {
        Ok(directives) if !directives.is_empty() => EnvFilter::new(directives),
        _ => match verbose {
            0 => return,
            1 => EnvFilter::new("execra=info"),
            2 => EnvFilter::new("execra=debug"),
            _ => EnvFilter::new("execra=trace"),
        },
    };
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_target(false)
        .try_init();
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_diagnostics(cli.verbose);
    let color = style::Style::detect(cli.no_color);
    let result = paths(cli.db.clone()).and_then(|paths| {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .map_err(|e| CliError::new(format!("could not start the async runtime: {e}")))?;
        rt.block_on(async move {
            match cli.command {
                Cmd::Run(a) => run::run(a, &paths, color).await,
                Cmd::Ls(a) => history::ls(a, &paths, color).map(|_| 0),
                Cmd::Show(a) => history::show(a, &paths, color).map(|_| 0),
                Cmd::Logs(a) => history::logs(a, &paths).await.map(|_| 0),
                Cmd::Prune => history::prune(&paths).map(|_| 0),
                Cmd::Cancel(a) => history::cancel(a, &paths).map(|_| 0),
                Cmd::Pause(a) => history::pause(a, &paths, true).map(|_| 0),
                Cmd::Resume(a) => history::pause(a, &paths, false).map(|_| 0),
            }
        })
    });
    match result {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            eprintln!("execra: {}", e.message);
            ExitCode::from(e.code)
        }
    }
}
