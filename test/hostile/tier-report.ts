// Shared by the per-tier hostile tests: compare a tier's results with what it declares it does
// not stop, and write the tier's results for the README table (scripts/hostile-table.ts).
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { IsolatePool, IsolateSandbox } from "../../isolates/isolate-sandbox.ts";
import { createWorkspaceFs } from "../../tools/workspace-fs.ts";
import { CROSS_SESSION, HOSTILE_CASES, runHostileSuite, type HostileResult } from "./cases.ts";
import { startHostileHost, type HostileHost } from "./control-server.ts";

export interface TierDeclaration {
  tier: string;
  /** Case id → why this tier does not stop it. Every other case must be stopped. */
  notStopped: Record<string, string>;
}

export const RESULTS_DIR = join(import.meta.dirname, "results");

/** One expectation per case, so a failure names the case and shows what the snippet got. */
export function expectDeclared(results: HostileResult[], decl: TierDeclaration): void {
  for (const r of results) {
    const expected = !(r.id in decl.notStopped);
    expect({ case: r.id, stopped: r.stopped, detail: r.detail }).toEqual({ case: r.id, stopped: expected, detail: r.detail });
  }
}

export function writeTierResults(results: HostileResult[], decl: TierDeclaration): void {
  const rows = results.map((r) => ({ id: r.id, label: r.label, stopped: r.stopped, ...(r.stopped ? {} : { why: decl.notStopped[r.id] ?? "" }) }));
  writeFileSync(join(RESULTS_DIR, `${decl.tier}.json`), JSON.stringify({ tier: decl.tier, results: rows }, null, 2) + "\n");
}

/**
 * The hostile suite against a tier hosted in this (Node) process: every case runs, the declared
 * ones are stopped, the results are written for the README, and the tier still runs code after.
 */
export function describeHostileTier(title: string, decl: TierDeclaration, makePool: () => IsolatePool, timeoutMs = 180_000): void {
  describe(title, () => {
    let host: HostileHost;
    let pool: IsolatePool;
    let results: HostileResult[];
    beforeAll(async () => {
      host = await startHostileHost();
      pool = makePool();
      results = await runHostileSuite(async (sid) => new IsolateSandbox({ sessionId: sid, pool, fs: createWorkspaceFs() }), host.env, host.probe);
    }, timeoutMs);
    afterAll(async () => {
      await pool?.close();
      await host?.close();
    });

    it("runs every case", () => {
      expect(results.map((r) => r.id)).toEqual([...HOSTILE_CASES.map((c) => c.id), CROSS_SESSION.id]);
    });
    it("stops every case it declares", () => {
      expectDeclared(results, decl);
      writeTierResults(results, decl);
    });
    it("still runs code after all that (no isolate is reused or wedged)", async () => {
      const sb = new IsolateSandbox({ sessionId: "after", pool, fs: createWorkspaceFs() });
      const r = await sb.execute({ code: "return 6 * 7", language: "js", timeoutMs: 10_000 });
      expect(r).toMatchObject({ ok: true, value: 42 });
    });
  });
}
