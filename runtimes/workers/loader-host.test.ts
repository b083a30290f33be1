// The workers-loader tier under real workerd (through Miniflare): what a snippet can do, and that
// its own network and a CPU-bound loop are stopped.
import http from "node:http";
import type { AddressInfo } from "node:net";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { IsolatePool, IsolateSandbox } from "../../isolates/mod.ts";
import { createWorkspaceFs } from "../../tools/workspace-fs.ts";
import { type WorkersLoaderHost, workersLoaderHost } from "./loader-host.ts";

describe("workers-loader isolate tier (workerd through Miniflare)", () => {
  let host: WorkersLoaderHost;
  let pool: IsolatePool;
  let server: http.Server;
  let serverUrl: string;
  let hits = 0;
  const sandbox = (outputLimitBytes?: number) =>
    new IsolateSandbox({ sessionId: "sesn_workers", pool, fs: createWorkspaceFs(), ...(outputLimitBytes ? { outputLimitBytes } : {}) });

  beforeAll(async () => {
    server = http.createServer((_q, s) => {
      hits++;
      s.end("loopback reached");
    });
    await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
    serverUrl = `http://127.0.0.1:${(server.address() as AddressInfo).port}/`;
    host = workersLoaderHost();
    pool = new IsolatePool(host, 2);
    pool.fill();
  }, 30_000);
  afterAll(async () => {
    await pool?.close();
    server?.closeAllConnections();
    await new Promise((r) => server?.close(r));
  });

  it("captures console output and returns the value", async () => {
    const r = await sandbox().execute({ code: `console.log("hello", {a: 1}); console.warn("careful"); return [1, "two"];`, language: "js", timeoutMs: 10_000 });
    expect(r).toMatchObject({ ok: true, value: [1, "two"], logs: ["hello {\"a\":1}", "[warn] careful"] });
  });

  it("runs a TypeScript snippet", async () => {
    const r = await sandbox().execute({ code: `const n: number = 6; const f = (x: number): number => x * 7; return f(n);`, language: "ts", timeoutMs: 10_000 });
    expect(r).toMatchObject({ ok: true, value: 42 });
  });

  it("reports a snippet's error and a syntax error", async () => {
    const r = await sandbox().execute({ code: `throw new TypeError("nope")`, language: "js", timeoutMs: 10_000 });
    expect(r).toMatchObject({ ok: false, error: { kind: "error", message: "TypeError: nope" } });
    const s = await sandbox().execute({ code: `return (`, language: "js", timeoutMs: 10_000 });
    expect(s.ok).toBe(false);
    expect(s.error?.message).toMatch(/SyntaxError/);
  });

  it("reads and writes the workspace through the bridge", async () => {
    const sb = sandbox();
    await sb.fs.writeFile("in.txt", new TextEncoder().encode("from the host"));
    const r = await sb.execute({
      code: `const t = await workspace.readFile("in.txt");
await workspace.mkdir("out");
await workspace.writeFile("out/copy.txt", t.toUpperCase());
const [a, b] = await Promise.all([workspace.exists("out/copy.txt"), workspace.exists("nope.txt")]);
const miss = await workspace.readFile("missing.txt").then(() => "read", () => "refused");
return { t, a, b, miss, list: (await workspace.readdir("out")).map((e) => e.name) };`,
      language: "js",
      timeoutMs: 10_000,
    });
    expect(r).toMatchObject({ ok: true, value: { t: "from the host", a: true, b: false, miss: "refused", list: ["copy.txt"] } });
    expect(new TextDecoder().decode(await sb.fs.readFile("out/copy.txt"))).toBe("FROM THE HOST");
  });

  it("sends the guest's fetch to the host's outbound handler: deny-all by default, a custom handler when given", async () => {
    const denied = await sandbox().execute({ code: `const r = await fetch(${JSON.stringify(serverUrl)}); return r.status;`, language: "js", timeoutMs: 10_000 });
    expect(denied).toMatchObject({ ok: true, value: 403 });
    const seen: string[] = [];
    const outbound = async (req: Request) => {
      seen.push(`${req.method} ${req.url} ${await req.text()}`);
      return new Response("allowed by policy", { status: 200, headers: { "x-policy": "yes" } });
    };
    const r = await sandbox().execute(
      {
        code: `const a = await fetch("https://api.example.com/v1", { method: "POST", body: "ping" });
const b = await globalThis.fetch("https://other.example.com/x");
return [a.status, await a.text(), a.headers.get("x-policy"), b.status, await b.text()];`,
        language: "js",
        timeoutMs: 10_000,
      },
      { bindings: { outbound } },
    );
    expect(r).toMatchObject({ ok: true, value: [200, "allowed by policy", "yes", 200, "allowed by policy"] });
    expect(seen).toEqual(["POST https://api.example.com/v1 ping", "GET https://other.example.com/x "]);
  });

  it("globalThis.fetch and sockets do not reach a loopback server", async () => {
    hits = 0;
    const r = await sandbox().execute({
      code: `const out = {};
try { out.global = (await globalThis.fetch(${JSON.stringify(serverUrl)})).status; } catch (e) { out.global = String(e); }
try { const { connect } = await import("cloudflare:sockets"); const s = connect(${JSON.stringify(serverUrl.slice(7, -1))}); await s.opened; out.socket = "open"; } catch (e) { out.socket = String(e); }
return out;`,
      language: "js",
      timeoutMs: 10_000,
    });
    expect(r.ok).toBe(true);
    expect((r.value as { global: unknown }).global).toBe(403);
    expect((r.value as { socket: unknown }).socket).not.toBe("open");
    expect(hits).toBe(0);
  });

  it("stops while(true){} on timeout, and a later run still works", async () => {
    const r = await sandbox().execute({ code: `while (true) {}`, language: "js", timeoutMs: 500 });
    expect(r).toMatchObject({ ok: false, error: { kind: "timeout" } });
    const after = await sandbox().execute({ code: `return "alive"`, language: "js", timeoutMs: 10_000 });
    expect(after).toMatchObject({ ok: true, value: "alive" });
    expect(host.stats.restarts.length).toBeGreaterThanOrEqual(1);
  }, 20_000);

  it("stops a flood of output at the output limit", async () => {
    const r = await sandbox(4096).execute({ code: `while (true) console.log("x".repeat(1000));`, language: "js", timeoutMs: 10_000 });
    expect(r).toMatchObject({ ok: false, truncated: true, error: { kind: "output" } });
    expect(r.logs.reduce((n, l) => n + l.length + 1, 0)).toBeLessThanOrEqual(4096);
  });

  it("ends timers with the call", async () => {
    const sb = sandbox();
    const r = await sb.execute({ code: `setTimeout(() => workspace.writeFile("late.txt", "x"), 100); return 1;`, language: "js", timeoutMs: 10_000 });
    expect(r).toMatchObject({ ok: true, value: 1 });
    await new Promise((res) => setTimeout(res, 400));
    expect(await sb.fs.exists("late.txt")).toBe(false);
  });
});
