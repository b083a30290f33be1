// Deft's worker against the emulator over real HTTP on loopback: routing, validation,
// ownership, confirmations, concurrency, timeouts, healthchecks, fatal errors, shutdown.
import { afterEach, describe, expect, it } from "vitest";
import { z } from "zod";
import { defineTool } from "../core/router/mod.ts";
import type { Scenario } from "../core/emulator/mod.ts";
import { EnvironmentWorker, WorkerFatalError } from "../core/worker/mod.ts";
import { Router } from "../core/router/mod.ts";
import { ENV_ID, ENV_KEY, startEmulator, type Harness } from "./emulator-helpers.ts";
import { answeredOnce, startWorker, type WorkerHarness } from "./worker-helpers.ts";

let h: Harness | undefined;
let w: WorkerHarness | undefined;
afterEach(async () => {
  await w?.stop();
  await h?.close();
  w = h = undefined;
});

const one = (name: string, input: Record<string, unknown>, expect?: Record<string, unknown>, extra: Record<string, unknown> = {}) => ({
  name,
  input,
  ...(expect ? { expect } : {}),
  ...extra,
});

function scenario(calls: Array<ReturnType<typeof one>>, more: Partial<Scenario> = {}): Scenario {
  return { name: "t", turns: [{ user: "go", steps: [{ calls: calls as never }] }], end: "terminate", ...more } as Scenario;
}

async function run(sc: Scenario, opts: Parameters<typeof startWorker>[1] = {}) {
  h = await startEmulator();
  w = startWorker(h, opts);
  const id = String(h.emu.control.createSession({ scenario: sc }).id);
  const report = await h.emu.control.waitFor(id, (r) => r.scenarioDone, 15_000);
  return { id, report };
}

describe("worker: routing and results", () => {
  it("runs the scenario's builtin calls and posts one result each", async () => {
    const { report } = await run(
      scenario([one("write", { file_path: "a.txt", content: "hello" }, { contains: "wrote 5 bytes to a.txt" })], {
        turns: [
          { user: "write", steps: [{ calls: [one("write", { file_path: "a.txt", content: "hello" }, { contains: "wrote 5 bytes" })] }] },
          { user: "read", steps: [{ calls: [one("read", { file_path: "a.txt" }, { equals: "hello" })] }] },
        ],
      } as Partial<Scenario>),
    );
    expect(report.checksFailed).toEqual([]);
    expect(answeredOnce(report)).toEqual([]);
    expect(w!.counter.ranTwice()).toEqual([]);
  });

  it("answers bad input with an is_error result that names the field", async () => {
    const { report } = await run(scenario([one("read", { file_path: 42 }, { is_error: true, contains: "file_path" })]));
    expect(report.checksFailed).toEqual([]);
    expect(String(JSON.stringify(report.toolUses[0]!.content))).toMatch(/read: invalid input: file_path/);
  });

  it("answers an agent.tool_use for a tool Deft lacks with an error naming it", async () => {
    const { report } = await run(scenario([one("teleport", { to: "mars" }, { is_error: true, contains: '"teleport"' })]));
    expect(report.checksFailed).toEqual([]);
    expect(answeredOnce(report)).toEqual([]);
  });

  it("answers registered custom tools as user.custom_tool_result, validated", async () => {
    const lookup = defineTool({
      name: "lookup_order",
      description: "Look up an order",
      input: z.object({ id: z.number().int() }),
      run: ({ id }) => `order ${id} shipped`,
    });
    const sc = {
      name: "custom",
      custom_tools: [{ name: "lookup_order", description: "x", input_schema: { type: "object" } }],
      turns: [
        {
          user: "go",
          steps: [
            { calls: [{ name: "lookup_order", custom: true, input: { id: 7 }, expect: { equals: "order 7 shipped" } }] },
            { calls: [{ name: "lookup_order", custom: true, input: { id: "seven" }, expect: { is_error: true, contains: "id" } }] },
          ],
        },
      ],
      end: "terminate",
    } as Scenario;
    const { id, report } = await run(sc, { custom: [lookup] });
    expect(report.checksFailed).toEqual([]);
    const kinds = h!.emu.control.events(id).filter((e) => e.type.endsWith("tool_result")).map((e) => e.type);
    expect(kinds).toEqual(["user.custom_tool_result", "user.custom_tool_result"]);
  });

  it("leaves a custom call it did not register alone: no result posted", async () => {
    const sc = {
      name: "foreign",
      custom_tools: [{ name: "someone_elses", description: "x", input_schema: { type: "object" } }],
      turns: [{ user: "go", steps: [{ calls: [{ name: "someone_elses", custom: true, input: {} }] }] }],
      end: "idle",
    } as Scenario;
    h = await startEmulator();
    w = startWorker(h);
    const id = String(h.emu.control.createSession({ scenario: sc }).id);
    await h.emu.control.waitFor(id, (r) => r.toolUses.length === 1, 10_000);
    // The worker holds the session (requires_action) without posting; give it time to (wrongly) answer.
    await new Promise((r) => setTimeout(r, 700));
    const report = h.emu.control.report(id);
    expect(report.toolUses[0]!.results).toBe(0);
    expect(w.counter.runs.size).toBe(0);
  });
});

