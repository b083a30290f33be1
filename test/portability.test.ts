// The same worker and emulator under Deno and Bun as well as Node: `deft dev` runs the demo
// session entirely inside each runtime, and `deft worker` under each runtime serves a scenario
// session from an emulator across real HTTP.
import { readFileSync } from "node:fs";
import { afterEach, describe, expect, it } from "vitest";
import { parseScenario } from "../core/emulator/mod.ts";
import { ENV_ID, ENV_KEY, startEmulator, type Harness } from "./emulator-helpers.ts";
import { runDeft, startDeft, type RuntimeName } from "./cli-helpers.ts";

const scenario = parseScenario(JSON.parse(readFileSync(new URL("../scenarios/proof.json", import.meta.url), "utf8")));

let h: Harness | undefined;
afterEach(async () => {
  await h?.close();
  h = undefined;
});

describe.each<RuntimeName>(["deno", "bun", "node"])("on %s", (runtime) => {
  it("deft dev runs the demo session to a pass", async () => {
    const r = await runDeft(runtime, ["dev"]);
    expect(r.stderr).toBe("");
    expect(r.code).toBe(0);
    expect(r.stdout).toContain(`deft dev on ${runtime}`);
    expect(r.stdout).toContain(`Deft worker on ${runtime}`);
    expect(r.stdout).toMatch(/demo passed: 11 tool calls, 11 answered exactly once/);
    // The demo's `execute` ran in this runtime's isolate tier, and says which.
    expect(r.stdout).toContain(`tools run in: ${runtime === "bun" ? "bun-bwrap (os-sandbox)" : "deno-subprocess (isolate)"} on ${runtime}`);
  });

  it("deft worker serves a session through ANTHROPIC_BASE_URL and drains on SIGTERM", async () => {
    h = await startEmulator();
    const { child, done } = startDeft(runtime, ["worker", "--max-idle-ms", "300", "--state-dir", `/tmp/deft-port-${runtime}-${process.pid}`], {
      ANTHROPIC_BASE_URL: h.url,
      ANTHROPIC_ENVIRONMENT_ID: ENV_ID,
      ANTHROPIC_ENVIRONMENT_KEY: ENV_KEY,
    });
    try {
      const sid = String(h.emu.control.createSession({ scenario }).id);
      const report = await h.emu.control.waitFor(sid, (r) => r.scenarioDone, 30_000);
      expect(report.checksFailed).toEqual([]);
      for (const t of report.toolUses) expect(t.results).toBe(1);
    } finally {
      child.kill("SIGTERM");
    }
    const r = await done;
    expect(r.code).toBe(0);
    expect(r.stderr).toContain("shutting down");
    expect(r.stderr).not.toContain(ENV_KEY);
  });
});
