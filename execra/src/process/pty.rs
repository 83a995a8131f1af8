//! Pseudo-terminals for [`Command::pty`](crate::Command::pty) (Unix).
//!
//! A small direct implementation on `openpty(3)` from `libc` (already a
//! dependency) rather than a crate: `portable-pty` brings its own blocking
//! reader threads and a dozen dependencies, `pty-process` is async but
//! brings `rustix` and its own `Command` type, while the runtime only needs
//! four system calls (`openpty`, `setsid`, `TIOCSCTTY`, `TIOCSWINSZ`) and a
//! non-blocking master it can poll with tokio like any pipe.
//!
//! The child gets the terminal's slave side as stdin, stdout and stderr,
//! becomes the leader of a new session (`setsid`) with the terminal as its
//! controlling terminal. A session leader also leads a process group whose
//! id is its pid, so the runtime's group signals (`TERM` → grace → `KILL`)
//! reach the same processes as without a PTY; closing the master when the
//! job ends also hangs up (`SIGHUP`) whatever is left on the terminal.
//!
//! The master is read for the job's output (one merged stream: the slave
//! has no separate stderr) and written for its input. When every slave
//! descriptor is closed Linux reports `EIO` on read, which is end-of-file
//! here.
//!
//! Windows (ConPTY) is not implemented: asking for a PTY there fails the
//! spawn with a clear error.

use crate::command::StdinMode;
use crate::runtime::registry::StdinMsg;
#[cfg(not(unix))]
use {crate::command::PtySize, std::io};

#[cfg(unix)]
pub(crate) use unix_pty::{attach, PtyControl, PtyReader, PtyWriter};

/// A PTY was requested where there is none.
#[cfg(not(unix))]
pub(crate) fn attach(_cmd: &mut tokio::process::Command, _size: PtySize) -> io::Result<PtyMaster> {
    Err(io::Error::new(
        io::ErrorKind::Unsupported,
        "PTY mode (Command::pty) is not supported on this platform yet (Unix only)",
    ))
}

/// The master side of a job's terminal (never constructed off Unix).
#[cfg(not(unix))]
pub(crate) enum PtyMaster {}

#[cfg(not(unix))]
impl PtyMaster {
    pub(crate) fn split(self) -> io::Result<(PtyReader, PtyWriter, PtyControl)> {
        match self {}
    }
}

/// Output side of a job's terminal (never constructed off Unix).
#[cfg(not(unix))]
pub(crate) enum PtyReader {}

#[cfg(not(unix))]
impl tokio::io::AsyncRead for PtyReader {
    fn poll_read(
        self: std::pin::Pin<&mut Self>,
        _cx: &mut std::task::Context<'_>,
        _buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<io::Result<()>> {
        match *self {}
    }
}

/// Input side of a job's terminal (never constructed off Unix).
#[cfg(not(unix))]
pub(crate) enum PtyWriter {}

#[cfg(not(unix))]
impl PtyWriter {
    async fn write_all(&self, _bytes: &[u8]) -> io::Result<()> {
        match *self {}
    }
    async fn send_eof(&self) -> io::Result<()> {
        match *self {}
    }
}

/// Resize handle of a job's terminal (never constructed off Unix).
#[cfg(not(unix))]
#[derive(Debug, Clone)]
pub(crate) enum PtyControl {}

#[cfg(not(unix))]
impl PtyControl {
    pub(crate) fn resize(&self, _size: PtySize) -> io::Result<()> {
        match *self {}
    }
}

#[cfg(unix)]
pub(crate) use unix_pty::PtyMaster;

#[cfg(unix)]
mod unix_pty {
    use std::io;
    use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
    use std::pin::Pin;
    use std::sync::Arc;
    use std::task::{ready, Context, Poll};

    use tokio::io::unix::AsyncFd;
    use tokio::io::{AsyncRead, ReadBuf};

    use crate::command::PtySize;

    /// The master side of a job's terminal, right after spawn.
    pub(crate) struct PtyMaster {
        fd: OwnedFd,
    }

    impl PtyMaster {
        /// Split into the output reader, the input writer and a resize
        /// handle (each on its own descriptor of the same terminal).
        // `AsyncFd::new` is deprecated from tokio 1.54 in favour of the
        // unsafe `register` (not in the 1.38 we support). Its safety
        // condition — the descriptor stays open while registered — holds:
        // each `AsyncFd` owns its `OwnedFd`.
        #[allow(deprecated)]
        pub(crate) fn split(self) -> io::Result<(PtyReader, PtyWriter, PtyControl)> {
            let w = self.fd.try_clone()?;
            let c = self.fd.try_clone()?;
            Ok((
                PtyReader {
                    fd: AsyncFd::new(self.fd)?,
                },
                PtyWriter {
                    fd: AsyncFd::new(w)?,
                },
                PtyControl { fd: Arc::new(c) },
            ))
        }
    }

