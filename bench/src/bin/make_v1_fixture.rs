//! Writes a history file in the format of the published `execra` 1.1.0, for
//! the upgrade tests (`execra/tests/fixtures/history-1.1.sqlite`).
//!
//! ```text
//! cargo run -p execra-bench --bin make-v1-fixture -- execra/tests/fixtures/history-1.1.sqlite
//! ```
//!
//! Every row is written by the published crate itself (`execra_pub`): one
//! job is run for real by its runtime (`sh -c 'echo …'`), the others are
//! written through its `Store` exactly as its runtime would, so that the
//! file covers, deterministically:
//!
//! - jobs with and without labels and tags;
//! - every outcome kind: succeeded, failed with each `FailureReason`
//!   (`non_zero_exit`, `signal`, `known_error`, `spawn_failed`, `timeout`),
//!   cancelled — plus one job left `running` (its host crashed);
//! - every event kind 1.1 stores (all but `output_appended`);
//! - findings of each severity, with each action and related-entity kind.
//!
//! The file replaces any existing file at the path. Times are fixed (the
//! first job is created at 2025-01-01T00:00:00Z, ids are fixed), except the
//! really-run job's, so the tests can assert exact values.

use std::path::PathBuf;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use execra_pub::command::CommandSpec;
use execra_pub::finding::{Action, Finding, RelatedEntity, Severity};
use execra_pub::outcome::{ExitCode, FailureReason, Outcome};
use execra_pub::phase::PhaseId;
use execra_pub::progress::{Progress, ProgressMetric};
use execra_pub::store::Store;
use execra_pub::{Event, Job, JobId, JobState, Stream};

/// 2025-01-01T00:00:00Z in Unix milliseconds.
const T0_MS: u64 = 1_735_689_600_000;

fn at(ms: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_millis(T0_MS + ms)
}

fn id(n: u128) -> JobId {
    JobId(uuid::Uuid::from_u128(
        0x0194_1a2b_0000_7000_8000_0000_0000_0000 | n,
    ))
}

fn spec(program: &str, args: &[&str], label: Option<&str>, tags: &[&str]) -> CommandSpec {
    CommandSpec {
        program: program.into(),
        args: args.iter().map(|s| s.to_string()).collect(),
        env: vec![("LANG".into(), "C".into())],
        env_clear: false,
        cwd: Some(PathBuf::from("/tmp")),
        label: label.map(Into::into),
        tags: tags.iter().map(|s| s.to_string()).collect(),
        timeout: Some(Duration::from_secs(30)),
        hide_window: false,
    }
}

fn finding(severity: Severity, code: &str, ms: u64) -> Finding {
    let (action, related) = match severity {
        Severity::Info => (None, Some(RelatedEntity::Package("ripgrep".into()))),
        Severity::Recommendation => (
            Some(Action::command("Update", "scoop", ["update", "ripgrep"])),
            Some(RelatedEntity::File(PathBuf::from("/tmp/scoop.json"))),
        ),
        Severity::Warning => (
            Some(Action::link("Docs", "https://example.com/docs")),
            Some(RelatedEntity::Url("https://example.com".into())),
        ),
        Severity::Error => (
            Some(Action::instruction("Fix", "free some disk space")),
            Some(RelatedEntity::Other("disk".into())),
        ),
    };
    Finding {
        severity,
        code: code.into(),
        message: format!("{code} happened"),
        action,
        related,
        at: at(ms),
    }
}

/// One job: its final snapshot plus its event rows.
struct Fixture {
    job: Job,
    events: Vec<Event>,
}

fn terminal(
    n: u128,
    cmd: CommandSpec,
    state: JobState,
    exit: Option<ExitCode>,
    outcome: Outcome,
) -> Fixture {
    let job = id(n);
    let base = n as u64 * 1000;
    let mut events = vec![
        Event::JobCreated {
            job,
            command: cmd.clone(),
            at: at(base),
        },
        Event::JobStarted {
            job,
            pid: 4242,
            at: at(base + 1),
        },
    ];
    let findings = match &outcome {
        Outcome::Succeeded { findings, .. }
        | Outcome::Failed { findings, .. }
        | Outcome::Cancelled { findings } => findings.clone(),
    };
    for finding in findings {
        events.push(Event::FindingEmitted {
            job,
            at: finding.at,
            finding,
        });
    }
    if let Some(code) = exit {
        events.push(Event::Exited {
            job,
            code,
            at: at(base + 5),
        });
    }
    if state == JobState::Cancelled {
        events.push(Event::Cancelled {
            job,
            at: at(base + 6),
        });
    }
    events.push(Event::Finalized {
        job,
        outcome: outcome.clone(),
        at: at(base + 7),
    });
    Fixture {
        job: Job {
            id: job,
            label: cmd.label.clone(),
            command: cmd,
            created_at: at(base),
            started_at: Some(at(base + 1)),
            state,
            current_phase: None,
            progress: Progress::Unknown,
            exit,
            outcome: Some(outcome),
        },
        events,
    }
}

