//! Raw output logs: one file per job in the log directory.
//!
//! Every complete output line (redraws are not logged) is written prefixed
//! `[stdout] ` or `[stderr] `:
//!
//! - [`RawOutputPolicy::Persist`](crate::RawOutputPolicy): to
//!   `<log_dir>/<job_id>.log`;
//! - `PersistGzipOnFinalize`: compressed while it is written, straight to
//!   `<log_dir>/<job_id>.log.gz` (no plain file ever exists) — or, for the
//!   chunks the writer takes while it is more than [`STORE_ABOVE`] behind
//!   the job, stored uncompressed in the same stream (`super::gzip`), so
//!   compression never makes the job wait; the gzip
//!   stream is sync-flushed whenever the job's output pauses, so everything
//!   logged so far can be decoded while the job runs ([`LogTail`], `execra
//!   logs --follow`, [`Runtime::output`](crate::Runtime::output)); when the
//!   job ends only what the writer has not caught up with and the stream's
//!   trailer remain to be written. So finishing costs the same whatever the
//!   log's size, and the log is complete before the job's `finalized` event
//!   is published and its handle resolves.
//!
//! Off the hot path: the job's driver only copies each line into a chunk;
//! each log has a writer thread (`execra-raw-log`) that writes the chunks
//! (one per pipe read) and compresses them, so a chatty job's reading of
//! its pipes does not wait for the disk or for gzip. The writer is at most
//! 8 MiB behind (then the driver waits for it), and a reader in the same
//! process ([`Runtime::output`](crate::Runtime::output), [`LogTail`]) first
//! waits for it to catch up: it sees every line whose event was published.
//! A reader in another process sees them within about 10 ms of the job's
//! output pausing (or every MiB while it streams). If no thread can be
//! started, the driver writes the log itself, as before.
//!
//! Files are created owner-only (`0600`, and `0700` for the directory, on
//! Unix): they hold the jobs' output.
//!
//! Failures: a log that cannot be created is reported by the driver as a
//! `warning_detected` event (code `execra.raw_log`) and the job runs
//! without a log. A write that fails mid-job (disk full) ends that log (the
//! driver warns once, at its next hand-over to the writer); what was
//! written stays readable. The driver also emits both as `tracing` events
//! in the job's span; a log that cannot be completed when the job ends (its
//! last write or the gzip trailer fails) is a `tracing` warning from here
//! (target `execra::raw_log`, with the job id and the error, never the
//! output).

use std::collections::{HashMap, HashSet, VecDeque};
use std::fs::File;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex, OnceLock, Weak};
use std::time::{Duration, Instant, SystemTime};

use crate::event::Stream;
use crate::job::JobId;
use crate::retention::{prune_raw_logs, RetentionPolicy, PRUNE_EVERY};

use super::OutputLine;

const STDOUT_PREFIX: &str = "[stdout] ";
const STDERR_PREFIX: &str = "[stderr] ";

/// Jobs whose logs are open for writing (retention never deletes those).
type OpenSet = Arc<Mutex<HashSet<JobId>>>;

/// Raw logs in one directory.
pub(crate) struct FileRawLogs {
    dir: PathBuf,
    gzip: bool,
    /// Prune by age from here (set when no history writer does it).
    self_prune: Option<RetentionPolicy>,
    last_prune: Mutex<Instant>,
    open: OpenSet,
}

