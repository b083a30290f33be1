// The forward proxy over the real gateway, policy, DNS and network: what a process or microVM
// tier's HTTP_PROXY would meet. curl and raw sockets as clients; real servers behind.
import { execFile } from "node:child_process";
import net from "node:net";
import type { AddressInfo } from "node:net";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createForwardProxy, type ForwardProxy } from "../../proxy/forward-proxy.ts";
import { serveForwardProxy, type ProxyServer } from "../../runtimes/node/proxy-server.ts";
import type { SessionContext } from "../../core/policy/types.ts";
import { closeAll, startUpstream, testGateway, type TestNet, type Upstream } from "./test-network.ts";

const TOKEN = "ghp_proxySecret_abcdef0123456789";
const session: SessionContext = { sessionId: "sesn_proxy", tier: "process" };

interface RawServer {
  address: string;
  port: number;
  connections: number;
  received: () => string;
  server: net.Server;
}

async function rawServer(address: string): Promise<RawServer> {
  let data = "";
  const s: RawServer = { address, port: 0, connections: 0, received: () => data, server: net.createServer() };
  s.server.on("connection", (sock) => {
    s.connections++;
    sock.on("data", (b) => {
      data += b.toString("latin1");
      sock.write(b); // echo
    });
    sock.on("error", () => {});
  });
  await new Promise<void>((r) => s.server.listen(0, "127.0.0.1", r));
  s.port = (s.server.address() as AddressInfo).port;
  return s;
}

let api: Upstream, tunnelOk: RawServer, forbidden: RawServer, gw: TestNet, proxy: ForwardProxy, served: ProxyServer;
let proxyUrl: string;

beforeAll(async () => {
  api = await startUpstream("203.0.113.31", (req, res) => res.end(`auth=${req.headers.authorization}`));
  tunnelOk = await rawServer("203.0.113.32");
  forbidden = await rawServer("203.0.113.33");
  gw = await testGateway({
    policy: {
      networking: { type: "limited", allowed_hosts: ["api.github.test", "tunnel-ok.test"] },
      credentials: [{ name: "GITHUB", secret: { env: "GH" }, hosts: ["api.github.test"] }],
    },
    names: { "api.github.test": ["203.0.113.31"], "tunnel-ok.test": ["203.0.113.32"], "forbidden.test": ["203.0.113.33"] },
    // startUpstream-shaped entries for the connect hook's routes
    upstreams: [api, { ...tunnelOk, server: tunnelOk.server as never, seen: [] } as unknown as Upstream, { ...forbidden, server: forbidden.server as never, seen: [] } as unknown as Upstream],
    env: { GH: TOKEN },
  });
  proxy = createForwardProxy({ gateway: gw.gateway });
  served = await serveForwardProxy(proxy);
  const creds = proxy.sessions.register(session);
  const u = new URL(served.url);
  u.username = creds.username;
  u.password = creds.password;
  proxyUrl = u.toString().replace(/\/$/, "");
});

afterAll(async () => {
  await served?.close();
  await gw?.close();
  await closeAll([api].filter(Boolean));
  for (const s of [tunnelOk, forbidden]) if (s) await new Promise((r) => s.server.close(r));
});

function curl(args: string[]): Promise<{ code: number; out: string }> {
  return new Promise((resolve) => {
    execFile("curl", ["--silent", "--max-time", "20", ...args], (err, stdout) => resolve({ code: err ? Number((err as { code?: number }).code ?? 1) : 0, out: stdout }));
  });
}

/** Send `bytes` to the proxy on one connection; collect what comes back until it goes quiet or closes. */
function raw(bytes: string, waitMs = 500): Promise<string> {
  const u = new URL(served.url);
  return new Promise((resolve) => {
    let got = "";
    const sock = net.connect(Number(u.port), u.hostname, () => sock.write(bytes));
    const done = () => {
      sock.destroy();
      resolve(got);
    };
    let t = setTimeout(done, waitMs);
    sock.on("data", (b) => {
      got += b.toString("latin1");
      clearTimeout(t);
      t = setTimeout(done, waitMs);
    });
    sock.on("close", () => {
      clearTimeout(t);
      resolve(got);
    });
    sock.on("error", () => {});
  });
}

