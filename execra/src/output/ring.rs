//! A bounded ring of recent output lines.

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

/// The last `capacity` lines of a job's output.
#[derive(Debug, Clone)]
pub struct OutputRing {
    lines: VecDeque<OutputLine>,
    capacity: usize,
    dropped: u64,
}

impl OutputRing {
    /// A ring keeping at most `capacity` lines.
    pub fn new(capacity: usize) -> Self {
        OutputRing {
            lines: VecDeque::new(),
            capacity: capacity.max(1),
            dropped: 0,
        }
    }

    /// Add a line, dropping the oldest when full.
    pub fn push(&mut self, line: OutputLine) {
        if self.lines.len() == self.capacity {
            self.lines.pop_front();
            self.dropped += 1;
        }
        self.lines.push_back(line);
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
