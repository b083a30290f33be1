// The Deno shim: Deno.serve, and the file ledger (Deno implements node:fs).
import type { FetchHandler, Runtime, Served } from "../../core/runtime.ts";
import { FileLedger } from "../node/file-ledger.ts";
import { openDenoStores } from "./state.ts";
import { createNodeEgressNet } from "../node/egress-net.ts";
import { denoSubprocessHost } from "./isolates.ts";

function serve(handler: FetchHandler, opts: { port: number; hostname: string }): Promise<Served> {
  return new Promise((resolve) => {
    const ac = new AbortController();
    const server = Deno.serve(
      {
        port: opts.port,
        hostname: opts.hostname,
        signal: ac.signal,
        onListen: ({ hostname, port }) => {
          const host = hostname.includes(":") ? `[${hostname}]` : hostname;
          resolve({
            url: `http://${host}:${port}`,
            close: async () => {
              ac.abort();
              await server.shutdown().catch(() => {});
            },
          });
        },
      },
      (req) => handler(req),
    );
  });
}

export const denoRuntime: Runtime = {
  name: "deno",
  serve,
  openLedger: (dir, opts) => new FileLedger(dir, opts),
  isolates: (tier) => (tier === "auto" || tier === "deno-subprocess" ? denoSubprocessHost() : undefined),
  isolateTiers: ["deno-subprocess"],
  // node:http, node:dns and node:net behave the same here (test/egress/runtimes.test.ts).
  egressNet: () => createNodeEgressNet(),
  // Deno's own KV (deno.json enables the kv unstable API).
  openState: async (dir) => {
    const { store, blobs } = await openDenoStores(dir);
    return { store, blobs, close: async () => void (await Promise.all([store.close(), blobs.close()])) };
  },
};
