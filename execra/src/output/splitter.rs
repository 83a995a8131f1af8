//! The line splitter. See the [module docs](super).

/// Default cap on one line: 1 MiB. Longer lines arrive in pieces.
pub const DEFAULT_MAX_LINE: usize = 1024 * 1024;

/// How a segment ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SegmentKind {
    /// A finished line: ended by `\n`, `\r\n`, end-of-file, or the length cap.
    Line,
    /// A provisional view of the current line: text before a bare `\r`, or
    /// a partial line shown after waiting (see [`LineSplitter::flush_idle`]).
    Redraw,
}

/// A piece of decoded output.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Segment {
    /// The text, without line ending.
    pub text: String,
    /// How it ended.
    pub kind: SegmentKind,
    /// `true` when this [`SegmentKind::Line`] was cut at the length cap: the
    /// next segment of the stream continues the same line.
    pub continues: bool,
}

/// Splits a byte stream into lines and redraws. Feed it with
/// [`push`](Self::push), call [`flush_idle`](Self::flush_idle) when the
/// stream has been quiet for a moment, and [`finish`](Self::finish) at
/// end-of-file.
///
/// ```
/// use execra::output::{LineSplitter, SegmentKind};
///
/// let mut s = LineSplitter::new(1024);
/// let mut out = Vec::new();
/// s.push(b"10%\r20%\r100%\r\ndone\n", &mut out);
/// let kinds: Vec<_> = out.iter().map(|seg| (seg.text.as_str(), seg.kind)).collect();
/// assert_eq!(kinds, [
///     ("10%", SegmentKind::Redraw),
///     ("20%", SegmentKind::Redraw),
///     ("100%", SegmentKind::Line),
///     ("done", SegmentKind::Line),
/// ]);
/// ```
#[derive(Debug)]
pub struct LineSplitter {
    buf: Vec<u8>,
    max_line: usize,
    /// The last byte seen was a `\r` whose meaning depends on the next byte.
    pending_cr: bool,
    /// The current buffer was already shown as a redraw and has not changed
    /// since.
    shown: bool,
}

impl LineSplitter {
    /// A splitter that delivers lines of at most `max_line` bytes (at least
    /// 4, so that any UTF-8 character fits).
    pub fn new(max_line: usize) -> Self {
        LineSplitter {
            buf: Vec::new(),
            max_line: max_line.max(4),
            pending_cr: false,
            shown: false,
        }
    }

    /// Bytes of the current unfinished line held in memory.
    pub fn buffered(&self) -> usize {
        self.buf.len()
    }

    /// `true` when no line is under way (nothing buffered, no `\r`
    /// waiting for its next byte): the next byte starts a new line.
    pub fn is_clean(&self) -> bool {
        self.buf.is_empty() && !self.pending_cr
    }

    /// The length cap given to [`new`](Self::new).
    pub fn max_line(&self) -> usize {
        self.max_line
    }

    /// Feed bytes; completed segments are appended to `out`.
    pub fn push(&mut self, mut bytes: &[u8], out: &mut Vec<Segment>) {
        if bytes.is_empty() {
            return;
        }
        if self.pending_cr {
            self.pending_cr = false;
            if bytes[0] == b'\n' {
                self.emit_buf(SegmentKind::Line, out);
                bytes = &bytes[1..];
            } else {
                self.emit_buf(SegmentKind::Redraw, out);
            }
        }
        while let Some(i) = memchr::memchr2(b'\n', b'\r', bytes) {
            let (part, delim) = (&bytes[..i], bytes[i]);
            let rest = &bytes[i + 1..];
            let kind = if delim == b'\n' {
                SegmentKind::Line
            } else if rest.is_empty() {
                // `\r` at the end of this read: wait for the next byte.
                self.append(part, out);
                self.pending_cr = true;
                return;
            } else if rest[0] == b'\n' {
                bytes = &rest[1..];
                self.finish_with(part, SegmentKind::Line, out);
                continue;
            } else {
                SegmentKind::Redraw
            };
            self.finish_with(part, kind, out);
            bytes = rest;
        }
        self.append(bytes, out);
    }

