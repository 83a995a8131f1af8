//! Output: bytes from a pipe → lines, and where raw output is kept.
//!
//! [`LineSplitter`] turns a byte stream into [`Segment`]s: `\n` and `\r\n`
//! end a line; a bare `\r` ends a *redraw* (a progress bar drawing over
//! itself); a partial line that waits unfinished can be shown provisionally
//! (a prompt); a line longer than the cap is delivered in pieces, never
//! buffered whole. Decoding is lossy UTF-8, and a character split across two
//! reads decodes correctly.
//!
//! [`OutputDecoder`] comes before the splitter when a job's output is not
//! UTF-8 ([`Command::encoding`](crate::Command::encoding)): it turns GBK,
//! Shift_JIS, UTF-16… into UTF-8, completing characters split across reads.
//!
//! [`strip_ansi`] removes terminal escape sequences: lines of a PTY job pass
//! through it before subscribers and interpreters see them (the
//! `interpret` toolkit uses it too, as `execra::interpret::strip_ansi`).
//!
//! `rawlog` writes, reads back and follows the raw output logs of
//! [`RawOutputPolicy::Persist`](crate::RawOutputPolicy) (plain) and
//! `PersistGzipOnFinalize` (compressed while written); [`LogTail`] follows
//! one while it grows. Retention of those files lives in `crate::retention`.
//!
//! [`OutputRing`] is the bounded in-memory tail behind
//! [`RawOutputPolicy::MemoryOnly`](crate::RawOutputPolicy).

pub(crate) mod ansi;
mod decode;
#[cfg(feature = "gzip")]
mod gzip;
mod rawlog;
mod ring;
mod splitter;

pub use ansi::strip_ansi;
pub use decode::{encoding_for_label, OutputDecoder};
pub use rawlog::LogTail;
pub use ring::{OutputLine, OutputRing};
pub use splitter::{LineSplitter, Segment, SegmentKind, DEFAULT_MAX_LINE};

pub(crate) use rawlog::{FileRawLogs, RawLog};
