//! Files that hold command lines and output (the history file, raw logs)
//! are created readable by their owner only: on Unix, `0600` files and
//! `0700` directories (further narrowed by the process umask). Existing
//! files and directories keep their mode. Elsewhere these are the plain
//! `std::fs` calls.

use std::fs::{File, OpenOptions};
use std::io;
use std::path::Path;

/// Create `dir` and its missing parents, owner-only.
pub(crate) fn create_dir_all(dir: &Path) -> io::Result<()> {
    let mut b = std::fs::DirBuilder::new();
    b.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        b.mode(0o700);
    }
    b.create(dir)
}

/// Options that create a missing file owner-only.
pub(crate) fn file_options() -> OpenOptions {
    #[cfg_attr(not(unix), allow(unused_mut))]
    let mut o = OpenOptions::new();
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        o.mode(0o600);
    }
    o
}

/// Create `path` empty and owner-only if it does not exist yet (an empty
/// file is a valid SQLite database; SQLite gives its `-wal` and `-shm`
/// files the database file's mode).
pub(crate) fn touch(path: &Path) -> io::Result<()> {
    match file_options().write(true).create_new(true).open(path) {
        Ok(f) => drop::<File>(f),
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
        Err(e) => return Err(e),
    }
    Ok(())
}
