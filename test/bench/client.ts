/**
 * One client under test, run in its own Node process by test/bench/run.ts so that its CPU and
 * memory are its own. Configured by BENCH_CLIENT (JSON, see {@link ClientConfig}); talks to the
 * parent over the IPC channel:
 *   child -> parent  {type:"ready"} once it is about to poll
 *   parent -> child  {cmd:"cpu"}  -> {type:"cpu", user, system}        (µs, process.cpuUsage())
 *   parent -> child  {cmd:"mem"}  -> {type:"mem", rss, heapUsed, ...}  (after gc(), --expose-gc)
 *   parent -> child  {cmd:"stop"} -> exits
 */
import Anthropic from "@anthropic-ai/sdk";
import { mkdtempSync, readdirSync } from "node:fs";
import { tmpdir } from "node:os";
import v8 from "node:v8";
import { join } from "node:path";
import { Router } from "../../core/router/mod.ts";
import { EnvironmentWorker } from "../../core/worker/mod.ts";
import { nodeRuntime } from "../../runtimes/node/runtime.ts";
import { FileLedger } from "../../runtimes/node/file-ledger.ts";
import { createWorkspaceFs, standardToolset } from "../../tools/mod.ts";

export type ClientKind = "deft-memory" | "deft-file" | "floor" | "reference";

export interface ClientConfig {
  kind: ClientKind;
  baseURL: string;
  environmentId: string;
  environmentKey: string;
  /** Deft only: use the runtime's global fetch instead of the Node shim's (`nodeRuntime.fetch`). */
  globalFetch?: boolean;
  /** Reference only: the workdir (the file is pre-created by the parent). */
  workdir?: string;
  maxSessions?: number;
}

const BETA = "managed-agents-2026-04-01";

type Reply = Record<string, unknown> & { type: string };
const send = (m: Reply): void => void process.send?.(m);

function memory(): Reply {
  const gc = (globalThis as { gc?: () => void }).gc;
  gc?.();
  gc?.();
  const m = process.memoryUsage();
  const spaces = Object.fromEntries(v8.getHeapSpaceStatistics().map((s) => [s.space_name, { size: s.space_size, used: s.space_used_size }]));
  let fds = -1; // open file descriptors, mostly sockets (Linux only)
  try {
    fds = readdirSync("/proc/self/fd").length;
  } catch {}
  return { type: "mem", fds, gc: !!gc, rss: m.rss, heapUsed: m.heapUsed, heapTotal: m.heapTotal, external: m.external, arrayBuffers: m.arrayBuffers, spaces };
}

async function main(): Promise<void> {
  const cfg = JSON.parse(process.env["BENCH_CLIENT"] ?? "{}") as ClientConfig;
  const stop = new AbortController();
  let shutdown: () => Promise<void> = async () => stop.abort();

  process.on("message", (msg: { cmd?: string }) => {
    if (msg.cmd === "cpu") {
      const c = process.cpuUsage();
      send({ type: "cpu", user: c.user, system: c.system });
    } else if (msg.cmd === "mem") {
      send(memory());
    } else if (msg.cmd === "stop") {
      const t = setTimeout(() => process.exit(0), 2_000);
      t.unref();
      void shutdown().finally(() => process.exit(0));
    }
  });
  process.on("disconnect", () => process.exit(0));

  switch (cfg.kind) {
    case "deft-memory":
    case "deft-file": {
      const ledger = cfg.kind === "deft-file" ? new FileLedger(mkdtempSync(join(tmpdir(), "deft-bench-ledger-"))) : undefined;
      const worker = new EnvironmentWorker({
        environmentId: cfg.environmentId,
        environmentKey: cfg.environmentKey,
        baseURL: cfg.baseURL,
        maxSessions: cfg.maxSessions ?? 64,
        // As `deft worker` on Node runs, unless measuring Deft embedded with the global fetch.
        ...(cfg.globalFetch ? {} : { fetch: nodeRuntime.fetch! }),
        maxIdleMs: 600_000,
        ...(ledger ? { ledger } : {}),
        provision: () => ({ router: new Router({ builtin: standardToolset(createWorkspaceFs()) }) }),
      });
      shutdown = () => worker.shutdown(500);
      send({ type: "ready" });
      await worker.run();
      return;
    }
    case "reference": {
      const client = new Anthropic({ baseURL: cfg.baseURL, apiKey: "sk-ant-emu-admin", logLevel: "off" });
      const worker = client.beta.environments.work.worker({
        environmentId: cfg.environmentId,
        environmentKey: cfg.environmentKey,
        workdir: cfg.workdir!,
        maxIdleMs: 600_000,
        memorySyncIntervalMs: null,
        signal: stop.signal,
      });
      send({ type: "ready" });
      await worker.run().catch((e: unknown) => {
        if (!stop.signal.aborted) throw e;
      });
      return;
    }
    case "floor": {
      send({ type: "ready" });
      await floor(cfg, stop.signal);
      return;
    }
  }
}

