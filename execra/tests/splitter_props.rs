//! Property tests: any bytes, any chunking, the same text.

use execra::output::{LineSplitter, Segment};
use proptest::prelude::*;

fn split(chunks: &[&[u8]], cap: usize) -> Vec<Segment> {
    let mut s = LineSplitter::new(cap);
    let mut out = Vec::new();
    for c in chunks {
        s.push(c, &mut out);
        assert!(s.buffered() <= cap.max(4));
    }
    s.finish(&mut out);
    out
}

fn chunked<'a>(data: &'a [u8], cuts: &[usize]) -> Vec<&'a [u8]> {
    let mut points: Vec<usize> = cuts.iter().map(|c| c % (data.len() + 1)).collect();
    points.sort_unstable();
    let mut chunks = Vec::new();
    let mut last = 0;
    for p in points {
        chunks.push(&data[last..p]);
        last = p;
    }
    chunks.push(&data[last..]);
    chunks
}

/// Bytes biased toward the interesting ones: line ends and UTF-8 pieces.
fn bytes() -> impl Strategy<Value = Vec<u8>> {
    prop::collection::vec(
        prop_oneof![
            Just(b'\n'),
            Just(b'\r'),
            Just(b'a'),
            Just(0xC3u8),
            Just(0xA9u8),
            Just(0xE2u8),
            Just(0x82u8),
            Just(0xACu8),
            Just(0xF0u8),
            Just(0x9Fu8),
            Just(0xFFu8),
            any::<u8>(),
        ],
        0..300,
    )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(600))]

    #[test]
    fn chunking_never_changes_the_segments(
        data in bytes(),
        cuts in prop::collection::vec(any::<usize>(), 0..12),
        cap in 4usize..40,
    ) {
        let whole = split(&[&data], cap);
        let pieces = split(&chunked(&data, &cuts), cap);
        prop_assert_eq!(whole, pieces);
    }

    #[test]
    fn segments_reassemble_to_the_lossy_decoding(
        data in bytes(),
        cuts in prop::collection::vec(any::<usize>(), 0..12),
        cap in 4usize..40,
    ) {
        let segs = split(&chunked(&data, &cuts), cap);
        let got: String = segs.iter().map(|s| s.text.as_str()).collect();
        let want: String = String::from_utf8_lossy(&data)
            .chars()
            .filter(|c| *c != '\n' && *c != '\r')
            .collect();
        prop_assert_eq!(got, want);
    }
}