    /// The stream has been quiet: show the unfinished line provisionally (as
    /// a [`SegmentKind::Redraw`]) unless it was already shown unchanged.
    pub fn flush_idle(&mut self, out: &mut Vec<Segment>) {
        if !self.shown && !self.buf.is_empty() {
            out.push(Segment {
                text: decode(&self.buf),
                kind: SegmentKind::Redraw,
                continues: false,
            });
            self.shown = true;
        }
    }

    /// End of input: the unfinished line (if any) is delivered as a line.
    pub fn finish(&mut self, out: &mut Vec<Segment>) {
        self.pending_cr = false;
        if !self.buf.is_empty() {
            self.emit_buf(SegmentKind::Line, out);
        }
    }

    /// Complete the current line with `part` and emit it.
    fn finish_with(&mut self, part: &[u8], kind: SegmentKind, out: &mut Vec<Segment>) {
        if self.buf.is_empty() && part.len() <= self.max_line {
            self.shown = false;
            // Fast path: the whole line is inside this read.
            push_segment(out, decode(part), kind);
        } else {
            self.append(part, out);
            self.emit_buf(kind, out);
        }
    }

    /// Add bytes to the unfinished line, cutting pieces off at the cap.
    fn append(&mut self, mut part: &[u8], out: &mut Vec<Segment>) {
        if !part.is_empty() {
            self.shown = false;
        }
        while self.buf.len() + part.len() > self.max_line {
            let room = self.max_line - self.buf.len();
            self.buf.extend_from_slice(&part[..room]);
            part = &part[room..];
            let cut = char_boundary(&self.buf);
            let text = decode(&self.buf[..cut]);
            self.buf.drain(..cut);
            out.push(Segment {
                text,
                kind: SegmentKind::Line,
                continues: true,
            });
        }
        self.buf.extend_from_slice(part);
    }

    fn emit_buf(&mut self, kind: SegmentKind, out: &mut Vec<Segment>) {
        let already_shown = std::mem::take(&mut self.shown);
        if kind == SegmentKind::Redraw && already_shown {
            self.buf.clear();
            return;
        }
        let text = decode(&self.buf);
        self.buf.clear();
        push_segment(out, text, kind);
    }
}

fn push_segment(out: &mut Vec<Segment>, text: String, kind: SegmentKind) {
    // An empty redraw (a `\r` at the start of a line) carries nothing.
    if kind == SegmentKind::Redraw && text.is_empty() {
        return;
    }
    out.push(Segment {
        text,
        kind,
        continues: false,
    });
}

fn decode(bytes: &[u8]) -> String {
    // Validating first is much faster than the lossy decoder on the common
    // (valid) path.
    match std::str::from_utf8(bytes) {
        Ok(s) => s.to_owned(),
        Err(_) => String::from_utf8_lossy(bytes).into_owned(),
    }
}