impl FileRawLogs {
    /// Raw logs in `dir` (created, owner-only, if missing), compressed while
    /// written if `gzip`. With `self_prune`, logs past its `keep_raw_for`
    /// are deleted now and then at most every `PRUNE_EVERY` when a job
    /// opens its log.
    pub(crate) fn new(
        dir: &Path,
        gzip: bool,
        self_prune: Option<&RetentionPolicy>,
    ) -> io::Result<Self> {
        if dir.exists() && !dir.is_dir() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("log_dir {} is not a directory", dir.display()),
            ));
        }
        crate::private::create_dir_all(dir).map_err(|e| {
            io::Error::new(
                e.kind(),
                format!("cannot create log_dir {}: {e}", dir.display()),
            )
        })?;
        let logs = FileRawLogs {
            dir: dir.to_path_buf(),
            gzip,
            self_prune: self_prune.cloned(),
            last_prune: Mutex::new(Instant::now()),
            open: OpenSet::default(),
        };
        if let Some(policy) = &logs.self_prune {
            let removed = prune_raw_logs(&logs.dir, policy, &|_| false)?;
            crate::retention::PruneReport {
                raw_logs: removed,
                ..Default::default()
            }
            .trace();
        }
        Ok(logs)
    }

    /// Start the log of job `id`.
    pub(crate) fn open(&self, id: JobId) -> io::Result<RawLog> {
        self.maybe_prune();
        let path = if self.gzip {
            gz_path(&self.dir, id)
        } else {
            plain_path(&self.dir, id)
        };
        let file = crate::private::file_options()
            .create(true)
            .append(true)
            .open(&path)
            .map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", path.display())))?;
        let sink = sink(file, self.gzip);
        if let Ok(mut open) = self.open.lock() {
            open.insert(id);
        }
        Ok(RawLog::new(id, sink, Arc::clone(&self.open)))
    }

    /// Read a job's log back, gzipped or plain (`Ok(None)` if there is
    /// none). A log still being written reads up to its last complete line.
    pub(crate) fn read(&self, id: JobId) -> io::Result<Option<Vec<OutputLine>>> {
        read_job_log(&self.dir, id)
    }

    /// Delete logs past the retention policy now (those open for writing
    /// are kept); returns how many. Without a policy of its own (history
    /// prunes this directory), nothing.
    pub(crate) fn prune(&self) -> io::Result<usize> {
        let Some(policy) = &self.self_prune else {
            return Ok(0);
        };
        let busy = self.in_use();
        let removed = prune_raw_logs(&self.dir, policy, &|id| busy.contains(&id))?;
        crate::retention::PruneReport {
            raw_logs: removed,
            ..Default::default()
        }
        .trace();
        Ok(removed)
    }

    fn in_use(&self) -> HashSet<JobId> {
        match self.open.lock() {
            Ok(o) => o.clone(),
            Err(_) => HashSet::new(),
        }
    }

    fn maybe_prune(&self) {
        let Some(policy) = &self.self_prune else {
            return;
        };
        let due = match self.last_prune.lock() {
            Ok(mut last) if last.elapsed() >= PRUNE_EVERY => {
                *last = Instant::now();
                true
            }
            _ => false,
        };
        if due {
            let dir = self.dir.clone();
            let policy = policy.clone();
            let busy = self.in_use();
            let _ = std::thread::Builder::new()
                .name("execra-raw-prune".to_string())
                .spawn(
                    move || match prune_raw_logs(&dir, &policy, &|id| busy.contains(&id)) {
                        Ok(removed) => crate::retention::PruneReport {
                            raw_logs: removed,
                            ..Default::default()
                        }
                        .trace(),
                        Err(e) => tracing::warn!(
                            target: "execra::retention",
                            error = %e,
                            "raw log retention pass failed"
                        ),
                    },
                );
        }
    }
}

fn plain_path(dir: &Path, id: JobId) -> PathBuf {
    dir.join(format!("{id}.log"))
}

fn gz_path(dir: &Path, id: JobId) -> PathBuf {
    dir.join(format!("{id}.log.gz"))
}

/// Where a log's bytes go, on the log's writer thread (or, if no thread
/// could be started, on the job's driver). Lines reach it in chunks (one
/// pipe read's worth, or [`CHUNK`] bytes), not one by one: the compressor
/// is called once per chunk, which is what keeps it cheap (per line, a 100
/// MiB job took ten times longer in the BENCHMARKS.md probe).
enum Sink {
    Plain(File),
    #[cfg(feature = "gzip")]
    Gzip(super::gzip::GzWriter<File>),
}

/// Where a new log's bytes go: `file`, through gzip if `gzip` (and the
/// feature is on).
fn sink(file: File, gzip: bool) -> Sink {
    #[cfg(feature = "gzip")]
    if gzip {
        return Sink::Gzip(super::gzip::GzWriter::new(file));
    }
    let _ = gzip;
    Sink::Plain(file)
}

impl Sink {
    /// Write a chunk; `behind`: the writer is more than [`STORE_ABOVE`]
    /// behind the job, so a gzip log stores it rather than compress it.
    fn write_all(&mut self, bytes: &[u8], behind: bool) -> io::Result<()> {
        match self {
            Sink::Plain(f) => {
                let _ = behind;
                f.write_all(bytes)
            }
            #[cfg(feature = "gzip")]
            Sink::Gzip(w) if behind => w.write_stored(bytes),
            #[cfg(feature = "gzip")]
            Sink::Gzip(w) => w.write_compressed(bytes),
        }
    }

    /// Make everything written so far readable (for gzip: a sync flush, so
    /// the stream decodes up to here).
    fn flush(&mut self) -> io::Result<()> {
        match self {
            Sink::Plain(f) => f.flush(),
            #[cfg(feature = "gzip")]
            Sink::Gzip(w) => w.flush(),
        }
    }

    /// Make the log final (for gzip, write the trailer).
    fn close(self) -> io::Result<()> {
        match self {
            Sink::Plain(mut f) => f.flush(),
            #[cfg(feature = "gzip")]
            Sink::Gzip(w) => w.finish().map(drop),
        }
    }
}

