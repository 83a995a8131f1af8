//! Processes: spawning a command in its own process group (Unix) or Job
//! Object (Windows), and terminating the whole tree.
//!
//! The runtime only talks to [`ProcessTree`]: `terminate` asks politely
//! (`SIGTERM` to the group; on Windows there is no polite request, so it
//! kills), `kill` insists (`SIGKILL` to the group / `TerminateJobObject`).

use std::io;
use std::process::Stdio;

use crate::command::{Launch, StdinMode};

#[cfg(unix)]
mod unix;
#[cfg(unix)]
pub(crate) use unix::ProcessTree;

#[cfg(windows)]
mod windows;
#[cfg(windows)]
pub(crate) use windows::ProcessTree;

/// A started child with its pipes and its tree.
pub(crate) struct Spawned {
    pub child: tokio::process::Child,
    pub tree: ProcessTree,
    pub pid: u32,
}

/// Build and start the OS process for `launch`.
pub(crate) fn spawn(launch: &Launch) -> io::Result<Spawned> {
    let spec = &launch.spec;
    if spec.program.is_empty() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "program name is empty",
        ));
    }
    // Errors describe values through the spec, where secret values are
    // placeholders: a spawn error must never carry a secret.
    check_nul("program", &spec.program, &spec.program)?;
    for (i, a) in launch.args.iter().enumerate() {
        let shown = spec.args.get(i).map_or(crate::SECRET_PLACEHOLDER, |s| s);
        check_nul(&format!("argument {}", i + 1), a, shown)?;
    }
    for (i, (k, v)) in launch.env.iter().enumerate() {
        check_nul("environment variable name", k, k)?;
        let shown = spec.env.get(i).map_or(crate::SECRET_PLACEHOLDER, |e| &e.1);
        check_nul(&format!("value of environment variable {k}"), v, shown)?;
        if k.is_empty() || k.contains('=') {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("invalid environment variable name {k:?}"),
            ));
        }
    }
    if let Some(cwd) = &spec.cwd {
        if !cwd.is_dir() {
            return Err(io::Error::new(
                io::ErrorKind::NotFound,
                format!("working directory {} does not exist", cwd.display()),
            ));
        }
    }

    let mut cmd = tokio::process::Command::new(&spec.program);
    cmd.args(&launch.args);
    if spec.env_clear {
        cmd.env_clear();
    }
    for (k, v) in &launch.env {
        cmd.env(k, v);
    }
    if let Some(cwd) = &spec.cwd {
        cmd.current_dir(cwd);
    }
    cmd.stdin(match launch.stdin {
        StdinMode::Null => Stdio::null(),
        StdinMode::Inherit => Stdio::inherit(),
        StdinMode::Piped(_) | StdinMode::Interactive => Stdio::piped(),
    });
    cmd.stdout(Stdio::piped());
    cmd.stderr(Stdio::piped());
    cmd.kill_on_drop(false);
    ProcessTree::configure(&mut cmd, spec.hide_window);

    let child = cmd
        .spawn()
        .map_err(|e| describe_spawn_error(&spec.program, e))?;
    let pid = child.id().unwrap_or(0);
    let tree = ProcessTree::attach(&child)?;
    Ok(Spawned { child, tree, pid })
}

/// Reject a NUL byte in `value`; the error shows `shown` (the value as the
/// spec has it: a placeholder for secrets), never `value` itself.
fn check_nul(what: &str, value: &str, shown: &str) -> io::Result<()> {
    if !value.contains('\0') {
        return Ok(());
    }
    let msg = if shown == crate::SECRET_PLACEHOLDER {
        format!("{what} contains a NUL byte (value hidden: it is secret)")
    } else {
        format!("{what} contains a NUL byte: {shown:?}")
    };
    Err(io::Error::new(io::ErrorKind::InvalidInput, msg))
}

fn describe_spawn_error(program: &str, e: io::Error) -> io::Error {
    let what = match e.kind() {
        io::ErrorKind::NotFound => format!("program not found: {program}"),
        io::ErrorKind::PermissionDenied => {
            format!("permission denied (not executable?): {program}")
        }
        _ => format!("could not start {program}: {e}"),
    };
    io::Error::new(e.kind(), what)
}