/// The job that has every stored event kind and every finding severity.
fn everything() -> Fixture {
    let job = id(1);
    let cmd = spec(
        "scoop",
        &["install", "ripgrep"],
        Some("Install ripgrep"),
        &["install", "pinned"],
    );
    let phase = PhaseId(uuid::Uuid::from_u128(0xabcd));
    let findings: Vec<Finding> = [
        (Severity::Info, "already_cached"),
        (Severity::Recommendation, "update_available"),
        (Severity::Warning, "slow_mirror"),
        (Severity::Error, "disk_low"),
    ]
    .into_iter()
    .enumerate()
    .map(|(i, (s, c))| finding(s, c, 1000 + 20 + i as u64))
    .collect();
    let mut events = vec![
        Event::JobCreated {
            job,
            command: cmd.clone(),
            at: at(1000),
        },
        Event::JobStarted {
            job,
            pid: 4242,
            at: at(1001),
        },
        Event::PhaseEntered {
            job,
            phase,
            name: "download".into(),
            label: Some("Downloading".into()),
            at: at(1002),
        },
        Event::PhaseUpdated {
            job,
            phase,
            label: "Downloading (mirror 2)".into(),
            at: at(1003),
        },
        Event::ProgressUpdated {
            job,
            progress: Progress::Indeterminate {
                hint: Some("resolving".into()),
            },
            at: at(1004),
        },
        Event::ProgressUpdated {
            job,
            progress: Progress::Determinate(ProgressMetric::Fraction { value: 0.5 }),
            at: at(1005),
        },
        Event::ProgressUpdated {
            job,
            progress: Progress::Determinate(ProgressMetric::Count { done: 3, total: 4 }),
            at: at(1006),
        },
        Event::ProgressUpdated {
            job,
            progress: Progress::Determinate(ProgressMetric::Bytes {
                done: 1024,
                total: Some(2048),
            }),
            at: at(1007),
        },
        Event::LabelUpdated {
            job,
            label: "Install ripgrep 14".into(),
            at: at(1008),
        },
        Event::OutputAppended {
            job,
            stream: Stream::Stdout,
            line: "not stored by 1.1".into(),
            at: at(1009),
        },
        Event::WarningDetected {
            job,
            code: Some("W1".into()),
            message: "mirror is slow".into(),
            at: at(1010),
        },
        Event::WarningDetected {
            job,
            code: None,
            message: "uncoded warning".into(),
            at: at(1011),
        },
        Event::KnownErrorDetected {
            job,
            code: "E_RETRY".into(),
            message: "retrying download".into(),
            at: at(1012),
        },
        Event::PromptDetected {
            job,
            prompt: "Continue? [y/N]".into(),
            at: at(1013),
        },
        Event::InterpreterError {
            job,
            interpreter: "scoop".into(),
            error: "unparsable line".into(),
            line: Some("???".into()),
            at: at(1014),
        },
        Event::PhaseExited {
            job,
            phase,
            at: at(1015),
        },
    ];
    for f in &findings {
        events.push(Event::FindingEmitted {
            job,
            finding: f.clone(),
            at: f.at,
        });
    }
    let outcome = Outcome::Succeeded {
        summary: Some("ripgrep installed".into()),
        findings,
    };
    events.push(Event::Exited {
        job,
        code: ExitCode::from_code(0),
        at: at(1030),
    });
    events.push(Event::Finalized {
        job,
        outcome: outcome.clone(),
        at: at(1031),
    });
    Fixture {
        job: Job {
            id: job,
            label: Some("Install ripgrep 14".into()),
            command: cmd,
            created_at: at(1000),
            started_at: Some(at(1001)),
            state: JobState::Finalized,
            current_phase: None,
            progress: Progress::Determinate(ProgressMetric::Bytes {
                done: 1024,
                total: Some(2048),
            }),
            exit: Some(ExitCode::from_code(0)),
            outcome: Some(outcome),
        },
        events,
    }
}

