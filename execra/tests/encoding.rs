//! Output encodings: real processes writing GBK, Shift_JIS and UTF-16LE;
//! the decoder + splitter pipeline cut at every byte position.

mod common;

use common::{collect, output_lines};
use execra::output::{encoding_for_label, LineSplitter, OutputDecoder, SegmentKind};
use execra::{Command, FailureReason, Outcome, Runtime};
use proptest::prelude::*;

/// `printf` with every byte as an octal escape, so the shell sees only ASCII.
fn printf_bytes(bytes: &[u8]) -> Command {
    let esc: String = bytes.iter().map(|b| format!("\\{b:03o}")).collect();
    Command::new("printf").arg(esc)
}

fn utf16le(s: &str) -> Vec<u8> {
    s.encode_utf16().flat_map(|u| u.to_le_bytes()).collect()
}

async fn lines_of(cmd: Command) -> (Vec<String>, Outcome) {
    let rt = Runtime::new();
    let h = rt.spawn(cmd).unwrap();
    let evs = collect(h.subscribe()).await;
    let outcome = h.await;
    (output_lines(&evs), outcome)
}

#[tokio::test]
async fn gbk_output_is_decoded() {
    // 你好 / 世界 in GBK (the console code page of Chinese Windows).
    let (lines, outcome) =
        lines_of(printf_bytes(b"\xc4\xe3\xba\xc3\n\xca\xc0\xbd\xe7\n").encoding("gbk")).await;
    assert!(outcome.is_success(), "{outcome:?}");
    assert_eq!(lines, ["你好", "世界"]);
}

#[tokio::test]
async fn without_an_encoding_gbk_is_replacement_characters() {
    let (lines, _) = lines_of(printf_bytes(b"\xc4\xe3\xba\xc3\n")).await;
    assert_eq!(lines.len(), 1);
    assert!(lines[0].contains('\u{FFFD}'), "{lines:?}");
}

#[tokio::test]
async fn shift_jis_output_is_decoded() {
    // こんにちは in Shift_JIS.
    let sjis = b"\x82\xb1\x82\xf1\x82\xc9\x82\xbf\x82\xcd\n";
    let (lines, _) = lines_of(printf_bytes(sjis).encoding("Shift_JIS")).await;
    assert_eq!(lines, ["こんにちは"]);
}

#[tokio::test]
async fn utf16le_output_is_decoded_and_split_on_its_newlines() {
    let bytes = utf16le("héllo\r\nwörld 中\n");
    let (lines, _) = lines_of(printf_bytes(&bytes).encoding("utf-16le")).await;
    assert_eq!(lines, ["héllo", "wörld 中"]);
}

#[tokio::test]
async fn stderr_is_decoded_too() {
    let esc: String = b"\xc4\xe3\n".iter().map(|b| format!("\\{b:03o}")).collect();
    let (lines, _) = lines_of(
        Command::sh(format!("printf '{esc}' >&2"))
            .encoding("gbk")
            .label("stderr"),
    )
    .await;
    assert_eq!(lines, ["你"]);
}

#[tokio::test]
async fn unknown_encoding_fails_to_start_with_a_clear_error() {
    let rt = Runtime::new();
    let outcome = rt
        .spawn(Command::new("true").encoding("klingon-8"))
        .unwrap()
        .await;
    match outcome.failure() {
        Some(FailureReason::SpawnFailed { error }) => {
            assert!(error.contains("klingon-8"), "{error}");
            assert!(error.contains("encoding"), "{error}");
        }
        other => panic!("expected SpawnFailed, got {other:?}"),
    }
}

/// Decoder then splitter, fed in the given chunks; finished lines.
fn pipeline(label: &str, chunks: &[&[u8]]) -> Vec<String> {
    let mut dec = OutputDecoder::new(encoding_for_label(label).unwrap());
    let mut split = LineSplitter::new(1024);
    let mut out = Vec::new();
    for c in chunks {
        split.push(dec.decode(c), &mut out);
    }
    split.push(dec.finish(), &mut out);
    split.finish(&mut out);
    out.into_iter()
        .filter(|s| s.kind == SegmentKind::Line)
        .map(|s| s.text)
        .collect()
}

#[test]
fn every_single_cut_decodes_the_same() {
    let cases: [(&str, Vec<u8>, Vec<&str>); 3] = [
        (
            "gbk",
            b"\xc4\xe3\xba\xc3 ok\n\xca\xc0\xbd\xe7\n".to_vec(),
            vec!["你好 ok", "世界"],
        ),
        (
            "shift_jis",
            b"\x82\xb1\x82\xf1\x82\xc9\x82\xbf\x82\xcd\r\n\x83\x65\x83\x58\x83\x67\n".to_vec(),
            vec!["こんにちは", "テスト"],
        ),
        ("utf-16le", utf16le("a€\r\n𝄞 b\n"), vec!["a€", "𝄞 b"]),
    ];
    for (label, bytes, want) in &cases {
        for cut in 0..=bytes.len() {
            let got = pipeline(label, &[&bytes[..cut], &bytes[cut..]]);
            assert_eq!(&got, want, "{label} cut at {cut}");
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    /// Any text, encoded, cut anywhere any number of times: the same lines.
    #[test]
    fn chunking_never_changes_decoded_lines(
        text in "[a-z 你好世界中文€\n]{0,60}",
        cuts in prop::collection::vec(any::<usize>(), 0..10),
        label in prop_oneof![Just("gbk"), Just("gb18030"), Just("utf-16le"), Just("utf-16be")],
    ) {
        let enc = encoding_for_label(label).unwrap();
        let bytes: Vec<u8> = match label {
            "utf-16le" => utf16le(&text),
            "utf-16be" => text.encode_utf16().flat_map(|u| u.to_be_bytes()).collect(),
            _ => enc.encode(&text).0.into_owned(),
        };
        let mut points: Vec<usize> = cuts.iter().map(|c| c % (bytes.len() + 1)).collect();
        points.sort_unstable();
        let mut chunks = Vec::new();
        let mut last = 0;
        for p in points {
            chunks.push(&bytes[last..p]);
            last = p;
        }
        chunks.push(&bytes[last..]);
        let whole = pipeline(label, &[&bytes]);
        prop_assert_eq!(pipeline(label, &chunks), whole.clone());
        let expected: Vec<&str> = if text.is_empty() {
            Vec::new()
        } else {
            text.strip_suffix('\n').unwrap_or(&text).split('\n').collect()
        };
        prop_assert_eq!(whole, expected);
    }
}
