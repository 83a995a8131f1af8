//! `execra ls`, `show`, `logs`, `prune`: reading the history; `cancel`,
//! `pause`, `resume`: reaching a job's tree in another process.

use std::io::Write;
use std::time::{Duration, SystemTime};

use execra::output::{LogTail, OutputLine};
use execra::store::{JobsFilter, Store};
use execra::{Event, Job, JobId, JobState, Stream};

use crate::args::{CancelArgs, IdArg, LogsArgs, LsArgs, ShowArgs};
use crate::run::open_runtime;
use crate::style::{duration, timestamp, Style};
use crate::{CliError, Paths};

fn open_store(paths: &Paths) -> Result<Store, CliError> {
    Store::open(&paths.db)
        .map_err(|e| CliError::new(format!("cannot open history {}: {e}", paths.db.display())))
}

/// Open the history for `ls`, `show` and `logs`, first finalizing jobs
/// whose host process is gone (a crashed or `kill -9`ed `execra run`), with
/// the same per-job owner check the runtime makes when it opens the file
/// ([`Store::resurrect_stranded_jobs`]): so a reader never shows a dead
/// host's job as running, and the file says the same to everyone after.
/// Jobs of a live `execra run` (or any live runtime) are left alone. If the
/// file cannot be written (read-only), the jobs are shown as stored and a
/// warning says why they could not be reconciled.
fn open_reader(paths: &Paths) -> Result<Store, CliError> {
    let store = open_store(paths)?;
    reconcile(&store);
    Ok(store)
}

/// Finalize stranded jobs; a failure is a warning, not an error. Without
/// an unfinished job in the file (the usual case) this only reads, so a
/// reader does not wait for a busy writer's lock.
fn reconcile(store: &Store) {
    let unfinished = [
        JobState::Queued,
        JobState::Running,
        JobState::Paused,
        JobState::Exited,
    ]
    .into_iter()
    .any(|state| {
        let filter = JobsFilter {
            state: Some(state),
            ..JobsFilter::default()
        };
        // An error here is not ours to report: the real read follows.
        store.list_jobs(1, &filter).map_or(true, |j| !j.is_empty())
    });
    if !unfinished {
        return;
    }
    if let Err(e) = store.resurrect_stranded_jobs() {
        eprintln!("execra: warning: could not finalize jobs whose host process is gone: {e}");
    }
}

/// Find a job by full id or unique prefix (hyphens optional).
fn resolve(store: &Store, needle: &str) -> Result<Job, CliError> {
    if let Ok(id) = needle.parse::<JobId>() {
        return store
            .load_job(id)?
            .ok_or_else(|| CliError::new(format!("no job with id {id}")));
    }
    let want: String = needle
        .chars()
        .filter(|c| *c != '-')
        .collect::<String>()
        .to_ascii_lowercase();
    if want.is_empty() || !want.chars().all(|c| c.is_ascii_hexdigit()) {
        return Err(CliError::usage(format!(
            "{needle:?} is not a job id or id prefix (hex digits)"
        )));
    }
    let mut hits: Vec<Job> = store
        .list_jobs(usize::MAX, &JobsFilter::default())?
        .into_iter()
        .filter(|j| j.id.0.simple().to_string().starts_with(&want))
        .collect();
    match hits.len() {
        0 => Err(CliError::new(format!("no job matches {needle:?}"))),
        1 => Ok(hits.remove(0)),
        n => Err(CliError::new(format!(
            "{needle:?} is ambiguous: {n} jobs match; give more of the id"
        ))),
    }
}

fn finished_at(events: &[Event]) -> Option<SystemTime> {
    events.iter().rev().find_map(|e| match e {
        Event::Finalized { at, .. } => Some(*at),
        _ => None,
    })
}

fn run_time(job: &Job, events: &[Event]) -> Option<Duration> {
    let start = job.started_at?;
    let end = finished_at(events)?;
    end.duration_since(start).ok()
}

fn title(job: &Job) -> String {
    job.label.clone().unwrap_or_else(|| job.command.display())
}

