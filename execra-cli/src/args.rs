//! Command-line arguments.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};

/// Run command-line tools with live progress, and browse their history.
#[derive(Debug, Parser)]
#[command(name = "execra", version, about)]
pub struct Cli {
    /// History database (default: `<data dir>/execra/history.sqlite`).
    #[arg(long, global = true, env = "EXECRA_DB")]
    pub db: Option<PathBuf>,
    /// Never use colours (also when NO_COLOR is set or output is not a terminal).
    #[arg(long, global = true)]
    pub no_color: bool,
    /// Show the runtime's diagnostics on stderr: -v info, -vv debug, -vvv
    /// trace (`RUST_LOG`, e.g. `RUST_LOG=execra=debug`, overrides it).
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,
    #[command(subcommand)]
    pub command: Cmd,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Cmd {
    /// Run a command, streaming its output with a progress bar.
    Run(RunArgs),
    /// List jobs, newest first.
    Ls(LsArgs),
    /// Show one job: command, timing, outcome, phases, findings.
    Show(ShowArgs),
    /// Print a job's raw output.
    Logs(LogsArgs),
    /// Apply the retention policy now (prune old events and logs).
    Prune,
    /// Cancel a job running in another `execra` process: its whole tree
    /// gets SIGTERM, and SIGKILL after the grace period.
    Cancel(CancelArgs),
    /// Freeze a running job's whole process tree.
    Pause(IdArg),
    /// Thaw a job paused with `execra pause`.
    Resume(IdArg),
}

/// `execra cancel`.
#[derive(Debug, Args)]
pub struct CancelArgs {
    /// Job id or a unique prefix of it.
    pub id: String,
    /// Time between SIGTERM and SIGKILL (e.g. 5s, 250ms).
    #[arg(long, default_value = "5s", value_parser = parse_duration)]
    pub grace: Duration,
}

/// `execra run`.
#[derive(Debug, Args)]
pub struct RunArgs {
    /// Label for the job.
    #[arg(long)]
    pub label: Option<String>,
    /// Tag the job (repeatable).
    #[arg(long = "tag")]
    pub tags: Vec<String>,
    /// Stop the job after this long (e.g. 30s, 5m, 1h, 250ms).
    #[arg(long, value_parser = parse_duration)]
    pub timeout: Option<Duration>,
    /// Working directory.
    #[arg(long)]
    pub cwd: Option<PathBuf>,
    /// Set an environment variable (KEY=VALUE, repeatable).
    #[arg(long = "env", value_parser = parse_env)]
    pub env: Vec<(String, String)>,
    /// Set an environment variable whose value is secret (KEY=VALUE,
    /// repeatable): the program gets it, history and output show ********.
    #[arg(long = "secret-env", value_parser = parse_env, value_name = "KEY=VALUE")]
    pub secret_env: Vec<(String, String)>,
    /// Run the program on a pseudo-terminal (Unix): tools that only show
    /// progress or prompts on a terminal do so. Output is one stream,
    /// without colours.
    #[arg(long)]
    pub pty: bool,
    /// Size of the pseudo-terminal, COLSxROWS (implies --pty).
    #[arg(long, value_parser = parse_pty_size, value_name = "COLSxROWS")]
    pub pty_size: Option<execra::PtySize>,
    /// Decode the program's output from this encoding instead of UTF-8
    /// (gbk, gb18030, shift_jis, euc-kr, windows-1252, utf-16le, …).
    #[arg(long, value_name = "NAME")]
    pub encoding: Option<String>,
    /// Stop the job when it has printed nothing for this long (e.g. 2m).
    #[arg(long, value_parser = parse_idle_timeout, value_name = "DURATION")]
    pub idle_timeout: Option<Duration>,
    /// Print one JSON event per line (the wire protocol) instead of output.
    #[arg(long)]
    pub json: bool,
    /// How the job's process tree is held: `auto` (a cgroup where one can
    /// be created, else a process group) or `process-group`.
    #[arg(long, env = "EXECRA_CONTAINMENT", default_value = "auto", value_parser = parse_containment)]
    pub containment: execra::Containment,
    /// Do not make `execra` a child subreaper (Linux). By default orphans of
    /// the job (processes whose parent exited, even ones that left its
    /// process group and scrubbed their environment) re-parent to `execra`,
    /// which kills and reaps them when the job stops.
    #[arg(long)]
    pub no_subreaper: bool,
    /// Give the job `/dev/null` as stdin (by default it reads ours: a pipe
    /// or file as is, the terminal by forwarding).
    #[arg(long)]
    pub no_stdin: bool,
    /// Keep the job's output for `execra logs` as `gzip` (compressed while
    /// written), `plain` (no compression: less CPU for a very chatty job,
    /// more disk) or `off` (history only).
    #[arg(long, env = "EXECRA_RAW_LOG", default_value = "gzip", value_parser = parse_raw_log, value_name = "gzip|plain|off")]
    pub raw_log: execra::RawOutputPolicy,
    /// The program and its arguments, after `--`.
    #[arg(last = true, required = true, value_name = "PROGRAM [ARGS]")]
    pub command: Vec<String>,
}

/// `execra ls`.
#[derive(Debug, Args)]
pub struct LsArgs {
    /// Only jobs with this tag.
    #[arg(long)]
    pub tag: Option<String>,
    /// Only jobs in this state (queued, running, paused, exited, finalized, cancelled).
    #[arg(long, value_parser = parse_state)]
    pub state: Option<execra::JobState>,
    /// At most this many jobs.
    #[arg(long, default_value_t = 20)]
    pub limit: usize,
    /// JSON lines (one job per line) instead of a table.
    #[arg(long)]
    pub json: bool,
}

/// `execra show`.
#[derive(Debug, Args)]
pub struct ShowArgs {
    /// Job id or a unique prefix of it.
    pub id: String,
    /// Also print the stored event log.
    #[arg(long)]
    pub events: bool,
    /// Print the job (and events) as JSON.
    #[arg(long)]
    pub json: bool,
}

/// `execra logs`.
#[derive(Debug, Args)]
pub struct LogsArgs {
    /// Job id or a unique prefix of it.
    pub id: String,
    /// Keep printing new output while the job runs.
    #[arg(long, short)]
    pub follow: bool,
}

/// A job id argument.
#[derive(Debug, Args)]
pub struct IdArg {
    /// Job id or a unique prefix of it.
    pub id: String,
}

/// Parse `auto` or `process-group`.
pub fn parse_containment(s: &str) -> Result<execra::Containment, String> {
    match s {
        "auto" => Ok(execra::Containment::Auto),
        "process-group" => Ok(execra::Containment::ProcessGroup),
        _ => Err(format!("{s:?}: expected auto or process-group")),
    }
}

/// Parse `gzip`, `plain` or `off` (`execra run --raw-log`).
pub fn parse_raw_log(s: &str) -> Result<execra::RawOutputPolicy, String> {
    match s {
        "gzip" => Ok(execra::RawOutputPolicy::PersistGzipOnFinalize),
        "plain" => Ok(execra::RawOutputPolicy::Persist),
        "off" => Ok(execra::RawOutputPolicy::Disabled),
        _ => Err(format!("{s:?}: expected gzip, plain or off")),
    }
}

/// Parse `30s`, `5m`, `1h`, `250ms`, or a plain number of seconds.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let split = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let n: f64 = num
        .parse()
        .map_err(|_| format!("invalid duration {s:?} (try 30s, 5m, 1h, 250ms)"))?;
    let secs = match unit.trim() {
        "" | "s" | "sec" | "secs" => n,
        "ms" => n / 1000.0,
        "m" | "min" | "mins" => n * 60.0,
        "h" | "hr" | "hours" => n * 3600.0,
        other => {
            return Err(format!(
                "unknown duration unit {other:?} (use ms, s, m or h)"
            ))
        }
    };
    if !secs.is_finite() || !(0.0..=1e9).contains(&secs) {
        return Err(format!("duration out of range: {s:?}"));
    }
    Ok(Duration::from_secs_f64(secs))
}

