// The Node shim: serve over @hono/node-server, a file ledger, API calls over node:http.
import type { Runtime } from "../../core/runtime.ts";
import { FileLedger } from "./file-ledger.ts";
import { openNodeStores } from "./state.ts";
import { denoSubprocessHost } from "./deno-isolates.ts";
import { createHttpFetch } from "./http-fetch.ts";
import { serveFetch } from "./serve.ts";
import { createNodeEgressNet } from "./egress-net.ts";

/**
 * V8 flags `deft` runs with on Node (bin/deft.mjs's shebang and the npm scripts pass them; a test
 * keeps the three in step). A 1 MiB young generation: a worker's garbage is small and short-lived
 * (events, results), and V8's default young generation (up to 3 × 16 MiB, grown under the first
 * burst of sessions and kept) would otherwise be most of what 100 live sessions add (BENCHMARKS.md).
 */
export const NODE_FLAGS = ["--max-semi-space-size=1"] as const;

export const nodeRuntime: Runtime = {
  name: "node",
  serve: (handler, opts) => serveFetch(handler, opts),
  openLedger: (dir, opts) => new FileLedger(dir, opts),
  fetch: createHttpFetch(),
  isolates: (tier) => (tier === "auto" || tier === "deno-subprocess" ? denoSubprocessHost() : undefined),
  isolateTiers: ["deno-subprocess"],
  egressNet: () => createNodeEgressNet(),
  // Deno KV through @deno/kv: one SQLite file, the format Deno reads.
  openState: async (dir) => {
    const { store, blobs } = await openNodeStores(dir);
    return { store, blobs, close: async () => void (await Promise.all([store.close(), blobs.close()])) };
  },
};
