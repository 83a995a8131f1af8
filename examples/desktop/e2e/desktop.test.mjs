// End-to-end tests of the example app in a real webview: WebKitWebDriver
// behind tauri-driver, under Xvfb. Run by `bash .ci/e2e`, which builds the
// app and the page and starts the drivers; it passes:
//   EXECRA_E2E_APP     the app binary
//   EXECRA_E2E_DRIVER  tauri-driver's URL (default http://127.0.0.1:4444)
//   EXECRA_E2E_OUT     where figures and screenshots go (default e2e/out)
// Tests run in order and share the app's data directory: the second one
// checks that the first job's history survived a restart of the app.
import { test, after } from "node:test";
import assert from "node:assert/strict";
import { mkdirSync, readdirSync, readFileSync, readlinkSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { Session } from "./webdriver.mjs";

const APP = process.env.EXECRA_E2E_APP;
const DRIVER = process.env.EXECRA_E2E_DRIVER ?? "http://127.0.0.1:4444";
const OUT = process.env.EXECRA_E2E_OUT ?? new URL("./out", import.meta.url).pathname;
const LINES = 100_000;
assert.ok(APP, "EXECRA_E2E_APP must name the built app (run `bash .ci/e2e`)");
mkdirSync(OUT, { recursive: true });

const figures = {};
after(() => writeFileSync(join(OUT, "figures.json"), JSON.stringify(figures, null, 2) + "\n"));

/** Pids whose environment marks them as part of a demo job. */
function jobProcesses() {
  const pids = [];
  for (const name of readdirSync("/proc")) {
    if (!/^\d+$/.test(name)) continue;
    try {
      const env = readFileSync(`/proc/${name}/environ`, "latin1");
      if (env.split("\0").includes("EXECRA_DEMO_JOB=1")) pids.push(Number(name));
    } catch {
      // gone, or not ours to read
    }
  }
  return pids;
}

/** Pids running the app binary. */
function appProcesses() {
  const pids = [];
  for (const name of readdirSync("/proc")) {
    if (!/^\d+$/.test(name)) continue;
    try {
      if (readlinkSync(`/proc/${name}/exe`) === APP) pids.push(Number(name));
    } catch {
      // gone
    }
  }
  return pids;
}

async function until(pred, what, timeoutMs = 10_000) {
  const end = Date.now() + timeoutMs;
  while (!pred()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

const state = "return window.execraDemo";

/** Start the slow job (a shell with a background child) and wait until it
 *  is building and both processes are up. */
async function startSlowJob(s) {
  await s.waitFor(state);
  await s.exec("document.getElementById('slow').checked = true; document.getElementById('lines').value = '10'");
  await s.click("#run");
  await s.waitFor("const d = window.execraDemo; return d.status === 'running' && d.phases.includes('build')",
    { what: "slow job building" });
  await until(() => jobProcesses().length >= 2, "the job's shell and its background child");
}

test("a 100,000-line job: progress, phases, every line in order, findings, history", async () => {
  const s = await Session.start(DRIVER, APP);
  try {
    await s.waitFor("return document.readyState === 'complete' && !!window.execraDemo");
    await s.click("#run");
    // Mid-job: the log is filling; take the picture for the docs.
    await s.waitFor("const d = window.execraDemo; return d.status === 'running' && d.log.length > 20000",
      { what: "log filling mid-job" });
    writeFileSync(join(OUT, "mid-job.png"), await s.screenshot());
    const done = await s.waitFor(
      "const d = window.execraDemo; return ['failed','succeeded','cancelled'].includes(d.status) && d",
      { timeoutMs: 120_000, what: "job finalized" });

    assert.equal(done.status, "failed", "the script exits 1 after its compiler error");
    assert.ok(done.maxProgressWhileRunning > 0.5, `progress passed 50 % while running: ${done.maxProgressWhileRunning}`);
    assert.deepEqual(done.phases, ["prepare", "build", "emit", "check"]);
    const numbered = done.log.filter((l) => l.startsWith("line "));
    const inOrder = numbered.every((l, i) => l === `line ${i + 1}`);
    assert.equal(numbered.length, LINES, "every numbered line reached the page");
    assert.ok(inOrder, "the lines are in order");
    assert.equal(await s.text("#line-count"), String(done.log.length));
    assert.ok(await s.text("#phase"), "phase label shown");
    const findings = await s.text("#findings");
    assert.match(findings, /src\/parse\.rs:40:17 error: mismatched types/);
    assert.match(findings, /src\/main\.rs:12:5 warning: unused variable/);

    // History: the job is listed, and its kept output reads back page by page.
    await s.waitFor("return window.execraDemo.history.some(j => j.outcome && j.outcome.kind === 'failed')",
      { what: "job in history" });
    await s.click("#history li button");
    const kept = await s.waitFor("return document.getElementById('history-output').textContent",
      { what: "output read back" });
    assert.match(kept, new RegExp(`^${done.log.length} lines kept; last: ==> Done`));

    Object.assign(figures, {
      lines_printed: LINES,
      lines_shown: numbered.length,
      lines_shown_over_printed: numbered.length / LINES,
      click_to_first_progress_ms: done.firstProgressMs,
      ipc_messages: done.messages,
      ipc_messages_per_second: done.messagesPerSecond,
      job_seconds: (done.lastMessageAt - done.firstMessageAt) / 1000,
    });
  } finally {
    await s.end();
  }
});

test("after a restart: history is back; a window without allow-cancel is refused", async () => {
  const s = await Session.start(DRIVER, APP);
  try {
    await s.waitFor("return window.execraDemo && window.execraDemo.history.length > 0",
      { what: "history of the previous run" });
    const labels = await s.exec("return window.execraDemo.history.map(j => j.label)");
    assert.ok(labels.includes(`demo job (${LINES} lines)`), `history: ${labels}`);

    await s.click("#open-viewer");
    const report = await s.waitFor(
      "const t = document.getElementById('viewer-report').textContent; return t !== '–' && t",
      { what: "viewer report" });
    assert.match(report, /recent: allowed/);
    assert.match(report, /cancel: refused \(.*not allowed/);
    assert.match(report, /spawn: refused/);
    figures.viewer_report = report;
  } finally {
    await s.end();
  }
});

test("Cancel: the page shows cancelled and no process of the job is left", async () => {
  const s = await Session.start(DRIVER, APP);
  try {
    await startSlowJob(s);
    const before = jobProcesses();
    await s.click("#cancel");
    await s.waitFor("return window.execraDemo.status === 'cancelled'", { what: "cancelled" });
    assert.equal(await s.text("#status"), "cancelled");
    assert.deepEqual(jobProcesses(), [], `job processes left after cancel (before: ${before})`);
  } finally {
    await s.end();
  }
});

test("Quit mid-job: the app exits, no process of the job is left, history says cancelled", async () => {
  const s = await Session.start(DRIVER, APP);
  try {
    await startSlowJob(s);
    assert.ok(appProcesses().length > 0, "app running");
    // Closes the only window: Tauri's ExitRequested, then Exit.
    // Clicked after the script returns: the window may go away at once.
    await s.exec("setTimeout(() => document.getElementById('quit').click(), 50)");
    await until(() => appProcesses().length === 0, "the app to exit", 20_000);
    assert.deepEqual(jobProcesses(), [], "job processes left after the app quit");
  } finally {
    await s.end();
  }
  // Start the app again: the exit hook stopped the job *and* recorded how
  // it ended before the process went away.
  const again = await Session.start(DRIVER, APP);
  try {
    const newest = await again.waitFor(
      "const h = window.execraDemo && window.execraDemo.history; return h && h.length > 0 && h[0]",
      { what: "history after the restart" });
    assert.equal(newest.label, "demo job (10 lines)");
    assert.equal(newest.outcome?.kind, "cancelled", `the quit job in history: ${JSON.stringify(newest.outcome)}`);
  } finally {
    await again.end();
  }
});
