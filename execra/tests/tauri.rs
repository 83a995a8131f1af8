//! The Tauri plugin on Tauri's mock runtime: channels, observers, batching,
//! `.await`, creep, commands and permissions.
#![cfg(all(feature = "tauri-mock", unix))]

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use execra::tauri::{BatchConfig, ExecraExt, Message};
use execra::{Command, Context, Event, Interpreter, InterpreterEvent, Line, Outcome, Progress};
use tauri::ipc::{CallbackFn, Channel, InvokeBody, InvokeResponseBody};
use tauri::test::{get_ipc_response, mock_builder, mock_context, noop_assets, MockRuntime};
use tauri::utils::acl::capability::Capability;
use tauri::utils::acl::manifest::{Manifest, PermissionFile};
use tauri::utils::acl::resolved::Resolved;
use tauri::utils::platform::Target;
use tauri::webview::InvokeRequest;
use tauri::{App, Listener, WebviewWindowBuilder};

fn app() -> App<MockRuntime> {
    mock_builder()
        .plugin(execra::tauri::init())
        .build(mock_context(noop_assets()))
        .expect("mock app")
}

/// Phases from lines: `phase:NAME` enters, `exit` exits, `progress:F`
/// reports a fraction, `boom` panics.
struct Script;

impl Interpreter for Script {
    fn on_line(&mut self, _ctx: &Context, line: &Line) -> Vec<InterpreterEvent> {
        let t = line.text.as_str();
        if let Some(name) = t.strip_prefix("phase:") {
            vec![InterpreterEvent::EnterPhase {
                name: name.into(),
                label: None,
            }]
        } else if t == "exit" {
            vec![InterpreterEvent::ExitPhase]
        } else if let Some(f) = t.strip_prefix("progress:") {
            vec![InterpreterEvent::Progress {
                progress: Progress::fraction(f.parse().unwrap_or(0.0)),
            }]
        } else if t == "boom" {
            panic!("boom on purpose")
        } else {
            vec![]
        }
    }

    fn on_exit(&mut self, _ctx: &Context, _exit: &execra::ExitCode) -> Vec<InterpreterEvent> {
        vec![]
    }
}

fn collect_bus<T: serde::de::DeserializeOwned + Send + 'static>(
    app: &App<MockRuntime>,
    name: &str,
) -> Received<T> {
    let got = Arc::new(Mutex::new(Vec::new()));
    let sink = Arc::clone(&got);
    app.listen_any(name, move |e| {
        let v: T = serde_json::from_str(e.payload()).expect("payload parses");
        sink.lock().unwrap().push((Instant::now(), v));
    });
    got
}

/// Messages with the time they arrived.
type Received<T> = Arc<Mutex<Vec<(Instant, T)>>>;

fn ipc_collector() -> (Channel<Message>, Received<Message>) {
    let got = Arc::new(Mutex::new(Vec::new()));
    let sink = Arc::clone(&got);
    let ch = Channel::new(move |body: InvokeResponseBody| {
        let m: Message = body.deserialize().expect("message parses");
        sink.lock().unwrap().push((Instant::now(), m));
        Ok(())
    });
    (ch, got)
}

