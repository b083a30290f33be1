// The Store/BlobStore conformance suite against every backend, each in its own runtime: memory and
// Deno KV (@deno/kv) in this Node process, native Deno KV in real Deno, SQLite and @deno/kv in
// real Bun, a Durable Object and R2 in workerd (through Miniflare). Every case must pass.
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { pathToFileURL } from "node:url";
import { Miniflare } from "miniflare";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { bundleForWorkerd } from "../../test/workerd-bundle.ts";
import { openNodeStores } from "../../runtimes/node/state.ts";
import { runStoreConformance, runStorePairConformance, STORE_CONFORMANCE_CASES, type ConformanceResult } from "./conformance.ts";
import { KV_MAX_VALUE_BYTES } from "./kv-store.ts";
import { MemoryBlobStore, MemoryStore } from "./memory.ts";
import { runJsonLine } from "../../test/run-json-line.ts";

const ROOT = join(import.meta.dirname, "..", "..");
const bin = (name: string) => join(ROOT, "node_modules", ".bin", name);
const url = (path: string) => JSON.stringify(pathToFileURL(join(ROOT, path)).href);

interface RuntimeResult extends ConformanceResult {
  /** Wall time from process (or Miniflare) start to the answer (ms). */
  wallMs: number;
}

/** Runs a script that prints one JSON line (a ConformanceResult) last. */
async function runProcess(cmd: string, args: string[]): Promise<RuntimeResult> {
  const { value, wallMs } = await runJsonLine<ConformanceResult>(cmd, args);
  return { ...value, wallMs };
}

const DENO_SCRIPT = `import { runStorePairConformance } from ${url("core/state/conformance.ts")};
import { KV_MAX_VALUE_BYTES } from ${url("core/state/kv-store.ts")};
import { openDenoStores } from ${url("runtimes/deno/state.ts")};
const r = await runStorePairConformance(() => openDenoStores(Deno.args[0]), { reopen: true, valueLimitBytes: KV_MAX_VALUE_BYTES });
console.log(JSON.stringify(r));
`;

const BUN_SCRIPT = `import { runStorePairConformance } from ${url("core/state/conformance.ts")};
import { KV_MAX_VALUE_BYTES } from ${url("core/state/kv-store.ts")};
import { SQLITE_MAX_VALUE_BYTES } from ${url("runtimes/bun/sqlite-store.ts")};
import { openBunStores } from ${url("runtimes/bun/state.ts")};
const [dir, backend] = process.argv.slice(2);
const valueLimitBytes = backend === "sqlite" ? SQLITE_MAX_VALUE_BYTES : KV_MAX_VALUE_BYTES;
const r = await runStorePairConformance(() => openBunStores(dir, { backend }), { reopen: true, valueLimitBytes });
console.log(JSON.stringify(r));
`;

/** The Durable Object (and its front worker) that runs the suite, and writes/reads across a restart. */
const WORKER_SOURCE = `import { runStorePairConformance } from "./conformance.ts";
import { DO_MAX_VALUE_BYTES, openWorkersStores } from "../../runtimes/workers/do-store.ts";

const RESTART_BLOB = new Uint8Array(200_000).map((_, i) => (i * 7) % 251);

export class StoreConformanceObject {
  constructor(ctx, env) {
    this.ctx = ctx;
    this.env = env;
  }
  async fetch(request) {
    const path = new URL(request.url).pathname;
    if (path === "/conformance") {
      return Response.json(await runStorePairConformance(async () => openWorkersStores(this.ctx.storage, this.env.BLOBS), { reopen: true, valueLimitBytes: DO_MAX_VALUE_BYTES }));
    }
    const { store, blobs } = openWorkersStores(this.ctx.storage, this.env.BLOBS);
    if (path === "/write") {
      const r = await store.set(["restart"], { written: "before the restart" });
      await blobs.put("restart", RESTART_BLOB);
      return Response.json(r);
    }
    const entry = await store.get(["restart"]);
    const blob = await blobs.get("restart");
    return Response.json({ entry, blobMatches: blob !== null && blob.length === RESTART_BLOB.length && blob.every((b, i) => b === RESTART_BLOB[i]) });
  }
}

const worker = {
  fetch(request, env) {
    return env.STORE.get(env.STORE.idFromName("conformance")).fetch(request);
  },
};
export { worker as default };
`;

interface RestartCheck {
  written: { ok: boolean; version?: string };
  read: { entry: { key: string[]; value: unknown; version: string } | null; blobMatches: boolean };
}