pub fn ls(a: LsArgs, paths: &Paths, style: Style) -> Result<(), CliError> {
    let store = open_reader(paths)?;
    let filter = JobsFilter {
        tag: a.tag,
        state: a.state,
        ..JobsFilter::default()
    };
    let listing = store.list_jobs_reporting(a.limit, &filter)?;
    for skipped in &listing.skipped {
        eprintln!(
            "execra: warning: skipping job {} (its history row cannot be read: {})",
            skipped.id, skipped.error
        );
    }
    let jobs = listing.jobs;
    let mut out = std::io::stdout().lock();
    if a.json {
        for j in &jobs {
            let line = serde_json::to_string(j).map_err(|e| CliError::new(e.to_string()))?;
            let _ = writeln!(out, "{line}");
        }
        return Ok(());
    }
    if jobs.is_empty() {
        let _ = writeln!(out, "no jobs");
        return Ok(());
    }
    let width = id_width(&store, &jobs);
    let _ = writeln!(
        out,
        "{}",
        style.bold(&format!(
            "{:<width$}  {:<22}  {:<19}  {:>8}  {}",
            "ID", "STATE", "STARTED", "TIME", "LABEL"
        ))
    );
    for j in &jobs {
        let events = store.list_events(j.id, 100_000).unwrap_or_default();
        let verdict = style.verdict(j.state, j.outcome.as_ref());
        let pad = 22usize.saturating_sub(visible_len(&verdict));
        let started = j.started_at.map(timestamp).unwrap_or_else(|| "-".into());
        let took = run_time(j, &events)
            .map(duration)
            .unwrap_or_else(|| "-".into());
        let _ = writeln!(
            out,
            "{}  {verdict}{}  {started:<19}  {took:>8}  {}",
            &j.id.0.simple().to_string()[..width],
            " ".repeat(pad),
            title(j)
        );
    }
    Ok(())
}

/// How many hex digits of an id `ls` shows: at least 8, and enough that
/// every listed id is a unique prefix in the whole history (so it can be
/// pasted into `show`, `cancel`, `pause`…). Job ids are UUIDv7, whose first
/// digits are a timestamp: jobs started within a minute share 8 digits.
fn id_width(store: &Store, listed: &[Job]) -> usize {
    const MIN: usize = 8;
    let mut all: Vec<String> = match store.list_jobs(usize::MAX, &JobsFilter::default()) {
        Ok(jobs) => jobs.iter().map(|j| j.id.0.simple().to_string()).collect(),
        // Unreadable: show whole ids rather than ambiguous ones.
        Err(_) => return 32,
    };
    all.sort_unstable();
    let common = |a: &str, b: &str| a.bytes().zip(b.bytes()).take_while(|(x, y)| x == y).count();
    listed
        .iter()
        .map(|j| {
            let id = j.id.0.simple().to_string();
            let Ok(i) = all.binary_search(&id) else {
                return MIN;
            };
            let before = i.checked_sub(1).map_or(0, |k| common(&all[k], &id));
            let after = all.get(i + 1).map_or(0, |next| common(next, &id));
            before.max(after) + 1
        })
        .fold(MIN, usize::max)
        .min(32)
}

/// Length without ANSI escapes.
fn visible_len(s: &str) -> usize {
    let mut n = 0;
    let mut esc = false;
    for c in s.chars() {
        match (esc, c) {
            (false, '\x1b') => esc = true,
            (true, 'm') => esc = false,
            (true, _) => {}
            (false, _) => n += 1,
        }
    }
    n
}

