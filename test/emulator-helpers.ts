// Test helpers for the emulator: real HTTP on 127.0.0.1, no mocks.
import { createEmulator, type Emulator, type EmulatorOptions } from "../core/emulator/mod.ts";
import { serveEmulator } from "../runtimes/node/emulator-server.ts";

export const API_KEY = "sk-ant-emu-admin";
export const ENV_ID = "env_emulator";
export const ENV_KEY = "sk-ant-env-emulator";
export const BETA = "managed-agents-2026-04-01";

export interface Harness {
  emu: Emulator;
  url: string;
  close(): Promise<void>;
}

export async function startEmulator(opts: EmulatorOptions = {}): Promise<Harness> {
  const emu = createEmulator({ pingIntervalMs: 200, ...opts });
  const served = await serveEmulator(emu, { port: 0 });
  return {
    emu,
    url: served.url,
    async close() {
      emu.close();
      await served.close();
    },
  };
}

export interface CallResult {
  status: number;
  body: any;
  headers: Headers;
  ms: number;
}

/** One JSON call. `token` goes in Authorization: Bearer; beta header on unless `beta: false`. */
export async function call(
  base: string,
  method: string,
  path: string,
  opts: { token?: string | null; body?: unknown; beta?: boolean; headers?: Record<string, string> } = {},
): Promise<CallResult> {
  const headers: Record<string, string> = { ...(opts.headers ?? {}) };
  if (opts.token) headers["authorization"] = `Bearer ${opts.token}`;
  if (opts.beta !== false) headers["anthropic-beta"] = BETA;
  if (opts.body !== undefined) headers["content-type"] = "application/json";
  const t0 = Date.now();
  const res = await fetch(base + path, {
    method,
    headers,
    ...(opts.body !== undefined ? { body: JSON.stringify(opts.body) } : {}),
  });
  const text = await res.text();
  return { status: res.status, body: text ? JSON.parse(text) : undefined, headers: res.headers, ms: Date.now() - t0 };
}

export function decodeSecret(secret: string): { sessions_token: string; api_base_url?: string } {
  const b64 = secret.replace(/-/g, "+").replace(/_/g, "/");
  return JSON.parse(Buffer.from(b64, "base64").toString("utf8"));
}

/** Poll once (env key), returning the work and its sessions token. */
export async function claim(base: string, envId = ENV_ID, envKey = ENV_KEY, blockMs = 999): Promise<{ work: any; token: string }> {
  const r = await call(base, "GET", `/v1/environments/${envId}/work/poll?block_ms=${blockMs}`, { token: envKey });
  if (r.status !== 200 || !r.body) throw new Error(`poll: ${r.status} ${JSON.stringify(r.body)}`);
  return { work: r.body, token: decodeSecret(r.body.secret).sessions_token };
}

export interface SseMessage {
  event: string | undefined;
  data: string;
}

/** Parse an SSE body into messages (comments skipped). Ends when the server closes. */
export async function* readSse(res: Response): AsyncGenerator<SseMessage> {
  const reader = res.body!.getReader();
  const dec = new TextDecoder();
  let buf = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    buf += dec.decode(value, { stream: true });
    let i: number;
    while ((i = buf.indexOf("\n\n")) >= 0) {
      const block = buf.slice(0, i);
      buf = buf.slice(i + 2);
      let event: string | undefined;
      const data: string[] = [];
      for (const line of block.split("\n")) {
        if (line.startsWith(":")) continue;
        if (line.startsWith("event: ")) event = line.slice(7);
        else if (line.startsWith("data: ")) data.push(line.slice(6));
      }
      if (event === undefined && data.length === 0) continue;
      yield { event, data: data.join("\n") };
    }
  }
}

export function openStream(base: string, sessionId: string, token: string, signal?: AbortSignal): Promise<Response> {
  return fetch(`${base}/v1/sessions/${sessionId}/events/stream`, {
    headers: { authorization: `Bearer ${token}`, "anthropic-beta": BETA },
    ...(signal ? { signal } : {}),
  });
}

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
