// A test network for the gateway: real HTTP servers on loopback, a real DNS server on loopback,
// and the Node shim's network with a connect hook that routes documentation addresses
// (203.0.113.0/24, TEST-NET-3: public as far as the address check is concerned) to the loopback
// servers, the way a router would. The gateway's checks see the public address; the socket
// reaches the server. Everything else (the decision, the one lookup, the pinned connect) is real.
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { MemoryAuditSink } from "../../core/audit/audit.ts";
import { parsePolicy } from "../../core/policy/parse.ts";
import type { PolicyInput } from "../../core/policy/schema.ts";
import { createSecretSource } from "../../proxy/credentials.ts";
import { createGateway, type Gateway } from "../../proxy/gateway.ts";
import { createNodeEgressNet } from "../../runtimes/node/egress-net.ts";
import { startDnsServer } from "../net/dns-server.ts";

export interface Upstream {
  /** The public (TEST-NET) address the DNS table gives its name. */
  address: string;
  port: number;
  server: Server;
  /** Requests it received: method, url, headers, body. */
  seen: Array<{ method: string; url: string; headers: IncomingMessage["headers"]; body: string }>;
  /** Raw TCP connections accepted (counts connections that never sent a whole request). */
  connections: number;
}

export type Handler = (req: IncomingMessage, res: ServerResponse, body: string) => void;

const echo: Handler = (req, res, body) => {
  res.setHeader("content-type", "application/json");
  res.end(JSON.stringify({ method: req.method, url: req.url, headers: req.headers, body }));
};

export async function startUpstream(address: string, handler: Handler = echo, opts: { streamBody?: boolean } = {}): Promise<Upstream> {
  const up: Upstream = { address, port: 0, server: undefined as unknown as Server, seen: [], connections: 0 };
  const server = createServer((req, res) => {
    if (opts.streamBody) {
      up.seen.push({ method: req.method!, url: req.url!, headers: req.headers, body: "" });
      handler(req, res, "");
      return;
    }
    const chunks: Buffer[] = [];
    req.on("data", (c: Buffer) => chunks.push(c));
    req.on("error", () => {});
    req.on("end", () => {
      const body = Buffer.concat(chunks).toString("utf8");
      up.seen.push({ method: req.method!, url: req.url!, headers: req.headers, body });
      handler(req, res, body);
    });
  });
  server.on("connection", () => up.connections++);
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  up.server = server;
  up.port = (server.address() as AddressInfo).port;
  return up;
}

export interface TestNet {
  gateway: Gateway;
  audit: MemoryAuditSink;
  dnsQueries(name: string): number;
  close(): Promise<void>;
}

/**
 * A gateway over the test network. `names` is the DNS table (a function answers per query, for
 * rebinding); `routes` maps a TEST-NET address to the loopback server behind it.
 */
export async function testGateway(o: {
  policy: PolicyInput;
  names: Record<string, string[] | ((count: number) => string[])>;
  upstreams: Upstream[];
  env?: Record<string, string>;
  dnsCacheMs?: number;
}): Promise<TestNet> {
  const dns = await startDnsServer(o.names);
  const route = new Map(o.upstreams.map((u) => [u.address, u.port]));
  const net = createNodeEgressNet({
    dnsServers: [`127.0.0.1:${dns.port}`],
    connectHook: (address, port) => {
      const to = route.get(address);
      return to ? { address: "127.0.0.1", port: to } : { address, port };
    },
  });
  const audit = new MemoryAuditSink();
  const gateway = createGateway({
    policy: parsePolicy(o.policy),
    net,
    secrets: createSecretSource({ env: o.env ?? {}, readTextFile: async () => Promise.reject(new Error("no files here")) }),
    audit,
    dnsCacheMs: o.dnsCacheMs ?? 0,
  });
  return {
    gateway,
    audit,
    dnsQueries: (name) => dns.queries(name),
    close: async () => {
      await dns.close();
    },
  };
}

export async function closeAll(ups: Upstream[]): Promise<void> {
  await Promise.all(
    ups.map(
      (u) =>
        new Promise<void>((r) => {
          u.server.closeAllConnections();
          u.server.close(() => r());
        }),
    ),
  );
}