/// A chunk is handed to the writer once it holds this many bytes, even
/// within one pipe read.
const CHUNK: usize = 256 * 1024;
/// Emptied chunks the writer keeps for the driver to reuse.
const MAX_SPARE: usize = 8;
/// Bytes handed to the writer and not yet written, above which the driver
/// waits for it: memory stays bounded when the disk or the compressor is
/// slower than the job, and a job's log is never more than this behind.
const MAX_QUEUED: usize = 8 * 1024 * 1024;
/// Bytes waiting for the writer after the chunk it takes, above which a
/// gzip log stores that chunk instead of compressing it: the compressor
/// (about 1 GB/s on one core) has fallen behind the job's output (a job
/// printing hundreds of MB/s, a busy machine), and compressing would take
/// CPU from the job and, at [`MAX_QUEUED`], make it wait. A log never
/// slows its job for the sake of its size; it is compressed again as soon
/// as it has caught up. (BENCHMARKS.md, "Streams", has what this costs in
/// log size and saves in time.)
const STORE_ABOVE: usize = 256 * 1024;
/// Bytes written without a flush, after which the writer makes them
/// readable even though more are queued (for `execra logs --follow`).
const FLUSH_EVERY: usize = 1024 * 1024;
/// How long written bytes may wait for more before the writer flushes them
/// (a sync flush per chunk would cost compression for nothing while the
/// job streams).
const IDLE_FLUSH: Duration = Duration::from_millis(10);
/// How long a reader waits for the writer to catch up before reading what
/// is on disk anyway.
const CATCH_UP: Duration = Duration::from_secs(2);

/// What the job's driver and the log's writer thread share.
struct Shared {
    state: Mutex<State>,
    /// The writer waits on it for chunks, closing, or a reader.
    work: Condvar,
    /// The driver (room in the queue) and readers (catching up) wait on it.
    done: Condvar,
}

#[derive(Default)]
struct State {
    queue: VecDeque<Vec<u8>>,
    /// Bytes in `queue`.
    queued: usize,
    /// Chunks handed to the writer so far.
    handed: u64,
    /// Chunks written and flushed: readable by anyone.
    visible: u64,
    /// A reader waits until `visible` reaches this.
    wanted: u64,
    /// No more chunks: write the rest, close the log, end.
    closing: bool,
    /// The writer ended (closed, or failed).
    ended: bool,
    /// Writing failed: the rest is not logged.
    error: Option<(io::ErrorKind, String)>,
    /// Emptied chunks, reused by the driver.
    spare: Vec<Vec<u8>>,
    /// The writer sleeps on `work` (a hand-over must wake it; otherwise it
    /// finds the chunk itself, and a wake-up would be a system call for
    /// nothing).
    writer_waiting: bool,
    /// Threads waiting on `done` (the driver for room, readers for the
    /// writer to catch up): the writer wakes them after each chunk only if
    /// there are any.
    done_waiters: usize,
}

impl Shared {
    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Wait (up to [`CATCH_UP`]) until everything handed to the writer so
    /// far is readable.
    fn catch_up(&self) {
        let deadline = Instant::now() + CATCH_UP;
        let mut st = self.lock();
        let target = st.handed;
        if st.visible >= target || st.ended {
            return;
        }
        st.wanted = st.wanted.max(target);
        self.work.notify_one();
        while st.visible < target && !st.ended {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return;
            }
            st.done_waiters += 1;
            st = match self.done.wait_timeout(st, left) {
                Ok((g, _)) => g,
                Err(p) => p.into_inner().0,
            };
            st.done_waiters -= 1;
        }
    }
}

/// Logs being written by a writer thread in this process, by job: a reader
/// ([`FileRawLogs::read`], [`LogTail`]) first waits for the writer to catch
/// up, so it sees every line whose event was published.
fn writing() -> &'static Mutex<HashMap<JobId, Weak<Shared>>> {
    static W: OnceLock<Mutex<HashMap<JobId, Weak<Shared>>>> = OnceLock::new();
    W.get_or_init(Mutex::default)
}

/// Wait until job `id`'s log, if this process writes it, holds every line
/// logged so far.
fn catch_up(id: JobId) {
    let shared = match writing().lock() {
        Ok(w) => w.get(&id).and_then(Weak::upgrade),
        Err(_) => None,
    };
    if let Some(s) = shared {
        s.catch_up();
    }
}

