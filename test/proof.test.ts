// Proof against a client no one here wrote: the official SDK's EnvironmentWorker completes a
// scenario session on the emulator, and Deft's worker completes the same scenario with the same
// outcome per call.
import Anthropic from "@anthropic-ai/sdk";
import { mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { parseScenario, type SessionReport } from "../core/emulator/mod.ts";
import { API_KEY, ENV_ID, ENV_KEY, startEmulator, type Harness } from "./emulator-helpers.ts";
import { answeredOnce, startWorker } from "./worker-helpers.ts";

const scenario = parseScenario(JSON.parse(await readFile(new URL("../scenarios/proof.json", import.meta.url), "utf8")));

let h: Harness | undefined;
afterEach(async () => {
  await h?.close();
  h = undefined;
});

const outcome = (r: SessionReport) => r.toolUses.map((t) => `${t.name}:${t.results}:${t.is_error ? "error" : "ok"}`);

describe("the same scenario, two workers", () => {
  let sdkOutcome: string[] | undefined;

  it("the SDK's own EnvironmentWorker completes it", async () => {
    h = await startEmulator();
    const workdir = await mkdtemp(join(tmpdir(), "deft-proof-"));
    const sid = String(h.emu.control.createSession({ scenario }).id);
    const ac = new AbortController();
    const client = new Anthropic({ baseURL: h.url, apiKey: API_KEY, logLevel: "off" });
    const run = client.beta.environments.work.worker({ environmentId: ENV_ID, environmentKey: ENV_KEY, workdir, maxIdleMs: 300, signal: ac.signal }).run().catch((e: unknown) => e);
    try {
      const report = await h.emu.control.waitFor(sid, (r) => r.scenarioDone, 20_000);
      expect(report.checksFailed).toEqual([]);
      expect(answeredOnce(report)).toEqual([]);
      sdkOutcome = outcome(report);
    } finally {
      ac.abort();
      await run;
      await rm(workdir, { recursive: true, force: true });
    }
  });

  it("Deft's worker completes it with the same outcome for every call", async () => {
    h = await startEmulator();
    const w = startWorker(h);
    try {
      const sid = String(h.emu.control.createSession({ scenario }).id);
      const report = await h.emu.control.waitFor(sid, (r) => r.scenarioDone, 20_000);
      expect(report.checksFailed).toEqual([]);
      expect(answeredOnce(report)).toEqual([]);
      expect(w.counter.ranTwice()).toEqual([]);
      expect(outcome(report)).toEqual(sdkOutcome);
      expect(outcome(report).length).toBe(6);
    } finally {
      await w.stop();
    }
  });
});
