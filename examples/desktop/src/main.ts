// The example's main window. Everything execra-specific goes through the
// plugin's helper package (`tauri-plugin-execra-api`) and its generated
// wire types; the app's own commands (`run_job`, `open_viewer`) through
// `invoke`.
import { Channel, invoke } from "@tauri-apps/api/core";
import { listen } from "@tauri-apps/api/event";
import { getCurrentWindow } from "@tauri-apps/api/window";
import {
  cancel,
  dispatch,
  isCommandError,
  outputAll,
  progressFraction,
  recent,
  type Finding,
  type Job,
  type JobId,
  type Message,
  type Outcome,
} from "tauri-plugin-execra-api";

const $ = <T extends HTMLElement>(id: string) => document.getElementById(id) as T;

/** What the page shows, also read by the end-to-end tests. */
const demo = {
  /** Every final output line of the current job, in arrival order. */
  log: [] as string[],
  status: "idle",
  phases: [] as string[],
  /** Highest progress fraction seen while the job was running. */
  maxProgressWhileRunning: 0,
  messages: 0,
  clickAt: 0,
  firstProgressMs: null as number | null,
  firstMessageAt: 0,
  lastMessageAt: 0,
  messagesPerSecond: null as number | null,
  history: [] as Job[],
};
(window as unknown as { execraDemo: typeof demo }).execraDemo = demo;

let current: JobId | null = null;
let pendingText = "";
let frame = 0;

/** Append to the log once per animation frame, not once per line. */
function flushLog() {
  frame = 0;
  if (!pendingText) return;
  const log = $<HTMLPreElement>("log");
  const atBottom = log.scrollTop + log.clientHeight >= log.scrollHeight - 4;
  log.append(document.createTextNode(pendingText));
  pendingText = "";
  if (atBottom) log.scrollTop = log.scrollHeight;
  $("line-count").textContent = String(demo.log.length);
}

function setStatus(s: string) {
  demo.status = s;
  $("status").textContent = s;
}

function showFinding(f: Finding) {
  const li = document.createElement("li");
  li.className = f.severity;
  const where =
    f.related?.kind === "location"
      ? `${f.related.value.path}:${f.related.value.line ?? "?"}:${f.related.value.column ?? "?"}`
      : "";
  li.textContent = `${where} ${f.severity}: ${f.message}`;
  $("findings").append(li);
}

function finished(outcome: Outcome) {
  const secs = (demo.lastMessageAt - demo.firstMessageAt) / 1000;
  demo.messagesPerSecond = secs > 0 ? Math.round(demo.messages / secs) : demo.messages;
  $("msg-rate").textContent = String(demo.messagesPerSecond);
  setStatus(outcome.kind);
  if (outcome.kind === "failed" && outcome.summary) $("phase").textContent = outcome.summary;
  $<HTMLButtonElement>("cancel").disabled = true;
  $<HTMLButtonElement>("run").disabled = false;
  current = null;
  void refreshHistory();
}

async function run() {
  Object.assign(demo, {
    log: [],
    phases: [],
    maxProgressWhileRunning: 0,
    messages: 0,
    firstProgressMs: null,
    messagesPerSecond: null,
  });
  $("log").textContent = "";
  $("findings").textContent = "";
  $<HTMLProgressElement>("bar").value = 0;
  $("percent").textContent = "0 %";
  $("first-progress").textContent = "–";
  $("msg-rate").textContent = "–";
  $<HTMLButtonElement>("run").disabled = true;
  setStatus("starting");

  // ANCHOR: channel
  const events = new Channel<Message>();
  events.onmessage = (msg) => {
    demo.lastMessageAt = performance.now();
    if (demo.messages++ === 0) demo.firstMessageAt = demo.lastMessageAt;
    $("msg-count").textContent = String(demo.messages);
    dispatch(msg, {
      onOutput(line) {
        if (line.redraw) return; // a provisional `\r` frame: the bar shows it
        demo.log.push(line.line);
        pendingText += line.line + "\n";
        frame ||= requestAnimationFrame(flushLog);
      },
      onProgress(progress) {
        const f = progressFraction(progress);
        if (f === null) return;
        if (demo.firstProgressMs === null) {
          demo.firstProgressMs = Math.round(performance.now() - demo.clickAt);
          $("first-progress").textContent = `${demo.firstProgressMs} ms`;
        }
        if (demo.status === "running") demo.maxProgressWhileRunning = Math.max(demo.maxProgressWhileRunning, f);
        $<HTMLProgressElement>("bar").value = f;
        $("percent").textContent = `${Math.round(f * 100)} %`;
      },
      onPhase(name, label) {
        demo.phases.push(name);
        $("phase").textContent = label ?? name;
      },
      onEvent(ev) {
        if (ev.kind === "job_started") setStatus("running");
        if (ev.kind === "finding_emitted") showFinding(ev.finding);
      },
      onFinalized(outcome) {
        flushLog();
        finished(outcome);
      },
    });
  };
  demo.clickAt = performance.now();
  const lines = Number($<HTMLInputElement>("lines").value) || 0;
  const slow = $<HTMLInputElement>("slow").checked;
  try {
    current = await invoke<JobId>("run_job", { lines, slow, events });
    $<HTMLButtonElement>("cancel").disabled = false;
  } catch (e) {
    setStatus(`error: ${isCommandError(e) ? `${e.kind}: ${e.message}` : String(e)}`);
    $<HTMLButtonElement>("run").disabled = false;
  }
  // ANCHOR_END: channel
}

async function refreshHistory() {
  const jobs = await recent(10);
  demo.history = jobs;
  const list = $("history");
  list.textContent = "";
  for (const job of jobs) {
    const li = document.createElement("li");
    li.textContent = `${job.label ?? job.id} — ${job.outcome?.kind ?? job.state} `;
    const show = document.createElement("button");
    show.textContent = "output";
    show.onclick = async () => {
      // ANCHOR: output
      const lines = await outputAll(job.id);
      // ANCHOR_END: output
      $("history-output").textContent =
        `${lines.length} lines kept; last: ${lines[lines.length - 1]?.text ?? "–"}`;
    };
    li.append(show);
    list.append(li);
  }
}

$("run").onclick = () => void run();
$("cancel").onclick = async () => {
  if (!current) return;
  try {
    await cancel(current);
  } catch (e) {
    setStatus(`cancel refused: ${isCommandError(e) ? e.kind : String(e)}`);
  }
};
$("open-viewer").onclick = () => void invoke("open_viewer");
$("quit").onclick = () => void getCurrentWindow().close();
void listen<string>("viewer-report", (e) => {
  $("viewer-report").textContent = e.payload;
});
void refreshHistory();
