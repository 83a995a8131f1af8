//! Raw output logs: one file per job in the log directory.
//!
//! `<log_dir>/<job_id>.log` holds every complete output line (redraws are
//! not logged), prefixed `[stdout] ` or `[stderr] `, through a buffered
//! writer that is flushed when the job ends. With
//! [`RawOutputPolicy::PersistGzipOnFinalize`](crate::RawOutputPolicy) the
//! file is then compressed to `<job_id>.log.gz` on a short-lived
//! `std::thread` (never on the async threads) and the plain file removed;
//! [`read`](RawLogs::read) waits for a compression in progress and reads
//! either form.
//!
//! Failures: a log that cannot be created is reported by the driver as a
//! `warning_detected` event (code `execra.raw_log`) and the job runs
//! without a log. A write that fails mid-job (disk full) ends that log
//! silently; what was written stays readable.

use std::collections::HashSet;
use std::fs::{self, File, OpenOptions};
use std::io::{self, BufRead, BufReader, BufWriter, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant, SystemTime};

use crate::event::Stream;
use crate::job::JobId;
use crate::runtime::persist::{RawLogs, RawSink};
use crate::runtime::RetentionPolicy;

use super::OutputLine;

const STDOUT_PREFIX: &str = "[stdout] ";
const STDERR_PREFIX: &str = "[stderr] ";

/// How often a runtime without history prunes its log directory (checked
/// when a job opens its log).
const PRUNE_EVERY: Duration = Duration::from_secs(3600);

/// The longest `read` waits for a compression in progress.
const COMPRESS_WAIT: Duration = Duration::from_secs(30);

/// Jobs whose logs are open or being compressed.
#[derive(Default)]
struct Busy {
    open: HashSet<JobId>,
    compressing: HashSet<JobId>,
}

/// Raw logs in one directory.
pub(crate) struct FileRawLogs {
    dir: PathBuf,
    gzip: bool,
    retention: RetentionPolicy,
    /// Prune from here (no history writer thread to do it).
    self_prune: bool,
    last_prune: Mutex<Instant>,
    busy: Arc<(Mutex<Busy>, Condvar)>,
}

impl FileRawLogs {
    /// Raw logs in `dir` (created if missing).
    pub(crate) fn new(
        dir: PathBuf,
        gzip: bool,
        retention: RetentionPolicy,
        self_prune: bool,
    ) -> io::Result<Self> {
        if dir.exists() && !dir.is_dir() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("log_dir {} is not a directory", dir.display()),
            ));
        }
        fs::create_dir_all(&dir).map_err(|e| {
            io::Error::new(
                e.kind(),
                format!("cannot create log_dir {}: {e}", dir.display()),
            )
        })?;
        Ok(FileRawLogs {
            dir,
            gzip,
            retention,
            self_prune,
            last_prune: Mutex::new(Instant::now()),
            busy: Arc::default(),
        })
    }

    fn plain(&self, id: JobId) -> PathBuf {
        self.dir.join(format!("{id}.log"))
    }

    fn gz(&self, id: JobId) -> PathBuf {
        self.dir.join(format!("{id}.log.gz"))
    }

    fn in_use(&self) -> HashSet<JobId> {
        match self.busy.0.lock() {
            Ok(b) => b.open.union(&b.compressing).copied().collect(),
            Err(_) => HashSet::new(),
        }
    }

    /// Prune by age, keeping logs in use.
    pub(crate) fn prune_now(&self) -> io::Result<usize> {
        let busy = self.in_use();
        prune_raw_logs(&self.dir, &self.retention, &|id| busy.contains(&id))
    }

    fn maybe_prune(&self) {
        if !self.self_prune {
            return;
        }
        let due = match self.last_prune.lock() {
            Ok(mut last) if last.elapsed() >= PRUNE_EVERY => {
                *last = Instant::now();
                true
            }
            _ => false,
        };
        if due {
            let dir = self.dir.clone();
            let retention = self.retention.clone();
            let busy = self.in_use();
            let _ = std::thread::Builder::new()
                .name("execra-raw-prune".to_string())
                .spawn(move || prune_raw_logs(&dir, &retention, &|id| busy.contains(&id)));
        }
    }
}

