//! Stripping ANSI escape sequences (colours, cursor movement, hyperlinks).

use std::borrow::Cow;

const ESC: char = '\u{1b}';
const CSI8: char = '\u{9b}';
const BEL: char = '\u{7}';

/// Remove ANSI/VT escape sequences from `text`.
///
/// Handles CSI sequences (`ESC [ … final`, which covers SGR colours and
/// cursor movement, and the 8-bit `U+009B` form), OSC sequences (`ESC ] …`
/// ended by BEL or `ESC \`, e.g. terminal hyperlinks and window titles),
/// DCS/SOS/PM/APC strings (ended by `ESC \`), and two-character escapes
/// (`ESC 7`, `ESC (B`, …). An unterminated sequence at the end of the text
/// is dropped. Text without `ESC` is returned borrowed, without copying.
///
/// ```
/// use execra::output::strip_ansi;
///
/// assert_eq!(strip_ansi("\x1b[1;31merror\x1b[0m: boom"), "error: boom");
/// assert_eq!(strip_ansi("\x1b[2K\x1b[1G 42%"), " 42%");
/// assert!(matches!(strip_ansi("plain"), std::borrow::Cow::Borrowed(_)));
/// ```
pub fn strip_ansi(text: &str) -> Cow<'_, str> {
    if !text.contains([ESC, CSI8]) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            ESC => match chars.next() {
                Some('[') => skip_csi(&mut chars),
                Some(']') => skip_string(&mut chars, true),
                Some('P' | 'X' | '^' | '_') => skip_string(&mut chars, false),
                // nF escapes: intermediates (0x20..=0x2F) then a final byte.
                Some(c) if ('\u{20}'..='\u{2f}').contains(&c) => {
                    while let Some(&n) = chars.peek() {
                        chars.next();
                        if !('\u{20}'..='\u{2f}').contains(&n) {
                            break;
                        }
                    }
                }
                // Any other two-character escape (ESC 7, ESC M, …) or a
                // lone trailing ESC.
                _ => {}
            },
            CSI8 => skip_csi(&mut chars),
            c => out.push(c),
        }
    }
    Cow::Owned(out)
}

/// Skip parameters and intermediates up to and including the final byte
/// (`@`..=`~`).
fn skip_csi(chars: &mut std::iter::Peekable<std::str::Chars<'_>>) {
    for c in chars.by_ref() {
        if ('\u{40}'..='\u{7e}').contains(&c) {
            break;
        }
    }
}

/// Skip a control string up to its terminator: `ESC \` (string terminator),
/// or also BEL when `bel_ends` (OSC).
fn skip_string(chars: &mut std::iter::Peekable<std::str::Chars<'_>>, bel_ends: bool) {
    while let Some(c) = chars.next() {
        if c == BEL && bel_ends {
            break;
        }
        if c == '\u{9c}' {
            break;
        }
        if c == ESC {
            if chars.peek() == Some(&'\\') {
                chars.next();
            }
            break;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strips_colours_and_cursor_moves() {
        assert_eq!(
            strip_ansi("\x1b[0m\x1b[1m\x1b[32m   Compiling\x1b[0m foo v0.1.0"),
            "   Compiling foo v0.1.0"
        );
        assert_eq!(strip_ansi("a\x1b[38;5;196mb\x1b[48;2;1;2;3mc"), "abc");
        assert_eq!(strip_ansi("\x1b[?25l50%\x1b[?25h"), "50%");
        assert_eq!(strip_ansi("x\x1b[K"), "x");
    }

    #[test]
    fn strips_osc_hyperlinks_and_titles() {
        assert_eq!(
            strip_ansi("\x1b]8;;https://example.com\x1b\\link\x1b]8;;\x1b\\ end"),
            "link end"
        );
        assert_eq!(strip_ansi("\x1b]0;title\x07text"), "text");
    }

    #[test]
    fn strips_short_escapes_and_truncated_sequences() {
        assert_eq!(strip_ansi("\x1b7saved\x1b8"), "saved");
        assert_eq!(strip_ansi("\x1b(Bascii"), "ascii");
        assert_eq!(strip_ansi("cut \x1b[31"), "cut ");
        assert_eq!(strip_ansi("lone \x1b"), "lone ");
        assert_eq!(strip_ansi("\u{9b}31mred"), "red");
    }

    #[test]
    fn keeps_unicode() {
        assert_eq!(strip_ansi("\x1b[31m✖ 2 problèmes\x1b[0m"), "✖ 2 problèmes");
    }
}
