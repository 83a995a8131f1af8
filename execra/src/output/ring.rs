//! A bounded ring of recent output lines (bounded by count and by bytes).

use std::collections::VecDeque;
use std::time::SystemTime;

use serde::{Deserialize, Serialize};

use crate::event::Stream;

/// One line of a job's recorded output.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[non_exhaustive]
pub struct OutputLine {
    /// Which pipe.
    pub stream: Stream,
    /// The text.
    pub text: String,
    /// When it was read.
    #[cfg_attr(feature = "ts", ts(type = "SystemTime"))]
    pub at: SystemTime,
}

/// The last `capacity` lines of a job's output, and at most `max_bytes`
/// bytes of them (the newest line is always kept, whatever its size).
#[derive(Debug, Clone)]
pub struct OutputRing {
    lines: VecDeque<OutputLine>,
    capacity: usize,
    max_bytes: usize,
    bytes: usize,
    dropped: u64,
}

/// Memory one kept line is counted as: its text plus 64 bytes.
fn cost(line: &OutputLine) -> usize {
    line.text.capacity() + 64
}

impl OutputRing {
    /// A ring keeping at most `capacity` lines (no byte bound).
    pub fn new(capacity: usize) -> Self {
        Self::with_limits(capacity, usize::MAX)
    }

    /// A ring keeping at most `capacity` lines and about `max_bytes` bytes
    /// (each line counted as its text plus 64 bytes).
    pub fn with_limits(capacity: usize, max_bytes: usize) -> Self {
        OutputRing {
            lines: VecDeque::new(),
            capacity: capacity.max(1),
            max_bytes,
            bytes: 0,
            dropped: 0,
        }
    }

    /// Add a line, dropping the oldest ones while over either bound.
    pub fn push(&mut self, line: OutputLine) {
        let size = cost(&line);
        while !self.lines.is_empty()
            && (self.lines.len() >= self.capacity
                || self.bytes.saturating_add(size) > self.max_bytes)
        {
            if let Some(old) = self.lines.pop_front() {
                self.bytes -= cost(&old);
                self.dropped += 1;
            }
        }
        self.bytes += size;
        self.lines.push_back(line);
    }

    /// Memory held by the kept lines, as counted against the byte bound.
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    /// Drop every kept line (counted as dropped).
    pub fn clear(&mut self) {
        self.dropped += self.lines.len() as u64;
        self.lines = VecDeque::new();
        self.bytes = 0;
    }

    /// The kept lines, oldest first.
    pub fn lines(&self) -> impl Iterator<Item = &OutputLine> {
        self.lines.iter()
    }

    /// How many older lines were dropped.
    pub fn dropped(&self) -> u64 {
        self.dropped
    }

    /// The kept lines, oldest first, as a vector.
    pub fn to_vec(&self) -> Vec<OutputLine> {
        self.lines.iter().cloned().collect()
    }
}
