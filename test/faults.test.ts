// Faults: each test asserts that every tool_use got exactly one result and no tool ran twice.
// Real HTTP on loopback; the crash test kills a real worker process with SIGKILL.
import { spawn, type ChildProcess } from "node:child_process";
import { mkdtempSync, readFileSync, existsSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import type { Scenario } from "../core/emulator/mod.ts";
import { MemoryLedger } from "../core/session/mod.ts";
import { ENV_ID, ENV_KEY, startEmulator, type Harness } from "./emulator-helpers.ts";
import { answeredOnce, RunCounter, startWorker, type WorkerHarness } from "./worker-helpers.ts";

let h: Harness | undefined;
let workers: WorkerHarness[] = [];
let children: ChildProcess[] = [];
afterEach(async () => {
  for (const c of children) c.kill("SIGKILL");
  await Promise.all(workers.map((w) => w.stop()));
  await h?.close();
  h = undefined;
  workers = [];
  children = [];
});

const call = (name: string, input: Record<string, unknown>, expect?: Record<string, unknown>) => ({ name, input, ...(expect ? { expect } : {}) });

/** Several turns of several steps, calls answered concurrently within a step. */
function busyScenario(): Scenario {
  return {
    name: "busy",
    turns: [
      {
        user: "one",
        steps: [
          { calls: [call("write", { file_path: "a", content: "A" }, { contains: "wrote" }), call("write", { file_path: "b", content: "B" }, { contains: "wrote" })] },
          { calls: [call("read", { file_path: "a" }, { equals: "A" }), call("read", { file_path: "b" }, { equals: "B" }), call("sleep", { ms: 50 })] },
          { calls: [call("edit", { file_path: "a", old_string: "A", new_string: "AA" }, { contains: "1 replacement" })] },
        ],
      },
      {
        user: "two",
        steps: [
          { calls: [call("read", { file_path: "a" }, { equals: "AA" }), call("glob", { pattern: "*" }, { contains: "/workspace/a" })] },
          { calls: [call("grep", { pattern: "B" }, { contains: "/workspace/b:1:B" })] },
        ],
      },
    ],
    end: "terminate",
  } as Scenario;
}

function assertClean(report: Parameters<typeof answeredOnce>[0] & { checksFailed: string[] }, counters: RunCounter[]) {
  expect(report.checksFailed).toEqual([]);
  expect(answeredOnce(report)).toEqual([]);
  const runs = new Map<string, number>();
  for (const c of counters) for (const [id, n] of c.runs) runs.set(id, (runs.get(id) ?? 0) + n);
  expect([...runs].filter(([, n]) => n > 1)).toEqual([]);
}

describe("faults", () => {
  it("the stream drops mid-turn, again and again", async () => {
    h = await startEmulator();
    h.emu.control.setFaults({ dropStreamAfterEvents: 2 });
    const w = startWorker(h);
    workers.push(w);
    const id = String(h.emu.control.createSession({ scenario: busyScenario() }).id);
    const report = await h.emu.control.waitFor(id, (r) => r.scenarioDone, 30_000);
    assertClean(report, [w.counter]);
    expect(h.emu.control.stats().streamsDroppedByFault).toBeGreaterThan(3);
  });

  it("a result that could not be posted within the lease window is posted after the next reconnect, not re-run", async () => {
    h = await startEmulator({ leaseTtlSeconds: 2 });
    h.emu.control.setFaults({ failSends: { status: 503, count: 2 } });
    const w = startWorker(h);
    workers.push(w);
    const sc = { name: "late", turns: [{ user: "go", steps: [{ calls: [call("write", { file_path: "a", content: "x" }, { contains: "wrote" })] }] }], end: "terminate" } as Scenario;
    const id = String(h.emu.control.createSession({ scenario: sc }).id);
    // Two failed posts 1 s apart, and the next wait would pass the 2 s window: given up.
    await expect.poll(() => w.lines.join("\n"), { timeout: 10_000 }).toContain("result not posted within the lease window");
    expect(h.emu.control.report(id).toolUses[0]!.results).toBe(0);
    h.emu.control.clearFaults();
    expect(h.emu.control.dropStreams(id)).toBe(1);
    const report = await h.emu.control.waitFor(id, (r) => r.scenarioDone, 10_000);
    assertClean(report, [w.counter]);
    expect(w.counter.runs.size).toBe(1);
  });

  it("reconnects list only the recent history", async () => {
    const lists: string[] = [];
    const recording: typeof fetch = (input, init) => {
      const url = typeof input === "string" ? input : input instanceof URL ? input.href : input.url;
      if (/\/events\?/.test(url) && (init?.method ?? "GET") === "GET") lists.push(decodeURIComponent(url));
      return fetch(input, init);
    };
    h = await startEmulator();
    h.emu.control.setFaults({ dropStreamAfterEvents: 3 });
    const w = startWorker(h, { fetch: recording });
    workers.push(w);
    const id = String(h.emu.control.createSession({ scenario: busyScenario() }).id);
    const report = await h.emu.control.waitFor(id, (r) => r.scenarioDone, 30_000);
    assertClean(report, [w.counter]);
    expect(lists.length).toBeGreaterThan(2);
    expect(lists[0]).not.toContain("created_at[gte]");
    expect(lists.slice(1).every((u) => u.includes("created_at[gte]"))).toBe(true);
  });

  it("sends fail with 503 for a while", async () => {
    h = await startEmulator();
    const w = startWorker(h, { maxRetries: 0 });
    workers.push(w);
    h.emu.control.setFaults({ failSends: { status: 503, count: 3 } });
    const id = String(h.emu.control.createSession({ scenario: busyScenario() }).id);
    const report = await h.emu.control.waitFor(id, (r) => r.scenarioDone, 40_000);
    assertClean(report, [w.counter]);
    expect(h.emu.control.stats().sendsFailedByFault).toBe(3);
  });

  it("a second worker steals the lease (412) mid-tool; the item moves on without a double run", async () => {
    h = await startEmulator({ leaseTtlSeconds: 1 });
    // Both workers share one ledger, as workers sharing a store do.
    const ledger = new MemoryLedger();
    const a = startWorker(h, { ledger });
    workers.push(a);
    const sc = {
      name: "steal",
      turns: [{ user: "go", steps: [{ calls: [call("sleep", { ms: 2_500 })] }, { calls: [call("write", { file_path: "after", content: "x" }, { contains: "wrote" })] }] }],
      end: "terminate",
    } as Scenario;
    const id = String(h.emu.control.createSession({ scenario: sc }).id);
    await h.emu.control.waitFor(id, (r) => r.toolUses.length === 1, 10_000);
    await expect.poll(() => a.counter.runs.size, { timeout: 5_000 }).toBe(1);
    const b = startWorker(h, { ledger });
    workers.push(b);
    const workId = h.emu.control.report(id).workIds[0]!;
    h.emu.control.stealLease(workId);
    const report = await h.emu.control.waitFor(id, (r) => r.scenarioDone, 30_000);
    assertClean(report, [a.counter, b.counter]);
    // The interrupted call was answered as interrupted, not run again.
    expect(JSON.stringify(report.toolUses[0]!.content)).toContain("interrupted");
    expect(a.lines.join("\n")).toMatch(/lease lost/);
    // The 412's details were read through the contract schema: the server's view of the lease.
    expect(a.lines.find((l) => l.includes("lease lost: another worker"))).toMatch(/"current_state":\{/);
  });

  it("the operator stops the work item: the in-flight tool finishes and posts, then the item is stopped", async () => {
    h = await startEmulator({ leaseTtlSeconds: 2 });
    const w = startWorker(h);
    workers.push(w);
    const sc = { name: "stop", turns: [{ user: "go", steps: [{ calls: [call("sleep", { ms: 1_500 }, { contains: "slept" })] }] }], end: "idle" } as Scenario;
    const id = String(h.emu.control.createSession({ scenario: sc }).id);
    await h.emu.control.waitFor(id, (r) => r.toolUses.length === 1, 10_000);
    await expect.poll(() => w.counter.runs.size, { timeout: 5_000 }).toBe(1);
    const workId = h.emu.control.report(id).workIds[0]!;
    h.emu.control.stopWork(workId, false);
    await expect.poll(() => h!.emu.control.getWork(workId).state, { timeout: 10_000 }).toBe("stopped");
    const report = h.emu.control.report(id);
    assertClean(report, [w.counter]);
    expect(report.toolUses[0]!.is_error).toBe(false);
  });

  it("malformed and unknown events are logged with their id and skipped", async () => {
    h = await startEmulator();
    const w = startWorker(h);
    workers.push(w);
    const sc = {
      name: "junk",
      turns: [{ user: "go", steps: [{ calls: [call("sleep", { ms: 300 }, { contains: "slept" })] }, { calls: [call("glob", { pattern: "*" }, { equals: "no matches" })] }] }],
      end: "terminate",
    } as Scenario;
    const id = String(h.emu.control.createSession({ scenario: sc }).id);
    await h.emu.control.waitFor(id, (r) => r.toolUses.length === 1, 10_000);
    const bad = h.emu.control.appendEvent(id, { type: "agent.tool_use", name: 42, input: "not an object" });
    h.emu.control.appendEvent(id, { type: "agent.hologram", shimmer: true });
    h.emu.control.appendEvent(id, { type: "user.tool_result", content: "no id" });
    const report = await h.emu.control.waitFor(id, (r) => r.scenarioDone, 15_000);
    expect(report.checksFailed).toEqual([]);
    const real = { ...report, toolUses: report.toolUses.filter((t) => t.id !== bad.id) };
    expect(answeredOnce(real)).toEqual([]);
    const log = w.lines.join("\n");
    expect(log).toContain("skipping malformed event");
    expect(log).toContain(bad.id);
    expect(w.counter.runs.size).toBe(2);
  });
});

describe("faults: a worker process killed mid-tool", () => {

  function spawnWorker(url: string, dir: string, extra: Record<string, string> = {}): ChildProcess {
    // One process (node with tsx's loader), so SIGKILL hits the worker itself, not a wrapper.
    const child = spawn(process.execPath, ["--import", "tsx", "test/fixtures/worker-process.ts"], {
      env: {
        ...process.env,
        ANTHROPIC_BASE_URL: url,
        ANTHROPIC_ENVIRONMENT_ID: ENV_ID,
        ANTHROPIC_ENVIRONMENT_KEY: ENV_KEY,
        LEDGER_DIR: join(dir, "ledger"),
        RUNS_FILE: join(dir, "runs.log"),
        ...extra,
      },
      stdio: ["ignore", "ignore", "pipe"],
    });
    child.stderr!.on("data", (d) => process.env.DEBUG_CHILD && process.stderr.write(`[${child.pid}] ${d}`));
    children.push(child);
    return child;
  }
  const runs = (dir: string) => (existsSync(join(dir, "runs.log")) ? readFileSync(join(dir, "runs.log"), "utf8").trim().split("\n").filter(Boolean) : []);
  const slowScenario = {
    name: "slow",
    turns: [{ user: "go", steps: [{ calls: [{ name: "slow", input: { ms: 60_000, tag: "first" } }] }, { calls: [{ name: "slow", input: { ms: 10, tag: "second" }, expect: { contains: "second done" } }] }] }],
    end: "terminate",
  } as Scenario;

  for (const [ledger, idempotent] of [["file", false], ["file", true], ["store", false], ["store", true]] as const) {
    it(`${ledger} ledger: a new process reclaims the item; the started call is ${idempotent ? "re-run (idempotent tool)" : "reported interrupted, not re-run"}`, async () => {
      h = await startEmulator({ leaseTtlSeconds: 1 });
      const dir = mkdtempSync(join(tmpdir(), "deft-kill-"));
      const extra: Record<string, string> = { ...(idempotent ? { SLOW_IDEMPOTENT: "1" } : {}), ...(ledger === "store" ? { LEDGER: "store", STATE_DIR: join(dir, "state") } : {}) };
      const first = spawnWorker(h.url, dir, extra);
      const id = String(h.emu.control.createSession({ scenario: slowScenario }).id);
      await expect.poll(() => runs(dir).length, { timeout: 30_000, interval: 50 }).toBe(1);
      first.kill("SIGKILL");
      await new Promise((r) => first.once("exit", r));
      spawnWorker(h.url, dir, { ...extra, SLOW_CAP_MS: "50" });
      const report = await h.emu.control.waitFor(id, (r) => r.toolUses.length === 2 && r.toolUses.every((t) => t.results > 0), 40_000);
      expect(answeredOnce(report)).toEqual([]);
      const first_ = report.toolUses[0]!;
      const lines = runs(dir);
      if (idempotent) {
        expect(lines.filter((l) => l.includes(" first ")).length).toBe(2);
        expect(first_.is_error).toBe(false);
      } else {
        expect(lines.filter((l) => l.includes(" first ")).length).toBe(1);
        expect(first_.is_error).toBe(true);
        expect(JSON.stringify(first_.content)).toContain("interrupted");
      }
      expect(lines.filter((l) => l.includes(" second ")).length).toBe(1);
      // The rest of the session was served by the new process, not the killed one.
      const pidOf = (l: string) => Number(l.split(" ")[0]);
      expect(pidOf(lines.find((l) => l.includes(" second "))!)).not.toBe(first.pid);
      expect(pidOf(lines[0]!)).toBe(first.pid);
    });
  }

  for (const ledger of ["file", "store"] as const) {
    it(`${ledger} ledger: killed after the result was recorded but before it was posted, the new process posts it without running the tool again`, async () => {
      h = await startEmulator({ leaseTtlSeconds: 1 });
      const dir = mkdtempSync(join(tmpdir(), "deft-kill-"));
      const extra: Record<string, string> = { SLOW_CAP_MS: "10", ...(ledger === "store" ? { LEDGER: "store", STATE_DIR: join(dir, "state") } : {}) };
      h.emu.control.setFaults({ failSends: { status: 503, count: 1_000_000 } }); // every post fails: the result stays recorded, unposted
      const first = spawnWorker(h.url, dir, extra);
      const id = String(h.emu.control.createSession({ scenario: slowScenario }).id);
      await expect.poll(() => runs(dir).length, { timeout: 30_000, interval: 50 }).toBe(1);
      // The tool finished (slow is capped at 10 ms) and its result was posted, after being
      // recorded; the post failed (the worker's only sends here are results).
      await expect.poll(() => h!.emu.control.stats().requests["events.send"] ?? 0, { timeout: 10_000, interval: 20 }).toBeGreaterThan(0);
      first.kill("SIGKILL");
      await new Promise((r) => first.once("exit", r));
      h.emu.control.clearFaults();
      spawnWorker(h.url, dir, extra);
      const report = await h.emu.control.waitFor(id, (r) => r.toolUses.length === 2 && r.toolUses.every((t) => t.results > 0), 40_000);
      expect(answeredOnce(report)).toEqual([]);
      expect(report.toolUses[0]!.is_error).toBe(false);
      expect(JSON.stringify(report.toolUses[0]!.content)).toContain("slow first done");
      expect(runs(dir).filter((l) => l.includes(" first ")).length).toBe(1); // recorded, re-posted, not re-run
    });
  }
});