    /// Open a terminal of `size` and set `cmd` up to run on it: its slave
    /// side as stdin/stdout/stderr, a new session with the terminal as the
    /// controlling terminal. Returns the master.
    pub(crate) fn attach(
        cmd: &mut tokio::process::Command,
        size: PtySize,
    ) -> io::Result<PtyMaster> {
        let (mut master, mut slave) = (-1, -1);
        let ws = winsize(size);
        // `*const` on Linux, `*mut` on macOS/BSD; openpty only reads it.
        let ws_ptr = std::ptr::addr_of!(ws) as *mut libc::winsize;
        // SAFETY: openpty writes two descriptors into the out-pointers; name
        // and termios are null (allowed), winsize points to a valid struct.
        let rc = unsafe {
            libc::openpty(
                &mut master,
                &mut slave,
                std::ptr::null_mut(),
                std::ptr::null_mut(),
                ws_ptr,
            )
        };
        if rc != 0 {
            return Err(io::Error::other(format!(
                "could not open a pseudo-terminal: {}",
                io::Error::last_os_error()
            )));
        }
        // SAFETY: openpty succeeded: both are fresh descriptors we own.
        let (master, slave) =
            unsafe { (OwnedFd::from_raw_fd(master), OwnedFd::from_raw_fd(slave)) };
        for fd in [&master, &slave] {
            set_cloexec(fd.as_raw_fd())?;
        }
        set_nonblocking(master.as_raw_fd())?;
        cmd.stdin(slave.try_clone()?);
        cmd.stdout(slave.try_clone()?);
        cmd.stderr(slave);
        // SAFETY: the closure only calls async-signal-safe functions
        // (setsid, ioctl) between fork and exec.
        unsafe {
            cmd.pre_exec(|| {
                // A new session (this also makes a new process group whose
                // id is our pid) ...
                if libc::setsid() == -1 {
                    return Err(io::Error::last_os_error());
                }
                // ... whose controlling terminal is the PTY (stdin is its
                // slave side by now).
                if libc::ioctl(0, libc::TIOCSCTTY as _, 0) == -1 {
                    return Err(io::Error::last_os_error());
                }
                Ok(())
            });
        }
        Ok(PtyMaster { fd: master })
    }

    fn winsize(size: PtySize) -> libc::winsize {
        libc::winsize {
            ws_row: size.rows,
            ws_col: size.cols,
            ws_xpixel: 0,
            ws_ypixel: 0,
        }
    }

    fn set_cloexec(fd: i32) -> io::Result<()> {
        // SAFETY: fcntl on a descriptor we own, no pointers.
        unsafe {
            let flags = libc::fcntl(fd, libc::F_GETFD);
            if flags == -1 || libc::fcntl(fd, libc::F_SETFD, flags | libc::FD_CLOEXEC) == -1 {
                return Err(io::Error::last_os_error());
            }
        }
        Ok(())
    }

    fn set_nonblocking(fd: i32) -> io::Result<()> {
        // SAFETY: fcntl on a descriptor we own, no pointers.
        unsafe {
            let flags = libc::fcntl(fd, libc::F_GETFL);
            if flags == -1 || libc::fcntl(fd, libc::F_SETFL, flags | libc::O_NONBLOCK) == -1 {
                return Err(io::Error::last_os_error());
            }
        }
        Ok(())
    }

    /// The job's output, read from the master. `EIO` (every slave closed)
    /// reads as end-of-file.
    pub(crate) struct PtyReader {
        fd: AsyncFd<OwnedFd>,
    }