/** The suite in a Durable Object, then a write, a restart of workerd on the same files, and a read. */
async function runWorkerd(persistDir: string): Promise<{ result: RuntimeResult; restart: RestartCheck }> {
  const t0 = performance.now();
  const bundle = await bundleForWorkerd(WORKER_SOURCE, import.meta.dirname, "store-worker.ts");
  const options = {
    modules: [{ type: "ESModule" as const, path: "store-worker.mjs", contents: bundle }],
    compatibilityDate: "2025-09-01",
    durableObjects: { STORE: { className: "StoreConformanceObject", useSQLite: true } },
    r2Buckets: ["BLOBS"],
    durableObjectsPersist: join(persistDir, "do"),
    r2Persist: join(persistDir, "r2"),
  };
  let mf = new Miniflare(options);
  let result: RuntimeResult;
  let written: RestartCheck["written"];
  try {
    const res = await mf.dispatchFetch("http://store.test/conformance");
    result = { ...((await res.json()) as ConformanceResult), wallMs: performance.now() - t0 };
    written = (await (await mf.dispatchFetch("http://store.test/write")).json()) as RestartCheck["written"];
  } finally {
    await mf.dispose();
  }
  mf = new Miniflare(options);
  try {
    const read = (await (await mf.dispatchFetch("http://store.test/read")).json()) as RestartCheck["read"];
    return { result, restart: { written, read } };
  } finally {
    await mf.dispose();
  }
}

function report(label: string, r: ConformanceResult, wallMs?: number): void {
  const skipped = r.skipped.length ? `, skipped: ${r.skipped.join("; ")}` : "";
  console.log(`store conformance ${label}: ${r.passed}/${r.total} in ${r.ms} ms${wallMs === undefined ? "" : ` (${wallMs.toFixed(0)} ms wall with start)`}${skipped}`);
}

function expectAllPassed(r: ConformanceResult, skipped = 0): void {
  expect(r.failures).toEqual([]);
  expect(r.passed).toBe(r.total);
  expect(r.total).toBe(STORE_CONFORMANCE_CASES - skipped);
  expect(r.skipped.length).toBe(skipped);
}

describe.concurrent("Store and BlobStore conformance in every runtime", () => {
  const dir = mkdtempSync(join(tmpdir(), "deft-state-"));
  const runs: {
    deno?: Promise<RuntimeResult>;
    bunSqlite?: Promise<RuntimeResult>;
    bunKv?: Promise<RuntimeResult>;
    workerd?: Promise<{ result: RuntimeResult; restart: RestartCheck }>;
  } = {};
  afterAll(() => rmSync(dir, { recursive: true, force: true }));
  beforeAll(() => {
    // Every runtime at once; each is a few seconds on its own.
    writeFileSync(join(dir, "deno-conformance.ts"), DENO_SCRIPT);
    writeFileSync(join(dir, "bun-conformance.ts"), BUN_SCRIPT);
    runs.deno = runProcess(bin("deno"), ["run", "--no-prompt", "--no-config", "--no-lock", "--unstable-kv", `--allow-read=${ROOT},${dir}`, `--allow-write=${dir}`, join(dir, "deno-conformance.ts"), join(dir, "deno")]);
    runs.bunSqlite = runProcess(bin("bun"), [join(dir, "bun-conformance.ts"), join(dir, "bun-sqlite"), "sqlite"]);
    runs.bunKv = runProcess(bin("bun"), [join(dir, "bun-conformance.ts"), join(dir, "bun-kv"), "deno-kv"]);
    runs.workerd = runWorkerd(join(dir, "workerd"));
    for (const p of Object.values(runs)) p.catch(() => {});
  });

  it("has at least 30 cases", () => {
    expect(STORE_CONFORMANCE_CASES).toBeGreaterThanOrEqual(30);
  });

  it("node: MemoryStore / MemoryBlobStore pass (no value limit, no durability)", async () => {
    const r = await runStoreConformance(async () => new MemoryStore(), async () => new MemoryBlobStore());
    report("node memory", r);
    expectAllPassed(r, 2);
  });

  it("node: Deno KV through @deno/kv passes, and its data survives close and reopen", async () => {
    const r = await runStorePairConformance(() => openNodeStores(join(dir, "node-kv")), { reopen: true, valueLimitBytes: KV_MAX_VALUE_BYTES });
    report("node deno-kv (@deno/kv)", r);
    expectAllPassed(r);
  });

  it("deno: native Deno KV passes", async () => {
    const r = await runs.deno!;
    report("deno deno-kv (native)", r, r.wallMs);
    expectAllPassed(r);
  });

  it("bun: bun:sqlite passes", async () => {
    const r = await runs.bunSqlite!;
    report("bun sqlite", r, r.wallMs);
    expectAllPassed(r);
  });

  it("bun: Deno KV through @deno/kv passes", async () => {
    const r = await runs.bunKv!;
    report("bun deno-kv (@deno/kv)", r, r.wallMs);
    expectAllPassed(r);
  });

  it("workerd: Durable Object storage and R2 pass", async () => {
    const { result } = await runs.workerd!;
    report("workerd durable-object + r2", result, result.wallMs);
    expectAllPassed(result);
  });

  it("workerd: Durable Object and R2 data survive a restart of workerd", async () => {
    const { restart } = await runs.workerd!;
    expect(restart.written.ok).toBe(true);
    expect(restart.read.entry).toEqual({ key: ["restart"], value: { written: "before the restart" }, version: restart.written.version });
    expect(restart.read.blobMatches).toBe(true);
  });
});
