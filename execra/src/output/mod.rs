//! Output: bytes from a pipe → lines, and where raw output is kept.
//!
//! [`LineSplitter`] turns a byte stream into [`Segment`]s: `\n` and `\r\n`
//! end a line; a bare `\r` ends a *redraw* (a progress bar drawing over
//! itself); a partial line that waits unfinished can be shown provisionally
//! (a prompt); a line longer than the cap is delivered in pieces, never
//! buffered whole. Decoding is lossy UTF-8, and a character split across two
//! reads decodes correctly.
//!
//! `rawlog` writes, reads back and follows the raw output logs of
//! [`RawOutputPolicy::Persist`](crate::RawOutputPolicy) (plain) and
//! `PersistGzipOnFinalize` (compressed while written); [`LogTail`] follows
//! one while it grows. Retention of those files lives in `crate::retention`.
//!
//! [`OutputRing`] is the bounded in-memory tail behind
//! [`RawOutputPolicy::MemoryOnly`](crate::RawOutputPolicy).

mod rawlog;
mod ring;
mod splitter;

pub use rawlog::LogTail;
pub use ring::{OutputLine, OutputRing};
pub use splitter::{LineSplitter, Segment, SegmentKind, DEFAULT_MAX_LINE};

pub(crate) use rawlog::{FileRawLogs, RawLog};
