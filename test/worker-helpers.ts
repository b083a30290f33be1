// Helpers for worker tests: Deft's worker in-process against the emulator over real HTTP.
import { z } from "zod";
import { Router, defineTool, type Tool } from "../core/router/mod.ts";
import { EnvironmentWorker, type WorkerOptions } from "../core/worker/mod.ts";
import { createLogger, type Logger } from "../core/log.ts";
import { createWorkspaceFs, standardToolset } from "../tools/mod.ts";
import { ENV_ID, ENV_KEY, type Harness } from "./emulator-helpers.ts";

/** Counts every run of every tool by tool_use id: the "no tool ran twice" check. */
export class RunCounter {
  readonly runs = new Map<string, number>();
  wrap(tool: Tool): Tool {
    return {
      ...tool,
      run: (input, ctx) => {
        this.runs.set(ctx.toolUseId, (this.runs.get(ctx.toolUseId) ?? 0) + 1);
        return tool.run(input, ctx);
      },
    };
  }
  ranTwice(): string[] {
    return [...this.runs].filter(([, n]) => n > 1).map(([id]) => id);
  }
}

/** Log lines captured for assertions (secrets are redacted by the logger itself). */
export function captureLog(): { log: Logger; lines: string[] } {
  const lines: string[] = [];
  return { log: createLogger({ level: "debug", write: (l) => lines.push(l) }), lines };
}

/** A builtin tool that sleeps (honouring its abort signal) and then answers. */
export const sleepTool = defineTool({
  name: "sleep",
  description: "Sleep for ms milliseconds, then say so.",
  input: z.object({ ms: z.number().int().min(0) }),
  run: ({ ms }, ctx) =>
    new Promise<string>((resolve, reject) => {
      const t = setTimeout(() => resolve(`slept ${ms}ms`), ms);
      ctx.signal.addEventListener("abort", () => {
        clearTimeout(t);
        reject(ctx.signal.reason);
      });
    }),
});

export interface WorkerHarness {
  worker: EnvironmentWorker;
  running: Promise<void>;
  counter: RunCounter;
  lines: string[];
  stop(): Promise<void>;
}

export function startWorker(
  h: Harness,
  opts: Partial<WorkerOptions> & { extraBuiltin?: Tool[]; custom?: Tool[] } = {},
): WorkerHarness {
  const counter = new RunCounter();
  const { log, lines } = captureLog();
  const { extraBuiltin = [], custom = [], ...rest } = opts;
  const worker = new EnvironmentWorker({
    environmentId: ENV_ID,
    environmentKey: ENV_KEY,
    baseURL: h.url,
    maxIdleMs: 300,
    log,
    provision: () => ({
      router: new Router({
        builtin: [...standardToolset(createWorkspaceFs()), sleepTool, ...extraBuiltin].map((t) => counter.wrap(t)),
        custom: custom.map((t) => counter.wrap(t)),
      }),
    }),
    ...rest,
  });
  const running = worker.run();
  return {
    worker,
    running,
    counter,
    lines,
    async stop() {
      await worker.shutdown(2_000);
      await running.catch(() => {});
    },
  };
}

/** The outcome every fault test asserts: every call that expects a result got exactly one. */
export function answeredOnce(report: { toolUses: Array<{ id: string; name: string; results: number; expectsResult: boolean }> }): string[] {
  return report.toolUses.filter((t) => (t.expectsResult ? t.results !== 1 : t.results !== 0)).map((t) => `${t.name} ${t.id}: ${t.results} results`);
}
