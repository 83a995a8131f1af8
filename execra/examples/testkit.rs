//! `testkit`: a small cross-platform program the process-tree tests
//! (`tests/tree.rs`) run instead of `sh`, `sleep` and `kill`, so that the
//! same tests run on Linux, macOS and Windows (also under wine, see
//! `.ci/wine`). Not an example of the API, except `host`, which is a
//! minimal app running one job.
//!
//! ```text
//! testkit lines N              print "line 1" … "line N"
//! testkit sleep SECS           sleep (fractions allowed)
//! testkit exit CODE            exit with CODE
//! testkit pid                  print "pid <own pid>"
//! testkit tree DEPTH SECS [LEADER_SECS]
//!                              start a chain of DEPTH descendants (child,
//!                              grandchild, …); once the deepest one runs,
//!                              every level has printed "pid <level> <pid>"
//!                              (deepest first, this process last, level 0 is
//!                              the deepest); descendants then sleep SECS, this
//!                              process LEADER_SECS (default SECS), then exits 0
//! testkit count MS [DEPTH]     start a chain of DEPTH descendants sharing this
//!                              stdout; the deepest prints "n=0", "n=1", …
//!                              every MS milliseconds, forever
//! testkit spin M               burn CPU: M million loop iterations, print
//!                              "spun <count>"
//! testkit ignore-term SECS     ignore termination requests (Unix: SIGTERM;
//!                              Windows has none), print "ignoring", sleep
//! testkit alive PID            print "alive" (exit 0) or "dead" (exit 1)
//! testkit platform             print "wine <version>" under wine, else the OS
//!                              ("windows", "linux", …)
//! testkit kill PID             kill PID at once (SIGKILL / TerminateProcess)
//! testkit host [--history PATH] -- ARGS…
//!                              run `testkit ARGS…` as a job of an execra
//!                              runtime, print "job <line>" for each line of
//!                              its output, then wait forever (to be killed)
//! ```
//!
//! Lines are flushed as they are written. Errors go to stderr with exit
//! code 2.

use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::time::Duration;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if let Err(e) = run(&args) {
        eprintln!("testkit: {e}");
        std::process::exit(2);
    }
}

fn run(args: &[String]) -> Result<(), String> {
    let arg = |i: usize| -> Result<&str, String> {
        args.get(i)
            .map(String::as_str)
            .ok_or_else(|| format!("missing argument {i} (see the module docs for usage)"))
    };
    match arg(0)? {
        "lines" => {
            let n: u64 = num(arg(1)?)?;
            for i in 1..=n {
                say(&format!("line {i}"))?;
            }
        }
        "sleep" => std::thread::sleep(secs(arg(1)?)?),
        "exit" => std::process::exit(num(arg(1)?)?),
        "pid" => say(&format!("pid {}", std::process::id()))?,
        "tree" => {
            let depth: u32 = num(arg(1)?)?;
            let rest = secs(arg(2)?)?;
            let mine = match args.get(3) {
                Some(s) => secs(s)?,
                None => rest,
            };
            tree(depth, arg(2)?)?;
            std::thread::sleep(mine);
        }
        "count" => {
            let ms: u64 = num(arg(1)?)?;
            let depth: u32 = args.get(2).map_or(Ok(0), |d| num(d))?;
            if depth > 0 {
                let exe = std::env::current_exe().map_err(|e| format!("current_exe: {e}"))?;
                let status = Command::new(exe)
                    .args(["count", &ms.to_string(), &(depth - 1).to_string()])
                    .stdin(Stdio::null())
                    .status()
                    .map_err(|e| format!("spawn level {}: {e}", depth - 1))?;
                return Err(format!("level {} ended: {status}", depth - 1));
            }
            for i in 0u64.. {
                say(&format!("n={i}"))?;
                std::thread::sleep(Duration::from_millis(ms));
            }
        }
        "spin" => {
            // A fixed amount of work (not of time): the CPU time it takes
            // does not depend on how loaded the machine is.
            let millions: u64 = num(arg(1)?)?;
            let mut n = 0u64;
            for _ in 0..millions * 1_000_000 {
                n = std::hint::black_box(n.wrapping_add(1));
            }
            say(&format!("spun {n}"))?;
        }
        "kill" => kill(num(arg(1)?)?)?,
        "platform" => say(&platform())?,
        "ignore-term" => {
            ignore_term();
            say("ignoring")?;
            std::thread::sleep(secs(arg(1)?)?);
        }
        "alive" => {
            let pid: u32 = num(arg(1)?)?;
            if alive(pid) {
                say("alive")?;
            } else {
                say("dead")?;
                std::process::exit(1);
            }
        }
        "host" => host(&args[1..])?,
        other => return Err(format!("unknown subcommand {other:?}")),
    }
    Ok(())
}