/// The writer thread: chunks in order into the sink, a flush when the
/// queue runs dry for [`IDLE_FLUSH`], when a reader waits, or every
/// [`FLUSH_EVERY`] bytes; the trailer when closing.
fn write_loop(id: JobId, shared: &Shared, mut sink: Sink) {
    let mut written = 0u64;
    let mut unflushed = 0usize;
    let mut st = shared.lock();
    loop {
        if let Some(chunk) = st.queue.pop_front() {
            // Far behind the job (more than `STORE_ABOVE` waiting after
            // this chunk): store rather than compress, so the log catches
            // up instead of competing with the job for the CPU.
            let behind = st.queued.saturating_sub(chunk.len()) > STORE_ABOVE;
            drop(st);
            let mut r = sink.write_all(&chunk, behind);
            written += 1;
            unflushed += chunk.len();
            st = shared.lock();
            let flush =
                unflushed >= FLUSH_EVERY || (st.wanted > st.visible && written >= st.wanted);
            if flush && r.is_ok() {
                drop(st);
                r = sink.flush();
                unflushed = 0;
                st = shared.lock();
                if r.is_ok() {
                    st.visible = written;
                }
            }
            st.queued -= chunk.len();
            // Reused by the driver instead of a fresh buffer grown line by
            // line (fresh pages the kernel zeroes): enough to cover a queue
            // a few reads deep, none bigger than two chunks.
            if st.spare.len() < MAX_SPARE && chunk.capacity() <= 2 * CHUNK {
                let mut chunk = chunk;
                chunk.clear();
                st.spare.push(chunk);
            }
            if let Err(e) = r {
                st.error = Some((e.kind(), e.to_string()));
                st.queue.clear();
                st.queued = 0;
                st.ended = true;
                shared.done.notify_all();
                return;
            }
            if st.done_waiters > 0 {
                shared.done.notify_all();
            }
            continue;
        }
        if st.closing {
            drop(st);
            let r = sink.close();
            if let Err(e) = &r {
                tracing::warn!(target: "execra::raw_log", job = %id, error = %e, "cannot complete a raw log");
            }
            st = shared.lock();
            if r.is_ok() {
                st.visible = written;
            }
            st.ended = true;
            shared.done.notify_all();
            return;
        }
        if unflushed > 0 {
            let due = st.wanted > st.visible;
            if !due {
                st.writer_waiting = true;
                let (g, timeout) = match shared.work.wait_timeout(st, IDLE_FLUSH) {
                    Ok(w) => w,
                    Err(p) => p.into_inner(),
                };
                st = g;
                st.writer_waiting = false;
                if !timeout.timed_out() || !st.queue.is_empty() || st.closing {
                    continue;
                }
            }
            drop(st);
            let r = sink.flush();
            unflushed = 0;
            st = shared.lock();
            match r {
                Ok(()) => st.visible = written,
                Err(e) => {
                    st.error = Some((e.kind(), e.to_string()));
                    st.ended = true;
                    shared.done.notify_all();
                    return;
                }
            }
            shared.done.notify_all();
            continue;
        }
        st.writer_waiting = true;
        st = match shared.work.wait(st) {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        };
        st.writer_waiting = false;
    }
}

/// Where a log's chunks go.
enum Out {
    /// To the log's writer thread.
    Thread {
        shared: Arc<Shared>,
        thread: Option<std::thread::JoinHandle<()>>,
    },
    /// Written by the caller (no thread could be started).
    Inline(Sink),
}

/// One job's raw log being written. Lines are formatted into a chunk on
/// the caller's thread (a copy, no I/O); [`flush`](Self::flush) hands the
/// chunk to the log's writer thread, which compresses and writes it off
/// the job's hot path. Dropping it closes it as [`finish`](Self::finish)
/// does.
pub(crate) struct RawLog {
    id: JobId,
    buf: Vec<u8>,
    out: Option<Out>,
    open: OpenSet,
}

impl RawLog {
    /// The log of job `id` written to `sink`.
    fn new(id: JobId, sink: Sink, open: OpenSet) -> Self {
        let shared = Arc::new(Shared {
            state: Mutex::new(State::default()),
            work: Condvar::new(),
            done: Condvar::new(),
        });
        // The sink moves to the thread; if the thread cannot start, it
        // comes back through this slot and is written inline.
        let slot = Arc::new(Mutex::new(Some(sink)));
        let spawned = {
            let shared = Arc::clone(&shared);
            let slot = Arc::clone(&slot);
            std::thread::Builder::new()
                .name("execra-raw-log".to_string())
                .stack_size(1024 * 1024)
                .spawn(move || {
                    let sink = slot.lock().ok().and_then(|mut s| s.take());
                    if let Some(sink) = sink {
                        write_loop(id, &shared, sink);
                    }
                })
        };
        let out = match spawned {
            Ok(thread) => {
                if let Ok(mut w) = writing().lock() {
                    w.insert(id, Arc::downgrade(&shared));
                }
                Some(Out::Thread {
                    shared,
                    thread: Some(thread),
                })
            }
            Err(e) => {
                tracing::debug!(target: "execra::raw_log", job = %id, error = %e, "no raw log thread; writing inline");
                slot.lock().ok().and_then(|mut s| s.take()).map(Out::Inline)
            }
        };
        RawLog {
            id,
            buf: Vec::new(),
            out,
            open,
        }
    }

    /// Append one line. After an error the log writes nothing more.
    pub(crate) fn line(&mut self, stream: Stream, text: &str) -> io::Result<()> {
        if self.out.is_none() {
            return Ok(());
        }
        let prefix = match stream {
            Stream::Stdout => STDOUT_PREFIX,
            Stream::Stderr => STDERR_PREFIX,
        };
        self.buf.reserve(prefix.len() + text.len() + 1);
        self.buf.extend_from_slice(prefix.as_bytes());
        self.buf.extend_from_slice(text.as_bytes());
        self.buf.push(b'\n');
        if self.buf.len() >= CHUNK {
            return self.hand_off(false);
        }
        Ok(())
    }

