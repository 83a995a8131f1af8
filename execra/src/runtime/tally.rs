//! The tally: what an interpreter said about a job so far (open phases,
//! findings, summary, the first known error) and the verdict table that turns
//! it, the exit code and the stop reason into an [`Outcome`].
//!
//! Plain data, no tokio and no I/O: the driver feeds it interpreter events
//! and applies the snapshot changes it asks for; the verdict rules of SPEC §4
//! are [`Tally::verdict`] and are unit-tested row by row below.

use std::time::SystemTime;

use crate::event::Event;
use crate::finding::Finding;
use crate::interpreter::InterpreterEvent;
use crate::job::{Job, JobId};
use crate::outcome::{ExitCode, FailureReason, Outcome};
use crate::phase::{Phase, PhaseId};

use super::stop::StopReason;

/// Phases, findings, summary and known error of one job.
#[derive(Debug, Default)]
pub(crate) struct Tally {
    phases: Vec<Phase>,
    findings: Vec<Finding>,
    summary: Option<String>,
    known_error: Option<(String, String)>,
    /// `ready` was already reported (only the first counts).
    ready: bool,
}

impl Tally {
    /// The open phases, outermost first.
    pub fn phases(&self) -> &[Phase] {
        &self.phases
    }

    /// Apply one interpreter event: update `snapshot` and return the event to
    /// publish (`Ok(None)`: nothing to publish, e.g. a summary). `Err` is a
    /// misuse (closing or updating a phase when none is open): nothing
    /// changed, and the message becomes an `interpreter_error`.
    pub fn apply(
        &mut self,
        job: JobId,
        ie: InterpreterEvent,
        at: SystemTime,
        snapshot: &mut Job,
    ) -> Result<Option<Event>, String> {
        let ev = match ie {
            InterpreterEvent::EnterPhase { name, label } => {
                let phase = PhaseId::new();
                self.phases.push(Phase {
                    id: phase,
                    name: name.clone(),
                    label: label.clone(),
                    entered_at: at,
                });
                snapshot.current_phase = Some(phase);
                Event::PhaseEntered {
                    job,
                    phase,
                    name,
                    label,
                    at,
                }
            }
            InterpreterEvent::UpdatePhase { label } => {
                let Some(p) = self.phases.last_mut() else {
                    return Err(format!(
                        "UpdatePhase({label:?}) with no open phase was ignored"
                    ));
                };
                p.label = Some(label.clone());
                Event::PhaseUpdated {
                    job,
                    phase: p.id,
                    label,
                    at,
                }
            }
            InterpreterEvent::ExitPhase => {
                let Some(p) = self.phases.pop() else {
                    return Err("ExitPhase with no open phase was ignored".into());
                };
                snapshot.current_phase = self.phases.last().map(|p| p.id);
                Event::PhaseExited {
                    job,
                    phase: p.id,
                    at,
                }
            }
            InterpreterEvent::Progress { progress } => {
                let progress = progress.sanitized();
                snapshot.progress = progress.clone();
                Event::ProgressUpdated { job, progress, at }
            }
            InterpreterEvent::Label { text } => {
                snapshot.label = Some(text.clone());
                Event::LabelUpdated {
                    job,
                    label: text,
                    at,
                }
            }
            InterpreterEvent::Warning { code, message } => Event::WarningDetected {
                job,
                code,
                message,
                at,
            },
            InterpreterEvent::KnownError { code, message } => {
                if self.known_error.is_none() {
                    self.known_error = Some((code.clone(), message.clone()));
                }
                Event::KnownErrorDetected {
                    job,
                    code,
                    message,
                    at,
                }
            }
            InterpreterEvent::Finding { finding } => {
                self.findings.push(finding.clone());
                Event::FindingEmitted { job, finding, at }
            }
            InterpreterEvent::Prompt { prompt } => Event::PromptDetected { job, prompt, at },
            InterpreterEvent::Ready { message } => {
                if std::mem::replace(&mut self.ready, true) {
                    return Ok(None);
                }
                Event::Ready { job, message, at }
            }
            InterpreterEvent::Summary { text } => {
                self.summary = Some(text);
                return Ok(None);
            }
        };
        Ok(Some(ev))
    }

    /// Close every phase still open, innermost first; returns their
    /// `phase_exited` events.
    pub fn close_phases(&mut self, job: JobId, at: SystemTime, snapshot: &mut Job) -> Vec<Event> {
        snapshot.current_phase = None;
        std::iter::from_fn(|| self.phases.pop())
            .map(|p| Event::PhaseExited {
                job,
                phase: p.id,
                at,
            })
            .collect()
    }