impl RawLogs for FileRawLogs {
    fn open(&self, id: JobId) -> io::Result<Box<dyn RawSink>> {
        self.maybe_prune();
        let path = self.plain(id);
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", path.display())))?;
        if let Ok(mut b) = self.busy.0.lock() {
            b.open.insert(id);
        }
        Ok(Box::new(FileSink {
            id,
            path,
            gz: self.gzip.then(|| self.gz(id)),
            file: Some(BufWriter::with_capacity(64 * 1024, file)),
            busy: Arc::clone(&self.busy),
        }))
    }

    fn read(&self, id: JobId) -> io::Result<Option<Vec<OutputLine>>> {
        self.wait_compressed(id);
        // The gzipped file appears (by rename) before the plain one is
        // removed, so look at it first; then the plain file.
        for _ in 0..2 {
            for (path, gzipped) in [(self.gz(id), true), (self.plain(id), false)] {
                match read_log(&path, gzipped) {
                    Ok(lines) => return Ok(Some(lines)),
                    // No log (the directory may even have become a file).
                    Err(e) if absent(&e) => {}
                    Err(e) => {
                        return Err(io::Error::new(e.kind(), format!("{}: {e}", path.display())))
                    }
                }
            }
        }
        Ok(None)
    }

    fn prune(&self) -> io::Result<usize> {
        self.prune_now()
    }
}

impl FileRawLogs {
    fn wait_compressed(&self, id: JobId) {
        let (lock, cv) = &*self.busy;
        let Ok(mut b) = lock.lock() else { return };
        let deadline = Instant::now() + COMPRESS_WAIT;
        while b.compressing.contains(&id) {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return;
            }
            match cv.wait_timeout(b, left) {
                Ok((g, _)) => b = g,
                Err(_) => return,
            }
        }
    }
}

struct FileSink {
    id: JobId,
    path: PathBuf,
    gz: Option<PathBuf>,
    file: Option<BufWriter<File>>,
    busy: Arc<(Mutex<Busy>, Condvar)>,
}

impl RawSink for FileSink {
    fn line(&mut self, stream: Stream, text: &str) -> io::Result<()> {
        let Some(f) = &mut self.file else {
            return Ok(());
        };
        let prefix = match stream {
            Stream::Stdout => STDOUT_PREFIX,
            Stream::Stderr => STDERR_PREFIX,
        };
        let res = f
            .write_all(prefix.as_bytes())
            .and_then(|_| f.write_all(text.as_bytes()))
            .and_then(|_| f.write_all(b"\n"));
        if res.is_err() {
            // Disk full or similar: stop logging this job (the caller reports it).
            self.file = None;
        }
        res
    }

    fn flush(&mut self) -> io::Result<()> {
        let Some(f) = &mut self.file else {
            return Ok(());
        };
        let res = f.flush();
        if res.is_err() {
            self.file = None;
        }
        res
    }

    fn finish(mut self: Box<Self>) {
        if let Some(mut f) = self.file.take() {
            let _ = f.flush();
        }
        let lock = &self.busy.0;
        let gz = self.gz.take();
        if let Ok(mut b) = lock.lock() {
            b.open.remove(&self.id);
            if gz.is_some() {
                b.compressing.insert(self.id);
            }
        }
        let Some(gz) = gz else { return };
        let (id, plain, busy) = (self.id, self.path.clone(), Arc::clone(&self.busy));
        let spawned = std::thread::Builder::new()
            .name("execra-raw-gzip".to_string())
            .spawn(move || {
                let _ = compress(&plain, &gz);
                done_compressing(&busy, id);
            });
        if spawned.is_err() {
            // No thread: keep the plain log.
            done_compressing(&self.busy, self.id);
        }
    }
}

fn absent(e: &io::Error) -> bool {
    #[cfg(unix)]
    if e.raw_os_error() == Some(libc::ENOTDIR) {
        return true;
    }
    e.kind() == io::ErrorKind::NotFound
}