describe("worker: confirmations", () => {
  it("holds an 'ask' call until allowed, and never runs a denied one", async () => {
    const sc = {
      name: "ask",
      turns: [
        {
          user: "go",
          steps: [
            { calls: [{ name: "write", permission: "ask", auto_confirm: "allow", input: { file_path: "x", content: "1" }, expect: { contains: "wrote" } }] },
            { calls: [{ name: "write", permission: "ask", auto_confirm: "deny", input: { file_path: "y", content: "2" } }] },
            { calls: [{ name: "write", permission: "deny", input: { file_path: "z", content: "3" } }] },
            { calls: [{ name: "glob", input: { pattern: "*" }, expect: { equals: "/workspace/x" } }] },
          ],
        },
      ],
      end: "terminate",
    } as Scenario;
    const { report } = await run(sc);
    expect(report.checksFailed).toEqual([]);
    expect(answeredOnce(report)).toEqual([]);
    expect(w!.counter.runs.size).toBe(2); // the allowed write and the glob; the denied ones never ran
  });
});

describe("worker: concurrency and timeouts", () => {
  it("runs the calls of one turn concurrently", async () => {
    // A barrier: each call waits until all five are in flight. Run one at a time, the first
    // call would wait alone until its timeout and answer "alone".
    let arrived = 0;
    const release: Array<() => void> = [];
    const barrier = defineTool({
      name: "barrier",
      description: "wait for the others",
      input: z.object({}),
      run: () =>
        new Promise<string>((resolve) => {
          arrived++;
          release.push(() => resolve("met"));
          if (arrived === 5) release.forEach((r) => r());
          setTimeout(() => resolve("alone"), 5_000);
        }),
    });
    const calls = Array.from({ length: 5 }, () => one("barrier", {}, { equals: "met" }));
    const { report } = await run(scenario(calls), { extraBuiltin: [barrier] });
    expect(report.checksFailed).toEqual([]);
    expect(answeredOnce(report)).toEqual([]);
  });

  it("posts results that finish while a post is in flight together, in fewer requests", async () => {
    const calls = Array.from({ length: 10 }, (_, i) => one("write", { file_path: `f${i}`, content: "x" }, { contains: "wrote" }));
    const { report } = await run(scenario(calls));
    expect(report.checksFailed).toEqual([]);
    expect(answeredOnce(report)).toEqual([]);
    expect(h!.emu.control.stats().requests["events.send"]).toBeLessThan(10);
  });

  it("claims a burst of queued sessions with several polls at once, then long-polls alone", async () => {
    h = await startEmulator();
    h.emu.control.setFaults({ delayMs: { poll: 30, ack: 30 } });
    const sc = scenario([one("write", { file_path: "a", content: "x" }, { contains: "wrote" })]);
    const ids = Array.from({ length: 12 }, () => String(h!.emu.control.createSession({ scenario: sc }).id));
    w = startWorker(h);
    const reports = await Promise.all(ids.map((id) => h!.emu.control.waitFor(id, (r) => r.scenarioDone, 15_000)));
    for (const r of reports) expect(answeredOnce(r)).toEqual([]);
    expect(h.emu.control.stats().pollsInFlightPeak).toBeGreaterThan(1);
  });

  it("answers a tool that overruns its timeout with an error", async () => {
    const { report } = await run(scenario([one("sleep", { ms: 5_000 }, { is_error: true, contains: "timed out after 200ms" })]), { toolTimeoutMs: 200 });
    expect(report.checksFailed).toEqual([]);
  });

  it("serves several sessions at once up to maxSessions", async () => {
    h = await startEmulator();
    w = startWorker(h, { maxSessions: 3 });
    const sc = scenario([one("sleep", { ms: 300 }, { contains: "slept" })]);
    const ids = Array.from({ length: 6 }, () => String(h!.emu.control.createSession({ scenario: sc }).id));
    let peak = 0;
    const sample = setInterval(() => (peak = Math.max(peak, w!.worker.activeCount)), 20);
    const reports = await Promise.all(ids.map((id) => h!.emu.control.waitFor(id, (r) => r.scenarioDone, 15_000)));
    clearInterval(sample);
    for (const r of reports) expect(r.checksFailed).toEqual([]);
    expect(peak).toBeLessThanOrEqual(3);
    expect(peak).toBeGreaterThan(1);
  });
});

