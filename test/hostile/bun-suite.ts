// Run by `bun test/hostile/bun-suite.ts <worker|bwrap>` from test/hostile/bun.test.ts (vitest runs
// in Node; the Bun tiers run in a real bun process). Reads DEFT_HOSTILE_ENV (a HostileEnv), runs
// start-up timings, functional checks, the hostile suite and (bwrap) a fork bomb, and prints the
// whole outcome as one JSON line on stdout.
import { spawnSync } from "node:child_process";
import { readdirSync } from "node:fs";
import type { ExecuteResult } from "../../core/sandbox/sandbox.ts";
import { IsolatePool, IsolateSandbox, type IsolateHost, type IsolateLimits } from "../../isolates/mod.ts";
import { DEFAULT_TASK_ALLOWANCE, bunIsolateHost } from "../../runtimes/bun/isolates.ts";
import { createWorkspaceFs } from "../../tools/workspace-fs.ts";
import { CROSS_SESSION, HOSTILE_CASES, runHostileSuite, type HostileEnv, type HostileResult } from "./cases.ts";
import { httpProbe } from "./control-server.ts";

export type BunSuiteMode = "worker" | "bwrap";

/** Limits every sandbox of the suite uses (the fork bomb gets more memory, see below). */
export const SUITE_LIMITS: IsolateLimits = { memoryMiB: 64, maxProcesses: 16 };
export const FORK_BOMB_LIMITS: IsolateLimits = { memoryMiB: 256, maxProcesses: 16 };

/** Cases a mode does not run, and why (the result is reported as not stopped). */
export const NOT_RUN: Record<BunSuiteMode, Record<string, string>> = {
  worker: {
    "memory-blowup":
      "not run: a Bun Worker's heap is the host process's (resourceLimits is ignored), so the blowup would take down the host itself",
  },
  bwrap: {},
};

export interface ForkBombOutcome {
  /** What the snippet got (spawn counts, the error that stopped it, processes it saw). */
  guest: ExecuteResult;
  /** pids.max of the isolate's cgroup as the host set it. */
  pidsMax: number;
  /** The host could still spawn a process and run a snippet afterwards. */
  hostSpawnOk: boolean;
  afterwards: ExecuteResult;
}

export interface BunSuiteOutput {
  mode: BunSuiteMode;
  tier: string;
  isolation: string;
  /** Milliseconds from start() to `ready`, one per sequential start. */
  startMs: number[];
  functional: Record<string, ExecuteResult>;
  hostFiles: { guestWrote: string | null };
  hostile: HostileResult[];
  forkBomb?: ForkBombOutcome;
  /** deft-bun cgroups of this process left behind after everything closed. */
  leftoverCgroups: string[];
}

const MEMORY_BLOWUP = "const a = []; while (true) a.push(new Array(1e6).fill(Math.random()));";

async function startTimes(host: IsolateHost, n: number): Promise<number[]> {
  const out: number[] = [];
  for (let i = 0; i < n; i++) {
    const t0 = performance.now();
    const ch = await host.start(SUITE_LIMITS);
    out.push(Math.round((performance.now() - t0) * 10) / 10);
    ch.kill();
    await ch.exited;
  }
  return out;
}

async function functional(mode: BunSuiteMode, host: IsolateHost): Promise<{ results: Record<string, ExecuteResult>; guestWrote: string | null }> {
  const pool = new IsolatePool(host, 2, SUITE_LIMITS);
  const fs = createWorkspaceFs();
  const sb = new IsolateSandbox({ sessionId: "sesn_bun_functional", pool, fs });
  const results: Record<string, ExecuteResult> = {};
  const run = async (name: string, code: string, language: "js" | "ts" = "js", timeoutMs = 10_000, bindings?: Parameters<IsolateSandbox["execute"]>[1]) => {
    results[name] = await sb.execute({ code, language, timeoutMs }, bindings);
  };
  try {
    await run("console-and-return", `console.log("hi", { a: 1 }); console.error("bad"); return { x: 6 * 7 };`);
    await run("typescript", `interface Pair { a: number; b: number }\nconst p: Pair = { a: 40, b: 2 };\nconst add = (x: number, y: number): number => x + y;\nreturn add(p.a, p.b) as number;`, "ts");
    await fs.writeFile("from-host.txt", "written by the host");
    await run("workspace", `await workspace.writeFile("dir/from-guest.txt", "written by the guest");\nreturn { read: await workspace.readFile("from-host.txt"), list: await workspace.readdir("dir") };`);
    await run("fetch-deny-all", `const r = await fetch("https://example.com/x"); return { status: r.status };`);
    const seen: string[] = [];
    await run("fetch-outbound", `const r = await fetch("https://api.example.test/data", { method: "POST", body: "ping" }); return { status: r.status, body: await r.text() };`, "js", 10_000, {
      bindings: {
        outbound: async (req: Request) => {
          seen.push(`${req.method} ${req.url} ${await req.text()}`);
          return new Response(`pong:${seen.length}`, { status: 200 });
        },
      },
    });
    results["fetch-outbound"] = { ...results["fetch-outbound"]!, logs: [...results["fetch-outbound"]!.logs, ...seen.map((s) => `[outbound] ${s}`)] };
    await run("timeout", "while (true) {}", "js", 500);
    if (mode === "bwrap") await run("memory", MEMORY_BLOWUP, "js", 20_000);
    await run("output-limit", `for (let i = 0; ; i++) console.log(i + " " + "y".repeat(1000));`, "js", 20_000);
    await run("after-all", "return 6 * 7");
    const guestWrote = (await fs.exists("dir/from-guest.txt")) ? new TextDecoder().decode(await fs.readFile("dir/from-guest.txt")) : null;
    return { results, guestWrote };
  } finally {
    await sb.close();
    await pool.close();
  }
}

