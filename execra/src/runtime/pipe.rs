//! One of a child's output pipes (stdout or stderr) with its line splitter:
//! the driver reads both the same way.

use tokio::io::{AsyncRead, AsyncReadExt};

use crate::event::Stream;
use crate::output::{LineSplitter, Segment};

/// One of the child's output pipes with its line splitter.
pub(super) struct Pipe<R> {
    pub stream: Stream,
    reader: Option<R>,
    pub splitter: LineSplitter,
    buf: Box<[u8]>,
}

impl<R: AsyncRead + Unpin> Pipe<R> {
    pub fn new(stream: Stream, reader: Option<R>, max_line: usize) -> Self {
        Pipe {
            stream,
            reader,
            splitter: LineSplitter::new(max_line),
            buf: vec![0u8; 64 * 1024].into_boxed_slice(),
        }
    }

    pub fn is_open(&self) -> bool {
        self.reader.is_some()
    }

    /// Read once: `Some(n)` bytes, or `None` at EOF / on error.
    pub async fn read(&mut self) -> Option<usize> {
        let r = self.reader.as_mut()?;
        match r.read(&mut self.buf).await {
            Ok(0) | Err(_) => None,
            Ok(n) => Some(n),
        }
    }

    /// Split what [`read`](Self::read) returned into segments; at EOF the
    /// unfinished line is delivered and the pipe closes.
    pub fn take(&mut self, read: Option<usize>, segs: &mut Vec<Segment>) {
        match read {
            Some(n) => self.splitter.push(&self.buf[..n], segs),
            None => self.close(segs),
        }
    }

    /// Stop reading: deliver the unfinished line and close.
    pub fn close(&mut self, segs: &mut Vec<Segment>) {
        self.splitter.finish(segs);
        self.reader = None;
    }
}