/// Print one line and flush it.
fn say(line: &str) -> Result<(), String> {
    let mut out = std::io::stdout().lock();
    writeln!(out, "{line}")
        .and_then(|()| out.flush())
        .map_err(|e| format!("stdout: {e}"))
}

fn num<T: std::str::FromStr>(s: &str) -> Result<T, String> {
    s.parse().map_err(|_| format!("not a number: {s:?}"))
}

fn secs(s: &str) -> Result<Duration, String> {
    let f: f64 = num(s)?;
    Duration::try_from_secs_f64(f).map_err(|e| format!("bad duration {s:?}: {e}"))
}

/// Start the chain below this level, forward its lines until the level
/// below (which reports after every deeper one) reported, then report this
/// level (and keep forwarding in the
/// background so a descendant never blocks on a full pipe).
fn tree(depth: u32, secs: &str) -> Result<(), String> {
    if depth > 0 {
        let exe = std::env::current_exe().map_err(|e| format!("current_exe: {e}"))?;
        let mut child = Command::new(exe)
            .args(["tree", &(depth - 1).to_string(), secs])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .spawn()
            .map_err(|e| format!("spawn level {}: {e}", depth - 1))?;
        let out = child.stdout.take().ok_or("no stdout pipe")?;
        let mut lines = BufReader::new(out).lines();
        // The level below reports last, after everything deeper.
        let below = format!("pid {} ", depth - 1);
        loop {
            match lines.next() {
                Some(Ok(line)) => {
                    say(&line)?;
                    if line.starts_with(&below) {
                        break;
                    }
                }
                _ => return Err(format!("level {} ended before it reported", depth - 1)),
            }
        }
        std::thread::spawn(move || {
            for line in lines.map_while(Result::ok) {
                let _ = say(&line);
            }
        });
    }
    say(&format!("pid {depth} {}", std::process::id()))
}

#[cfg(unix)]
fn ignore_term() {
    // SAFETY: installing SIG_IGN for SIGTERM has no preconditions.
    unsafe {
        libc::signal(libc::SIGTERM, libc::SIG_IGN);
    }
}

#[cfg(not(unix))]
fn ignore_term() {
    // Windows sends no termination request a process could ignore:
    // execra terminates the job object.
}

/// Is `pid` a running process (not a zombie)?
#[cfg(target_os = "linux")]
fn alive(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(s) => !s
            .rsplit(')')
            .next()
            .unwrap_or("")
            .trim_start()
            .starts_with('Z'),
        Err(_) => false,
    }
}

#[cfg(all(unix, not(target_os = "linux")))]
fn alive(pid: u32) -> bool {
    let Ok(pid) = libc::pid_t::try_from(pid) else {
        return false;
    };
    // SAFETY: signal 0 only checks that the process exists.
    unsafe { libc::kill(pid, 0) == 0 }
}

#[cfg(windows)]
fn alive(pid: u32) -> bool {
    use windows_sys::Win32::Foundation::{CloseHandle, STILL_ACTIVE};
    use windows_sys::Win32::System::Threading::{
        GetExitCodeProcess, OpenProcess, PROCESS_QUERY_LIMITED_INFORMATION,
    };
    // SAFETY: plain Win32 calls; the handle is checked and closed.
    unsafe {
        let h = OpenProcess(PROCESS_QUERY_LIMITED_INFORMATION, 0, pid);
        if h.is_null() {
            return false;
        }
        let mut code = 0u32;
        let ok = GetExitCodeProcess(h, &mut code);
        CloseHandle(h);
        ok != 0 && code == STILL_ACTIVE as u32
    }
}

