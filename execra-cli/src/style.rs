//! Colours (off when not a terminal or when NO_COLOR is set) and formatting
//! of times and durations.

use std::io::IsTerminal;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use execra::{Outcome, Severity};

/// Whether to colour output.
#[derive(Debug, Clone, Copy)]
pub struct Style {
    color: bool,
}

impl Style {
    /// Colours only on a terminal, and never with `NO_COLOR` or `--no-color`.
    pub fn detect(no_color: bool) -> Self {
        let env_off = std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty());
        Style {
            color: !no_color && !env_off && std::io::stdout().is_terminal(),
        }
    }

    fn paint(&self, code: &str, s: &str) -> String {
        if self.color {
            format!("\x1b[{code}m{s}\x1b[0m")
        } else {
            s.to_string()
        }
    }

    /// Green.
    pub fn good(&self, s: &str) -> String {
        self.paint("32", s)
    }
    /// Red.
    pub fn bad(&self, s: &str) -> String {
        self.paint("31", s)
    }
    /// Yellow.
    pub fn warn(&self, s: &str) -> String {
        self.paint("33", s)
    }
    /// Dim.
    pub fn dim(&self, s: &str) -> String {
        self.paint("2", s)
    }
    /// Bold.
    pub fn bold(&self, s: &str) -> String {
        self.paint("1", s)
    }

    /// A severity, coloured.
    pub fn severity(&self, s: Severity) -> String {
        match s {
            Severity::Error => self.bad("error"),
            Severity::Warning => self.warn("warning"),
            Severity::Recommendation => self.paint("36", "recommendation"),
            Severity::Info => self.dim("info"),
        }
    }

    /// A short verdict, coloured.
    pub fn verdict(&self, state: execra::JobState, outcome: Option<&Outcome>) -> String {
        match outcome {
            Some(Outcome::Succeeded { .. }) => self.good("succeeded"),
            Some(Outcome::Cancelled { .. }) => self.warn("cancelled"),
            Some(Outcome::Failed { reason, .. }) => self.bad(&format!(
                "failed ({})",
                match reason {
                    execra::FailureReason::NonZeroExit { code } => format!("exit {code}"),
                    execra::FailureReason::Signal { signal } => format!("signal {signal}"),
                    execra::FailureReason::KnownError { code, .. } => code.clone(),
                    execra::FailureReason::SpawnFailed { error }
                        if error == execra::store::STRANDED_ERROR =>
                    {
                        "host exited".to_string()
                    }
                    execra::FailureReason::SpawnFailed { .. } => "spawn".to_string(),
                    execra::FailureReason::Timeout => "timeout".to_string(),
                    execra::FailureReason::IdleTimeout { .. } => "idle timeout".to_string(),
                    // A failure kind added after this CLI was written.
                    _ => "other".to_string(),
                }
            )),
            None => self.paint("34", state.as_str()),
        }
    }
}

/// `2026-11-26 06:20:01` (UTC).
pub fn timestamp(t: SystemTime) -> String {
    let secs = t
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let (days, rem) = (secs / 86_400, secs % 86_400);
    let (y, m, d) = civil_from_days(days as i64);
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02}",
        rem / 3600,
        (rem % 3600) / 60,
        rem % 60
    )
}

/// Days since 1970-01-01 → (year, month, day), proleptic Gregorian.
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

/// `1.2s`, `3m04s`, `2h05m`.
pub fn duration(d: Duration) -> String {
    let s = d.as_secs();
    if s < 60 {
        format!("{:.1}s", d.as_secs_f64())
    } else if s < 3600 {
        format!("{}m{:02}s", s / 60, s % 60)
    } else {
        format!("{}h{:02}m", s / 3600, (s % 3600) / 60)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates() {
        assert_eq!(timestamp(UNIX_EPOCH), "1970-01-01 00:00:00");
        let t = UNIX_EPOCH + Duration::from_secs(1_795_674_001);
        assert_eq!(timestamp(t), "2026-11-26 06:20:01");
        assert_eq!(duration(Duration::from_millis(1234)), "1.2s");
        assert_eq!(duration(Duration::from_secs(184)), "3m04s");
    }
}
