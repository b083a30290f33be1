// Serve any fetch handler over HTTP on Node (@hono/node-server), closing promptly even with
// open SSE responses.
import { serve } from "@hono/node-server";
import type { Server } from "node:http";
import type { AddressInfo, Socket } from "node:net";
import type { FetchHandler, Served } from "../../core/runtime.ts";

export function serveFetch(handler: FetchHandler, opts: { port?: number; hostname?: string } = {}): Promise<Served> {
  const hostname = opts.hostname ?? "127.0.0.1";
  return new Promise((resolve, reject) => {
    const sockets = new Set<Socket>();
    const server = serve({ fetch: handler, port: opts.port ?? 0, hostname }, (info: AddressInfo) => {
      const host = info.address.includes(":") ? `[${info.address}]` : info.address;
      resolve({
        url: `http://${host}:${info.port}`,
        close: () =>
          new Promise<void>((done) => {
            server.close(() => done());
            // Open SSE responses and idle keep-alive sockets would hold close() open.
            server.closeAllConnections?.();
            for (const s of sockets) s.destroy();
          }),
      });
    }) as Server;
    server.on("connection", (s: Socket) => {
      sockets.add(s);
      s.setNoDelay(true);
      s.on("close", () => sockets.delete(s));
    });
    server.once("error", reject);
  });
}
