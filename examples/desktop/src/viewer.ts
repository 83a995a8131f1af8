// The second window. Its capability (`capabilities/viewer.json`) grants
// `execra:default` only: reading history works, `cancel` is refused, and
// there is no command that spawns a program. It reports what it saw to the
// main window.
import { invoke } from "@tauri-apps/api/core";
import { emitTo } from "@tauri-apps/api/event";
import { cancel, recent } from "tauri-plugin-execra-api";

async function attempt(name: string, call: () => Promise<unknown>): Promise<string> {
  try {
    await call();
    return `${name}: allowed`;
  } catch (e) {
    return `${name}: refused (${String(e)})`;
  }
}

async function main() {
  const checks = [
    await attempt("recent", () => recent(5)),
    await attempt("cancel", () => cancel("00000000-0000-7000-8000-000000000000")),
    await attempt("spawn", () => invoke("plugin:execra|spawn", { program: "sh" })),
  ];
  const list = document.getElementById("checks")!;
  for (const c of checks) {
    const li = document.createElement("li");
    li.textContent = c;
    list.append(li);
  }
  await emitTo("main", "viewer-report", checks.join(" | "));
}

void main();