fn kinds(evs: &[Event]) -> Vec<&'static str> {
    evs.iter().map(Event::kind).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn channel_events_reach_listen_any_in_order() {
    let app = app();
    let got = collect_bus::<Event>(&app, "job-events");
    let outcome = app
        .execra()
        .task(Command::sh("echo one; echo two; echo three"))
        .channel("job-events")
        .await;
    assert!(outcome.is_success(), "{outcome:?}");
    let evs: Vec<Event> = got.lock().unwrap().drain(..).map(|(_, e)| e).collect();
    assert_eq!(
        kinds(&evs),
        [
            "job_created",
            "job_started",
            "output_appended",
            "output_appended",
            "output_appended",
            "exited",
            "finalized"
        ]
    );
    let lines: Vec<_> = evs
        .iter()
        .filter_map(|e| match e {
            Event::OutputAppended { line, .. } => Some(line.as_str()),
            _ => None,
        })
        .collect();
    assert_eq!(lines, ["one", "two", "three"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn observers_and_typed_hooks_fire() {
    let app = app();
    let created = Arc::new(Mutex::new(None));
    let lines = Arc::new(Mutex::new(Vec::new()));
    let errors = Arc::new(Mutex::new(Vec::new()));
    let finals = Arc::new(Mutex::new(Vec::new()));
    let all = Arc::new(AtomicUsize::new(0));
    let (c, l, e, f, a) = (
        created.clone(),
        lines.clone(),
        errors.clone(),
        finals.clone(),
        all.clone(),
    );
    let handle = app
        .execra()
        .task(Command::sh("echo hi; echo boom >&2; echo after"))
        .label("hooks")
        .tag("t1")
        .interpreter(Script)
        .observe(move |_, _| {
            a.fetch_add(1, Ordering::SeqCst);
        })
        .on_created(move |_, id| *c.lock().unwrap() = Some(id))
        .on_output(move |_, stream, line| l.lock().unwrap().push((stream, line.to_string())))
        .on_interpreter_error(move |_, interp, err, line| {
            e.lock()
                .unwrap()
                .push((interp.to_string(), err.to_string(), line.map(String::from)))
        })
        .on_finalized(move |_, o: &Outcome| f.lock().unwrap().push(o.clone()))
        .spawn()
        .expect("spawn");
    let id = handle.id();
    let outcome = handle.await;
    assert!(outcome.is_success());
    // `spawn()` does not wait for the forwarder: give it a moment.
    for _ in 0..100 {
        if !finals.lock().unwrap().is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(*created.lock().unwrap(), Some(id));
    let lines = lines.lock().unwrap().clone();
    assert_eq!(lines.len(), 3);
    // stdout and stderr are separate pipes: no order between them.
    assert!(lines.contains(&(execra::Stream::Stderr, "boom".to_string())));
    assert!(lines.contains(&(execra::Stream::Stdout, "after".to_string())));
    let errors = errors.lock().unwrap().clone();
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert!(errors[0].1.contains("boom on purpose"), "{errors:?}");
    assert_eq!(errors[0].2.as_deref(), Some("boom"));
    assert_eq!(*finals.lock().unwrap(), vec![outcome]);
    assert!(all.load(Ordering::SeqCst) >= 7);
    let job = app.execra().job(id).expect("job known");
    assert_eq!(job.label.as_deref(), Some("hooks"));
    assert_eq!(job.command.tags, ["t1"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn await_waits_for_observers_and_channels() {
    let app = app();
    let seen = Arc::new(AtomicBool::new(false));
    let s = seen.clone();
    let got = collect_bus::<Message>(&app, "slow");
    let outcome = app
        .execra()
        .task(Command::sh("echo x"))
        .channel_batched("slow")
        .observe(move |_, ev| {
            if ev.is_finalized() {
                std::thread::sleep(Duration::from_millis(300));
                s.store(true, Ordering::SeqCst);
            }
        })
        .await;
    assert!(outcome.is_success());
    assert!(seen.load(Ordering::SeqCst), "observer saw finalized first");
    let got = got.lock().unwrap();
    assert!(got.last().is_some_and(|(_, m)| m.is_finalized()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn await_turns_spawn_errors_into_failed_spawn() {
    let app = app();
    let rt = app.execra();
    rt.runtime().shutdown().await.expect("shutdown");
    let outcome = rt.task(Command::sh("echo never")).await;
    match outcome {
        Outcome::Failed {
            reason: execra::FailureReason::SpawnFailed { error },
            ..
        } => assert!(error.contains("shut down"), "{error}"),
        other => panic!("{other:?}"),
    }
}

/// Every line exactly once, in order, across `output_batch` messages;
/// structural events in place; far fewer messages than lines.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batching_keeps_order_and_delivers_every_line_once() {
    let app = app();
    let bus = collect_bus::<Message>(&app, "batched");
    let (ch, ipc) = ipc_collector();
    let n = 20_000;
    let script = format!(
        "i=1; while [ $i -le {n} ]; do echo $i; \
         if [ $i -eq 10000 ]; then echo phase:mid; fi; i=$((i+1)); done"
    );
    let outcome = app
        .execra()
        .task(Command::sh(script))
        .interpreter(Script)
        .channel_batched("batched")
        .ipc_channel(ch)
        .await;
    assert!(outcome.is_success());
    for (name, got) in [("bus", bus), ("ipc", ipc)] {
        let msgs: Vec<Message> = got.lock().unwrap().drain(..).map(|(_, m)| m).collect();
        let mut lines = Vec::new();
        let mut phase_after = None;
        for m in &msgs {
            match m {
                Message::OutputBatch(b) => lines.extend(b.lines.iter().map(|l| l.line.clone())),
                Message::Event(Event::PhaseEntered { .. }) => phase_after = Some(lines.len()),
                Message::Event(Event::OutputAppended { .. }) => panic!("{name}: unbatched line"),
                Message::Event(_) => {}
            }
        }
        let mut expected: Vec<String> = (1..=n).map(|i| i.to_string()).collect();
        expected.insert(10_000, "phase:mid".into());
        assert_eq!(lines.len(), expected.len(), "{name}: line count");
        assert!(
            lines == expected,
            "{name}: lines out of order or duplicated"
        );
        // The phase was entered on the `phase:mid` line: no line printed
        // after it was delivered before it.
        assert_eq!(phase_after, Some(10_001), "{name}: phase position");
        assert!(msgs.last().is_some_and(Message::is_finalized), "{name}");
        assert!(
            msgs.len() * 20 < n as usize,
            "{name}: {} messages for {n} lines",
            msgs.len()
        );
    }
}

/// With a 10 s batching interval, a structural event is still delivered at
/// once, right after the output printed before it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn structural_events_are_not_delayed_by_batching() {
    let app = app();
    let (ch, got) = ipc_collector();
    let start = Instant::now();
    let outcome = app
        .execra()
        .task(Command::sh(
            "echo a; echo b; echo phase:p; sleep 1.5; echo c",
        ))
        .interpreter(Script)
        .ipc_channel(ch)
        .batch(BatchConfig {
            interval: Duration::from_secs(10),
            max_lines: 1_000_000,
        })
        .await;
    assert!(outcome.is_success());
    assert!(
        start.elapsed() < Duration::from_secs(8),
        "finalized flushes"
    );
    let msgs = got.lock().unwrap().clone();
    let phase = msgs
        .iter()
        .position(|(_, m)| matches!(m, Message::Event(Event::PhaseEntered { .. })))
        .expect("phase entered");
    let (phase_at, _) = msgs[phase];
    assert!(
        phase_at.duration_since(start) < Duration::from_millis(1200),
        "phase delivered after {:?}",
        phase_at.duration_since(start)
    );
    let before: Vec<String> = msgs[..phase]
        .iter()
        .flat_map(|(_, m)| match m {
            Message::OutputBatch(b) => b.lines.iter().map(|l| l.line.clone()).collect(),
            _ => vec![],
        })
        .collect();
    assert_eq!(before, ["a", "b", "phase:p"]);
    let after: Vec<String> = msgs[phase..]
        .iter()
        .flat_map(|(_, m)| match m {
            Message::OutputBatch(b) => b.lines.iter().map(|l| l.line.clone()).collect(),
            _ => vec![],
        })
        .collect();
    assert_eq!(after, ["c"]);
    assert!(msgs.last().is_some_and(|(_, m)| m.is_finalized()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unbatched_ipc_channel_sends_one_event_per_message() {
    let app = app();
    let (ch, got) = ipc_collector();
    let outcome = app
        .execra()
        .task(Command::sh("echo 1; echo 2"))
        .ipc_channel(ch)
        .batch(BatchConfig::UNBATCHED)
        .await;
    assert!(outcome.is_success());
    let msgs = got.lock().unwrap();
    assert!(msgs.iter().all(|(_, m)| matches!(m, Message::Event(_))));
    assert_eq!(msgs.iter().map(|(_, m)| m.line_count()).sum::<usize>(), 2);
}

/// Creep eases toward the phase's end while it is open, stays inside the
/// range, stops at the phase's exit, and never touches the real progress.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn creep_eases_within_the_open_phase_only() {
    let app = app();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let s = seen.clone();
    let rt = app.execra();
    let handle = rt
        .task(Command::sh(
            "echo phase:build; sleep 1.3; echo exit; sleep 0.6; echo phase:none; sleep 0.6",
        ))
        .interpreter(Script)
        .creep(|name| (name == "build").then_some((0.1, 0.5)))
        .observe(move |_, ev| s.lock().unwrap().push(ev.clone()))
        .spawn()
        .expect("spawn");
    let id = handle.id();
    handle.await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    let evs = seen.lock().unwrap().clone();
    let entered = evs
        .iter()
        .position(|e| e.kind() == "phase_entered")
        .unwrap();
    let exited = evs.iter().position(|e| e.kind() == "phase_exited").unwrap();
    let creeps: Vec<(usize, f32)> = evs
        .iter()
        .enumerate()
        .filter_map(|(i, e)| match e {
            Event::ProgressUpdated { progress, .. } => Some((i, progress.as_fraction()?)),
            _ => None,
        })
        .collect();
    assert!(creeps.len() >= 2, "creep ticks: {creeps:?}");
    let mut last = 0.1;
    for (i, v) in &creeps {
        assert!(
            *i > entered && *i < exited,
            "creep outside the phase: {creeps:?}"
        );
        assert!(*v > last && *v < 0.5, "{creeps:?}");
        last = *v;
    }
    // Synthetic: the runtime's own view of the job is unchanged.
    let job = rt.job(id).expect("job");
    assert_eq!(job.progress, Progress::Unknown);
}

// ---- commands and permissions -------------------------------------------

/// The plugin's ACL manifest, read from the crate's permission files (the
/// same files `tauri-build` would embed in an app).
fn execra_manifest() -> Manifest {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("permissions");
    let mut files = vec![dir.join("default.toml"), dir.join("control.toml")];
    let cmds = dir.join("autogenerated").join("commands");
    for entry in std::fs::read_dir(&cmds).expect("autogenerated permissions exist") {
        files.push(entry.expect("dir entry").path());
    }
    let parsed = files
        .iter()
        .map(|p| {
            let text = std::fs::read_to_string(p).expect("read permission file");
            toml::from_str::<PermissionFile>(&text).expect("valid permission file")
        })
        .collect();
    Manifest::new(parsed, None)
}

/// A mock app whose window `main` has a capability with `permissions`.
fn app_with_permissions(permissions: &[&str]) -> App<MockRuntime> {
    app_with(permissions, execra::Runtime::new())
}

/// [`app_with_permissions`], the plugin managing `rt`.
fn app_with(permissions: &[&str], rt: execra::Runtime) -> App<MockRuntime> {
    let mut acl = BTreeMap::new();
    acl.insert("execra".to_string(), execra_manifest());
    let cap: Capability = serde_json::from_value(serde_json::json!({
        "identifier": "main",
        "windows": ["main"],
        "permissions": permissions,
    }))
    .expect("capability");
    let resolved = Resolved::resolve(
        &acl,
        BTreeMap::from([("main".to_string(), cap)]),
        Target::current(),
    )
    .expect("resolve ACL");
    let mut ctx = mock_context(noop_assets());
    *ctx.runtime_authority_mut() = tauri::runtime_authority!(acl, resolved);
    mock_builder()
        .plugin(execra::tauri::init_with(rt))
        .build(ctx)
        .expect("mock app")
}

fn invoke(
    app: &App<MockRuntime>,
    cmd: &str,
    args: serde_json::Value,
) -> Result<serde_json::Value, serde_json::Value> {
    let webview = match tauri::Manager::get_webview_window(app, "main") {
        Some(w) => w,
        None => WebviewWindowBuilder::new(app, "main", Default::default())
            .build()
            .expect("webview"),
    };
    get_ipc_response(
        &webview,
        InvokeRequest {
            cmd: format!("plugin:execra|{cmd}"),
            callback: CallbackFn(0),
            error: CallbackFn(1),
            url: "tauri://localhost".parse().expect("url"),
            body: InvokeBody::Json(args),
            headers: Default::default(),
            invoke_key: tauri::test::INVOKE_KEY.to_string(),
        },
    )
    .map(|b| b.deserialize::<serde_json::Value>().expect("json"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn default_permission_allows_reads_and_denies_cancel() {
    let app = app_with_permissions(&["execra:default"]);
    let handle = app
        .execra()
        .task(Command::sh("sleep 30"))
        .label("sleeper")
        .spawn()
        .expect("spawn");
    let id = handle.id().to_string();

    let recent = invoke(&app, "recent", serde_json::json!({ "limit": 5 })).expect("recent");
    assert_eq!(recent[0]["id"], id.as_str());
    assert_eq!(recent[0]["label"], "sleeper");
    let running = invoke(&app, "running", serde_json::json!({})).expect("running");
    assert_eq!(running, serde_json::json!([id]));
    let job = invoke(&app, "job", serde_json::json!({ "id": id })).expect("job");
    assert_eq!(job["id"], id.as_str());
    let output = invoke(&app, "output", serde_json::json!({ "id": id })).expect("output");
    assert_eq!(
        output,
        serde_json::json!({ "lines": [], "offset": 0, "next_offset": null, "total": 0 })
    );
    let unknown = invoke(
        &app,
        "output",
        serde_json::json!({ "id": execra::JobId::new() }),
    );
    // A typed error: a stable kind and a readable message.
    let unknown = unknown.expect_err("unknown job");
    assert_eq!(unknown["kind"], "unknown_job", "{unknown}");
    assert!(unknown["message"]
        .as_str()
        .is_some_and(|m| m.contains("unknown job")));

    let denied = invoke(&app, "cancel", serde_json::json!({ "id": id }));
    let err = denied.expect_err("cancel is not in the default set");
    assert!(err.to_string().contains("not allowed"), "{err}");
    // No spawn-like command exists at all.
    let spawn = invoke(&app, "spawn", serde_json::json!({ "program": "sh" }));
    assert!(spawn.is_err());
    assert!(handle.try_outcome().is_none(), "still running");
    handle.cancel().expect("cancel from Rust");
    handle.await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancel_permission_cancels_and_missing_permissions_deny_everything() {
    let app = app_with_permissions(&["execra:default", "execra:allow-cancel"]);
    let handle = app
        .execra()
        .task(Command::sh("sleep 30"))
        .spawn()
        .expect("spawn");
    let id = handle.id().to_string();
    invoke(&app, "cancel", serde_json::json!({ "id": id })).expect("cancel allowed");
    let outcome = tokio::time::timeout(Duration::from_secs(20), handle)
        .await
        .expect("cancelled in time");
    assert!(matches!(outcome, Outcome::Cancelled { .. }), "{outcome:?}");

    let bare = app_with_permissions(&[]);
    for cmd in ["recent", "running", "job", "output", "cancel"] {
        let res = invoke(&bare, cmd, serde_json::json!({ "id": id }));
        assert!(
            res.as_ref()
                .is_err_and(|e| e.to_string().contains("not allowed")),
            "{cmd}: {res:?}"
        );
    }

    let control = app_with_permissions(&["execra:control"]);
    // Allowed (this app's runtime does not know the job: a readable error,
    // not a denial).
    let res = invoke(&control, "cancel", serde_json::json!({ "id": id }));
    let err = res.expect_err("unknown job in this app");
    assert!(err.to_string().contains("unknown job"), "{err}");
}

/// With paused tokio time, creep runs through many ticks while the (real)
/// process sleeps, eases toward the phase's end and stops short of it.
#[tokio::test(start_paused = true)]
async fn creep_stops_short_of_the_phase_end_with_paused_time() {
    let app = app();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let s = seen.clone();
    let outcome = app
        .execra()
        .task(Command::sh("echo phase:build; sleep 0.5; echo exit"))
        .interpreter(Script)
        .creep(|name| (name == "build").then_some((0.2, 0.6)))
        .observe(move |_, ev| {
            if let Event::ProgressUpdated { progress, .. } = ev {
                s.lock().unwrap().extend(progress.as_fraction());
            }
        })
        .await;
    assert!(outcome.is_success());
    let values = seen.lock().unwrap().clone();
    assert!(values.len() > 50, "{} ticks", values.len());
    assert!(values.windows(2).all(|w| w[0] < w[1]), "increasing");
    let last = *values.last().unwrap();
    assert!(last > 0.59 && last < 0.6, "stops short of the end: {last}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn output_is_paged_in_order() {
    let rt = execra::Runtime::builder()
        .raw_output(execra::RawOutputPolicy::MemoryOnly)
        .build()
        .expect("runtime");
    let app = app_with(&["execra:default"], rt);
    let outcome = app
        .execra()
        .task(Command::sh("seq 1 1000"))
        .spawn()
        .expect("spawn")
        .await;
    assert!(outcome.is_success(), "{outcome:?}");
    let id = app.execra().recent(1)[0].id;

    let mut offset = serde_json::json!(0);
    let mut lines = Vec::new();
    let mut pages = 0;
    while !offset.is_null() {
        let page = invoke(
            &app,
            "output",
            serde_json::json!({ "id": id, "offset": offset, "limit": 300 }),
        )
        .expect("output page");
        assert_eq!(page["total"], 1000);
        assert_eq!(page["offset"], offset);
        let got = page["lines"].as_array().expect("lines");
        assert!(got.len() <= 300, "{}", got.len());
        lines.extend(
            got.iter()
                .map(|l| l["text"].as_str().unwrap_or("").to_string()),
        );
        offset = page["next_offset"].clone();
        pages += 1;
    }
    assert_eq!(pages, 4, "1000 lines in pages of 300");
    let want: Vec<String> = (1..=1000).map(|i| i.to_string()).collect();
    assert_eq!(lines, want);
}

/// Pids whose environment holds `marker` (`KEY=value`).
fn processes_with_env(marker: &str) -> Vec<u32> {
    let mut pids = Vec::new();
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return pids;
    };
    for entry in dir.flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        if let Ok(env) = std::fs::read(entry.path().join("environ")) {
            if env.split(|b| *b == 0).any(|kv| kv == marker.as_bytes()) {
                pids.push(pid);
            }
        }
    }
    pids
}

/// The app quits (its last window is destroyed) while a job with a
/// background child runs: the plugin's `RunEvent::Exit` hook stops the
/// job's tree before `run_return` comes back.
#[test]
fn run_event_exit_stops_running_jobs() {
    let marker = format!("EXECRA_EXIT_TEST={}", execra::JobId::new());
    let (key, value) = marker.split_once('=').expect("marker");
    let app = mock_builder()
        .plugin(execra::tauri::init())
        .build(mock_context(noop_assets()))
        .expect("mock app");
    let window = WebviewWindowBuilder::new(&app, "main", Default::default())
        .build()
        .expect("window");
    let (ready_tx, ready_rx) = std::sync::mpsc::channel();
    let handle = app
        .execra()
        .task(Command::sh("sleep 300 & echo ready; wait").env(key, value))
        .on_output(move |_, _, line| {
            if line == "ready" {
                let _ = ready_tx.send(());
            }
        })
        .spawn()
        .expect("spawn");
    ready_rx
        .recv_timeout(Duration::from_secs(20))
        .expect("job started");
    assert_eq!(processes_with_env(&marker).len(), 2, "sh and its sleep");

    // Destroy the only window once the (mock) event loop runs: Tauri then
    // emits ExitRequested, then Exit.
    app.run_return(move |_, event| {
        if let tauri::RunEvent::Ready = event {
            window.destroy().expect("destroy window");
        }
    });

    let outcome = handle
        .try_outcome()
        .expect("finalized before the app exited");
    assert!(matches!(outcome, Outcome::Cancelled { .. }), "{outcome:?}");
    assert_eq!(processes_with_env(&marker), Vec::<u32>::new());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn emit_to_reaches_only_the_target_webview() {
    let app = app();
    let a = WebviewWindowBuilder::new(&app, "a", Default::default())
        .build()
        .expect("window a");
    let b = WebviewWindowBuilder::new(&app, "b", Default::default())
        .build()
        .expect("window b");
    let (got_a, got_b) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let (ca, cb) = (Arc::clone(&got_a), Arc::clone(&got_b));
    a.listen("job-a", move |_| {
        ca.fetch_add(1, Ordering::SeqCst);
    });
    b.listen("job-a", move |_| {
        cb.fetch_add(1, Ordering::SeqCst);
    });
    let outcome = app
        .execra()
        .task(Command::sh("echo one; echo two"))
        .channel("job-a")
        .emit_to("a")
        .await;
    assert!(outcome.is_success(), "{outcome:?}");
    assert!(
        got_a.load(Ordering::SeqCst) >= 5,
        "window a got the job's events"
    );
    assert_eq!(got_b.load(Ordering::SeqCst), 0, "window b got none");
}
