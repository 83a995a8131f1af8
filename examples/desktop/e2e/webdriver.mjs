// A minimal W3C WebDriver client over Node's built-in fetch: the handful of
// endpoints the end-to-end tests use (session, find, click, script,
// screenshot), no dependencies. It talks to tauri-driver, which launches
// the app and forwards to WebKitWebDriver.

const ELEMENT = "element-6066-11e4-a52e-4f735466cecf";

async function call(base, method, path, body) {
  const res = await fetch(base + path, {
    method,
    headers: { "content-type": "application/json" },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const json = await res.json().catch(() => ({}));
  if (!res.ok) {
    const v = json.value ?? {};
    throw new Error(`WebDriver ${method} ${path}: ${res.status} ${v.error ?? ""} ${v.message ?? ""}`);
  }
  return json.value;
}

export class Session {
  static async start(driverUrl, application, args = []) {
    const value = await call(driverUrl, "POST", "/session", {
      capabilities: { alwaysMatch: { "tauri:options": { application, args } } },
    });
    return new Session(driverUrl, value.sessionId);
  }

  constructor(base, id) {
    this.base = base;
    this.id = id;
  }

  cmd(method, path, body) {
    return call(this.base, method, `/session/${this.id}${path}`, body);
  }

  async find(css) {
    const v = await this.cmd("POST", "/element", { using: "css selector", value: css });
    return v[ELEMENT];
  }

  async click(css) {
    await this.cmd("POST", `/element/${await this.find(css)}/click`, {});
  }

  async text(css) {
    return this.cmd("GET", `/element/${await this.find(css)}/text`);
  }

  /** Run `script` (a function body) in the page and return its result. */
  exec(script, args = []) {
    return this.cmd("POST", "/execute/sync", { script, args });
  }

  /** The window as a PNG. */
  async screenshot() {
    return Buffer.from(await this.cmd("GET", "/screenshot"), "base64");
  }

  /** Poll `script` until it returns a truthy value; returns that value. */
  async waitFor(script, { timeoutMs = 60_000, what = script } = {}) {
    const end = Date.now() + timeoutMs;
    for (;;) {
      const v = await this.exec(script);
      if (v) return v;
      if (Date.now() > end) throw new Error(`timed out waiting for: ${what}`);
      await new Promise((r) => setTimeout(r, 50));
    }
  }

  async end() {
    await call(this.base, "DELETE", `/session/${this.id}`).catch(() => {});
  }
}
