//! Progress values: unknown, indeterminate (a spinner) or determinate (a bar).

use serde::{Deserialize, Serialize};

/// How far a job has come. Tag `kind` on the wire.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Progress {
    /// Nothing is known (the default).
    #[default]
    Unknown,
    /// Work is happening but its extent is unknown (show a spinner).
    Indeterminate {
        /// What is happening, e.g. `"verifying"`.
        hint: Option<String>,
    },
    /// A measurable amount of work (show a bar).
    Determinate(ProgressMetric),
}

/// A measured amount of progress. Tag `unit` on the wire.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
#[serde(tag = "unit", rename_all = "snake_case")]
pub enum ProgressMetric {
    /// A fraction in `0.0..=1.0`.
    Fraction {
        /// The fraction done.
        value: f32,
    },
    /// `done` out of `total` items.
    Count {
        /// Items done.
        #[cfg_attr(feature = "ts", ts(type = "number"))]
        done: u64,
        /// Items in all.
        #[cfg_attr(feature = "ts", ts(type = "number"))]
        total: u64,
    },
    /// Bytes transferred, with the total when known.
    Bytes {
        /// Bytes done.
        #[cfg_attr(feature = "ts", ts(type = "number"))]
        done: u64,
        /// Bytes in all, when known.
        #[cfg_attr(feature = "ts", ts(type = "number | null"))]
        total: Option<u64>,
    },
}

/// Clamp to `0..=1`, mapping NaN to 0 and infinities to the nearest bound.
pub(crate) fn clamp_fraction(v: f32) -> f32 {
    if v.is_nan() {
        0.0
    } else {
        v.clamp(0.0, 1.0)
    }
}

impl Progress {
    /// Indeterminate progress with a hint.
    pub fn indeterminate(hint: impl Into<String>) -> Self {
        Progress::Indeterminate {
            hint: Some(hint.into()),
        }
    }

    /// A fraction, clamped to `0..=1` (NaN becomes 0).
    pub fn fraction(value: f32) -> Self {
        Progress::Determinate(ProgressMetric::Fraction {
            value: clamp_fraction(value),
        })
    }

    /// `done` of `total` items.
    pub fn count(done: u64, total: u64) -> Self {
        Progress::Determinate(ProgressMetric::Count { done, total })
    }

    /// Bytes done, with an optional total.
    pub fn bytes(done: u64, total: Option<u64>) -> Self {
        Progress::Determinate(ProgressMetric::Bytes { done, total })
    }

    /// Byte progress from megabytes (1 MB = 10^6 bytes); stores bytes.
    /// Negative or non-finite inputs become 0.
    pub fn bytes_mb(done_mb: f64, total_mb: f64) -> Self {
        fn to_bytes(mb: f64) -> u64 {
            if mb.is_finite() && mb > 0.0 {
                (mb * 1_000_000.0).round() as u64
            } else {
                0
            }
        }
        Progress::bytes(to_bytes(done_mb), Some(to_bytes(total_mb)))
    }

    /// The fraction done, when it can be computed (`None` for unknown,
    /// indeterminate, or a zero/unknown total).
    pub fn as_fraction(&self) -> Option<f32> {
        match self {
            Progress::Determinate(m) => m.as_fraction(),
            _ => None,
        }
    }

    /// The same progress with any fraction clamped to `0..=1` (NaN → 0).
    pub fn sanitized(self) -> Self {
        match self {
            Progress::Determinate(ProgressMetric::Fraction { value }) => Progress::fraction(value),
            other => other,
        }
    }
}

impl ProgressMetric {
    /// The fraction done, when a total is known and non-zero.
    pub fn as_fraction(&self) -> Option<f32> {
        match *self {
            ProgressMetric::Fraction { value } => Some(clamp_fraction(value)),
            ProgressMetric::Count { done, total } if total > 0 => {
                Some(clamp_fraction(done as f32 / total as f32))
            }
            ProgressMetric::Bytes {
                done,
                total: Some(total),
            } if total > 0 => Some(clamp_fraction(done as f32 / total as f32)),
            _ => None,
        }
    }
}
