// The isolate tiers hosted from Node: deno-subprocess and workers-loader (workerd through
// miniflare). Prints one JSON line of summaries; test/bench/run.ts runs it and the Bun one and
// writes the table.
import { spawn } from "node:child_process";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Miniflare } from "miniflare";
import { denoBinary, denoSubprocessHost } from "../../runtimes/node/deno-isolates.ts";
import { workersLoaderHost } from "../../runtimes/workers/loader-host.ts";
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

// Floor for workers-loader: a bare Worker Loader load, the same way the tier loads (a new id, so
// a new isolate, every time; globalOutbound null), of a module that only answers, fetched once.
// workerd is started (and warmed) before timing, as the tier's is.
const bare = new Miniflare({
  modules: true,
  compatibilityDate: "2025-09-01",
  workerLoaders: { LOADER: {} },
  script: `export default { async fetch(req, env) {
    const w = env.LOADER.get(crypto.randomUUID(), () => ({ compatibilityDate: "2025-09-01", mainModule: "m.js",
      modules: { "m.js": "export default { fetch() { return new Response('1'); } }" }, globalOutbound: null }));
    return w.getEntrypoint().fetch("http://guest/");
  } }`,
});
await bare.ready;
const bareLoad = async () => void (await (await bare.dispatchFetch("http://parent/")).text());
const workers = workersLoaderHost();
out.push(summarize(await benchTier({ host: workers, makeFs: () => createWorkspaceFs(), floor: bareLoad, floorLabel: "bare Worker Loader load of a one-line module, fetched once", runs })));
await bare.dispose();
await workers.close?.();

process.stdout.write(JSON.stringify(out) + "\n");
process.exit(0);
