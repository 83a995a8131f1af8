//! One of a child's output pipes (stdout or stderr, or the master side of
//! its PTY) with its decoder and line splitter: the driver reads both the
//! same way.
//!
//! The fast path ([`Pipe::take`]): the complete lines of one read that are
//! plain — valid UTF-8, no bare `\r` (a `\r\n` is fine), no line over the
//! cap, and (the driver checks) no secret in them and no escape sequence
//! to strip — are not split one by one into `String`s: they become one
//! shared string, cut into ranges by the driver (see `log::Text`). The rest
//! of a read (the end of a line begun earlier, redraws, the unfinished last
//! line, or the whole read when it is not plain) goes through the
//! [`LineSplitter`] as before; both give the same lines
//! (`tests/streaming.rs` checks it against the splitter).

use std::sync::Arc;

use tokio::io::{AsyncRead, AsyncReadExt};

use crate::command::Launch;
use crate::event::Stream;
use crate::output::{LineSplitter, OutputDecoder, Segment};

/// Complete lines of one read, kept as one string: the lines are separated
/// by `\n` (a `\r` right before it belongs to the line ending), the last
/// one ends where the string does. Each line becomes a range of this one
/// allocation (see `log::Text`).
pub(super) struct Run {
    /// How many of the segments produced by the same read come before
    /// these lines.
    pub before: usize,
    /// The lines.
    pub chunk: Arc<str>,
}

/// `head` (bytes before a read's last `\n`) as text, if its lines can be
/// cut without the splitter: valid UTF-8, every `\r` part of a `\r\n`, and
/// no line over the cap (checked on the whole, which is at most one read).
fn plain_lines(head: &[u8], max_line: usize) -> Option<&str> {
    if head.len() > max_line {
        return None;
    }
    // A `\r` at the very end is followed by the read's last `\n`.
    let bare_cr =
        memchr::memchr_iter(b'\r', head).any(|i| head.get(i + 1).is_some_and(|&b| b != b'\n'));
    if bare_cr {
        return None;
    }
    std::str::from_utf8(head).ok()
}

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

    /// Split what [`read`](Self::read) returned; at EOF the unfinished line
    /// is delivered and the pipe closes.
    ///
    /// The read's complete lines come back as one [`Run`] when `plain`
    /// accepts their text (the driver's checks: no secret, no escape to
    /// strip) and they are plain: valid UTF-8, no bare `\r`, no line over
    /// the cap. Everything else (the end of a line begun in an earlier
    /// read, redraws, the unfinished last line, or all of it when the
    /// lines are not plain) goes through the [`LineSplitter`] into `segs`;
    /// [`Run::before`] says which of those come before the run.
    pub fn take(
        &mut self,
        read: Option<usize>,
        segs: &mut Vec<Segment>,
        plain: impl FnOnce(&str) -> bool,
    ) -> Option<Run> {
        let Some(n) = read else {
            self.close(segs);
            return None;
        };
        let mut rest = self.decoder.decode(&self.buf[..n]);
        if !self.splitter.is_clean() {
            // Finish the line begun in an earlier read the slow way.
            let Some(i) = memchr::memchr(b'\n', rest) else {
                self.splitter.push(rest, segs);
                return None;
            };
            self.splitter.push(&rest[..=i], segs);
            rest = &rest[i + 1..];
        }
        let Some(last) = memchr::memrchr(b'\n', rest) else {
            self.splitter.push(rest, segs);
            return None;
        };
        let (head, tail) = (&rest[..last], &rest[last + 1..]);
        match plain_lines(head, self.splitter.max_line()).filter(|t| plain(t)) {
            Some(text) => {
                let run = Run {
                    before: segs.len(),
                    chunk: Arc::from(text),
                };
                self.splitter.push(tail, segs);
                Some(run)
            }
            None => {
                self.splitter.push(rest, segs);
                None
            }
        }
    }

    /// Stop reading: deliver the unfinished line and close.
    pub fn close(&mut self, segs: &mut Vec<Segment>) {
        self.splitter.push(self.decoder.finish(), segs);
        self.splitter.finish(segs);
        self.reader = None;
    }
}
