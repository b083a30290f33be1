// The isolate tiers hosted from Bun (run by `bun`): bun-worker and bun-bwrap. Prints one JSON
// line of summaries; test/bench/run.ts runs it and writes the table. Floors: a bare Bun Worker
// (created, posts one message) and, for bwrap, the same guest-less `bun` run inside the same
// bubblewrap sandbox (no cgroups), both timed exactly as the tier's start is.
import { spawn } from "node:child_process";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { bunBinary, bunBwrapHost, bunWorkerHost, bwrapArgs } from "../../runtimes/bun/isolates.ts";
import { createWorkspaceFs } from "../../tools/workspace-fs.ts";
import { benchTier, summarize } from "./isolate-bench-core.ts";

const runs = Number(process.env["BENCH_ISOLATE_RUNS"] ?? 20);
const out = [];

const helloBlob = new Blob(['postMessage("hello")'], { type: "application/javascript" });
const bareWorker = () =>
  new Promise<void>((resolve) => {
    const url = URL.createObjectURL(helloBlob);
    const w = new Worker(url);
    w.onmessage = () => {
      w.terminate();
      URL.revokeObjectURL(url);
      resolve();
    };
  });
out.push(summarize(await benchTier({ host: bunWorkerHost(), makeFs: () => createWorkspaceFs(), floor: bareWorker, floorLabel: "bare Bun `new Worker` posting one message", runs })));

const box = mkdtempSync(join(tmpdir(), "deft-bench-bwrap-"));
writeFileSync(join(box, "guest.js"), 'console.log("hello")\n');
const bun = bunBinary();
const args = bwrapArgs(bun, [], box, { memoryMiB: 128 });
const bareBwrapBun = () =>
  new Promise<void>((resolve, reject) => {
    const c = spawn("bwrap", args, { stdio: ["ignore", "pipe", "ignore"] });
    c.stdout.resume();
    c.once("error", reject);
    c.once("close", () => resolve());
  });
out.push(summarize(await benchTier({ host: bunBwrapHost(), makeFs: () => createWorkspaceFs(), floor: bareBwrapBun, floorLabel: "bare `bun hello.js` in the same bubblewrap sandbox", runs })));

process.stdout.write(JSON.stringify(out) + "\n");
process.exit(0);