    impl AsyncRead for PtyReader {
        fn poll_read(
            self: Pin<&mut Self>,
            cx: &mut Context<'_>,
            buf: &mut ReadBuf<'_>,
        ) -> Poll<io::Result<()>> {
            loop {
                let mut guard = ready!(self.fd.poll_read_ready(cx))?;
                let unfilled = buf.initialize_unfilled();
                let res = guard.try_io(|fd| {
                    // SAFETY: reading into a valid, initialized buffer of
                    // the given length.
                    let n = unsafe {
                        libc::read(fd.as_raw_fd(), unfilled.as_mut_ptr().cast(), unfilled.len())
                    };
                    if n < 0 {
                        Err(io::Error::last_os_error())
                    } else {
                        Ok(n as usize)
                    }
                });
                match res {
                    Ok(Ok(n)) => {
                        buf.advance(n);
                        return Poll::Ready(Ok(()));
                    }
                    // No slave side open any more: end of output.
                    Ok(Err(e)) if e.raw_os_error() == Some(libc::EIO) => {
                        return Poll::Ready(Ok(()))
                    }
                    Ok(Err(e)) if e.kind() == io::ErrorKind::Interrupted => continue,
                    Ok(Err(e)) => return Poll::Ready(Err(e)),
                    Err(_would_block) => continue,
                }
            }
        }
    }

    /// The job's input: bytes written here are typed into the terminal.
    pub(crate) struct PtyWriter {
        fd: AsyncFd<OwnedFd>,
    }

    impl PtyWriter {
        /// Write all of `bytes` (waiting while the terminal's input queue
        /// is full).
        pub(crate) async fn write_all(&self, mut bytes: &[u8]) -> io::Result<()> {
            while !bytes.is_empty() {
                let mut guard = self.fd.writable().await?;
                let res = guard.try_io(|fd| {
                    // SAFETY: writing from a valid buffer of the given length.
                    let n =
                        unsafe { libc::write(fd.as_raw_fd(), bytes.as_ptr().cast(), bytes.len()) };
                    if n < 0 {
                        Err(io::Error::last_os_error())
                    } else {
                        Ok(n as usize)
                    }
                });
                match res {
                    Ok(Ok(0)) => return Err(io::ErrorKind::WriteZero.into()),
                    Ok(Ok(n)) => bytes = &bytes[n..],
                    Ok(Err(e)) if e.kind() == io::ErrorKind::Interrupted => {}
                    Ok(Err(e)) => return Err(e),
                    Err(_would_block) => {}
                }
            }
            Ok(())
        }

        /// End-of-file for the program: the terminal's EOF character (`^D`,
        /// as typed at the start of a line).
        pub(crate) async fn send_eof(&self) -> io::Result<()> {
            // SAFETY: tcgetattr fills a termios we own.
            let veof = unsafe {
                let mut t: libc::termios = std::mem::zeroed();
                if libc::tcgetattr(self.fd.as_raw_fd(), &mut t) == 0 {
                    t.c_cc[libc::VEOF]
                } else {
                    4
                }
            };
            self.write_all(&[veof]).await
        }
    }

    /// Resizes a job's terminal; cheap to clone.
    #[derive(Debug, Clone)]
    pub(crate) struct PtyControl {
        fd: Arc<OwnedFd>,
    }

    impl PtyControl {
        /// Set the terminal size; the foreground program gets `SIGWINCH`.
        pub(crate) fn resize(&self, size: PtySize) -> io::Result<()> {
            let ws = winsize(size);
            // SAFETY: TIOCSWINSZ reads a winsize from a valid pointer.
            let rc = unsafe { libc::ioctl(self.fd.as_raw_fd(), libc::TIOCSWINSZ as _, &ws) };
            if rc == -1 {
                return Err(io::Error::last_os_error());
            }
            Ok(())
        }
    }
}

/// Type into a job's terminal what its stdin mode says. The terminal is
/// always the program's stdin, so:
/// - `Null` and `Inherit`: end-of-file (`^D`) is sent at once, so a program
///   that reads stdin sees end-of-file as with `/dev/null` instead of
///   waiting for a user who is not there (the host's own stdin is not
///   forwarded);
/// - `Piped(bytes)`: the bytes are typed, then end-of-file;
/// - `Interactive`: `write_stdin` types, `close_stdin` sends end-of-file.
pub(crate) async fn feed(
    writer: PtyWriter,
    mode: StdinMode,
    rx: Option<tokio::sync::mpsc::UnboundedReceiver<StdinMsg>>,
) {
    match (mode, rx) {
        (StdinMode::Interactive, Some(mut rx)) => {
            while let Some(msg) = rx.recv().await {
                let res = match msg {
                    StdinMsg::Write(bytes) => writer.write_all(&bytes).await,
                    StdinMsg::Close => {
                        let _ = writer.send_eof().await;
                        break;
                    }
                };
                if res.is_err() {
                    break;
                }
            }
        }
        (StdinMode::Piped(bytes), _) => {
            if writer.write_all(&bytes).await.is_ok() {
                let _ = writer.send_eof().await;
            }
        }
        _ => {
            let _ = writer.send_eof().await;
        }
    }
}
