//! Batched delivery to the frontend: the [`Message`] wire type and the
//! [`Batcher`] that coalesces output lines.
//!
//! A chatty job can print tens of thousands of lines per second; one IPC
//! message per line floods the webview. A batched sink instead sends
//! `output_batch` messages: every output line printed within a short interval
//! (or up to a number of lines) in one message. Everything else — phases,
//! progress, findings, `finalized`… — is *structural*: it is never delayed
//! behind output and never dropped. When a structural event arrives, the
//! pending output is flushed first, then the event is sent at once, so the
//! frontend sees exactly the job's event order.

use std::time::{Duration, SystemTime};

use serde::{Deserialize, Serialize};
use tokio::time::Instant;

use crate::event::{Event, Stream};
use crate::job::JobId;

/// How a batched sink coalesces output lines.
///
/// A batch is sent when its oldest line has waited `interval`, or when it
/// holds `max_lines` lines, whichever comes first; and always before any
/// structural event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchConfig {
    /// The longest a line waits before its batch is sent (default 25 ms).
    pub interval: Duration,
    /// The most lines in one batch (default 1000). `0` or `1` disables
    /// batching: every event is sent on its own, as [`Message::Event`].
    pub max_lines: usize,
}

impl Default for BatchConfig {
    fn default() -> Self {
        BatchConfig {
            interval: Duration::from_millis(25),
            max_lines: 1000,
        }
    }
}

impl BatchConfig {
    /// No batching: one [`Message::Event`] per event.
    pub const UNBATCHED: BatchConfig = BatchConfig {
        interval: Duration::ZERO,
        max_lines: 1,
    };

    /// `true` when this configuration batches anything.
    pub fn is_batching(&self) -> bool {
        self.max_lines > 1
    }
}

/// One line inside an [`OutputBatch`]: an `output_appended` event without
/// the repeated `kind` and `job`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
pub struct BatchLine {
    /// Which pipe.
    pub stream: Stream,
    /// The text, without its line ending.
    pub line: String,
    /// `true` for a provisional redraw of the current line (see
    /// [`Event::OutputAppended`]); omitted when `false`.
    #[serde(default, skip_serializing_if = "is_false")]
    #[cfg_attr(feature = "ts", ts(as = "Option<bool>", optional))]
    pub redraw: bool,
    /// When the line was read.
    #[cfg_attr(feature = "ts", ts(type = "SystemTime"))]
    pub at: SystemTime,
}

fn is_false(b: &bool) -> bool {
    !*b
}

/// The tag of an [`OutputBatch`]: always `"output_batch"` on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[serde(rename_all = "snake_case")]
pub enum OutputBatchKind {
    /// `"output_batch"`.
    #[default]
    OutputBatch,
}

/// Several consecutive `output_appended` events of one job, in order.
///
/// On the wire: `{"kind": "output_batch", "job": "…", "lines": [{"stream":
/// "stdout", "line": "…", "at": {…}}, …]}` (`redraw: true` only on redraws).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
pub struct OutputBatch {
    /// Always [`OutputBatchKind::OutputBatch`].
    pub kind: OutputBatchKind,
    /// The job.
    pub job: JobId,
    /// The lines, oldest first.
    pub lines: Vec<BatchLine>,
}

/// What a batched sink sends: a single [`Event`], or an [`OutputBatch`].
///
/// Both are JSON objects with a `kind` field (`"output_batch"` is not an
/// event kind), so a frontend switches on `kind` alone:
///
/// ```text
/// { "kind": "phase_entered", "job": "…", … }      // an Event, unchanged
/// { "kind": "output_batch",  "job": "…", "lines": [ … ] }
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[serde(untagged)]
// Messages are short-lived (built, serialized, dropped): boxing the event
// would only add an allocation per message.
#[allow(clippy::large_enum_variant)]
pub enum Message {
    /// One event (every structural event, and output when batching is off).
    Event(Event),
    /// Consecutive output lines.
    OutputBatch(OutputBatch),
}

impl Message {
    /// The job this message belongs to.
    pub fn job_id(&self) -> JobId {
        match self {
            Message::Event(e) => e.job_id(),
            Message::OutputBatch(b) => b.job,
        }
    }

    /// How many output lines this message carries (1 for an
    /// `output_appended` event, 0 for any other event).
    pub fn line_count(&self) -> usize {
        match self {
            Message::Event(e) => usize::from(e.is_output()),
            Message::OutputBatch(b) => b.lines.len(),
        }
    }

    /// `true` for the job's `finalized` event.
    pub fn is_finalized(&self) -> bool {
        matches!(self, Message::Event(e) if e.is_finalized())
    }
}

