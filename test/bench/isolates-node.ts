// The isolate tiers hosted from Node: deno-subprocess (and workers-loader once present). Prints
// one JSON line of summaries; test/bench/run.ts runs it and the Bun one and writes the table.
import { spawn } from "node:child_process";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { denoBinary, denoSubprocessHost } from "../../runtimes/node/deno-isolates.ts";
import { createWorkspaceFs } from "../../tools/workspace-fs.ts";
import { benchTier, summarize } from "./isolate-bench-core.ts";

const runs = Number(process.env["BENCH_ISOLATE_RUNS"] ?? 20);
const out = [];

// Floor for deno: a bare `deno run` of a hello script, same binary, same flags that matter for
// start-up (no config, no lock), spawned and waited for exactly as the tier spawns its guest.
const dir = mkdtempSync(join(tmpdir(), "deft-bench-deno-"));
writeFileSync(join(dir, "hello.js"), 'console.log("hello")\n');
const deno = denoBinary();
const bareDeno = () =>
  new Promise<void>((resolve, reject) => {
    const c = spawn(deno, ["run", "--no-prompt", "--no-config", "--no-lock", join(dir, "hello.js")], { stdio: ["ignore", "pipe", "ignore"], env: { NO_COLOR: "1", DENO_DIR: join(dir, ".deno"), PATH: "/usr/bin:/bin" } });
    c.stdout.once("data", () => {});
    c.once("error", reject);
    c.once("close", () => resolve());
  });
out.push(summarize(await benchTier({ host: denoSubprocessHost(), makeFs: () => createWorkspaceFs(), floor: bareDeno, floorLabel: "bare `deno run hello.js`", runs })));

process.stdout.write(JSON.stringify(out) + "\n");
process.exit(0);
