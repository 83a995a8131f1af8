// Typed frontend helpers for the execra Tauri plugin: the npm package
// `tauri-plugin-execra-api` (this directory).
//
//   import { jobChannel, cancel } from "tauri-plugin-execra-api";
//
// The wire types come from ./bindings.ts, generated from the Rust types.

import { Channel, invoke } from "@tauri-apps/api/core";
import { listen, type UnlistenFn } from "@tauri-apps/api/event";
import type {
  BatchLine,
  CommandError,
  Event,
  Job,
  JobId,
  Message,
  OutputLine,
  OutputPage,
  Outcome,
  Progress,
} from "./bindings";

export type * from "./bindings";

/** Typed callbacks for one job's messages. All are optional. */
export interface JobHandlers {
  /** Every event (not output batches), in order. */
  onEvent?(event: Event): void;
  /** Every output line, in order, whether it came alone or in a batch.
   *  `redraw: true` marks a provisional redraw of the current line. */
  onOutput?(line: BatchLine): void;
  onProgress?(progress: Progress): void;
  onPhase?(name: string, label: string | null): void;
  onFinalized?(outcome: Outcome): void;
}

/** A determinate progress as a fraction in 0..1, else `null`. */
export function progressFraction(p: Progress): number | null {
  if (p.kind !== "determinate") return null;
  switch (p.unit) {
    case "fraction":
      return p.value;
    case "count":
      return p.total > 0 ? p.done / p.total : null;
    case "bytes":
      return p.total ? p.done / p.total : null;
  }
  return null;
}

/** Route one message (an `Event` or an `output_batch`) to `handlers`. */
export function dispatch(msg: Message, handlers: JobHandlers): void {
  if (msg.kind === "output_batch") {
    for (const line of msg.lines) handlers.onOutput?.(line);
    return;
  }
  const ev = msg as Event;
  handlers.onEvent?.(ev);
  switch (ev.kind) {
    case "output_appended":
      handlers.onOutput?.({ stream: ev.stream, line: ev.line, redraw: ev.redraw ?? false, at: ev.at });
      break;
    case "progress_updated":
      handlers.onProgress?.(ev.progress);
      break;
    case "phase_entered":
      handlers.onPhase?.(ev.name, ev.label);
      break;
    case "finalized":
      handlers.onFinalized?.(ev.outcome);
      break;
  }
}

/** An IPC channel to pass to your Rust command (`TaskBuilder::ipc_channel`). */
export function jobChannel(handlers: JobHandlers): Channel<Message> {
  const channel = new Channel<Message>();
  channel.onmessage = (msg) => dispatch(msg, handlers);
  return channel;
}

/** Listen on the event bus (`TaskBuilder::channel` / `channel_batched`). */
export function listenJob(eventName: string, handlers: JobHandlers): Promise<UnlistenFn> {
  return listen<Message>(eventName, (e) => dispatch(e.payload, handlers));
}

/** Plugin commands (each needs its `execra:allow-*` permission). They
 *  reject with a `CommandError` (`isCommandError`), or with a string from
 *  Tauri itself (e.g. a missing permission). */
export const recent = (limit?: number) => invoke<Job[]>("plugin:execra|recent", { limit });
export const job = (id: JobId) => invoke<Job | null>("plugin:execra|job", { id });
export const running = () => invoke<JobId[]>("plugin:execra|running");
/** One page of a job's kept output (at most `limit` lines, about 1 MiB);
 *  follow `next_offset` for the rest. Empty unless the runtime keeps
 *  output (`RawOutputPolicy`). */
export const output = (id: JobId, offset?: number, limit?: number) =>
  invoke<OutputPage>("plugin:execra|output", { id, offset, limit });
/** Needs `execra:allow-cancel` (not in `execra:default`). */
export const cancel = (id: JobId) => invoke<null>("plugin:execra|cancel", { id });

/** Every kept output line of a job, page by page. */
export async function outputAll(id: JobId): Promise<OutputLine[]> {
  const lines: OutputLine[] = [];
  let offset: number | null = 0;
  while (offset !== null) {
    const page: OutputPage = await output(id, offset);
    lines.push(...page.lines);
    offset = page.next_offset;
  }
  return lines;
}

/** `true` when a command rejected with the plugin's typed error. */
export function isCommandError(e: unknown): e is CommandError {
  return (
    typeof e === "object" &&
    e !== null &&
    typeof (e as CommandError).kind === "string" &&
    typeof (e as CommandError).message === "string"
  );
}
