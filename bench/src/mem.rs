//! Resident-set readings from `/proc/self/status` (Linux).

use std::fs;

/// One reading of the process's memory, in KiB.
#[derive(Debug, Clone, Copy, Default)]
pub struct Mem {
    /// Current resident set (`VmRSS`).
    pub rss_kib: u64,
    /// Peak resident set since start or since the last [`reset_peak`] (`VmHWM`).
    pub hwm_kib: u64,
}

/// Reads `VmRSS` and `VmHWM`; zeros if `/proc` is unavailable.
pub fn read() -> Mem {
    let mut m = Mem::default();
    let Ok(status) = fs::read_to_string("/proc/self/status") else {
        return m;
    };
    for line in status.lines() {
        let field = |prefix: &str| -> Option<u64> {
            line.strip_prefix(prefix)?
                .trim()
                .trim_end_matches("kB")
                .trim()
                .parse()
                .ok()
        };
        if let Some(v) = field("VmRSS:") {
            m.rss_kib = v;
        } else if let Some(v) = field("VmHWM:") {
            m.hwm_kib = v;
        }
    }
    m
}

/// Resets `VmHWM` to the current RSS (Linux ≥ 4.0, `echo 5 > clear_refs`).
/// Returns whether it worked; if not, the peak includes setup.
pub fn reset_peak() -> bool {
    fs::write("/proc/self/clear_refs", "5").is_ok()
}

/// Baseline taken after runtime setup; growth is measured against it.
pub struct Probe {
    base: Mem,
    peak_reset: bool,
}

impl Probe {
    pub fn start() -> Self {
        let peak_reset = reset_peak();
        Probe {
            base: read(),
            peak_reset,
        }
    }

    /// Current RSS minus baseline RSS, KiB (may be negative after frees).
    pub fn rss_growth_kib(&self) -> i64 {
        read().rss_kib as i64 - self.base.rss_kib as i64
    }

    /// Peak RSS minus baseline RSS, KiB.
    pub fn peak_growth_kib(&self) -> i64 {
        read().hwm_kib as i64 - self.base.rss_kib as i64
    }

    pub fn base_kib(&self) -> u64 {
        self.base.rss_kib
    }

    pub fn peak_reset(&self) -> bool {
        self.peak_reset
    }
}
