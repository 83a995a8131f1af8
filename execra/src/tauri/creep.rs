//! "Creep": synthetic progress that eases toward the end of a phase's range
//! while the phase gives no real progress signal.
//!
//! Many tools print "Compiling…" and nothing else for a minute. With a
//! [`PhaseModel`] range per phase name (the same trait the rule interpreter
//! uses; see [`TaskBuilder::creep`](crate::tauri::TaskBuilder::creep)) (`"compile" → (0.2, 0.9)`), creep makes the frontend's bar move:
//! every [`CREEP_TICK`] it closes a fraction of the remaining gap to the
//! phase's end, never reaching it (it stops at 99 % of the range).
//!
//! Creep is purely cosmetic and frontend-side: its `progress_updated`
//! events go to the task's channels and observers only. It never changes the
//! job's real progress in the runtime (snapshots, history, other
//! subscribers).
//!
//! It stops as soon as the phase exits, a real progress fraction above the
//! phase's start arrives (the tool reports progress itself), or the job
//! exits, is cancelled or finalizes.

use std::time::Duration;

use crate::event::Event;
use crate::phase::{PhaseId, PhaseModel};

/// How often creep advances.
pub const CREEP_TICK: Duration = Duration::from_millis(250);

/// Share of the remaining gap closed per tick: about `1 - e^(-tick/8 s)`,
/// so 63 % of a range after 8 s, 95 % after 24 s.
const STEP: f32 = 0.031;

/// Creep never goes past this share of a phase's range.
const CAP: f32 = 0.99;

/// A real fraction this far above the phase's start counts as a real
/// progress signal (the phase boundary itself does not).
const EPSILON: f32 = 1e-4;

#[derive(Debug, Clone, Copy)]
struct Active {
    phase: PhaseId,
    start: f32,
    end: f32,
    value: f32,
}

/// The creep state of one job. Feed it the job's real events with
/// [`observe`](Self::observe) and call [`tick`](Self::tick) every
/// [`CREEP_TICK`].
pub struct Creep {
    model: Box<dyn PhaseModel>,
    active: Option<Active>,
}

impl std::fmt::Debug for Creep {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Creep")
            .field("active", &self.active.map(|a| (a.start, a.end, a.value)))
            .finish()
    }
}

impl Creep {
    /// Creep with a model mapping a phase name to its `(start, end)` range
    /// (fractions of the whole job; `None`: no creep in that phase).
    pub fn new(model: impl PhaseModel + 'static) -> Self {
        Self::boxed(Box::new(model))
    }

    pub(crate) fn boxed(model: Box<dyn PhaseModel>) -> Self {
        Creep {
            model,
            active: None,
        }
    }

    /// `true` while a phase with a range is open and has had no real
    /// progress signal.
    pub fn is_active(&self) -> bool {
        self.active.is_some()
    }

    /// `true` while [`tick`](Self::tick) can still move the value (active
    /// and not yet at its cap).
    pub fn wants_tick(&self) -> bool {
        self.active
            .is_some_and(|a| a.value < a.start + (a.end - a.start) * CAP)
    }

    /// Take one real event of the job into account.
    pub fn observe(&mut self, event: &Event) {
        match event {
            Event::PhaseEntered { phase, name, .. } => {
                let range = self.model.range(name).and_then(|(s, e)| {
                    let (s, e) = (s.clamp(0.0, 1.0), e.clamp(0.0, 1.0));
                    (s.is_finite() && e.is_finite() && e > s).then_some((s, e))
                });
                self.active = range.map(|(start, end)| Active {
                    phase: *phase,
                    start,
                    end,
                    value: start,
                });
            }
            Event::PhaseExited { phase, .. } if self.active.is_some_and(|a| a.phase == *phase) => {
                self.active = None;
            }
            Event::ProgressUpdated { progress, .. } => {
                if let (Some(a), Some(f)) = (&mut self.active, progress.as_fraction()) {
                    if f > a.start + EPSILON {
                        // The tool reports real progress: stop pretending.
                        self.active = None;
                    } else {
                        a.value = a.value.max(f);
                    }
                }
            }
            Event::Exited { .. } | Event::Cancelled { .. } | Event::Finalized { .. } => {
                self.active = None;
            }
            _ => {}
        }
    }

    /// Advance one tick: the synthetic fraction to report, if it moved.
    pub fn tick(&mut self) -> Option<f32> {
        let a = self.active.as_mut()?;
        let cap = a.start + (a.end - a.start) * CAP;
        let next = (a.value + (a.end - a.value) * STEP).min(cap);
        if next <= a.value {
            return None;
        }
        a.value = next;
        Some(next)
    }
}

#[cfg(test)]
mod tests {
    use std::time::SystemTime;

    use super::*;
    use crate::job::JobId;
    use crate::progress::Progress;

    fn model() -> impl PhaseModel {
        |name: &str| match name {
            "build" => Some((0.2, 0.8)),
            _ => None,
        }
    }

    fn entered(job: JobId, phase: PhaseId, name: &str) -> Event {
        Event::PhaseEntered {
            job,
            phase,
            name: name.into(),
            label: None,
            at: SystemTime::now(),
        }
    }

    #[test]
    fn eases_toward_the_end_and_stops_short() {
        let job = JobId::new();
        let phase = PhaseId::new();
        let mut c = Creep::new(model());
        assert_eq!(c.tick(), None);
        c.observe(&entered(job, phase, "build"));
        let mut last = 0.2;
        for _ in 0..10_000 {
            if let Some(v) = c.tick() {
                assert!(v > last && v < 0.8, "{v}");
                last = v;
            }
        }
        assert!(last > 0.79 && last < 0.8, "{last}");
        c.observe(&Event::PhaseExited {
            job,
            phase,
            at: SystemTime::now(),
        });
        assert_eq!(c.tick(), None);
    }

    #[test]
    fn real_progress_and_rangeless_phases_stop_it() {
        let job = JobId::new();
        let mut c = Creep::new(model());
        c.observe(&entered(job, PhaseId::new(), "other"));
        assert!(!c.is_active());
        c.observe(&entered(job, PhaseId::new(), "build"));
        assert!(c.is_active());
        // The boundary fraction (the phase start) is not a real signal.
        c.observe(&Event::ProgressUpdated {
            job,
            progress: Progress::fraction(0.2),
            at: SystemTime::now(),
        });
        assert!(c.is_active());
        c.observe(&Event::ProgressUpdated {
            job,
            progress: Progress::fraction(0.5),
            at: SystemTime::now(),
        });
        assert!(!c.is_active());
    }
}