const auth = () => {
  const u = new URL(proxyUrl);
  return `Proxy-Authorization: Basic ${Buffer.from(`${decodeURIComponent(u.username)}:${decodeURIComponent(u.password)}`).toString("base64")}\r\n`;
};

describe("forward proxy over the real gateway", () => {
  it("plain HTTP through HTTP_PROXY gets the credential injected for its bound host (curl)", async () => {
    const r = await curl(["-x", proxyUrl, "-H", "authorization: DEFT_SECRET_GITHUB", "http://api.github.test/user"]);
    expect(r.code).toBe(0);
    expect(r.out).toBe("auth=[REDACTED:GITHUB]");
    expect(api.seen.at(-1)!.headers.authorization).toBe(TOKEN);
    const rec = (await gw.audit.query({ sessionId: session.sessionId })).at(-1)!;
    expect(rec).toMatchObject({ via: "proxy", host: "api.github.test", decision: "allow", credentials: ["GITHUB"], tier: "process" });
  });

  it("CONNECT to a forbidden host is refused and the host sees no connection (curl -p)", async () => {
    const r = await curl(["-x", proxyUrl, "-p", "-o", "/dev/null", "-w", "%{http_connect}", "http://forbidden.test:80/"]);
    expect(r.out).toBe("403");
    expect(forbidden.connections).toBe(0);
    const rec = (await gw.audit.query({ sessionId: session.sessionId })).at(-1)!;
    expect(rec).toMatchObject({ via: "connect", method: "CONNECT", host: "forbidden.test", decision: "deny", rule: "default" });
  });

  it("a relayed CONNECT inside an allowed tunnel goes to the tunnel's host, never to the forbidden one", async () => {
    const inner = "CONNECT forbidden.test:80 HTTP/1.1\r\nHost: forbidden.test:80\r\n\r\n";
    const got = await raw(`CONNECT tunnel-ok.test:443 HTTP/1.1\r\nHost: tunnel-ok.test:443\r\n${auth()}\r\n${inner}`);
    expect(got.startsWith("HTTP/1.1 200")).toBe(true);
    expect(tunnelOk.received()).toContain(inner); // forwarded verbatim into the tunnel
    expect(got).toContain(inner); // and echoed back by the tunnel's host
    expect(forbidden.connections).toBe(0);
    // The tunnel's record is written when the tunnel ends, just after the client hangs up.
    let recs = await gw.audit.query({ sessionId: session.sessionId });
    for (let i = 0; i < 100 && !recs.some((r) => r.host === "tunnel-ok.test"); i++) {
      await new Promise((r) => setTimeout(r, 20));
      recs = await gw.audit.query({ sessionId: session.sessionId });
    }
    expect(recs.filter((r) => r.host === "forbidden.test" && r.decision === "allow")).toEqual([]);
    const tunnel = recs.find((r) => r.host === "tunnel-ok.test")!;
    expect(tunnel).toMatchObject({ via: "connect", decision: "allow", address: "203.0.113.32" });
    expect(tunnel.bytesOut).toBe(inner.length);
  });

  it("CONNECT to a private address in any spelling is refused", async () => {
    for (const target of ["127.0.0.1:22", "0x7f.1:22", "[::1]:22", "[::ffff:169.254.169.254]:80", "2130706433:22"]) {
      const got = await raw(`CONNECT ${target} HTTP/1.1\r\nHost: ${target}\r\n${auth()}\r\n`, 300);
      expect(got, target).toMatch(/^HTTP\/1\.1 (403|502)/);
    }
  });

  it("without the session's proxy credentials: 407", async () => {
    const got = await raw("CONNECT tunnel-ok.test:443 HTTP/1.1\r\nHost: tunnel-ok.test:443\r\n\r\n", 300);
    expect(got).toMatch(/^HTTP\/1\.1 407/);
  });
});