/** bwrap only: a fork bomb through every route (a shell if one were reachable, Bun.spawn of bun itself). */
async function forkBomb(host: IsolateHost): Promise<ForkBombOutcome> {
  const pool = new IsolatePool(host, 1, FORK_BOMB_LIMITS);
  const sb = new IsolateSandbox({ sessionId: "sesn_bun_forkbomb", pool, fs: createWorkspaceFs() });
  try {
    const guest = await sb.execute({
      language: "js",
      // Generous: under a loaded machine ~40 bun processes starting at once are slow, and this
      // case is about the pids cap, not speed.
      timeoutMs: 60_000,
      code: `
const got = { shell: null, spawned: 0, error: null, maxProcs: 0 };
const procs = async () => { const fs = process.getBuiltinModule("node:fs"); return fs.readdirSync("/proc").filter((n) => /^\\d+$/.test(n)).length; };
try { got.shell = String(Bun.spawnSync(["/bin/sh", "-c", ":(){ :|:& };:"]).exitCode); } catch (e) { got.shell = "refused: " + String(e && e.message || e).slice(0, 200); }
const kids = [];
for (let i = 0; i < 200; i++) {
  try {
    // Each child tries to spawn more of itself: the classic bomb, in bun.
    kids.push(Bun.spawn(["/bun", "-e", "for (let i = 0; i < 50; i++) { try { Bun.spawn(['/bun', '-e', 'setTimeout(() => {}, 20000)']); } catch {} } setTimeout(() => {}, 20000)"], { stdout: "ignore", stderr: "ignore" }));
    got.spawned++;
  } catch (e) { got.error = String(e && (e.code || e.message) || e).slice(0, 200); break; }
  got.maxProcs = Math.max(got.maxProcs, await procs());
}
for (let i = 0; i < 20; i++) { await new Promise((r) => setTimeout(r, 100)); got.maxProcs = Math.max(got.maxProcs, await procs()); }
return got;`,
    });
    const hostSpawnOk = spawnSync("/bin/sh", ["-c", "echo ok"], { encoding: "utf8" }).stdout.trim() === "ok";
    const afterwards = await sb.execute({ code: "return 6 * 7", language: "js", timeoutMs: 10_000 });
    return { guest, pidsMax: (FORK_BOMB_LIMITS.maxProcesses ?? 16) + DEFAULT_TASK_ALLOWANCE, hostSpawnOk, afterwards };
  } finally {
    await sb.close();
    await pool.close();
  }
}

function leftoverCgroups(): string[] {
  const out: string[] = [];
  for (const c of ["memory", "pids"]) {
    try {
      for (const n of readdirSync(`/sys/fs/cgroup/${c}`)) if (n.startsWith(`deft-bun-${process.pid}-`)) out.push(`${c}/${n}`);
    } catch {}
  }
  return out;
}

async function main(): Promise<void> {
  const mode = process.argv[2] as BunSuiteMode;
  if (mode !== "worker" && mode !== "bwrap") throw new Error(`usage: bun test/hostile/bun-suite.ts worker|bwrap (got ${String(mode)})`);
  const envText = process.env["DEFT_HOSTILE_ENV"];
  if (!envText) throw new Error("DEFT_HOSTILE_ENV is not set");
  const env = JSON.parse(envText) as HostileEnv;
  const host = bunIsolateHost(mode);

  const startMs = await startTimes(host, 7);
  const { results, guestWrote } = await functional(mode, host);

  const notRun = NOT_RUN[mode];
  const only = [...HOSTILE_CASES.map((c) => c.id), CROSS_SESSION.id].filter((id) => !(id in notRun));
  const pool = new IsolatePool(host, 2, SUITE_LIMITS);
  let hostile: HostileResult[];
  try {
    hostile = await runHostileSuite(async (sid) => new IsolateSandbox({ sessionId: sid, pool, fs: createWorkspaceFs() }), env, httpProbe(env.control), only);
  } finally {
    await pool.close();
  }
  // Cases not run, in suite order, reported as not stopped.
  const byId = new Map(hostile.map((r) => [r.id, r]));
  for (const c of HOSTILE_CASES) if (c.id in notRun) byId.set(c.id, { id: c.id, label: c.label, stopped: false, detail: notRun[c.id]! });
  hostile = [...HOSTILE_CASES.map((c) => c.id), CROSS_SESSION.id].flatMap((id) => (byId.has(id) ? [byId.get(id)!] : []));

  const bomb = mode === "bwrap" ? await forkBomb(host) : undefined;
  await host.close?.();
  // Cgroups are removed asynchronously after each isolate's exit.
  await new Promise((r) => setTimeout(r, 300));
  const out: BunSuiteOutput = {
    mode,
    tier: host.tier,
    isolation: host.isolation,
    startMs,
    functional: results,
    hostFiles: { guestWrote },
    hostile,
    ...(bomb ? { forkBomb: bomb } : {}),
    leftoverCgroups: leftoverCgroups(),
  };
  process.stdout.write(JSON.stringify(out) + "\n");
}

await main();
process.exit(0);
