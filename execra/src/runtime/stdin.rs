//! A job's standard input: bytes given up front ([`StdinMode::Piped`]) or
//! written while it runs ([`StdinMode::Interactive`]), each fed by its own
//! task so a child that never reads cannot block the driver.

use tokio::io::AsyncWriteExt;
use tokio::sync::mpsc;

use crate::command::StdinMode;
use crate::process::ChildStdin;

use super::registry::StdinMsg;

/// Connect the child's stdin pipe according to `mode`.
pub(super) fn connect(
    stdin: ChildStdin,
    mode: StdinMode,
    rx: Option<mpsc::UnboundedReceiver<StdinMsg>>,
) {
    match mode {
        StdinMode::Piped(bytes) => {
            let mut stdin = stdin;
            tokio::spawn(async move {
                let _ = stdin.write_all(&bytes).await;
            });
        }
        StdinMode::Interactive => {
            if let Some(rx) = rx {
                tokio::spawn(pump(stdin, rx));
            }
        }
        StdinMode::Null | StdinMode::Inherit => drop(stdin),
    }
}

/// Feed a job's stdin from the runtime's write requests.
async fn pump(mut stdin: ChildStdin, mut rx: mpsc::UnboundedReceiver<StdinMsg>) {
    while let Some(msg) = rx.recv().await {
        match msg {
            StdinMsg::Write(bytes) => {
                if stdin.write_all(&bytes).await.is_err() || stdin.flush().await.is_err() {
                    break;
                }
            }
            StdinMsg::Close => break,
        }
    }
    let _ = stdin.shutdown().await;
}
