// The hostile suite against the Deno subprocess tier, hosted from Node (as `deft` on Node runs it).
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { IsolatePool, IsolateSandbox } from "../../isolates/mod.ts";
import { denoSubprocessHost } from "../../runtimes/node/deno-isolates.ts";
import { createWorkspaceFs } from "../../tools/workspace-fs.ts";
import { HOSTILE_CASES, runHostileSuite, type HostileResult } from "./cases.ts";
import { startHostileHost, type HostileHost } from "./control-server.ts";
import { expectDeclared, writeTierResults, type TierDeclaration } from "./tier-report.ts";

const DECL: TierDeclaration = { tier: "deno-subprocess", notStopped: {} };

describe("hostile code: deno-subprocess tier (hosted from Node)", () => {
  let host: HostileHost;
  let pool: IsolatePool;
  let results: HostileResult[];
  beforeAll(async () => {
    host = await startHostileHost();
    pool = new IsolatePool(denoSubprocessHost(), 2, { memoryMiB: 64 });
    results = await runHostileSuite(async (sid) => new IsolateSandbox({ sessionId: sid, pool, fs: createWorkspaceFs() }), host.env, host.probe);
  }, 180_000);
  afterAll(async () => {
    await pool?.close();
    await host?.close();
  });

  it("runs every case", () => {
    expect(results.map((r) => r.id)).toEqual([...HOSTILE_CASES.map((c) => c.id), "cross-session"]);
  });
  it("stops every case it declares", () => {
    expectDeclared(results, DECL);
    writeTierResults(results, DECL);
  });
  it("still runs code after all that (no isolate is reused or wedged)", async () => {
    const sb = new IsolateSandbox({ sessionId: "after", pool, fs: createWorkspaceFs() });
    const r = await sb.execute({ code: "return 6 * 7", language: "js", timeoutMs: 10_000 });
    expect(r).toMatchObject({ ok: true, value: 42 });
  });
});
