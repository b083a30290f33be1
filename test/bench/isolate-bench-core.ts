/**
 * Isolate-tier benchmarks, runtime-neutral so each tier is measured in the runtime that hosts it
 * (Node for deno-subprocess and workers-loader; Bun for bun-worker and bun-bwrap, through
 * bun-isolates.ts). Every number is a wall time measured in the host process:
 *   cold      execute(`return 1`) with no isolate started ahead: start + prelude + run + result
 *   warm      from a warm pool (isolates started ahead of need, each used once): the time from the
 *             call to the snippet running (the guest stamps its first line with
 *             performance.timeOrigin + now(), the same clock as the host's on one machine), and
 *             the whole round trip
 *   floor     the bare runtime doing the least comparable thing (`deno run hello.js`, a bare Bun
 *             Worker posting one message, a bare Worker Loader load), measured by the caller
 *   rw        WorkspaceFs write+read of small files, from the host and through a snippet
 */
import type { Sandbox, WorkspaceFs } from "../../core/sandbox/sandbox.ts";
import { IsolatePool, IsolateSandbox } from "../../isolates/isolate-sandbox.ts";
import type { IsolateHost } from "../../isolates/protocol.ts";
import { percentile } from "./stats.ts";

export interface TierNumbers {
  tier: string;
  coldMs: number[];
  warmMs: number[];
  /** From the execute call to the snippet's first line running in the guest. */
  warmStartMs: number[];
  /** Trivial execute round trip from a warm pool, repeated back to back. */
  floorMs: number[];
  floorLabel: string;
  hostRwFilesPerS: number;
  guestRwFilesPerS: number;
}

const time = async (f: () => Promise<unknown>): Promise<number> => {
  const t = performance.now();
  await f();
  return performance.now() - t;
};

export async function benchTier(opts: {
  host: IsolateHost;
  makeFs: () => WorkspaceFs;
  floor: () => Promise<void>;
  floorLabel: string;
  runs?: number;
}): Promise<TierNumbers> {
  const runs = opts.runs ?? 20;
  const trivial = { code: "return 1", language: "js" as const, timeoutMs: 30_000 };
  const check = (r: { ok: boolean; value?: unknown; error?: unknown }) => {
    if (!r.ok || r.value !== 1) throw new Error(`bench: trivial execute failed on ${opts.host.tier}: ${JSON.stringify(r)}`);
  };

  // Cold: a pool of size 0 starts each isolate at the call. Interleaved with the floor, so
  // drift on this shared machine hits both alike.
  const coldPool = new IsolatePool(opts.host, 0, { memoryMiB: 128, maxProcesses: 16 });
  const cold: number[] = [];
  const floor: number[] = [];
  await opts.floor(); // warm the binary into the page cache
  // A short pause before each measured start, for both: the previous isolate's teardown (a
  // Worker's thread, a process's exit) otherwise runs on the same two cores as the next start.
  const settle = () => new Promise((r) => setTimeout(r, 25));
  for (let i = 0; i < runs; i++) {
    const sb = new IsolateSandbox({ sessionId: `bench_cold_${i}`, pool: coldPool, fs: opts.makeFs() });
    await settle();
    cold.push(await time(async () => check(await sb.execute(trivial))));
    await settle();
    floor.push(await time(opts.floor));
  }

  // Warm: the pool has an isolate ready; wait for the refill between calls (never reused).
  const warmPool = new IsolatePool(opts.host, 1, { memoryMiB: 128, maxProcesses: 16 });
  warmPool.fill();
  const warm: number[] = [];
  const warmStart: number[] = [];
  const stamp = { code: "return performance.timeOrigin + performance.now()", language: "js" as const, timeoutMs: 30_000 };
  for (let i = 0; i < runs; i++) {
    await warmPool.ready();
    const sb = new IsolateSandbox({ sessionId: `bench_warm_${i}`, pool: warmPool, fs: opts.makeFs() });
    const called = performance.timeOrigin + performance.now();
    const r = await sb.execute(stamp);
    if (!r.ok || typeof r.value !== "number") throw new Error(`bench: stamp execute failed on ${opts.host.tier}: ${JSON.stringify(r)}`);
    warm.push(performance.timeOrigin + performance.now() - called);
    warmStart.push(r.value - called);
  }

  // Workspace throughput: 200 files of 1 KiB written then read, host side and from a snippet.
  const fs = opts.makeFs();
  const kib = "x".repeat(1024);
  const N = 200;
  const hostMs = await time(async () => {
    for (let i = 0; i < N; i++) await fs.writeFile(`d/f${i}.txt`, kib);
    for (let i = 0; i < N; i++) await fs.readFile(`d/f${i}.txt`);
  });
  await warmPool.ready();
  const sb: Sandbox = new IsolateSandbox({ sessionId: "bench_rw", pool: warmPool, fs: opts.makeFs() });
  let guestMs = 0;
  const r = await sb.execute({
    language: "js",
    timeoutMs: 60_000,
    code: `const t = performance.now(); const s = "x".repeat(1024);
for (let i = 0; i < ${N}; i++) await workspace.writeFile("d/f" + i + ".txt", s);
for (let i = 0; i < ${N}; i++) await workspace.readFile("d/f" + i + ".txt");
return performance.now() - t;`,
  });
  if (!r.ok) throw new Error(`bench: rw snippet failed on ${opts.host.tier}: ${JSON.stringify(r.error)}`);
  guestMs = r.value as number;
  await coldPool.close();
  await warmPool.close();
  return { tier: opts.host.tier, coldMs: cold, warmMs: warm, warmStartMs: warmStart, floorMs: floor, floorLabel: opts.floorLabel, hostRwFilesPerS: (2 * N) / (hostMs / 1000), guestRwFilesPerS: (2 * N) / (guestMs / 1000) };
}

export const summarize = (n: TierNumbers) => ({
  tier: n.tier,
  coldP50: percentile(n.coldMs, 50),
  coldP95: percentile(n.coldMs, 95),
  warmP50: percentile(n.warmMs, 50),
  warmP95: percentile(n.warmMs, 95),
  warmStartP50: percentile(n.warmStartMs, 50),
  warmStartP95: percentile(n.warmStartMs, 95),
  floorP50: percentile(n.floorMs, 50),
  floorLabel: n.floorLabel,
  hostRwFilesPerS: n.hostRwFilesPerS,
  guestRwFilesPerS: n.guestRwFilesPerS,
});
