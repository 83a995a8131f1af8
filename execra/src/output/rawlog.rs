//! Raw output logs: one file per job in the log directory.
//!
//! Every complete output line (redraws are not logged) is written prefixed
//! `[stdout] ` or `[stderr] `:
//!
//! - [`RawOutputPolicy::Persist`](crate::RawOutputPolicy): to
//!   `<log_dir>/<job_id>.log`, through a buffer flushed after each pipe
//!   read;
//! - `PersistGzipOnFinalize`: compressed while it is written, straight to
//!   `<log_dir>/<job_id>.log.gz` (no plain file ever exists). After each pipe
//!   read the gzip stream is sync-flushed, so everything logged so far can be
//!   decoded while the job runs ([`LogTail`], `execra logs --follow`,
//!   [`Runtime::output`](crate::Runtime::output)); when the job ends only the
//!   stream's trailer remains to be written. So finishing costs the same
//!   whatever the log's size, and the log is complete before the job's
//!   `finalized` event is published and its handle resolves.
//!
//! Files are created owner-only (`0600`, and `0700` for the directory, on
//! Unix): they hold the jobs' output.
//!
//! Failures: a log that cannot be created is reported by the driver as a
//! `warning_detected` event (code `execra.raw_log`) and the job runs
//! without a log. A write that fails mid-job (disk full) ends that log (the
//! driver warns once); what was written stays readable. The driver also
//! emits both as `tracing` events in the job's span; a log that cannot be
//! completed when the job ends (its last write or the gzip trailer fails)
//! is a `tracing` warning from here (target `execra::raw_log`, with the job
//! id and the error, never the output).

use std::collections::HashSet;
use std::fs::File;
use std::io::{self, BufRead, BufReader, BufWriter, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Instant, SystemTime};

use crate::event::Stream;
use crate::job::JobId;
use crate::retention::{prune_raw_logs, RetentionPolicy, PRUNE_EVERY};

use super::OutputLine;

const STDOUT_PREFIX: &str = "[stdout] ";
const STDERR_PREFIX: &str = "[stderr] ";

/// The write buffer of a plain log.
const BUFFER: usize = 64 * 1024;

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
        let out = if self.gzip {
            gzip_sink(file)
        } else {
            Sink::Plain(BufWriter::with_capacity(BUFFER, file))
        };
        if let Ok(mut open) = self.open.lock() {
            open.insert(id);
        }
        Ok(RawLog {
            id,
            out: Some(out),
            open: Arc::clone(&self.open),
        })
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

/// Where a log's bytes go. Lines are buffered *before* compression: the
/// compressor is called once per buffer (or per pipe read), not per line,
/// which is what keeps it cheap (per line, a 100 MiB job took ten times
/// longer in the BENCHMARKS.md probe).
enum Sink {
    Plain(BufWriter<File>),
    #[cfg(feature = "gzip")]
    Gzip(BufWriter<flate2::write::GzEncoder<File>>),
}

#[cfg(feature = "gzip")]
fn gzip_sink(file: File) -> Sink {
    // Level 1: the compression runs as the output is read, on the job's
    // driver; speed matters more than the last percent of size.
    let enc = flate2::write::GzEncoder::new(file, flate2::Compression::fast());
    Sink::Gzip(BufWriter::with_capacity(BUFFER, enc))
}

#[cfg(not(feature = "gzip"))]
fn gzip_sink(file: File) -> Sink {
    Sink::Plain(BufWriter::with_capacity(BUFFER, file))
}

impl Sink {
    fn writer(&mut self) -> &mut dyn Write {
        match self {
            Sink::Plain(w) => w,
            #[cfg(feature = "gzip")]
            Sink::Gzip(w) => w,
        }
    }

    /// Make the log final: flush (and for gzip write the trailer).
    fn close(self) -> io::Result<()> {
        match self {
            Sink::Plain(mut w) => w.flush(),
            #[cfg(feature = "gzip")]
            Sink::Gzip(w) => w
                .into_inner()
                .map_err(std::io::IntoInnerError::into_error)?
                .finish()?
                .flush(),
        }
    }
}

/// One job's raw log being written. Dropping it closes it as
/// [`finish`](Self::finish) does.
pub(crate) struct RawLog {
    id: JobId,
    out: Option<Sink>,
    open: OpenSet,
}

impl RawLog {
    /// Append one line. After an error the log writes nothing more.
    pub(crate) fn line(&mut self, stream: Stream, text: &str) -> io::Result<()> {
        let Some(out) = &mut self.out else {
            return Ok(());
        };
        let prefix = match stream {
            Stream::Stdout => STDOUT_PREFIX,
            Stream::Stderr => STDERR_PREFIX,
        };
        let w = out.writer();
        let res = w
            .write_all(prefix.as_bytes())
            .and_then(|_| w.write_all(text.as_bytes()))
            .and_then(|_| w.write_all(b"\n"));
        self.failed(res)
    }

    /// The end of one read's worth of lines: make them visible to readers
    /// (`execra logs --follow`, [`Runtime::output`](crate::Runtime::output)).
    pub(crate) fn flush(&mut self) -> io::Result<()> {
        let Some(out) = &mut self.out else {
            return Ok(());
        };
        let res = out.writer().flush();
        self.failed(res)
    }

    /// The job ended: make the log final (cheap whatever its size: the
    /// gzip trailer and at most one buffer's worth of bytes are written).
    pub(crate) fn finish(mut self) {
        self.close();
    }

    fn failed(&mut self, res: io::Result<()>) -> io::Result<()> {
        if res.is_err() {
            // Disk full or similar: stop logging this job (the driver warns,
            // in the job's event stream and as a `tracing` event).
            self.out = None;
        }
        res
    }

    fn close(&mut self) {
        if let Some(out) = self.out.take() {
            if let Err(e) = out.close() {
                tracing::warn!(target: "execra::raw_log", job = %self.id, error = %e, "cannot complete a raw log");
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