pub fn show(a: ShowArgs, paths: &Paths, style: Style) -> Result<(), CliError> {
    let store = open_reader(paths)?;
    let job = resolve(&store, &a.id)?;
    let events = store.list_events(job.id, usize::MAX)?;
    let mut out = std::io::stdout().lock();
    if a.json {
        let value = serde_json::json!({ "job": job, "events": if a.events { Some(&events) } else { None } });
        let _ = writeln!(out, "{value}");
        return Ok(());
    }
    let w = |out: &mut std::io::StdoutLock, k: &str, v: String| {
        let _ = writeln!(out, "{:<10} {v}", style.dim(k));
    };
    w(&mut out, "id", job.id.to_string());
    w(&mut out, "label", title(&job));
    w(&mut out, "command", job.command.display());
    if let Some(cwd) = &job.command.cwd {
        w(&mut out, "cwd", cwd.display().to_string());
    }
    if !job.command.tags.is_empty() {
        w(&mut out, "tags", job.command.tags.join(", "));
    }
    w(&mut out, "created", timestamp(job.created_at));
    if let Some(s) = job.started_at {
        w(&mut out, "started", timestamp(s));
    }
    if let Some(d) = run_time(&job, &events) {
        w(&mut out, "took", duration(d));
    }
    w(
        &mut out,
        "state",
        style.verdict(job.state, job.outcome.as_ref()),
    );
    if let Some(e) = job.exit {
        w(&mut out, "exit", e.to_string());
    }
    if let Some(o) = &job.outcome {
        w(&mut out, "outcome", o.message());
    }
    if let Some(u) = usage_line(&events) {
        w(&mut out, "usage", u);
    }
    let phases: Vec<String> = events
        .iter()
        .filter_map(|e| match e {
            Event::PhaseEntered {
                name, label, at, ..
            } => Some(format!(
                "{} {}",
                timestamp(*at),
                label.clone().unwrap_or_else(|| name.clone())
            )),
            _ => None,
        })
        .collect();
    if !phases.is_empty() {
        let _ = writeln!(out, "{}", style.dim("phases"));
        for p in phases {
            let _ = writeln!(out, "  {p}");
        }
    }
    let findings = job.outcome.as_ref().map(|o| o.findings()).unwrap_or(&[]);
    if !findings.is_empty() {
        let _ = writeln!(out, "{}", style.dim("findings"));
        for f in findings {
            let _ = writeln!(
                out,
                "  {} [{}] {}",
                style.severity(f.severity),
                f.code,
                f.message
            );
        }
    }
    if a.events {
        let _ = writeln!(out, "{}", style.dim("events"));
        for e in &events {
            let json = serde_json::to_string(e).unwrap_or_default();
            let _ = writeln!(out, "  {} {:<20} {json}", timestamp(e.at()), e.kind());
        }
    }
    Ok(())
}

/// Print logged lines, stdout's through one buffer (not a `write` per
/// line); a stderr line flushes what is buffered first, so the two keep
/// their order on a terminal.
fn print_lines(lines: impl IntoIterator<Item = OutputLine>) -> std::io::Result<()> {
    let mut out = std::io::BufWriter::with_capacity(128 * 1024, std::io::stdout().lock());
    for line in lines {
        match line.stream {
            Stream::Stdout => {
                out.write_all(line.text.as_bytes())?;
                out.write_all(b"\n")?;
            }
            Stream::Stderr => {
                out.flush()?;
                eprintln!("{}", line.text);
            }
        }
    }
    out.flush()
}

/// [`print_lines`]; a closed stdout (`execra logs … | head`) ends quietly.
fn show_lines(lines: impl IntoIterator<Item = OutputLine>) -> Result<(), CliError> {
    match print_lines(lines) {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => Err(e.into()),
        _ => Ok(()),
    }
}

pub async fn logs(a: LogsArgs, paths: &Paths) -> Result<(), CliError> {
    let store = open_reader(paths)?;
    let job = resolve(&store, &a.id)?;
    if a.follow && !job.state.is_terminal() {
        return follow(&store, job.id, paths).await;
    }
    let rt = open_runtime(paths)?;
    let lines = rt.output(job.id)?;
    let logged = ["log", "log.gz"]
        .iter()
        .any(|ext| paths.logs.join(format!("{}.{ext}", job.id)).exists());
    if lines.is_empty() && !logged {
        eprintln!(
            "execra: job {} has no raw log (it ran with --raw-log off, or its log was pruned)",
            job.id
        );
    }
    show_lines(lines)
}

