//! The decoder stage: bytes in the child's encoding → UTF-8, before the line
//! splitter.
//!
//! A job's output is UTF-8 unless [`Command::encoding`](crate::Command::encoding)
//! names another encoding (any WHATWG label that `encoding_rs` knows: `gbk`,
//! `gb18030`, `shift_jis`, `euc-kr`, `big5`, `windows-1252`, `utf-16le`,
//! `utf-16be`, …). Decoding happens before lines are split, because in
//! UTF-16 a newline is two bytes and a byte `0x0A` may be half of another
//! character. A character split across two reads is decoded once both halves
//! have arrived; bytes that are not valid in the encoding become U+FFFD.
//!
//! For UTF-8 (the default) this stage does nothing: the splitter decodes
//! UTF-8 itself, lossily, on its fast path.

use encoding_rs::{Decoder, Encoding, UTF_8};

/// Look up an encoding by its WHATWG label (case-insensitive, surrounding
/// whitespace ignored): `"gbk"`, `"Shift_JIS"`, `"utf-16le"`, …
///
/// Returns a readable error naming the label when it is unknown.
///
/// ```
/// assert_eq!(execra::output::encoding_for_label("GBK").unwrap().name(), "GBK");
/// assert!(execra::output::encoding_for_label("klingon").is_err());
/// ```
pub fn encoding_for_label(label: &str) -> Result<&'static Encoding, String> {
    Encoding::for_label(label.trim().as_bytes()).ok_or_else(|| {
        format!(
            "unknown output encoding {label:?} (expected a WHATWG label such as \
             utf-8, gbk, gb18030, shift_jis, euc-kr, windows-1252, utf-16le, utf-16be)"
        )
    })
}

/// Streaming decoder from one encoding to UTF-8 bytes.
///
/// ```
/// use execra::output::{encoding_for_label, OutputDecoder};
///
/// let mut d = OutputDecoder::new(encoding_for_label("gbk").unwrap());
/// let mut text = Vec::new();
/// // 你好 in GBK, cut in the middle of the first character.
/// text.extend_from_slice(d.decode(b"\xc4"));
/// text.extend_from_slice(d.decode(b"\xe3\xba\xc3\n"));
/// text.extend_from_slice(d.finish());
/// assert_eq!(String::from_utf8(text).unwrap(), "你好\n");
/// ```
pub struct OutputDecoder {
    /// `None` for UTF-8: bytes pass through untouched.
    decoder: Option<Decoder>,
    out: String,
}

impl std::fmt::Debug for OutputDecoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OutputDecoder")
            .field(
                "encoding",
                &self
                    .decoder
                    .as_ref()
                    .map_or("UTF-8", |d| d.encoding().name()),
            )
            .finish()
    }
}

impl OutputDecoder {
    /// A decoder from `encoding`. UTF-8 passes bytes through unchanged (the
    /// line splitter decodes them). A byte-order mark at the start is
    /// removed for UTF-16 encodings.
    pub fn new(encoding: &'static Encoding) -> Self {
        let decoder = (encoding != UTF_8).then(|| encoding.new_decoder_with_bom_removal());
        OutputDecoder {
            decoder,
            out: String::new(),
        }
    }

    /// `true` when bytes pass through unchanged (UTF-8).
    pub fn is_passthrough(&self) -> bool {
        self.decoder.is_none()
    }

    /// Decode one read; returns UTF-8 bytes (possibly empty when the read
    /// ends inside a character, which is completed by the next read).
    pub fn decode<'a>(&'a mut self, bytes: &'a [u8]) -> &'a [u8] {
        self.run(bytes, false)
    }

    /// End of input: whatever is left of an unfinished character becomes
    /// U+FFFD.
    pub fn finish(&mut self) -> &[u8] {
        self.run(&[], true)
    }

    fn run<'a>(&'a mut self, bytes: &'a [u8], last: bool) -> &'a [u8] {
        let Some(dec) = self.decoder.as_mut() else {
            return bytes;
        };
        self.out.clear();
        let need = dec
            .max_utf8_buffer_length(bytes.len())
            .unwrap_or(bytes.len().saturating_mul(3).saturating_add(16));
        self.out.reserve(need);
        let mut input = bytes;
        loop {
            let (result, read, _replaced) = dec.decode_to_string(input, &mut self.out, last);
            input = &input[read..];
            match result {
                encoding_rs::CoderResult::InputEmpty => break,
                encoding_rs::CoderResult::OutputFull => {
                    self.out
                        .reserve(input.len().saturating_mul(3).saturating_add(16));
                }
            }
        }
        self.out.as_bytes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode_all(label: &str, chunks: &[&[u8]]) -> String {
        let mut d = OutputDecoder::new(encoding_for_label(label).unwrap());
        let mut v = Vec::new();
        for c in chunks {
            v.extend_from_slice(d.decode(c));
        }
        v.extend_from_slice(d.finish());
        String::from_utf8(v).unwrap()
    }

    #[test]
    fn utf16le_newline_is_decoded_before_splitting() {
        let bytes: Vec<u8> = "a\u{0A0A}\n"
            .encode_utf16()
            .flat_map(|u| u.to_le_bytes())
            .collect();
        assert_eq!(decode_all("utf-16le", &[&bytes]), "a\u{0A0A}\n");
    }

    #[test]
    fn truncated_character_at_eof_is_a_replacement() {
        assert_eq!(decode_all("gbk", &[b"ok\xc4"]), "ok\u{FFFD}");
    }

    #[test]
    fn utf8_passes_through() {
        let mut d = OutputDecoder::new(UTF_8);
        assert!(d.is_passthrough());
        assert_eq!(d.decode(b"\xffab"), b"\xffab");
    }

    #[test]
    fn unknown_label_is_a_clear_error() {
        let e = encoding_for_label("no-such-thing").unwrap_err();
        assert!(e.contains("no-such-thing"), "{e}");
    }
}
