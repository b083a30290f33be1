// One state backend's snapshot bench in its own runtime, printed as a JSON line of rows for
// test/bench/state.ts to collect: `bun test/bench/state-backend.ts bun-sqlite`,
// `deno run -A test/bench/state-backend.ts deno-kv`.
import { benchWorkspaceState, inTempDir, type StateBackend } from "./state.ts";

const which = (globalThis as { Deno?: { args: string[] } }).Deno?.args[0] ?? process.argv[2];

let backend: StateBackend;
if (which === "bun-sqlite") {
  const { openBunStores } = await import("../../runtimes/bun/state.ts");
  backend = inTempDir("SQLite on Bun (`bun:sqlite`, synchronous=FULL)", (dir) => openBunStores(dir, { backend: "sqlite" }));
} else if (which === "deno-kv") {
  const { openDenoStores } = await import("../../runtimes/deno/state.ts");
  backend = inTempDir("Deno KV on Deno (native)", (dir) => openDenoStores(dir));
} else throw new Error(`unknown backend ${which}: bun-sqlite or deno-kv`);

console.log(JSON.stringify(await benchWorkspaceState([backend])));
