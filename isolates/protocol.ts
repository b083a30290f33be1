/**
 * The host–guest protocol of the isolate tier: one message format for every runtime. Messages
 * are plain JSON values (bytes travel as base64), so any transport carries them: a subprocess's
 * stdin/stdout as one JSON object per line (Deno, Bun in bubblewrap), `postMessage` (Bun Worker),
 * or request/response pairs through a service binding (Workers). The shims in `runtimes/*` only
 * start and stop isolates and carry these messages; everything else is `isolate-sandbox.ts`.
 *
 * One isolate runs one snippet and is then discarded: a warm pool starts isolates ahead of need,
 * and none is ever reused, so nothing (timers, globals, prototype changes) outlives a call.
 *
 *   guest → host  {t:"ready"}                                      prelude loaded, waiting for a run
 *   host → guest  {t:"run", code}                                  the snippet (JavaScript)
 *   guest → host  {t:"call", id, fn, args}                         a workspace/tool/fetch call
 *   host → guest  {t:"reply", id, ok, value | error}               its answer
 *   guest → host  {t:"log", level, text}                           console output
 *   guest → host  {t:"done", ok, value | error}                    the snippet's result
 */
import type { IsolationLevel } from "../core/sandbox/sandbox.ts";

export type GuestCallFn =
  | "fs.readFile" // [path] → base64
  | "fs.writeFile" // [path, base64] → null
  | "fs.readdir" // [path] → [{name,type}]
  | "fs.stat" // [path] → FsStat
  | "fs.mkdir" // [path] → null (recursive)
  | "fs.remove" // [path, recursive] → null
  | "fs.rename" // [from, to] → null
  | "fs.exists" // [path] → boolean
  | "tool" // [name, input] → text
  | "fetch"; // [WireRequest] → WireResponse

export interface WireRequest {
  url: string;
  method: string;
  headers: Array<[string, string]>;
  /** base64, absent when there is no body. */
  body?: string;
  /** The request's redirect mode (absent: "follow"); the gateway follows, re-checking each hop. */
  redirect?: "follow" | "manual" | "error";
}
export interface WireResponse {
  status: number;
  statusText: string;
  headers: Array<[string, string]>;
  body: string; // base64
}

export type RunMessage = { t: "run"; code: string };

export type HostMessage =
  | RunMessage
  | { t: "reply"; id: number; ok: true; value: unknown }
  | { t: "reply"; id: number; ok: false; error: string };

export type GuestMessage =
  | { t: "ready" }
  | { t: "call"; id: number; fn: GuestCallFn; args: unknown[] }
  | { t: "log"; level: "log" | "info" | "warn" | "error" | "debug"; text: string }
  | { t: "done"; ok: true; value: unknown }
  | { t: "done"; ok: false; error: { name: string; message: string } };

/** Why an isolate went away, as its shim saw it. */
export interface IsolateExit {
  reason: "exited" | "killed" | "out-of-memory" | "crashed";
  detail?: string;
}

/** Per-isolate resource limits a shim applies when it starts one. */
export interface IsolateLimits {
  /** V8 heap (or cgroup memory) limit in MiB. */
  memoryMiB: number;
  /** Process count limit where the tier has one (cgroup pids). */
  maxProcesses?: number;
}

export const DEFAULT_ISOLATE_LIMITS: IsolateLimits = { memoryMiB: 128, maxProcesses: 16 };

/** One running isolate, as a shim exposes it. */
export interface IsolateChannel {
  /** Deliver a message to the guest. Never throws; a dead guest drops it. */
  send(msg: HostMessage): void;
  /** Register the receiver of guest messages (called once, before the guest can send). */
  onMessage(handler: (msg: GuestMessage) => void): void;
  /** Settles once, when the isolate is gone for any reason. */
  readonly exited: Promise<IsolateExit>;
  /** Stop the isolate now (CPU-bound or not). Idempotent. */
  kill(): void;
}

/** What a runtime shim provides for the isolate tier. */
export interface IsolateHost {
  /** e.g. "deno-subprocess". */
  readonly tier: string;
  readonly isolation: IsolationLevel;
  /** Start an isolate with the guest prelude loaded; resolves once it has said `ready`. */
  start(limits: IsolateLimits): Promise<IsolateChannel>;
  /**
   * Start an isolate and return its channel at once, before the guest is ready: messages sent
   * meanwhile are queued (a pipe's or a Worker's own buffer) and read when the guest starts. The
   * cold path: the snippet travels with the start instead of after a ready round trip. A failed
   * start shows as `exited`. Optional; without it a cold call awaits `start()`. With `run`, a
   * host may build the guest with the run already inside it (a Worker's script), saving the
   * message; the guest ignores the run message that follows.
   */
  startNow?(limits: IsolateLimits, run?: RunMessage): IsolateChannel;
  /** Release whatever the host holds (a workerd process, a temp dir). */
  close?(): Promise<void>;
}

/** An isolate as a shim launches it: its channel at once, and when its guest is ready. */
export interface Launched {
  channel: IsolateChannel;
  /** Settles when the guest says `ready`; rejects if it is gone first. */
  ready: Promise<void>;
}

/** An IsolateHost from a launch function: `start` waits for the guest, `startNow` does not. */
export function launchingHost(o: Pick<IsolateHost, "tier" | "isolation" | "close"> & { launch(limits: IsolateLimits, run?: RunMessage): Launched }): IsolateHost {
  return {
    tier: o.tier,
    isolation: o.isolation,
    start: async (limits) => {
      const { channel, ready } = o.launch(limits);
      await ready;
      return channel;
    },
    startNow: (limits, run) => o.launch(limits, run).channel,
    ...(o.close ? { close: o.close } : {}),
  };
}

export const toBase64 = (bytes: Uint8Array): string => {
  let s = "";
  for (let i = 0; i < bytes.length; i += 0x8000) s += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
  return btoa(s);
};
export const fromBase64 = (b64: string): Uint8Array<ArrayBuffer> => Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