fn fixtures() -> Vec<Fixture> {
    let failed = |reason| Outcome::Failed {
        reason,
        summary: None,
        findings: Vec::new(),
    };
    let mut v = vec![everything()];
    v.push(terminal(
        2,
        spec("sh", &["-c", "exit 2"], Some("Exit 2"), &["ci"]),
        JobState::Finalized,
        Some(ExitCode::from_code(2)),
        failed(FailureReason::NonZeroExit { code: 2 }),
    ));
    v.push(terminal(
        3,
        spec("sleep", &["100"], None, &[]),
        JobState::Finalized,
        Some(ExitCode::from_signal(9)),
        failed(FailureReason::Signal { signal: 9 }),
    ));
    v.push(terminal(
        4,
        spec(
            "scoop",
            &["install", "nope"],
            Some("Install nope"),
            &["install"],
        ),
        JobState::Finalized,
        Some(ExitCode::from_code(1)),
        Outcome::Failed {
            reason: FailureReason::KnownError {
                code: "not_found".into(),
                message: "Couldn't find manifest for 'nope'".into(),
            },
            summary: Some("nope is not in any bucket".into()),
            findings: vec![finding(Severity::Error, "not_found", 4004)],
        },
    ));
    v.push(terminal(
        5,
        spec("does-not-exist", &[], Some("Missing tool"), &[]),
        JobState::Finalized,
        None,
        failed(FailureReason::SpawnFailed {
            error: "No such file or directory (os error 2)".into(),
        }),
    ));
    v.push(terminal(
        6,
        spec("sleep", &["60"], Some("Too slow"), &["ci", "slow"]),
        JobState::Finalized,
        Some(ExitCode::from_signal(9)),
        failed(FailureReason::Timeout),
    ));
    v.push(terminal(
        7,
        spec("sleep", &["60"], Some("Cancelled by user"), &[]),
        JobState::Cancelled,
        Some(ExitCode::from_signal(15)),
        Outcome::Cancelled {
            findings: vec![finding(Severity::Info, "partial_download", 7003)],
        },
    ));
    // A job whose 1.1 host crashed while it ran: `running` for ever in 1.1.
    let job = id(8);
    let cmd = spec("sleep", &["300"], Some("Crashed host"), &["stranded"]);
    v.push(Fixture {
        events: vec![
            Event::JobCreated {
                job,
                command: cmd.clone(),
                at: at(8000),
            },
            Event::JobStarted {
                job,
                pid: 4343,
                at: at(8001),
            },
        ],
        job: Job {
            id: job,
            label: cmd.label.clone(),
            command: cmd,
            created_at: at(8000),
            started_at: Some(at(8001)),
            state: JobState::Running,
            current_phase: None,
            progress: Progress::Unknown,
            exit: None,
            outcome: None,
        },
    });
    v
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let path = PathBuf::from(
        std::env::args()
            .nth(1)
            .ok_or("usage: make-v1-fixture <output.sqlite>")?,
    );
    for suffix in ["", "-wal", "-shm"] {
        let mut p = path.clone().into_os_string();
        p.push(suffix);
        match std::fs::remove_file(&p) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(format!("cannot replace {p:?}: {e}").into()),
        }
    }
    // One job run for real by the published runtime (its own timestamps),
    // first: building a 1.1 runtime finalizes every `running` job.
    let rt = execra_pub::Runtime::builder().history(&path).build()?;
    let outcome = rt
        .spawn(
            execra_pub::Command::new("sh")
                .args(["-c".to_string(), "echo hello from 1.1".to_string()])
                .label("Real 1.1 job")
                .tags(["real".to_string()]),
        )?
        .await;
    if !outcome.is_success() {
        return Err(format!("the real 1.1 job failed: {outcome:?}").into());
    }
    drop(rt);
    {
        let store = Store::open(&path)?;
        for f in fixtures() {
            for e in &f.events {
                store.insert_event(e)?;
            }
            store.upsert_job(&f.job)?;
        }
    }
    // Fold the write-ahead log into the file so that one file is the fixture.
    let conn = rusqlite::Connection::open(&path)?;
    conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))?;
    conn.pragma_update(None, "journal_mode", "DELETE")?;
    conn.execute_batch("VACUUM")?;
    drop(conn);
    println!("wrote {}", path.display());
    Ok(())
}
