// A session that sleeps and wakes on another worker: a real `deft worker` process serves the
// first turn (writes text, binary and shell-made files), goes idle and its item ends; that
// process exits. A second `deft worker` process, with its own fresh temp dir but the same state
// store, serves the wake-up turn and finds every file byte-identical (checked inside the sandbox
// with SHA-256). Then: a worker whose state store fails does not acknowledge the item.
import type { ChildProcess } from "node:child_process";
import { createHash } from "node:crypto";
import { mkdirSync, mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import type { Scenario } from "../core/emulator/mod.ts";
import { startDeft } from "./cli-helpers.ts";
import { createProvisioner } from "../core/provision.ts";
import { MemoryBlobStore, MemoryStore } from "../core/state/memory.ts";
import { StoreUnavailableError, type SetOptions, type StoreKey, type StoreValue } from "../core/state/store.ts";
import { nodeRuntime } from "../runtimes/node/runtime.ts";
import { startWorker } from "./worker-helpers.ts";
import { ENV_ID, ENV_KEY, startEmulator, type Harness } from "./emulator-helpers.ts";

let h: Harness | undefined;
const children: ChildProcess[] = [];
afterEach(async () => {
  for (const c of children.splice(0)) c.kill("SIGKILL");
  await h?.close();
  h = undefined;
});

// 256 bytes, every value, and then some: written from a snippet, checked by hash after the wake.
const BINARY_JS = "const b = new Uint8Array(1000); for (let i = 0; i < b.length; i++) b[i] = (i * 7) % 256; await workspace.writeFile('bin/data.bin', b); return b.length;";
const binary = new Uint8Array(1000).map((_, i) => (i * 7) % 256);
const binaryHash = createHash("sha256").update(binary).digest("hex");
const NOTES = "line one\nline two: ünïcödé ✓\n";
const notesHash = createHash("sha256").update(NOTES).digest("hex");

const HASH_JS = [
  "const hex = async (p) => [...new Uint8Array(await crypto.subtle.digest('SHA-256', await workspace.readBytes(p)))].map((x) => x.toString(16).padStart(2, '0')).join('');",
  "return { bin: await hex('bin/data.bin'), notes: await hex('notes.txt'), shell: await workspace.readFile('made/by/shell.txt') };",
].join("\n");

const scenario = {
  name: "sleep-and-wake",
  custom_tools: [{ name: "execute", description: "run code", input_schema: { type: "object", properties: { code: { type: "string" } }, required: ["code"] } }],
  turns: [
    {
      user: "Make some files.",
      steps: [
        {
          calls: [
            { name: "write", input: { file_path: "notes.txt", content: NOTES }, expect: { is_error: false } },
            { name: "bash", input: { command: "mkdir -p made/by && echo 'from bash' > made/by/shell.txt && ln -s ../notes.txt made/link" }, expect: { is_error: false } },
            { name: "execute", custom: true, input: { code: BINARY_JS }, expect: { is_error: false, contains: "1000" } },
          ],
        },
      ],
    },
    {
      user: "Are my files still there?",
      await_user: true,
      steps: [
        {
          calls: [
            { name: "execute", custom: true, input: { code: HASH_JS }, expect: { is_error: false, contains: binaryHash } },
            { name: "read", input: { file_path: "made/link" }, expect: { contains: "line two" } },
          ],
        },
      ],
    },
  ],
  end: "terminate",
} as unknown as Scenario;

function worker(url: string, stateDir: string, extra: string[] = [], env: Record<string, string> = {}) {
  const tmp = mkdtempSync(join(tmpdir(), "deft-worker-tmp-"));
  mkdirSync(tmp, { recursive: true });
  const d = startDeft("node", ["worker", "--state-dir", stateDir, "--max-idle-ms", "300", "--isolate-pool", "1", ...extra], {
    ANTHROPIC_BASE_URL: url,
    ANTHROPIC_ENVIRONMENT_ID: ENV_ID,
    ANTHROPIC_ENVIRONMENT_KEY: ENV_KEY,
    TMPDIR: tmp,
    ...env,
  });
  children.push(d.child);
  return d;
}

describe("sessions that sleep and wake", () => {
  it("a different worker process resumes the session with its workspace byte-identical", async () => {
    h = await startEmulator();
    const stateDir = mkdtempSync(join(tmpdir(), "deft-shared-state-"));
    const a = worker(h.url, stateDir);
    const id = String(h.emu.control.createSession({ scenario }).id);
    // Turn one done, the item ended (idle) and acknowledged: the workspace was saved before the stop.
    await h.emu.control.waitFor(id, (r) => r.toolUses.length === 3 && r.toolUses.every((t) => t.results === 1), 30_000);
    await expect.poll(() => h!.emu.control.stats().requests["stop"] ?? 0, { timeout: 15_000, interval: 50 }).toBeGreaterThan(0);
    a.child.kill("SIGTERM");
    const ranA = await a.done;
    expect(ranA.stderr).toContain("workspace saved");

    const b = worker(h.url, stateDir);
    h.emu.control.sendUserMessage(id, "Are my files still there?");
    const report = await h.emu.control.waitFor(id, (r) => r.scenarioDone, 30_000);
    expect(report.checksFailed).toEqual([]);
    const hashes = JSON.parse(String((report.toolUses[3]!.content as Array<{ text: string }>)[0]!.text).replace(/^=> /, ""));
    expect(hashes).toEqual({ bin: binaryHash, notes: notesHash, shell: "from bash\n" });
    b.child.kill("SIGTERM");
    const ranB = await b.done;
    expect(ranB.stderr).toContain("workspace restored");
  });
});

/** A store that works until `down` is set, then refuses every write as an unreachable store would. */
class FlakyStore extends MemoryStore {
  down = false;
  override async set(key: StoreKey, value: StoreValue, opts?: SetOptions) {
    if (this.down) throw new StoreUnavailableError("flaky", "set: connection refused");
    return super.set(key, value, opts);
  }
}

describe("a state store that is down when the item ends", () => {
  it("gives a clear error and the work item is not acknowledged, so it is retried; nothing is lost", async () => {
    h = await startEmulator({ leaseTtlSeconds: 1 });
    const store = new FlakyStore();
    const blobs = new MemoryBlobStore();
    const provisioner = createProvisioner(nodeRuntime, { sandbox: "none", isolateMemoryMib: 64, isolatePool: 0, executeOutputBytes: 100_000 }, [], { state: { store, blobs } });
    const w = startWorker(h, { maxIdleMs: 200, provision: (ctx) => provisioner.provision(ctx) });
    try {
      const scenario = { name: "one-file", turns: [{ user: "write", steps: [{ calls: [{ name: "write", input: { file_path: "keep.txt", content: "kept" } }] }] }, { user: "later", await_user: true, steps: [{ calls: [{ name: "read", input: { file_path: "keep.txt" }, expect: { contains: "kept" } }] }] }] } as unknown as Scenario;
      store.down = true;
      const id = String(h.emu.control.createSession({ scenario }).id);
      await expect.poll(() => w.lines.join("\n"), { timeout: 15_000, interval: 50 }).toContain("leaving the work item unacknowledged");
      const log = w.lines.join("\n");
      expect(log).toContain("saving the session's state failed");
      expect(log).toContain("flaky: set: connection refused");
      expect(h.emu.control.stats().requests["stop"] ?? 0).toBe(0);
      // The store comes back; the unacknowledged item is reclaimed when its lease lapses, served
      // from the workspace kept in memory, saved this time, and the session wakes with its file.
      store.down = false;
      await expect.poll(() => h!.emu.control.stats().requests["stop"] ?? 0, { timeout: 30_000, interval: 100 }).toBeGreaterThan(0);
      h.emu.control.sendUserMessage(id, "later");
      const report = await h.emu.control.waitFor(id, (r) => r.scenarioDone, 30_000);
      expect(report.checksFailed).toEqual([]);
    } finally {
      await w.stop();
      await provisioner.close();
    }
  }, 60_000);
});