    /// Append the lines `ranges` of `chunk` (a pipe read's complete lines):
    /// [`line`](Self::line) for each, in one loop with room reserved once.
    /// On a failure, the index of the line it failed on.
    pub(crate) fn lines(
        &mut self,
        stream: Stream,
        chunk: &str,
        ranges: &[(u32, u32)],
    ) -> Result<(), (usize, io::Error)> {
        if self.out.is_none() {
            return Ok(());
        }
        let prefix = match stream {
            Stream::Stdout => STDOUT_PREFIX,
            Stream::Stderr => STDERR_PREFIX,
        }
        .as_bytes();
        let bytes = chunk.as_bytes();
        if let (Some(&(first, _)), Some(&(_, last))) = (ranges.first(), ranges.last()) {
            let text = (last as usize).saturating_sub(first as usize);
            let room = (text + ranges.len() * (prefix.len() + 1)).min(CHUNK);
            self.buf.reserve(room);
        }
        for (i, &(s, e)) in ranges.iter().enumerate() {
            let line = bytes.get(s as usize..e as usize).unwrap_or_default();
            self.buf.extend_from_slice(prefix);
            self.buf.extend_from_slice(line);
            self.buf.push(b'\n');
            if self.buf.len() >= CHUNK {
                self.hand_off(false).map_err(|err| (i, err))?;
            }
        }
        Ok(())
    }

    /// The end of one read's worth of lines: hand them to the writer, which
    /// makes them readable soon (at once for a reader in this process:
    /// [`Runtime::output`](crate::Runtime::output) and [`LogTail`] wait for
    /// it; `execra logs --follow` in another process within
    /// [`IDLE_FLUSH`]). Errors: an earlier write failed (disk full…).
    pub(crate) fn flush(&mut self) -> io::Result<()> {
        self.hand_off(true)
    }

    /// Pass the chunk on (written at once when inline, and flushed if
    /// `flush`).
    fn hand_off(&mut self, flush: bool) -> io::Result<()> {
        let res = match &mut self.out {
            None => return Ok(()),
            Some(Out::Inline(sink)) => {
                // Inline, the job waits for the log anyway: compress.
                let mut r = sink.write_all(&self.buf, false);
                self.buf.clear();
                if flush && r.is_ok() {
                    r = sink.flush();
                }
                r
            }
            Some(Out::Thread { shared, .. }) => {
                let mut st = shared.lock();
                if st.error.is_none() && st.ended {
                    st.error = Some((io::ErrorKind::Other, "raw log writer ended".to_string()));
                }
                if let Some((kind, msg)) = &st.error {
                    Err(io::Error::new(*kind, msg.clone()))
                } else if self.buf.is_empty() {
                    Ok(())
                } else {
                    // Bounded: wait for the writer if it is far behind.
                    while st.queued >= MAX_QUEUED && !st.ended {
                        st.done_waiters += 1;
                        st = match shared.done.wait(st) {
                            Ok(g) => g,
                            Err(p) => p.into_inner(),
                        };
                        st.done_waiters -= 1;
                    }
                    // No spare: one the size of the last, not grown again.
                    let next = st
                        .spare
                        .pop()
                        .unwrap_or_else(|| Vec::with_capacity(self.buf.capacity().min(2 * CHUNK)));
                    let chunk = std::mem::replace(&mut self.buf, next);
                    st.queued += chunk.len();
                    st.handed += 1;
                    st.queue.push_back(chunk);
                    let wake = st.writer_waiting;
                    drop(st);
                    if wake {
                        shared.work.notify_one();
                    }
                    Ok(())
                }
            }
        };
        self.failed(res)
    }

    /// The job ended: make the log final. Waits for the writer to write
    /// what it was handed (at most [`MAX_QUEUED`] bytes) and the gzip
    /// trailer, so the log is complete when this returns.
    pub(crate) fn finish(mut self) {
        self.close();
    }

    fn failed(&mut self, res: io::Result<()>) -> io::Result<()> {
        if res.is_err() {
            // Disk full or similar: stop logging this job (the driver warns,
            // in the job's event stream and as a `tracing` event).
            self.buf = Vec::new();
            self.close();
        }
        res
    }

    fn close(&mut self) {
        if !self.buf.is_empty() {
            let _ = self.hand_off(false);
        }
        match self.out.take() {
            None => {}
            Some(Out::Inline(sink)) => {
                if let Err(e) = sink.close() {
                    tracing::warn!(target: "execra::raw_log", job = %self.id, error = %e, "cannot complete a raw log");
                }
            }
            Some(Out::Thread { shared, thread }) => {
                shared.lock().closing = true;
                shared.work.notify_one();
                if let Some(t) = thread {
                    let _ = t.join();
                }
                if let Ok(mut w) = writing().lock() {
                    w.remove(&self.id);
                }
            }
        }
        if let Ok(mut open) = self.open.lock() {
            open.remove(&self.id);
        }
    }
}

impl Drop for RawLog {
    fn drop(&mut self) {
        self.close();
    }
}

fn absent(e: &io::Error) -> bool {
    #[cfg(unix)]
    if e.raw_os_error() == Some(libc::ENOTDIR) {
        return true;
    }
    e.kind() == io::ErrorKind::NotFound
}