/// Coalesces one job's events into [`Message`]s.
///
/// Pure bookkeeping (no timers of its own): the caller pushes events, sends
/// what comes back, and calls [`flush_due`](Self::flush_due) when
/// [`deadline`](Self::deadline) passes.
#[derive(Debug)]
pub struct Batcher {
    config: BatchConfig,
    job: Option<JobId>,
    pending: Vec<BatchLine>,
    oldest: Option<Instant>,
}

impl Batcher {
    /// A batcher with this configuration.
    pub fn new(config: BatchConfig) -> Self {
        Batcher {
            config,
            job: None,
            pending: Vec::new(),
            oldest: None,
        }
    }

    /// Take one event; append what must be sent now to `out`, in order.
    pub fn push(&mut self, event: Event, out: &mut Vec<Message>) {
        if !self.config.is_batching() {
            out.push(Message::Event(event));
            return;
        }
        match event {
            Event::OutputAppended {
                job,
                stream,
                line,
                redraw,
                at,
            } => {
                if self.job.is_some_and(|j| j != job) {
                    self.flush_into(out);
                }
                self.job = Some(job);
                if self.pending.is_empty() {
                    self.oldest = Some(Instant::now());
                }
                self.pending.push(BatchLine {
                    stream,
                    line,
                    redraw,
                    at,
                });
                if self.pending.len() >= self.config.max_lines {
                    self.flush_into(out);
                }
            }
            structural => {
                self.flush_into(out);
                out.push(Message::Event(structural));
            }
        }
    }

    /// When the pending batch must be sent (`None` when nothing is pending).
    pub fn deadline(&self) -> Option<Instant> {
        self.oldest.map(|t| t + self.config.interval)
    }

    /// Send the pending batch if its deadline has passed at `now`.
    pub fn flush_due(&mut self, now: Instant, out: &mut Vec<Message>) {
        if self.deadline().is_some_and(|d| d <= now) {
            self.flush_into(out);
        }
    }

    /// Send the pending batch, if any.
    pub fn flush_into(&mut self, out: &mut Vec<Message>) {
        self.oldest = None;
        if self.pending.is_empty() {
            return;
        }
        let Some(job) = self.job else { return };
        out.push(Message::OutputBatch(OutputBatch {
            kind: OutputBatchKind::OutputBatch,
            job,
            lines: std::mem::take(&mut self.pending),
        }));
    }

    /// Lines waiting in the pending batch.
    pub fn pending_lines(&self) -> usize {
        self.pending.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::outcome::Outcome;

    fn line(job: JobId, n: usize) -> Event {
        Event::OutputAppended {
            job,
            stream: Stream::Stdout,
            line: n.to_string(),
            redraw: false,
            at: SystemTime::now(),
        }
    }

    #[test]
    fn structural_event_flushes_pending_output_first() {
        let job = JobId::new();
        let mut b = Batcher::new(BatchConfig {
            interval: Duration::from_secs(60),
            max_lines: 3,
        });
        let mut out = Vec::new();
        for n in 0..5 {
            b.push(line(job, n), &mut out);
        }
        assert_eq!(out.len(), 1, "one full batch of 3");
        assert_eq!(b.pending_lines(), 2);
        b.push(
            Event::Finalized {
                job,
                outcome: Outcome::Cancelled { findings: vec![] },
                at: SystemTime::now(),
            },
            &mut out,
        );
        assert_eq!(out.len(), 3);
        assert_eq!(out[1].line_count(), 2);
        assert!(out[2].is_finalized());
        let total: usize = out.iter().map(Message::line_count).sum();
        assert_eq!(total, 5);
    }

    #[test]
    fn unbatched_passes_events_through() {
        let job = JobId::new();
        let mut b = Batcher::new(BatchConfig::UNBATCHED);
        let mut out = Vec::new();
        b.push(line(job, 1), &mut out);
        assert!(matches!(
            out[0],
            Message::Event(Event::OutputAppended { .. })
        ));
        assert!(b.deadline().is_none());
    }

    #[test]
    fn wire_shape() {
        let job = JobId::new();
        let mut b = Batcher::new(BatchConfig::default());
        let mut out = Vec::new();
        b.push(line(job, 7), &mut out);
        b.flush_into(&mut out);
        let v = serde_json::to_value(&out[0]).expect("serializes");
        assert_eq!(v["kind"], "output_batch");
        assert_eq!(v["lines"][0]["line"], "7");
        assert!(v["lines"][0].get("redraw").is_none());
        let back: Message = serde_json::from_value(v).expect("deserializes");
        assert_eq!(back, out[0]);
    }
}
