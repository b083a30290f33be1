// The forward proxy (proxy/forward-proxy.ts) on a Node TCP listener: each accepted socket becomes
// a `Conn` (the same wrapper the egress network uses for upstream tunnels) handed to the proxy.
import net from "node:net";
import type { ForwardProxy } from "../../proxy/forward-proxy.ts";
import { socketConn } from "./egress-net.ts";

/** Where to listen. */
export interface ProxyServerOptions {
  /** Port to listen on; 0 (the default) picks a free one. */
  port?: number;
  /** Address to listen on (default 127.0.0.1: sandboxes on this host only). */
  hostname?: string;
}

/** A listening forward proxy. */
export interface ProxyServer {
  /** `http://host:port`: put the session's credentials in it to make a sandbox's proxy URL. */
  url: string;
  port: number;
  /** Stop listening and cut every open client connection (and so its tunnel). */
  close(): Promise<void>;
}

/** Serve `proxy` on a TCP port. */
export async function serveForwardProxy(proxy: ForwardProxy, opts: ProxyServerOptions = {}): Promise<ProxyServer> {
  const hostname = opts.hostname ?? "127.0.0.1";
  const sockets = new Set<net.Socket>();
  // allowHalfOpen: a tunnel's client may finish sending (FIN) and still read the upstream's answer.
  const server = net.createServer({ allowHalfOpen: true, noDelay: true }, (socket) => {
    sockets.add(socket);
    socket.once("close", () => sockets.delete(socket));
    void proxy.handle(socketConn(socket));
  });
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(opts.port ?? 0, hostname, () => {
      server.off("error", reject);
      resolve();
    });
  });
  const port = (server.address() as net.AddressInfo).port;
  const host = net.isIPv6(hostname) ? `[${hostname}]` : hostname;
  return {
    url: `http://${host}:${port}`,
    port,
    close(): Promise<void> {
      for (const socket of sockets) socket.destroy();
      return new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