/// Read job `id`'s log in `dir`: gzipped, else plain (`Ok(None)` if
/// neither exists). A gzip stream still being written (no trailer yet) and
/// a plain file still being written are read up to their last complete
/// line.
pub(crate) fn read_job_log(dir: &Path, id: JobId) -> io::Result<Option<Vec<OutputLine>>> {
    catch_up(id);
    for (path, gzipped) in [(gz_path(dir, id), true), (plain_path(dir, id), false)] {
        match read_log(&path, gzipped) {
            Ok(lines) => return Ok(Some(lines)),
            // No log (the directory may even have become a file).
            Err(e) if absent(&e) => {}
            Err(e) => return Err(io::Error::new(e.kind(), format!("{}: {e}", path.display()))),
        }
    }
    Ok(None)
}

/// Read a log file back into lines; `at` is the file's modification time.
fn read_log(path: &Path, gzipped: bool) -> io::Result<Vec<OutputLine>> {
    let file = File::open(path)?;
    let at = file
        .metadata()
        .and_then(|m| m.modified())
        .unwrap_or_else(|_| SystemTime::now());
    let bytes = if gzipped {
        gunzip_tolerant(file, path)?
    } else {
        let mut b = Vec::new();
        BufReader::new(file).read_to_end(&mut b)?;
        b
    };
    parse_log(complete_lines(&bytes), at)
}

/// The bytes up to and including the last `\n` (a line still being written
/// is not returned).
fn complete_lines(bytes: &[u8]) -> &[u8] {
    match memchr::memrchr(b'\n', bytes) {
        Some(i) => &bytes[..=i],
        None => &[],
    }
}

/// Decompress a gzip file that may still be written: a stream that ends
/// early (no trailer yet) yields what it holds so far.
#[cfg(feature = "gzip")]
fn gunzip_tolerant(file: File, _path: &Path) -> io::Result<Vec<u8>> {
    let mut dec = flate2::read::MultiGzDecoder::new(BufReader::new(file));
    let mut out = Vec::new();
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        match dec.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => out.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            // The stream is not finished yet (or was cut short).
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => break,
            Err(e) => return Err(e),
        }
    }
    Ok(out)
}

#[cfg(not(feature = "gzip"))]
fn gunzip_tolerant(_file: File, path: &Path) -> io::Result<Vec<u8>> {
    Err(io::Error::new(
        io::ErrorKind::Unsupported,
        format!(
            "{} is gzipped; this build lacks the gzip feature",
            path.display()
        ),
    ))
}

/// Parse `[stdout] ` / `[stderr] ` prefixed lines. A line without a prefix
/// (a file written by something else) is kept as stdout.
pub(crate) fn parse_log(mut r: impl BufRead, at: SystemTime) -> io::Result<Vec<OutputLine>> {
    let mut lines = Vec::new();
    let mut buf = Vec::new();
    loop {
        buf.clear();
        if r.read_until(b'\n', &mut buf)? == 0 {
            break;
        }
        if buf.last() == Some(&b'\n') {
            buf.pop();
        }
        lines.push(parse_line(&buf, at));
    }
    Ok(lines)
}

fn parse_line(raw: &[u8], at: SystemTime) -> OutputLine {
    let text = String::from_utf8_lossy(raw);
    let (stream, text) = if let Some(t) = text.strip_prefix(STDOUT_PREFIX) {
        (Stream::Stdout, t)
    } else if let Some(t) = text.strip_prefix(STDERR_PREFIX) {
        (Stream::Stderr, t)
    } else {
        (Stream::Stdout, text.as_ref())
    };
    OutputLine {
        stream,
        text: text.to_string(),
        at,
    }
}

/// Follows one job's raw log while it is written (plain or gzipped),
/// returning each complete line once. This is what `execra logs --follow`
/// uses; it reads only what was appended since the last poll (a gzipped
/// log is inflated incrementally).
///
/// ```no_run
/// # fn demo(dir: &std::path::Path, id: execra::JobId) -> std::io::Result<()> {
/// let mut tail = execra::output::LogTail::new(dir, id);
/// loop {
///     for line in tail.poll()? {
///         println!("{}", line.text);
///     }
///     # break;
///     std::thread::sleep(std::time::Duration::from_millis(200));
/// }
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct LogTail {
    dir: PathBuf,
    id: JobId,
    file: Option<File>,
    gz: Option<GzState>,
    /// Decoded bytes not yet returned (an unfinished line).
    pending: Vec<u8>,
}

/// Incremental gzip decoding state.
#[derive(Debug)]
#[cfg_attr(not(feature = "gzip"), allow(dead_code))]
struct GzState {
    /// Bytes of the 10-byte header still to skip.
    header: Vec<u8>,
    #[cfg(feature = "gzip")]
    inflate: flate2::Decompress,
    /// The deflate stream ended (the rest is the trailer).
    ended: bool,
}

/// The gzip header written by this crate: magic, deflate, no flags.
const GZ_HEADER_LEN: usize = 10;

impl LogTail {
    /// Follow the log of job `id` in the raw-log directory `dir`. The file
    /// need not exist yet.
    pub fn new(dir: impl Into<PathBuf>, id: JobId) -> Self {
        LogTail {
            dir: dir.into(),
            id,
            file: None,
            gz: None,
            pending: Vec::new(),
        }
    }

