// Typed frontend helpers for the execra Tauri plugin.
//
// import { jobChannel, cancel } from "./execra";   // this file + bindings.ts
//
// The wire types come from ./bindings.ts, generated from the Rust types.

import { Channel, invoke } from "@tauri-apps/api/core";
import { listen, type UnlistenFn } from "@tauri-apps/api/event";
import type {
  BatchLine,
  Event,
  Job,
  JobId,
  Message,
  OutputLine,
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

/** Plugin commands (each needs its `execra:allow-*` permission). */
export const recent = (limit?: number) => invoke<Job[]>("plugin:execra|recent", { limit });
export const job = (id: JobId) => invoke<Job | null>("plugin:execra|job", { id });
export const running = () => invoke<JobId[]>("plugin:execra|running");
export const output = (id: JobId) => invoke<OutputLine[]>("plugin:execra|output", { id });
/** Needs `execra:allow-cancel` (not in `execra:default`). */
export const cancel = (id: JobId) => invoke<null>("plugin:execra|cancel", { id });
