//! Output: bytes from a pipe → lines, and where raw output is kept.
//!
//! [`LineSplitter`] turns a byte stream into [`Segment`]s: `\n` and `\r\n`
//! end a line; a bare `\r` ends a *redraw* (a progress bar drawing over
//! itself); a partial line that waits unfinished can be shown provisionally
//! (a prompt); a line longer than the cap is delivered in pieces, never
//! buffered whole. Decoding is lossy UTF-8, and a character split across two
//! reads decodes correctly.
//!
//! [`OutputRing`] is the bounded in-memory tail behind
//! [`RawOutputPolicy::MemoryOnly`](crate::RawOutputPolicy::MemoryOnly).

mod ring;
mod splitter;

pub use ring::{OutputLine, OutputRing};
pub use splitter::{LineSplitter, Segment, SegmentKind, DEFAULT_MAX_LINE};

use std::sync::Arc;

use crate::runtime::persist::RawLogs;
use crate::runtime::{Error, RuntimeConfig};

/// Open the raw-log directory if the configuration asks for one.
pub(crate) fn open_raw_logs(config: &RuntimeConfig) -> Result<Option<Arc<dyn RawLogs>>, Error> {
    if config.log_dir.is_some() {
        return Err(std::io::Error::other("raw logs are not supported by this build yet").into());
    }
    Ok(None)
}