/// Tail a running job's raw log (gzipped while written, readable up to its
/// last flush) until the job ends, then print whatever the final log has
/// beyond what was shown. The job also ends for us when its host process
/// dies: every second the stranded jobs are reconciled, which finalizes it.
async fn follow(store: &Store, id: JobId, paths: &Paths) -> Result<(), CliError> {
    let mut tail = LogTail::new(&paths.logs, id);
    let mut shown = 0usize;
    for tick in 0u64.. {
        if tick % 5 == 4 {
            reconcile(store);
        }
        let done = store
            .load_job(id)?
            .map(|j| j.state.is_terminal())
            .unwrap_or(true);
        if done {
            break;
        }
        // A read error (the log not written yet, or cut short) is retried
        // on the next tick; the final read below reports real errors.
        if let Ok(lines) = tail.poll() {
            shown += lines.len();
            show_lines(lines)?;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let rt = open_runtime(paths)?;
    show_lines(rt.output(id)?.into_iter().skip(shown))
}

pub fn prune(paths: &Paths) -> Result<(), CliError> {
    let rt = open_runtime(paths)?;
    let report = rt.prune()?;
    println!(
        "pruned {} events, {} findings, {} raw logs",
        report.events, report.findings, report.raw_logs
    );
    Ok(())
}

/// Cancel a job owned by another `execra` process through the library
/// ([`Store::stop_job`]): its whole tree (cgroup, else its process group
/// with the recorded leader identity) gets `SIGTERM`, then `SIGKILL` after
/// the grace period. The owning process records how the job ended.
pub fn cancel(a: CancelArgs, paths: &Paths) -> Result<(), CliError> {
    let store = open_store(paths)?;
    let job = resolve(&store, &a.id)?;
    if job.state.is_terminal() {
        println!("job {} already ended: {}", job.id, job.state);
        return Ok(());
    }
    stop_tree(&store, &job, a.grace)
}

#[cfg(unix)]
fn stop_tree(store: &Store, job: &Job, grace: Duration) -> Result<(), CliError> {
    match store.stop_job(job.id, grace)? {
        Some(holder) => {
            println!(
                "stopped job {} (SIGTERM, SIGKILL after {} to what was left; its {})",
                job.id,
                duration(grace),
                holder.as_str()
            );
            Ok(())
        }
        None => Err(not_reachable(job)),
    }
}

#[cfg(not(unix))]
fn stop_tree(_store: &Store, _job: &Job, _grace: Duration) -> Result<(), CliError> {
    Err(CliError::new(
        "cancelling a job owned by another process is only supported on Unix",
    ))
}

fn not_reachable(job: &Job) -> CliError {
    CliError::new(format!(
        "job {}: no process of it can be reached safely (not started yet, already gone, or its \
         process group id was reused); nothing was signalled",
        job.id
    ))
}

/// `execra pause` / `execra resume`: freeze or thaw a running job's whole
/// tree ([`Store::pause_job`]).
pub fn pause(a: IdArg, paths: &Paths, paused: bool) -> Result<(), CliError> {
    let store = open_store(paths)?;
    let job = resolve(&store, &a.id)?;
    if job.state.is_terminal() {
        println!("job {} already ended: {}", job.id, job.state);
        return Ok(());
    }
    pause_tree(&store, &job, paused)
}

#[cfg(unix)]
fn pause_tree(store: &Store, job: &Job, paused: bool) -> Result<(), CliError> {
    match store.pause_job(job.id, paused)? {
        Some(holder) => {
            let what = if paused { "paused" } else { "resumed" };
            println!("{what} job {} (its {})", job.id, holder.as_str());
            Ok(())
        }
        None => Err(not_reachable(job)),
    }
}

#[cfg(not(unix))]
fn pause_tree(_store: &Store, _job: &Job, _paused: bool) -> Result<(), CliError> {
    Err(CliError::new("pause and resume are only supported on Unix"))
}

/// The `usage` line of `execra show`, from the job's stored
/// `resources_measured` event.
fn usage_line(events: &[Event]) -> Option<String> {
    events.iter().find_map(|e| match e {
        Event::ResourcesMeasured { usage, .. } => {
            let cpu = |us: u64| duration(Duration::from_micros(us));
            let mut s = format!(
                "cpu {} user, {} system",
                cpu(usage.user_cpu_us),
                cpu(usage.system_cpu_us)
            );
            if let Some(peak) = usage.peak_memory_bytes {
                s.push_str(&format!(", peak memory {:.1} MiB", peak as f64 / 1048576.0));
            }
            if !usage.whole_tree {
                s.push_str(" (main process only)");
            }
            Some(s)
        }
        _ => None,
    })
}
