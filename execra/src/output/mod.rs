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
//! `rawlog` writes, reads back and prunes the raw output logs of
//! [`RawOutputPolicy::Persist`].
//!
//! [`OutputRing`] is the bounded in-memory tail behind
//! [`RawOutputPolicy::MemoryOnly`].

pub(crate) mod ansi;
mod decode;
mod rawlog;
mod ring;
mod splitter;

pub use ansi::strip_ansi;
pub use decode::{encoding_for_label, OutputDecoder};
pub use ring::{OutputLine, OutputRing};
pub use splitter::{LineSplitter, Segment, SegmentKind, DEFAULT_MAX_LINE};

use std::sync::Arc;

use crate::runtime::persist::RawLogs;
use crate::runtime::{Error, RawOutputPolicy, RuntimeConfig};

pub(crate) use rawlog::prune_raw_logs;

/// Open the raw-log directory if the configuration asks for one (creating
/// it). Without history, logs past retention are pruned here, at build.
pub(crate) fn open_raw_logs(config: &RuntimeConfig) -> Result<Option<Arc<dyn RawLogs>>, Error> {
    let gzip = match config.raw_policy() {
        RawOutputPolicy::Disabled | RawOutputPolicy::MemoryOnly => return Ok(None),
        RawOutputPolicy::Persist => false,
        #[cfg(feature = "gzip")]
        RawOutputPolicy::PersistGzipOnFinalize => true,
    };
    let Some(dir) = &config.log_dir else {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            "a persisted raw-output policy needs a log directory (RuntimeBuilder::log_dir)",
        )
        .into());
    };
    let self_prune = config.history.is_none();
    let logs = rawlog::FileRawLogs::new(dir.clone(), gzip, config.retention.clone(), self_prune)?;
    if self_prune {
        logs.prune_now()?;
    }
    Ok(Some(Arc::new(logs)))
}