#[cfg(unix)]
fn kill(pid: u32) -> Result<(), String> {
    let p = libc::pid_t::try_from(pid).map_err(|_| format!("bad pid {pid}"))?;
    // SAFETY: kill(2) has no memory preconditions.
    if unsafe { libc::kill(p, libc::SIGKILL) } != 0 {
        return Err(format!("kill {pid}: {}", std::io::Error::last_os_error()));
    }
    Ok(())
}

#[cfg(windows)]
fn kill(pid: u32) -> Result<(), String> {
    use windows_sys::Win32::Foundation::CloseHandle;
    use windows_sys::Win32::System::Threading::{OpenProcess, TerminateProcess, PROCESS_TERMINATE};
    // SAFETY: plain Win32 calls; the handle is checked and closed.
    unsafe {
        let h = OpenProcess(PROCESS_TERMINATE, 0, pid);
        if h.is_null() {
            return Err(format!("open {pid}: {}", std::io::Error::last_os_error()));
        }
        let ok = TerminateProcess(h, 1);
        let err = std::io::Error::last_os_error();
        CloseHandle(h);
        if ok == 0 {
            return Err(format!("terminate {pid}: {err}"));
        }
    }
    Ok(())
}

#[cfg(not(windows))]
fn platform() -> String {
    std::env::consts::OS.to_string()
}

/// "wine <version>" when ntdll exports `wine_get_version`, else "windows".
#[cfg(windows)]
fn platform() -> String {
    use windows_sys::Win32::System::LibraryLoader::{GetModuleHandleA, GetProcAddress};
    // SAFETY: ntdll is always loaded; the export, if present, has the
    // signature `const char *wine_get_version(void)` and returns a static
    // NUL-terminated string.
    unsafe {
        let ntdll = GetModuleHandleA(c"ntdll.dll".as_ptr().cast());
        if ntdll.is_null() {
            return "windows".into();
        }
        match GetProcAddress(ntdll, c"wine_get_version".as_ptr().cast()) {
            Some(f) => {
                let f: unsafe extern "C" fn() -> *const std::ffi::c_char = std::mem::transmute(f);
                let v = f();
                if v.is_null() {
                    return "wine".into();
                }
                format!("wine {}", std::ffi::CStr::from_ptr(v).to_string_lossy())
            }
            None => "windows".into(),
        }
    }
}

/// A minimal app: one runtime, one job (`testkit ARGS…`), its output
/// forwarded as "job <line>", then wait to be killed.
fn host(args: &[String]) -> Result<(), String> {
    let (opts, job) = match args.iter().position(|a| a == "--") {
        Some(i) => (&args[..i], &args[i + 1..]),
        None => return Err("host: expected `-- ARGS…`".into()),
    };
    let history = match opts {
        [] => None,
        [flag, path] if flag == "--history" => Some(path.clone()),
        _ => return Err(format!("host: unexpected options {opts:?}")),
    };
    let exe = std::env::current_exe().map_err(|e| format!("current_exe: {e}"))?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| format!("tokio: {e}"))?;
    rt.block_on(async move {
        let mut b = execra::Runtime::builder();
        if let Some(p) = history {
            b = b.history(p);
        }
        let runtime = b.build().map_err(|e| format!("runtime: {e}"))?;
        let cmd = execra::Command::new(exe.to_string_lossy()).args(job.iter().cloned());
        let h = runtime.spawn(cmd).map_err(|e| format!("spawn: {e}"))?;
        let mut s = h.subscribe();
        while let Some(ev) = s.next().await {
            if let execra::Event::OutputAppended { line, .. } = ev {
                // In history before the test sees it (and kills the host).
                runtime.flush().await.map_err(|e| format!("flush: {e}"))?;
                say(&format!("job {line}"))?;
            }
        }
        Err::<(), String>("host: the job ended before the host was killed".into())
    })
}
