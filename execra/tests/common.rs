//! Shared test helpers.
#![allow(dead_code)]

use std::time::Duration;

use execra::{Event, EventStream};

/// Collect every event until the stream ends (bounded by 60 s).
pub async fn collect(mut s: EventStream) -> Vec<Event> {
    let mut out = Vec::new();
    let res = tokio::time::timeout(Duration::from_secs(60), async {
        while let Some(e) = s.next().await {
            out.push(e);
        }
    })
    .await;
    assert!(
        res.is_ok(),
        "event stream did not end; got {:?}",
        out.last()
    );
    out
}

pub fn kinds(evs: &[Event]) -> Vec<&'static str> {
    evs.iter().map(|e| e.kind()).collect()
}

pub fn output_lines(evs: &[Event]) -> Vec<String> {
    evs.iter()
        .filter_map(|e| match e {
            Event::OutputAppended {
                line,
                redraw: false,
                ..
            } => Some(line.clone()),
            _ => None,
        })
        .collect()
}

/// Is a process with this pid alive (and not a zombie)?
#[cfg(unix)]
pub fn alive(pid: i32) -> bool {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"));
    match stat {
        Ok(s) => {
            let after = s.rsplit(')').next().unwrap_or("");
            !after.trim_start().starts_with('Z')
        }
        Err(_) => false,
    }
}

/// Wait (up to 10 s) for a condition to become true.
pub async fn eventually(mut f: impl FnMut() -> bool) -> bool {
    for _ in 0..1000 {
        if f() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    f()
}

/// A `tracing` writer that keeps everything in memory.
#[derive(Clone, Default)]
pub struct Capture(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

impl std::io::Write for Capture {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0
            .lock()
            .map_err(|_| std::io::Error::other("poisoned"))?
            .extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Capture {
    /// Everything written so far.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().expect("capture lock")).into_owned()
    }

    /// Capture this thread's `tracing` output (DEBUG and up, no colours)
    /// while the returned guard lives.
    pub fn install() -> (Capture, tracing::subscriber::DefaultGuard) {
        let capture = Capture::default();
        let writer = capture.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_max_level(tracing::Level::DEBUG)
            .with_ansi(false)
            .with_writer(move || writer.clone())
            .finish();
        (capture, tracing::subscriber::set_default(subscriber))
    }
}

/// A runtime with containment `c` and a short grace period (the
/// containment tests' runtime).
pub fn contained_runtime(c: execra::Containment) -> execra::Runtime {
    execra::Runtime::builder()
        .containment(c)
        .default_grace_period(Duration::from_millis(500))
        .build()
        .expect("runtime")
}

/// Every process's pid and command line (`/proc/<pid>/cmdline`, arguments
/// separated by NUL); empty where there is no `/proc`.
pub fn proc_cmdlines() -> Vec<(i32, Vec<u8>)> {
    let Ok(rd) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    rd.flatten()
        .filter_map(|e| {
            let pid = e.file_name().to_str()?.parse::<i32>().ok()?;
            let cmd = std::fs::read(format!("/proc/{pid}/cmdline")).ok()?;
            Some((pid, cmd))
        })
        .collect()
}
