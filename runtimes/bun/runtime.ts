// The Bun shim: Bun.serve, and the file ledger (Bun implements node:fs).
import type { FetchHandler, Runtime, Served } from "../../core/runtime.ts";
import { FileLedger } from "../node/file-ledger.ts";
import { openBunStores } from "./state.ts";
import { createNodeEgressNet } from "../node/egress-net.ts";
import { bunBwrapHost, bunIsolateHost, bunWorkerHost } from "./isolates.ts";

async function serve(handler: FetchHandler, opts: { port: number; hostname: string }): Promise<Served> {
  // idleTimeout 0: an SSE stream may be quiet between pings for longer than Bun's default 10 s.
  const server = Bun.serve({ port: opts.port, hostname: opts.hostname, idleTimeout: 0, fetch: (req: Request) => handler(req) });
  const host = server.hostname?.includes(":") ? `[${server.hostname}]` : server.hostname;
  return {
    url: `http://${host}:${server.port}`,
    close: async () => {
      await server.stop(true);
    },
  };
}

export const bunRuntime: Runtime = {
  name: "bun",
  serve,
  openLedger: (dir, opts) => new FileLedger(dir, opts),
  // "auto": bubblewrap when it works here, else a Worker (trusted code only) with a loud warning.
  isolates: (tier) => (tier === "auto" ? bunIsolateHost("auto") : tier === "bun-bwrap" ? bunBwrapHost() : tier === "bun-worker" ? bunWorkerHost() : undefined),
  isolateTiers: ["bun-bwrap", "bun-worker"],
  // node:http, node:dns and node:net behave the same here (test/egress/runtimes.test.ts).
  egressNet: () => createNodeEgressNet(),
  // SQLite through bun:sqlite (synchronous=FULL: a resolved write is on disk).
  openState: async (dir) => {
    const { store, blobs } = await openBunStores(dir, { backend: "sqlite" });
    return { store, blobs, close: async () => void (await Promise.all([store.close(), blobs.close()])) };
  },
};