describe("worker: lifecycle", () => {
  it("acks, beats and force-stops a session item when the session ends", async () => {
    const { id } = await run(scenario([one("glob", { pattern: "*" }, { equals: "no matches" })]));
    const workId = h!.emu.control.report(id).workIds[0]!;
    await expect.poll(() => h!.emu.control.getWork(workId).state, { timeout: 5_000 }).toBe("stopped");
    const work = h!.emu.control.getWork(workId);
    expect(work.acknowledged_at).toBeTruthy();
    expect(work.started_at).toBeTruthy();
  });

  it("answers a healthcheck item with ack, a heartbeat and a force-stop, and nothing else", async () => {
    h = await startEmulator();
    w = startWorker(h);
    const work = h.emu.control.enqueueHealthcheck();
    await expect.poll(() => h!.emu.control.getWork(work.id).state, { timeout: 5_000 }).toBe("stopped");
    const done = h.emu.control.getWork(work.id);
    expect(done.acknowledged_at).toBeTruthy();
    expect(done.latest_heartbeat_at).toBeTruthy();
    expect(h.emu.control.stats().requests["sessions.retrieve"] ?? 0).toBe(0);
  });

  it("uses the environment key only to poll and ack; every per-item call carries the sessions token", async () => {
    const calls: Array<{ route: string; auth: string }> = [];
    const recording: typeof fetch = (input, init) => {
      const url = new URL(typeof input === "string" ? input : input instanceof URL ? input.href : input.url);
      const auth = new Headers(init?.headers).get("authorization") ?? "";
      const route = url.pathname.replace(/(work|sesn|sevt|env)_[A-Za-z0-9]+/g, "$1_*");
      calls.push({ route: `${init?.method ?? "GET"} ${route}`, auth: auth.startsWith(`Bearer ${ENV_KEY}`) ? "env" : /^Bearer sk-ant-req-/.test(auth) ? "token" : auth });
      return fetch(input, init);
    };
    await run(scenario([one("write", { file_path: "a", content: "x" }, { contains: "wrote" })]), { fetch: recording });
    await expect.poll(() => calls.some((c) => c.route.endsWith("/stop")), { timeout: 5_000 }).toBe(true);
    const byRoute = new Map<string, Set<string>>();
    for (const c of calls) byRoute.set(c.route, (byRoute.get(c.route) ?? new Set()).add(c.auth));
    const kinds = (suffix: string) => [...(byRoute.get([...byRoute.keys()].find((r) => r.endsWith(suffix))!) ?? [])];
    expect(kinds("/work/poll")).toEqual(["env"]);
    expect(kinds("/ack")).toEqual(["env"]);
    for (const per of ["/heartbeat", "/stop", "GET /v1/sessions/sesn_*", "/events/stream", "POST /v1/sessions/sesn_*/events", "GET /v1/sessions/sesn_*/events"]) {
      expect(kinds(per), per).toEqual(["token"]);
    }
  });

  it("exits with a message that says what to fix on a rejected environment key", async () => {
    h = await startEmulator();
    const worker = new EnvironmentWorker({ environmentId: ENV_ID, environmentKey: "sk-ant-wrong-key-000000", baseURL: h.url, provision: () => ({ router: new Router() }) });
    const err = await worker.run().catch((e) => e);
    expect(err).toBeInstanceOf(WorkerFatalError);
    expect(err.message).toMatch(/ANTHROPIC_ENVIRONMENT_KEY/);
    expect(err.message).not.toContain("sk-ant-wrong-key-000000");
  });

  it("exits with a message naming the environment when it does not exist", async () => {
    h = await startEmulator();
    const worker = new EnvironmentWorker({ environmentId: "env_nope", environmentKey: ENV_KEY, baseURL: h.url, provision: () => ({ router: new Router() }) });
    const err = await worker.run().catch((e) => e);
    expect(err).toBeInstanceOf(WorkerFatalError);
    expect(err.message).toMatch(/env_nope|ANTHROPIC_ENVIRONMENT_ID/);
  });

  it("on shutdown finishes the in-flight tool and posts its result before exiting", async () => {
    h = await startEmulator();
    w = startWorker(h);
    const id = String(h.emu.control.createSession({ scenario: scenario([one("sleep", { ms: 600 }, { contains: "slept 600ms" })], { end: "idle" }) }).id);
    await h.emu.control.waitFor(id, (r) => r.toolUses.length === 1, 10_000);
    await new Promise((r) => setTimeout(r, 100)); // the tool is running
    await w.worker.shutdown(5_000);
    const report = h.emu.control.report(id);
    expect(report.toolUses[0]!.results).toBe(1);
    expect(report.checksFailed).toEqual([]);
  });

  it("never logs the environment key or a sessions token", async () => {
    await run(scenario([one("read", { file_path: "missing" }, { is_error: true })]));
    // The log did capture the whole session, teardown included.
    await expect.poll(() => w!.lines.join("\n"), { timeout: 5_000 }).toContain("session runner ended");
    const all = w!.lines.join("\n");
    expect(all).not.toContain(ENV_KEY);
    expect(all).not.toMatch(/sk-ant-req-[A-Za-z0-9]/);
  });
});