/// Where to cut a full buffer so that no UTF-8 sequence is split: before the
/// last lead byte if its sequence runs past the end, else at the end.
fn char_boundary(buf: &[u8]) -> usize {
    let len = buf.len();
    for back in 1..=3.min(len) {
        let i = len - back;
        let b = buf[i];
        if b & 0xC0 == 0x80 {
            continue; // continuation byte: keep looking for its lead
        }
        let need = match b {
            0xC2..=0xDF => 2,
            0xE0..=0xEF => 3,
            0xF0..=0xF4 => 4,
            _ => 1,
        };
        return if i + need > len && i > 0 { i } else { len };
    }
    len
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(chunks: &[&[u8]], cap: usize) -> Vec<(String, SegmentKind)> {
        let mut s = LineSplitter::new(cap);
        let mut out = Vec::new();
        for c in chunks {
            s.push(c, &mut out);
        }
        s.finish(&mut out);
        out.into_iter().map(|s| (s.text, s.kind)).collect()
    }

    fn lines(v: &[(String, SegmentKind)]) -> Vec<&str> {
        v.iter()
            .filter(|(_, k)| *k == SegmentKind::Line)
            .map(|(t, _)| t.as_str())
            .collect()
    }

    #[test]
    fn newline_and_crlf_end_lines() {
        let out = run(&[b"a\nb\r\nc"], 64);
        assert_eq!(lines(&out), ["a", "b", "c"]);
        assert!(out.iter().all(|(_, k)| *k == SegmentKind::Line));
    }

    #[test]
    fn crlf_split_across_reads_is_one_line_end() {
        let out = run(&[b"abc\r", b"\ndef\n"], 64);
        assert_eq!(out.len(), 2);
        assert_eq!(lines(&out), ["abc", "def"]);
    }

    #[test]
    fn bare_cr_is_a_redraw() {
        let out = run(&[b"\r 1%\r", b" 50%\r100%\n"], 64);
        assert_eq!(
            out,
            [
                (" 1%".to_string(), SegmentKind::Redraw),
                (" 50%".to_string(), SegmentKind::Redraw),
                ("100%".to_string(), SegmentKind::Line),
            ]
        );
    }

    #[test]
    fn trailing_cr_at_eof_keeps_the_text() {
        let out = run(&[b"10%\r20%\r"], 64);
        assert_eq!(
            out,
            [
                ("10%".to_string(), SegmentKind::Redraw),
                ("20%".to_string(), SegmentKind::Line)
            ]
        );
    }

    #[test]
    fn idle_flush_shows_a_prompt_once() {
        let mut s = LineSplitter::new(64);
        let mut out = Vec::new();
        s.push(b"Continue? [y/N] ", &mut out);
        assert!(out.is_empty());
        s.flush_idle(&mut out);
        s.flush_idle(&mut out);
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].text, "Continue? [y/N] ");
        assert_eq!(out[0].kind, SegmentKind::Redraw);
        s.push(b"y\n", &mut out);
        assert_eq!(out[1].text, "Continue? [y/N] y");
        assert_eq!(out[1].kind, SegmentKind::Line);
    }

    #[test]
    fn idle_then_cr_does_not_repeat_the_redraw() {
        let mut s = LineSplitter::new(64);
        let mut out = Vec::new();
        s.push(b"\r20%", &mut out);
        s.flush_idle(&mut out);
        s.push(b"\r40%", &mut out);
        s.flush_idle(&mut out);
        s.push(b"\r", &mut out);
        s.flush_idle(&mut out);
        s.push(b"\n", &mut out);
        let got: Vec<_> = out.iter().map(|x| (x.text.as_str(), x.kind)).collect();
        assert_eq!(
            got,
            [
                ("20%", SegmentKind::Redraw),
                ("40%", SegmentKind::Redraw),
                ("40%", SegmentKind::Line)
            ]
        );
    }

    #[test]
    fn long_lines_are_cut_at_the_cap() {
        let out = run(&[&[b'x'; 25], b"\n"], 10);
        assert_eq!(lines(&out), ["x".repeat(10), "x".repeat(10), "x".repeat(5)]);
    }

    #[test]
    fn cap_never_splits_a_character() {
        // "é" is two bytes; a cap of 5 after "abcd" would cut it in half.
        let out = run(&["abcdé€xyz\n".as_bytes()], 5);
        let joined: String = out.iter().map(|(t, _)| t.as_str()).collect();
        assert_eq!(joined, "abcdé€xyz");
        assert!(out.iter().all(|(t, _)| !t.contains('\u{FFFD}')));
    }

    #[test]
    fn multibyte_split_across_reads() {
        let bytes = "héllo €\n".as_bytes();
        for cut in 0..bytes.len() {
            let out = run(&[&bytes[..cut], &bytes[cut..]], 64);
            assert_eq!(lines(&out), ["héllo €"], "cut at {cut}");
        }
    }

    #[test]
    fn invalid_utf8_becomes_replacement() {
        let out = run(&[b"a\xffb\n\xe2\x82\n"], 64);
        assert_eq!(lines(&out), ["a\u{FFFD}b", "\u{FFFD}"]);
    }

    #[test]
    fn memory_stays_at_the_cap() {
        let mut s = LineSplitter::new(1000);
        let mut out = Vec::new();
        let chunk = vec![b'z'; 4096];
        for _ in 0..100 {
            s.push(&chunk, &mut out);
            assert!(s.buffered() <= 1000);
            out.clear();
        }
    }
}
