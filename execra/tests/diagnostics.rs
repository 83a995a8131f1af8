//! `tracing` diagnostics: a span per job and events for what an app needs to
//! see (stop requests, escalation to KILL, the verdict), never secrets.

use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use execra::{Command, Event, Outcome, Runtime};

/// A `tracing` writer that keeps everything in memory.
#[derive(Clone, Default)]
struct Capture(Arc<Mutex<Vec<u8>>>);

impl Write for Capture {
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
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().expect("capture lock")).into_owned()
    }
}

// Current-thread runtime: the job's driver runs on this thread, where the
// subscriber below is the default.
#[tokio::test]
async fn a_cancelled_job_that_ignores_term_shows_its_span_and_the_kill() {
    let capture = Capture::default();
    let writer = capture.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::DEBUG)
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .finish();
    let _default = tracing::subscriber::set_default(subscriber);

    let rt = Runtime::builder()
        .default_grace_period(Duration::from_millis(200))
        .build()
        .expect("build");
    let h = rt
        .spawn(
            Command::sh(r#"trap '' TERM; echo "ready $TOKEN"; sleep 30"#)
                .secret_env("TOKEN", "tr4cing-s3cret")
                .label("stubborn"),
        )
        .expect("spawn");
    let id = h.id();
    let mut events = h.subscribe();
    while let Some(ev) = events.next().await {
        if matches!(ev, Event::OutputAppended { .. }) {
            break;
        }
    }
    h.cancel().expect("cancel");
    assert!(matches!(h.await, Outcome::Cancelled { .. }));

    let log = capture.text();
    for expected in [
        format!("job{{id={id} "),
        "label=\"stubborn\"".to_string(),
        "spawned".to_string(),
        "stopping the job".to_string(),
        "grace period over; killing the process tree".to_string(),
        "job finalized".to_string(),
    ] {
        assert!(log.contains(&expected), "missing {expected:?} in:\n{log}");
    }
    assert!(
        !log.contains("tr4cing-s3cret"),
        "a secret reached the log:\n{log}"
    );
}