    /// The complete lines appended since the last call (none if the log
    /// does not exist yet). Errors: the file cannot be read, or a gzipped
    /// log that this crate did not write (or is corrupt).
    pub fn poll(&mut self) -> io::Result<Vec<OutputLine>> {
        catch_up(self.id);
        if self.file.is_none() && !self.open()? {
            return Ok(Vec::new());
        }
        let mut raw = Vec::new();
        if let Some(f) = &mut self.file {
            f.read_to_end(&mut raw)?;
        }
        match &mut self.gz {
            None => self.pending.extend_from_slice(&raw),
            Some(gz) => gz.feed(&raw, &mut self.pending)?,
        }
        let at = SystemTime::now();
        let Some(last) = memchr::memrchr(b'\n', &self.pending) else {
            return Ok(Vec::new());
        };
        let rest = self.pending.split_off(last + 1);
        let done = std::mem::replace(&mut self.pending, rest);
        Ok(done[..last]
            .split(|b| *b == b'\n')
            .map(|l| parse_line(l, at))
            .collect())
    }

    fn open(&mut self) -> io::Result<bool> {
        for (path, gzipped) in [
            (gz_path(&self.dir, self.id), true),
            (plain_path(&self.dir, self.id), false),
        ] {
            match File::open(&path) {
                Ok(f) => {
                    self.file = Some(f);
                    self.gz = gzipped.then(GzState::new);
                    return Ok(true);
                }
                Err(e) if absent(&e) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(false)
    }
}

impl GzState {
    fn new() -> Self {
        GzState {
            header: Vec::with_capacity(GZ_HEADER_LEN),
            #[cfg(feature = "gzip")]
            inflate: flate2::Decompress::new(false),
            ended: false,
        }
    }

    /// Inflate `input` (the file's next bytes) onto `out`.
    #[cfg(feature = "gzip")]
    fn feed(&mut self, mut input: &[u8], out: &mut Vec<u8>) -> io::Result<()> {
        if self.header.len() < GZ_HEADER_LEN {
            let take = (GZ_HEADER_LEN - self.header.len()).min(input.len());
            self.header.extend_from_slice(&input[..take]);
            input = &input[take..];
            if self.header.len() < GZ_HEADER_LEN {
                return Ok(());
            }
            if self.header[..4] != [0x1f, 0x8b, 8, 0] {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    "not a raw log gzip stream written by execra",
                ));
            }
        }
        while !self.ended {
            out.reserve(64 * 1024);
            let room = out.capacity() - out.len();
            let (before_in, before_out) = (self.inflate.total_in(), self.inflate.total_out());
            let status = self
                .inflate
                .decompress_vec(input, out, flate2::FlushDecompress::None)
                .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
            let used = usize::try_from(self.inflate.total_in() - before_in).unwrap_or(input.len());
            let wrote = usize::try_from(self.inflate.total_out() - before_out).unwrap_or(0);
            input = &input[used.min(input.len())..];
            if status == flate2::Status::StreamEnd {
                self.ended = true;
            } else if (input.is_empty() && wrote < room) || (used == 0 && wrote == 0) {
                // All input used and the output drained, or no progress:
                // wait for more bytes.
                break;
            }
        }
        Ok(())
    }