fn done_compressing(busy: &(Mutex<Busy>, Condvar), id: JobId) {
    if let Ok(mut b) = busy.0.lock() {
        b.compressing.remove(&id);
    }
    busy.1.notify_all();
}

/// Compress `plain` into `gz` (via a temporary file and a rename), then
/// remove `plain`. On failure the plain file stays.
#[cfg(feature = "gzip")]
fn compress(plain: &Path, gz: &Path) -> io::Result<()> {
    use flate2::write::GzEncoder;
    use flate2::Compression;

    let tmp = gz.with_extension("gz.tmp");
    let result = (|| {
        let mut input = File::open(plain)?;
        let mut enc = GzEncoder::new(BufWriter::new(File::create(&tmp)?), Compression::fast());
        io::copy(&mut input, &mut enc)?;
        let mut out = enc.finish()?;
        out.flush()?;
        out.get_ref().sync_all()?;
        drop(out);
        fs::rename(&tmp, gz)
    })();
    match result {
        Ok(()) => fs::remove_file(plain),
        Err(e) => {
            let _ = fs::remove_file(&tmp);
            Err(e)
        }
    }
}

#[cfg(not(feature = "gzip"))]
fn compress(_plain: &Path, _gz: &Path) -> io::Result<()> {
    Ok(())
}

/// Read a log file back into lines; `at` is the file's modification time.
fn read_log(path: &Path, gzipped: bool) -> io::Result<Vec<OutputLine>> {
    let file = File::open(path)?;
    let at = file
        .metadata()
        .and_then(|m| m.modified())
        .unwrap_or_else(|_| SystemTime::now());
    let reader: Box<dyn Read> = if gzipped {
        #[cfg(feature = "gzip")]
        {
            Box::new(flate2::read::GzDecoder::new(file))
        }
        #[cfg(not(feature = "gzip"))]
        {
            return Err(io::Error::new(
                io::ErrorKind::Unsupported,
                format!(
                    "{} is gzipped; this build lacks the gzip feature",
                    path.display()
                ),
            ));
        }
    } else {
        Box::new(file)
    };
    parse_log(BufReader::new(reader), at)
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
        let text = String::from_utf8_lossy(&buf);
        let (stream, text) = if let Some(t) = text.strip_prefix(STDOUT_PREFIX) {
            (Stream::Stdout, t)
        } else if let Some(t) = text.strip_prefix(STDERR_PREFIX) {
            (Stream::Stderr, t)
        } else {
            (Stream::Stdout, text.as_ref())
        };
        lines.push(OutputLine {
            stream,
            text: text.to_string(),
            at,
        });
    }
    Ok(lines)
}

/// Delete raw logs in `dir` last modified longer ago than
/// `policy.keep_raw_for`, except those of jobs for which `keep` is true.
/// Returns how many files were deleted. A missing directory is not an error.
pub(crate) fn prune_raw_logs(
    dir: &Path,
    policy: &RetentionPolicy,
    keep: &dyn Fn(JobId) -> bool,
) -> io::Result<usize> {
    let entries = match fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(0),
        Err(e) => return Err(e),
    };
    let now = SystemTime::now();
    let mut removed = 0;
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        let (stem, temp) = if let Some(s) = name.strip_suffix(".log.gz.tmp") {
            (s, true)
        } else if let Some(s) = name.strip_suffix(".log.gz") {
            (s, false)
        } else if let Some(s) = name.strip_suffix(".log") {
            (s, false)
        } else {
            continue;
        };
        let Ok(id) = stem.parse::<JobId>() else {
            continue;
        };
        let age = entry
            .metadata()
            .and_then(|m| m.modified())
            .ok()
            .and_then(|m| now.duration_since(m).ok())
            .unwrap_or_default();
        if temp {
            // Left behind by a compression that died with its process.
            if age > PRUNE_EVERY {
                let _ = fs::remove_file(entry.path());
            }
            continue;
        }
        if age > policy.keep_raw_for && !keep(id) && fs::remove_file(entry.path()).is_ok() {
            removed += 1;
        }
    }
    Ok(removed)
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
}