/**
 * The floor: the least a client can do and still serve the session. Plain fetch; poll until an
 * item comes, ack it, one heartbeat (claims the lease), then hold the SSE stream and answer each
 * `agent.tool_use` as it arrives (posts are not awaited one by one, so a batch is answered
 * concurrently). One history read right after the stream opens picks up the calls emitted before
 * the client connected (the untimed `write` of step 0); none after that. No lease loop, no
 * validation, no retries.
 */
async function floor(cfg: ClientConfig, signal: AbortSignal): Promise<void> {
  const base = cfg.baseURL;
  const env = cfg.environmentId;
  const headers = (token: string): Record<string, string> => ({
    authorization: `Bearer ${token}`,
    "anthropic-beta": BETA,
    "anthropic-version": "2023-06-01",
  });
  let work: { id: string; data: { id: string }; secret: string } | null = null;
  while (!work && !signal.aborted) {
    const r = await fetch(`${base}/v1/environments/${env}/work/poll?block_ms=999`, { headers: headers(cfg.environmentKey) });
    const body = await r.text();
    work = body && body !== "null" ? JSON.parse(body) : null;
  }
  if (!work) return;
  await (await fetch(`${base}/v1/environments/${env}/work/${work.id}/ack`, { method: "POST", headers: headers(cfg.environmentKey), signal })).text();
  const b64 = work.secret.replace(/-/g, "+").replace(/_/g, "/");
  const token = (JSON.parse(Buffer.from(b64, "base64").toString("utf8")) as { sessions_token: string }).sessions_token;
  await (
    await fetch(`${base}/v1/environments/${env}/work/${work.id}/heartbeat?expected_last_heartbeat=NO_HEARTBEAT`, { method: "POST", headers: headers(token), signal })
  ).text();

  const sid = work.data.id;
  const ws = createWorkspaceFs();
  const enc = new TextEncoder();
  const dec = new TextDecoder();
  const answered = new Set<string>();
  const postHeaders = { ...headers(token), "content-type": "application/json" };
  const onToolUse = (ev: { id: string; name: string; input: { file_path?: string; content?: string } }): void => {
    if (answered.has(ev.id)) return;
    answered.add(ev.id);
    answer(ev).catch((e: unknown) => {
      if (!signal.aborted) console.error("floor: tool failed", e);
    });
  };
  const answer = async (ev: { id: string; name: string; input: { file_path?: string; content?: string } }): Promise<void> => {
    let text: string;
    const path = String(ev.input.file_path);
    if (ev.name === "write") {
      const bytes = enc.encode(String(ev.input.content));
      await ws.writeFile(path, bytes);
      text = `wrote ${bytes.byteLength} bytes to ${ev.input.file_path}`;
    } else {
      text = dec.decode(await ws.readFile(path));
    }
    const body = JSON.stringify({ events: [{ type: "user.tool_result", tool_use_id: ev.id, is_error: false, content: [{ type: "text", text }] }] });
    // No signal: Node 20's fetch keeps a listener on a long-lived signal per request.
    fetch(`${base}/v1/sessions/${sid}/events`, { method: "POST", headers: postHeaders, body })
      .then((r) => r.text())
      .catch((e: unknown) => {
        if (!signal.aborted) console.error("floor: post failed", e);
      });
  };

  const res = await fetch(`${base}/v1/sessions/${sid}/events/stream`, { headers: headers(token), signal });
  const history = (await (await fetch(`${base}/v1/sessions/${sid}/events?limit=1000`, { headers: headers(token), signal })).json()) as {
    data: Array<{ type: string; id: string; name: string; input: never; tool_use_id?: string }>;
  };
  for (const ev of history.data) if (ev.type === "user.tool_result") answered.add(ev.tool_use_id!);
  for (const ev of history.data) if (ev.type === "agent.tool_use") onToolUse(ev);

  const reader = res.body!.getReader();
  let buf = "";
  try {
    for (;;) {
      const { value, done } = await reader.read();
      if (done) return;
      buf += dec.decode(value, { stream: true });
      let end: number;
      while ((end = buf.indexOf("\n\n")) >= 0) {
        const frame = buf.slice(0, end);
        buf = buf.slice(end + 2);
        let event = "";
        let data = "";
        for (const line of frame.split("\n")) {
          if (line.startsWith("event: ")) event = line.slice(7);
          else if (line.startsWith("data: ")) data += line.slice(6);
        }
        if (event === "agent.tool_use") onToolUse(JSON.parse(data));
      }
    }
  } catch (e) {
    if (!signal.aborted) throw e;
  }
}

main().catch((e: unknown) => {
  console.error(`bench client failed: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}`);
  process.exit(1);
});
