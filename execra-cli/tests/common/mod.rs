//! Helpers shared by the CLI's test files: run the built `execra` binary
//! against a temporary history.
#![allow(dead_code)]

use std::path::Path;
use std::process::{Command, Output, Stdio};

/// Run `execra --db DB ARGS…` to completion (no stdin, no colours).
pub fn execra(db: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_execra"))
        .arg("--db")
        .arg(db)
        .args(args)
        .env("NO_COLOR", "1")
        .stdin(Stdio::null())
        .output()
        .expect("run the execra binary")
}

/// Bytes a process printed, as text.
pub fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// Is process `pid` alive (and not a zombie)?
pub fn alive(pid: i32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .map(|s| {
            !s.rsplit(')')
                .next()
                .unwrap_or("")
                .trim_start()
                .starts_with('Z')
        })
        .unwrap_or(false)
}
