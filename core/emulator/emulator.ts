// createEmulator: the whole emulator as one runtime-neutral object.
import type { Hono } from "hono";
import { buildApp } from "./app.ts";
import { EmulatorCore, type EmulatorOptions } from "./core.ts";
import { parseScenario } from "./scenario.ts";
import type { EmulatorControl, SessionReport } from "./types.ts";

export interface Emulator {
  /** `app.fetch` is the whole HTTP surface. */
  app: Hono;
  fetch(req: Request): Promise<Response>;
  /** In-process test controls (also over HTTP at /_emulator/*). */
  control: EmulatorControl;
  /** Ids and keys of the environments created at start, in order. */
  environments: Array<{ id: string; key: string }>;
  /** Stop timers, end long polls and open streams. */
  close(): void;
}

export function createEmulator(opts: EmulatorOptions = {}): Emulator {
  const core = new EmulatorCore(opts);
  const firstEnv = (): string => {
    for (const r of core.envs.values()) if (!r.deleted) return r.env.id;
    throw new Error("the emulator has no environment");
  };

  const control: EmulatorControl = {
    createSession(input = {}) {
      const scenario = input.scenario === undefined ? core.defaultScenario : core.resolveScenario(input.scenario) ?? null;
      const first = scenario?.turns[0]?.user;
      return core.createSession({
        environmentId: input.environmentId ?? firstEnv(),
        agent: "agent_emulator",
        title: input.title ?? scenario?.name ?? null,
        metadata: input.metadata ?? {},
        scenario,
        // The first turn starts on the session's initial user.message.
        initialEvents: first ? [{ type: "user.message", content: [{ type: "text", text: first }] }] : [],
        initialSender: "initial",
      });
    },
    registerScenario(name, scenario) {
      core.scenarios.set(name, parseScenario(scenario));
    },
    setFaults(f) {
      core.setFaults(f);
    },
    clearFaults() {
      core.setFaults({});
    },
    dropStreams(sessionId) {
      return core.sessions.dropStreams(sessionId);
    },
    stealLease(workId) {
      core.queue.steal(workId);
    },
    stopWork(workId, force = false) {
      return core.queue.stop(undefined, workId, force);
    },
    enqueueHealthcheck(environmentId) {
      return core.queue.enqueue(environmentId ?? firstEnv(), { type: "healthcheck", id: `hc_${crypto.randomUUID()}` });
    },
    appendEvent(sessionId, event) {
      return core.sessions.append(sessionId, event, "control");
    },
    sendUserMessage(sessionId, text) {
      return core.sessions.append(sessionId, { type: "user.message", content: [{ type: "text", text }] }, "control");
    },
    report(sessionId) {
      return core.sessions.report(sessionId);
    },
    waitFor(sessionId, predicate, timeoutMs = 10_000) {
      return new Promise<SessionReport>((resolve, reject) => {
        const started = Date.now();
        const tick = (): void => {
          let r: SessionReport;
          try {
            r = core.sessions.report(sessionId);
          } catch (e) {
            reject(e);
            return;
          }
          if (predicate(r)) return resolve(r);
          if (core.closed) return reject(new Error("emulator closed"));
          if (Date.now() - started >= timeoutMs) {
            const err = new Error(`waitFor(${sessionId}) timed out after ${timeoutMs}ms: ${JSON.stringify(r)}`);
            return reject(err);
          }
          setTimeout(tick, 20);
        };
        tick();
      });
    },
    stats() {
      return core.stats();
    },
    getWork(workId) {
      return core.queue.get(workId);
    },
    events(sessionId) {
      return core.sessions.events(sessionId);
    },
  };

  const app = buildApp(core, control);
  return {
    app,
    fetch: async (req) => app.fetch(req),
    control,
    environments: [...core.envs.values()].map((r) => ({ id: r.env.id, key: r.key })),
    close: () => core.close(),
  };
}