fn parse_env(s: &str) -> Result<(String, String), String> {
    match s.split_once('=') {
        Some((k, v)) if !k.is_empty() => Ok((k.to_string(), v.to_string())),
        _ => Err(format!("expected KEY=VALUE, got {s:?}")),
    }
}

fn parse_idle_timeout(s: &str) -> Result<Duration, String> {
    let d = parse_duration(s)?;
    if d.is_zero() {
        return Err("the idle timeout must be greater than zero (omit it for none)".to_string());
    }
    Ok(d)
}

/// `120x40` → 120 columns, 40 rows.
pub fn parse_pty_size(s: &str) -> Result<execra::PtySize, String> {
    let bad = || format!("expected COLSxROWS such as 120x40, got {s:?}");
    let (c, r) = s.trim().split_once(['x', 'X']).ok_or_else(bad)?;
    let cols: u16 = c.trim().parse().map_err(|_| bad())?;
    let rows: u16 = r.trim().parse().map_err(|_| bad())?;
    if cols == 0 || rows == 0 {
        return Err(format!(
            "invalid terminal size {s:?}: columns and rows must be at least 1"
        ));
    }
    Ok(execra::PtySize::new(cols, rows))
}

fn parse_state(s: &str) -> Result<execra::JobState, String> {
    s.parse()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("30s"), Ok(Duration::from_secs(30)));
        assert_eq!(parse_duration("5m"), Ok(Duration::from_secs(300)));
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration("2"), Ok(Duration::from_secs(2)));
        assert!(parse_duration("soon").is_err());
        assert!(parse_duration("5 weeks").is_err());
        assert!(parse_duration("").is_err());
    }

    #[test]
    fn idle_timeouts_and_pty_sizes() {
        assert_eq!(parse_idle_timeout("2m"), Ok(Duration::from_secs(120)));
        assert!(parse_idle_timeout("0s")
            .unwrap_err()
            .contains("greater than zero"));
        assert_eq!(parse_pty_size("120x40"), Ok(execra::PtySize::new(120, 40)));
        assert!(parse_pty_size("0x0").unwrap_err().contains("at least 1"));
        assert!(parse_pty_size("big").is_err());
    }
}