    #[cfg(not(feature = "gzip"))]
    fn feed(&mut self, _input: &[u8], _out: &mut Vec<u8>) -> io::Result<()> {
        Err(io::Error::new(
            io::ErrorKind::Unsupported,
            "the raw log is gzipped; this build lacks the gzip feature",
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_prefixes_and_keeps_unprefixed_lines() {
        let at = SystemTime::now();
        let text = "[stdout] a\n[stderr] b c\nplain\n[stdout] \n";
        let lines = parse_log(text.as_bytes(), at).expect("parse");
        let got: Vec<(Stream, &str)> = lines.iter().map(|l| (l.stream, l.text.as_str())).collect();
        assert_eq!(
            got,
            vec![
                (Stream::Stdout, "a"),
                (Stream::Stderr, "b c"),
                (Stream::Stdout, "plain"),
                (Stream::Stdout, ""),
            ]
        );
    }

    fn texts(lines: Vec<OutputLine>) -> Vec<String> {
        lines.into_iter().map(|l| l.text).collect()
    }

    /// A log being written is readable (whole, and by a tail) up to the
    /// last flush, plain or gzipped; after `finish` the file is complete.
    fn readable_while_written(gzip: bool) {
        let dir = tempfile::tempdir().expect("tempdir");
        let logs = FileRawLogs::new(dir.path(), gzip, None).expect("logs");
        let id = JobId::new();
        let mut tail = LogTail::new(dir.path(), id);
        assert!(tail.poll().expect("poll").is_empty(), "no file yet");
        let mut log = logs.open(id).expect("open");
        for i in 0..1000 {
            log.line(Stream::Stdout, &format!("a{i}")).expect("line");
        }
        log.line(Stream::Stderr, "err").expect("line");
        log.flush().expect("flush");
        let first = logs.read(id).expect("read").expect("some");
        assert_eq!(first.len(), 1001);
        assert_eq!(first[1000].stream, Stream::Stderr);
        let polled = texts(tail.poll().expect("poll"));
        assert_eq!(polled.len(), 1001);
        assert_eq!(polled[999], "a999");
        assert!(tail.poll().expect("poll").is_empty(), "nothing new");
        log.line(Stream::Stdout, "b").expect("line");
        log.flush().expect("flush");
        assert_eq!(texts(tail.poll().expect("poll")), vec!["b"]);
        log.line(Stream::Stdout, "c").expect("line");
        log.finish();
        assert_eq!(texts(tail.poll().expect("poll")), vec!["c"]);
        let all = texts(logs.read(id).expect("read").expect("some"));
        assert_eq!(all.len(), 1003);
        assert_eq!(all.last().map(String::as_str), Some("c"));
        let (gz, plain) = (gz_path(dir.path(), id), plain_path(dir.path(), id));
        assert_eq!(gz.exists(), gzip);
        assert_eq!(plain.exists(), !gzip);
        #[cfg(feature = "gzip")]
        if gzip {
            // A strict decoder: the stream is complete (trailer and all).
            let mut text = String::new();
            flate2::read::GzDecoder::new(File::open(&gz).expect("open"))
                .read_to_string(&mut text)
                .expect("complete gzip stream");
            assert!(text.ends_with("[stdout] b\n[stdout] c\n"), "{text:?}");
        }
    }

    #[test]
    fn a_plain_log_is_readable_while_written() {
        readable_while_written(false);
    }

    #[cfg(feature = "gzip")]
    #[test]
    fn a_gzipped_log_is_readable_while_written() {
        readable_while_written(true);
    }

    /// Many chunks (some bigger than [`CHUNK`], some tiny) arrive whole and
    /// in order, and the writer keeps at most [`MAX_QUEUED`] bytes queued.
    fn chunks_in_order(gzip: bool) {
        let dir = tempfile::tempdir().expect("tempdir");
        let logs = FileRawLogs::new(dir.path(), gzip, None).expect("logs");
        let id = JobId::new();
        let mut log = logs.open(id).expect("open");
        let mut n = 0u64;
        for round in 0..200 {
            // Round 7 alone is ~2.4 MiB: handed over in CHUNK-sized parts.
            let lines = if round == 7 { 200_000 } else { round * 13 % 97 };
            for _ in 0..lines {
                log.line(Stream::Stdout, &n.to_string()).expect("line");
                n += 1;
            }
            log.flush().expect("flush");
        }
        log.finish();
        let got = texts(logs.read(id).expect("read").expect("some"));
        assert_eq!(got.len() as u64, n);
        assert!(got.iter().enumerate().all(|(i, t)| *t == i.to_string()));
    }

    #[test]
    fn plain_chunks_arrive_whole_and_in_order() {
        chunks_in_order(false);
    }

    #[cfg(feature = "gzip")]
    #[test]
    fn gzipped_chunks_arrive_whole_and_in_order() {
        chunks_in_order(true);
    }

    /// A disk that fills up mid-job: the writer's error reaches the driver
    /// at its next hand-over, and nothing more is written.
    #[cfg(target_os = "linux")]
    fn full_disk(gzip: bool) {
        let full = std::fs::OpenOptions::new()
            .write(true)
            .open("/dev/full")
            .expect("/dev/full (needed by this test) cannot be opened");
        let id = JobId::new();
        let mut log = RawLog::new(id, sink(full, gzip), OpenSet::default());
        // Less than a chunk (so `line` hands nothing over yet).
        for i in 0..10_000 {
            log.line(Stream::Stdout, &format!("line {i}"))
                .expect("line");
        }
        log.flush().expect("the first hand-over succeeds");
        // Wait until the writer has tried (it fails).
        catch_up(id);
        let err = log.flush().expect_err("the writer's failure is reported");
        assert!(err.to_string().contains("space"), "{err}");
        // From then on the log is off: no error, nothing written.
        log.line(Stream::Stdout, "more").expect("ignored");
        log.flush().expect("ignored");
        log.finish();
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn a_full_disk_ends_a_plain_log() {
        full_disk(false);
    }

    #[cfg(all(target_os = "linux", feature = "gzip"))]
    #[test]
    fn a_full_disk_ends_a_gzipped_log() {
        full_disk(true);
    }

    #[cfg(unix)]
    #[test]
    fn logs_and_their_directory_are_owner_only() {
        use std::os::unix::fs::PermissionsExt;

        let dir = tempfile::tempdir().expect("tempdir");
        let logs_dir = dir.path().join("a/logs");
        let logs = FileRawLogs::new(&logs_dir, false, None).expect("logs");
        let id = JobId::new();
        logs.open(id).expect("open").finish();
        let mode = |p: &Path| fs_mode(p) & 0o777;
        fn fs_mode(p: &Path) -> u32 {
            std::fs::metadata(p).expect("metadata").permissions().mode()
        }
        assert_eq!(mode(&logs_dir), 0o700);
        assert_eq!(mode(&dir.path().join("a")), 0o700);
        assert_eq!(mode(&plain_path(&logs_dir, id)), 0o600);
    }
}
