//! One of a child's output pipes (stdout or stderr, or the master side of
//! its PTY) with its decoder and line splitter: the driver reads both the
//! same way.

use tokio::io::{AsyncRead, AsyncReadExt};

use crate::command::Launch;
use crate::event::Stream;
use crate::output::{LineSplitter, OutputDecoder, Segment};

/// One of the child's output pipes (or its PTY) with its decoder and line
/// splitter.
pub(super) struct Pipe<R> {
    pub stream: Stream,
    reader: Option<R>,
    decoder: OutputDecoder,
    pub splitter: LineSplitter,
    buf: Box<[u8]>,
}

/// What a job's stdout is read from: a pipe, or the master of its PTY.
pub(super) type Reader = Box<dyn AsyncRead + Unpin + Send>;

impl<R: AsyncRead + Unpin> Pipe<R> {
    pub fn new(stream: Stream, reader: Option<R>, launch: &Launch, max_line: usize) -> Self {
        Pipe {
            stream,
            reader,
            decoder: OutputDecoder::new(launch.encoding),
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
            Some(n) => self
                .splitter
                .push(self.decoder.decode(&self.buf[..n]), segs),
            None => self.close(segs),
        }
    }

    /// Stop reading: deliver the unfinished line and close.
    pub fn close(&mut self, segs: &mut Vec<Segment>) {
        self.splitter.push(self.decoder.finish(), segs);
        self.splitter.finish(segs);
        self.reader = None;
    }
}