    /// The verdict (SPEC §4): cancelled → `Cancelled`; timed out →
    /// `Failed{Timeout}`; exit 0 → `Succeeded`; else the first known error,
    /// else the signal, else the non-zero code. Findings and the summary go
    /// into the outcome.
    pub fn verdict(&mut self, stopped: Option<StopReason>, exit: &ExitCode) -> Outcome {
        let findings = std::mem::take(&mut self.findings);
        let summary = self.summary.take();
        let reason = match stopped {
            Some(StopReason::Cancel) => return Outcome::Cancelled { findings },
            Some(StopReason::Timeout) => FailureReason::Timeout,
            Some(StopReason::Idle { after_ms }) => FailureReason::IdleTimeout { after_ms },
            None if exit.is_success() => return Outcome::Succeeded { summary, findings },
            None => match (self.known_error.take(), exit.signal, exit.code) {
                (Some((code, message)), _, _) => FailureReason::KnownError { code, message },
                (None, Some(signal), _) => FailureReason::Signal { signal },
                (None, None, Some(code)) => FailureReason::NonZeroExit { code },
                (None, None, None) => FailureReason::NonZeroExit { code: -1 },
            },
        };
        Outcome::Failed {
            reason,
            summary,
            findings,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::command::CommandSpec;
    use crate::progress::Progress;

    fn job() -> Job {
        Job::queued(JobId::new(), CommandSpec::new("x"))
    }

    fn known(t: &mut Tally, j: &mut Job) {
        let ie = InterpreterEvent::KnownError {
            code: "E1".into(),
            message: "disk full".into(),
        };
        assert!(t.apply(j.id, ie, SystemTime::now(), j).is_ok());
    }

    fn reason(o: Outcome) -> FailureReason {
        match o {
            Outcome::Failed { reason, .. } => reason,
            other => panic!("expected a failure, got {other:?}"),
        }
    }

    #[test]
    fn cancelled_wins_over_everything() {
        let (mut t, mut j) = (Tally::default(), job());
        known(&mut t, &mut j);
        let o = t.verdict(Some(StopReason::Cancel), &ExitCode::from_code(0));
        assert!(matches!(o, Outcome::Cancelled { .. }));
    }

    #[test]
    fn timeout_is_a_timeout_failure_even_with_exit_zero() {
        let mut t = Tally::default();
        let o = t.verdict(Some(StopReason::Timeout), &ExitCode::from_code(0));
        assert_eq!(reason(o), FailureReason::Timeout);
    }

    #[test]
    fn exit_zero_succeeds_even_with_a_known_error() {
        let (mut t, mut j) = (Tally::default(), job());
        known(&mut t, &mut j);
        assert!(t.verdict(None, &ExitCode::from_code(0)).is_success());
    }

    #[test]
    fn known_error_beats_signal_and_code() {
        for exit in [ExitCode::from_code(3), ExitCode::from_signal(9)] {
            let (mut t, mut j) = (Tally::default(), job());
            known(&mut t, &mut j);
            assert_eq!(
                reason(t.verdict(None, &exit)),
                FailureReason::KnownError {
                    code: "E1".into(),
                    message: "disk full".into()
                }
            );
        }
    }

    #[test]
    fn first_known_error_is_kept() {
        let (mut t, mut j) = (Tally::default(), job());
        known(&mut t, &mut j);
        let second = InterpreterEvent::KnownError {
            code: "E2".into(),
            message: "later".into(),
        };
        assert!(t.apply(j.id, second, SystemTime::now(), &mut j).is_ok());
        assert!(matches!(
            reason(t.verdict(None, &ExitCode::from_code(1))),
            FailureReason::KnownError { code, .. } if code == "E1"
        ));
    }

    #[test]
    fn signal_then_code_then_unknown() {
        let mut t = Tally::default();
        assert_eq!(
            reason(t.verdict(None, &ExitCode::from_signal(15))),
            FailureReason::Signal { signal: 15 }
        );
        assert_eq!(
            reason(t.verdict(None, &ExitCode::from_code(2))),
            FailureReason::NonZeroExit { code: 2 }
        );
        let unknown = ExitCode {
            code: None,
            signal: None,
        };
        assert_eq!(
            reason(t.verdict(None, &unknown)),
            FailureReason::NonZeroExit { code: -1 }
        );
    }

    #[test]
    fn findings_and_summary_reach_the_outcome() {
        let (mut t, mut j) = (Tally::default(), job());
        let at = SystemTime::now();
        let f = InterpreterEvent::Finding {
            finding: Finding::warning("W1", "careful"),
        };
        assert!(t.apply(j.id, f, at, &mut j).is_ok());
        let s = InterpreterEvent::Summary { text: "ok".into() };
        assert_eq!(t.apply(j.id, s, at, &mut j), Ok(None));
        match t.verdict(None, &ExitCode::from_code(0)) {
            Outcome::Succeeded { summary, findings } => {
                assert_eq!(summary.as_deref(), Some("ok"));
                assert_eq!(findings.len(), 1);
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn phase_misuse_is_an_error_and_changes_nothing() {
        let (mut t, mut j) = (Tally::default(), job());
        let at = SystemTime::now();
        assert!(t
            .apply(j.id, InterpreterEvent::ExitPhase, at, &mut j)
            .is_err());
        let up = InterpreterEvent::UpdatePhase { label: "x".into() };
        assert!(t.apply(j.id, up, at, &mut j).is_err());
        assert!(t.phases().is_empty());
        assert_eq!(j.current_phase, None);
    }

    #[test]
    fn phases_nest_and_close_innermost_first() {
        let (mut t, mut j) = (Tally::default(), job());
        let at = SystemTime::now();
        for name in ["outer", "inner"] {
            let ie = InterpreterEvent::EnterPhase {
                name: name.into(),
                label: None,
            };
            assert!(t.apply(j.id, ie, at, &mut j).is_ok());
        }
        let inner = t.phases()[1].id;
        assert_eq!(j.current_phase, Some(inner));
        let closed = t.close_phases(j.id, at, &mut j);
        assert!(matches!(closed[0], Event::PhaseExited { phase, .. } if phase == inner));
        assert_eq!(closed.len(), 2);
        assert_eq!(j.current_phase, None);
    }

    #[test]
    fn progress_is_clamped_into_the_snapshot() {
        let (mut t, mut j) = (Tally::default(), job());
        let ie = InterpreterEvent::Progress {
            progress: Progress::Determinate(crate::progress::ProgressMetric::Fraction {
                value: 7.0,
            }),
        };
        assert!(t.apply(j.id, ie, SystemTime::now(), &mut j).is_ok());
        assert_eq!(j.progress.as_fraction(), Some(1.0));
    }
}
