//! A gzip writer for raw logs that never has to hold a job back: each
//! piece of input is either compressed (deflate, fastest level) or, when
//! the log's writer has fallen behind the job, *stored* (deflate's
//! uncompressed blocks) — within one gzip member that every gzip reader
//! decodes (`gzip -d`, `zcat`, flate2, [`LogTail`](super::LogTail)).
//!
//! The format (RFC 1951/1952): a 10-byte header, one deflate stream, then
//! the CRC-32 and length of the uncompressed data. The deflate stream is
//! made of blocks; compressed ones come from a [`flate2::Compress`], stored
//! ones are written here (`00`, `LEN`, `!LEN`, then the bytes, at most
//! 65,535 per block). Switching from compressed to stored first
//! sync-flushes the compressor (its output then ends on a byte boundary,
//! where a stored block may start); switching back resets it, so it never
//! refers back to bytes it did not see (a back-reference into stored data
//! would be wrong: the compressor's window does not hold it).

use std::io::{self, Write};

use flate2::{Compress, Compression, Crc, FlushCompress, Status};

/// The gzip header: magic, deflate, no flags, no time, no extra flags, OS
/// unknown.
const HEADER: [u8; 10] = [0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 0xff];

/// The most bytes one stored block holds.
const MAX_STORED: usize = 65_535;

/// A gzip stream being written to `W`: see the module docs.
pub(crate) struct GzWriter<W: Write> {
    out: W,
    deflate: Compress,
    crc: Crc,
    /// The compressor's output, passed on as it fills.
    buf: Vec<u8>,
    /// The compressor has been given nothing since it was created or
    /// reset: nothing of it is pending, the output is byte-aligned.
    fresh: bool,
    /// The header is still to be written (with the first bytes, so that
    /// creating a writer cannot fail).
    header: bool,
}

impl<W: Write> GzWriter<W> {
    /// A gzip stream to be written to `out` (its header goes out with the
    /// first bytes).
    pub(crate) fn new(out: W) -> Self {
        GzWriter {
            out,
            deflate: Compress::new(Compression::fast(), false),
            crc: Crc::new(),
            buf: vec![0; 64 * 1024],
            fresh: true,
            header: true,
        }
    }

    /// Write `bytes` to `W`, after the header if it is still due.
    fn emit(&mut self, bytes: &[u8]) -> io::Result<()> {
        if self.header {
            self.out.write_all(&HEADER)?;
            self.header = false;
        }
        self.out.write_all(bytes)
    }

    /// Append `data`, compressed.
    pub(crate) fn write_compressed(&mut self, data: &[u8]) -> io::Result<()> {
        self.crc.update(data);
        self.fresh = false;
        self.run(data, FlushCompress::None)
    }

    /// Append `data` uncompressed (stored blocks): about as cheap as a
    /// copy, for when compressing would hold the job back.
    pub(crate) fn write_stored(&mut self, data: &[u8]) -> io::Result<()> {
        self.crc.update(data);
        self.align()?;
        for piece in data.chunks(MAX_STORED) {
            let len = piece.len() as u16;
            let [l0, l1] = len.to_le_bytes();
            let [n0, n1] = (!len).to_le_bytes();
            self.emit(&[0, l0, l1, n0, n1])?;
            self.emit(piece)?;
        }
        Ok(())
    }

    /// Make everything written so far decodable by a reader of the file (a
    /// sync flush), and flush `W`.
    pub(crate) fn flush(&mut self) -> io::Result<()> {
        if !self.fresh {
            self.run(&[], FlushCompress::Sync)?;
        }
        if self.header {
            self.emit(&[])?;
        }
        self.out.flush()
    }

    /// End the stream (last block, CRC-32, length) and return `W`, flushed.
    pub(crate) fn finish(mut self) -> io::Result<W> {
        if self.fresh {
            // An empty final stored block.
            self.emit(&[1, 0, 0, 0xff, 0xff])?;
        } else {
            self.run(&[], FlushCompress::Finish)?;
        }
        self.emit(&self.crc.sum().to_le_bytes())?;
        self.emit(&self.crc.amount().to_le_bytes())?;
        self.out.flush()?;
        Ok(self.out)
    }

    /// Before a stored block: the compressor's pending output out, ending
    /// on a byte boundary, and the compressor reset (see the module docs).
    fn align(&mut self) -> io::Result<()> {
        if !self.fresh {
            self.run(&[], FlushCompress::Sync)?;
            self.deflate.reset();
            self.fresh = true;
        }
        Ok(())
    }

    /// Feed `input` to the compressor and write what it produces, until it
    /// has taken all of it and (for a flush) said everything.
    fn run(&mut self, mut input: &[u8], flush: FlushCompress) -> io::Result<()> {
        loop {
            let (before_in, before_out) = (self.deflate.total_in(), self.deflate.total_out());
            let status = self
                .deflate
                .compress(input, &mut self.buf, flush)
                .map_err(io::Error::other)?;
            let used = (self.deflate.total_in() - before_in) as usize;
            let wrote = (self.deflate.total_out() - before_out) as usize;
            if wrote > 0 {
                if self.header {
                    self.out.write_all(&HEADER)?;
                    self.header = false;
                }
                self.out.write_all(&self.buf[..wrote])?;
            }
            input = input.get(used..).unwrap_or_default();
            let said_all = wrote < self.buf.len();
            match (flush, status) {
                (_, Status::StreamEnd) => return Ok(()),
                (FlushCompress::None, _) if input.is_empty() => return Ok(()),
                (FlushCompress::Sync, _) if input.is_empty() && said_all => return Ok(()),
                // No progress and nothing to write: done (or stuck, which
                // looping would not mend).
                (_, Status::BufError) if used == 0 && wrote == 0 => return Ok(()),
                _ => {}
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    /// Some log-like text: repetitive (compresses) with some noise.
    fn text(seed: u64, len: usize) -> Vec<u8> {
        let mut x = seed;
        let mut out = Vec::with_capacity(len);
        while out.len() < len {
            x = x
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            let line = format!("[stdout] line {} value {:x}\n", x >> 50, x >> 20);
            out.extend_from_slice(line.as_bytes());
        }
        out.truncate(len);
        out
    }

    fn gunzip(bytes: &[u8]) -> Vec<u8> {
        let mut back = Vec::new();
        flate2::read::MultiGzDecoder::new(bytes)
            .read_to_end(&mut back)
            .expect("a valid gzip stream");
        back
    }

    /// Every mix of compressed, stored and flushed pieces decodes to the
    /// bytes written, with flate2 and (on Unix) with the system's `gzip`.
    #[test]
    fn any_mix_of_compressed_and_stored_pieces_round_trips() {
        let mut seed = 1u64;
        for round in 0..60 {
            let mut w = GzWriter::new(Vec::new());
            let mut want = Vec::new();
            let pieces = (round % 7) + 1;
            for p in 0..pieces {
                seed = seed
                    .wrapping_mul(2862933555777941757)
                    .wrapping_add(3037000493);
                let len = match (seed >> 40) % 4 {
                    0 => 0,
                    1 => (seed >> 20) as usize % 100,
                    2 => (seed >> 20) as usize % 70_000,
                    _ => 150_000 + (seed >> 20) as usize % 100_000,
                };
                let data = text(seed, len);
                if (seed >> 13) % 2 == 0 {
                    w.write_stored(&data).expect("stored");
                } else {
                    w.write_compressed(&data).expect("compressed");
                }
                if (seed >> 17) % 3 == 0 || p == 0 {
                    w.flush().expect("flush");
                    // Everything so far decodes (the stream is still open:
                    // read it as a reader of a growing file would).
                    let got = w.out.clone();
                    let mut dec = flate2::Decompress::new(false);
                    let mut out = vec![0u8; want.len() + data.len() + 1024];
                    dec.decompress(&got[10..], &mut out, flate2::FlushDecompress::Sync)
                        .expect("decodable up to the flush");
                    want.extend_from_slice(&data);
                    assert_eq!(&out[..dec.total_out() as usize], &want[..], "round {round}");
                } else {
                    want.extend_from_slice(&data);
                }
            }
            let bytes = w.finish().expect("finish");
            assert_eq!(gunzip(&bytes), want, "round {round}");
            // And the system's gzip (Unix: under wine there is none).
            if cfg!(unix) && round % 10 == 0 {
                let mut child = std::process::Command::new("gzip")
                    .args(["-d", "-c"])
                    .stdin(std::process::Stdio::piped())
                    .stdout(std::process::Stdio::piped())
                    .spawn()
                    .expect("gzip is installed");
                let mut stdin = child.stdin.take().expect("stdin");
                let feed = std::thread::spawn(move || stdin.write_all(&bytes));
                let out = child.wait_with_output().expect("gzip -d");
                feed.join().expect("feed").expect("write to gzip");
                assert!(out.status.success(), "gzip -d: round {round}");
                assert_eq!(out.stdout, want, "gzip -d, round {round}");
            }
        }
    }

    /// Stored pieces cost no compression (the size shows it), compressed
    /// ones are compressed, and an empty stream is valid.
    #[test]
    fn stored_is_stored_and_compressed_is_compressed() {
        let data = text(7, 200_000);
        let mut w = GzWriter::new(Vec::new());
        w.write_stored(&data).expect("stored");
        let stored = w.finish().expect("finish");
        assert!(stored.len() > data.len(), "{} bytes", stored.len());
        assert_eq!(gunzip(&stored), data);

        let mut w = GzWriter::new(Vec::new());
        w.write_compressed(&data).expect("compressed");
        let packed = w.finish().expect("finish");
        assert!(packed.len() < data.len() / 2, "{} bytes", packed.len());
        assert_eq!(gunzip(&packed), data);

        let empty = GzWriter::new(Vec::new()).finish().expect("finish");
        assert_eq!(gunzip(&empty), b"");
    }
}
