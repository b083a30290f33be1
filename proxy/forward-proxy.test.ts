// The forward proxy's protocol handling, with real clients (raw sockets, node:http, curl) and
// real upstream servers on loopback. The gateway here is a stand-in implementing the Gateway
// interface with a fixed host list (its policy logic is tested with the gateway itself); it dials
// through the Node egress network, so the whole path below the policy is the real one.
import { execFile } from "node:child_process";
import { once } from "node:events";
import http from "node:http";
import net from "node:net";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { SessionContext } from "../core/policy/types.ts";
import { createNodeEgressNet } from "../runtimes/node/egress-net.ts";
import { serveForwardProxy, type ProxyServer } from "../runtimes/node/proxy-server.ts";
import { createForwardProxy, type ForwardProxy, type ProxyCredentials } from "./forward-proxy.ts";
import type { Gateway, Refusal, Tunnel } from "./gateway.ts";

const egress = createNodeEgressNet();

/** Every host the stand-in gateway allows; each is served on loopback at the requested port. */
const ALLOWED_HOSTS = new Set(["allowed.test", "web.test"]);

interface TunnelCall {
  authority: string;
  sessionId: string;
  stats?: { bytesOut: number; bytesIn: number; error?: string };
}
interface FetchCall {
  url: string;
  method: string;
  via: string | undefined;
  sessionId: string;
  headers: Record<string, string>;
}
const tunnelCalls: TunnelCall[] = [];
const fetchCalls: FetchCall[] = [];

const gateway: Gateway = {
  async fetch(req, session, via) {
    const url = new URL(req.url);
    fetchCalls.push({ url: req.url, method: req.method, via, sessionId: session.sessionId, headers: Object.fromEntries(req.headers) });
    if (!ALLOWED_HOSTS.has(url.hostname)) {
      await req.body?.cancel();
      return new Response(`deft egress: ${url.hostname} is not allowed\n`, { status: 403, headers: { "x-deft-egress": "denied" } });
    }
    return egress.request({ address: "127.0.0.1", port: Number(url.port), protocol: "http:", servername: url.hostname }, req, req.signal);
  },
  async tunnel(authority, session, signal): Promise<Tunnel | Refusal> {
    const call: TunnelCall = { authority, sessionId: session.sessionId };
    tunnelCalls.push(call);
    const colon = authority.lastIndexOf(":");
    const host = authority.slice(0, colon);
    if (!ALLOWED_HOSTS.has(host)) return { ok: false, status: 403, reason: `${host} is not allowed` };
    const conn = await egress.connect({ address: "127.0.0.1", port: Number(authority.slice(colon + 1)) }, signal);
    return { ok: true, conn, done: (stats) => (call.stats = stats) };
  },
};

/** A TCP server that records what it receives and echoes it; ends its side when the client does. */
interface EchoServer {
  port: number;
  connections: number;
  received: Buffer;
  server: net.Server;
}
async function startEcho(): Promise<EchoServer> {
  const echo: EchoServer = { port: 0, connections: 0, received: Buffer.alloc(0), server: net.createServer({ allowHalfOpen: true }) };
  echo.server.on("connection", (s) => {
    echo.connections++;
    s.on("data", (d: Buffer) => {
      echo.received = Buffer.concat([echo.received, d]);
      s.write(d);
    });
    s.on("end", () => s.end());
    s.on("error", () => {});
  });
  await new Promise<void>((r) => echo.server.listen(0, "127.0.0.1", r));
  echo.port = (echo.server.address() as net.AddressInfo).port;
  return echo;
}

/** What the HTTP upstream saw. */
const upstreamSeen: Array<{ method: string; url: string; headers: http.IncomingHttpHeaders; body: string }> = [];
let upstream: http.Server;
let webPort: number;
let allowedEcho: EchoServer;
let forbiddenEcho: EchoServer;
let proxy: ForwardProxy;
let server: ProxyServer;
let creds: ProxyCredentials;
const session: SessionContext = { sessionId: "sess_proxy_1", tier: "process" };

beforeAll(async () => {
  upstream = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on("data", (c: Buffer) => chunks.push(c));
    req.on("end", () => {
      const body = Buffer.concat(chunks).toString("utf8");
      upstreamSeen.push({ method: req.method!, url: req.url!, headers: req.headers, body });
      if (req.url === "/hello") {
        res.setHeader("set-cookie", ["a=1", "b=2"]);
        res.end("hello");
      } else if (req.url === "/echo") {
        // No length: the proxy must frame it (chunked).
        res.writeHead(200, { "content-type": "text/plain", "x-echo-method": req.method! });
        res.write(`${req.method} `);
        res.end(body);
      } else if (req.url === "/empty") {
        res.writeHead(204).end();
      } else {
        res.writeHead(404).end("not here");
      }
    });
  });
  await new Promise<void>((r) => upstream.listen(0, "127.0.0.1", r));
  webPort = (upstream.address() as net.AddressInfo).port;
  allowedEcho = await startEcho();
  forbiddenEcho = await startEcho();
  proxy = createForwardProxy({ gateway });
  creds = proxy.sessions.register(session);
  server = await serveForwardProxy(proxy, { port: 0, hostname: "127.0.0.1" });
});

afterAll(async () => {
  await server.close();
  upstream.closeAllConnections();
  await new Promise((r) => upstream.close(r));
  allowedEcho.server.close();
  forbiddenEcho.server.close();
  egress.close();
});

function basic(c: ProxyCredentials): string {
  return "Basic " + Buffer.from(`${c.username}:${c.password}`).toString("base64");
}

/** A raw client socket that keeps everything it receives. */
interface RawClient {
  socket: net.Socket;
  /** Everything received so far, as Latin-1. */
  text(): string;
  /** Resolves with the received text once `done(text)` holds; rejects if the socket closes first. */
  until(done: (text: string) => boolean): Promise<string>;
  /** Resolves when the socket is closed (by either side). */
  closed: Promise<void>;
}

async function rawClient(port = server.port): Promise<RawClient> {
  const socket = net.connect(port, "127.0.0.1");
  await once(socket, "connect");
  let received = Buffer.alloc(0);
  let isClosed = false;
  const waiters = new Set<() => void>();
  socket.on("data", (d: Buffer) => {
    received = Buffer.concat([received, d]);
    for (const w of waiters) w();
  });
  socket.on("error", () => {});
  const closed = new Promise<void>((r) =>
    socket.once("close", () => {
      isClosed = true;
      for (const w of waiters) w();
      r();
    }),
  );
  const text = () => received.toString("latin1");
  return {
    socket,
    text,
    closed,
    until(done) {
      return new Promise<string>((resolve, reject) => {
        const check = (): void => {
          if (done(text())) {
            waiters.delete(check);
            resolve(text());
          } else if (isClosed) {
            waiters.delete(check);
            reject(new Error(`closed before the expected bytes; got ${JSON.stringify(text())}`));
          }
        };
        waiters.add(check);
        check();
      });
    },
  };
}

const headEnd = (t: string): boolean => t.includes("\r\n\r\n");

/** Run curl; resolves with its stdout (rejects on a non-zero exit). */
function curl(args: string[]): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile("curl", ["--silent", "--show-error", "--max-time", "20", ...args], (err, stdout, stderr) => (err ? reject(new Error(`${err.message}\n${stderr}`)) : resolve(stdout)));
  });
}

describe("CONNECT", () => {
  it("an allowed tunnel carries bytes both ways, half-closes, and reports its byte counts once", async () => {
    const before = allowedEcho.connections;
    const c = await rawClient();
    c.socket.write(`CONNECT allowed.test:${allowedEcho.port} HTTP/1.1\r\nHost: allowed.test:${allowedEcho.port}\r\nProxy-Authorization: ${basic(creds)}\r\n\r\n`);
    const head = await c.until(headEnd);
    expect(head).toBe("HTTP/1.1 200 Connection established\r\n\r\n");
    c.socket.write(Buffer.from("ping\x00\xff", "latin1"));
    await c.until((t) => t.endsWith("ping\x00\xff"));
    c.socket.end(); // our FIN reaches the echo server, which ends its side: the tunnel closes
    await c.closed;
    expect(allowedEcho.connections).toBe(before + 1);
    const call = tunnelCalls.at(-1)!;
    expect(call.authority).toBe(`allowed.test:${allowedEcho.port}`);
    expect(call.sessionId).toBe("sess_proxy_1");
    await waitFor(() => call.stats !== undefined);
    expect(call.stats).toEqual({ bytesOut: 6, bytesIn: 6 });
  });

  it("a refused tunnel is answered with the gateway's status and reason; nothing is dialled", async () => {
    const before = forbiddenEcho.connections;
    const c = await rawClient();
    c.socket.write(`CONNECT forbidden.test:${forbiddenEcho.port} HTTP/1.1\r\nProxy-Authorization: ${basic(creds)}\r\n\r\n`);
    await c.closed;
    expect(c.text()).toMatch(/^HTTP\/1\.1 403 Forbidden\r\n/);
    expect(c.text()).toContain("x-deft-egress: denied\r\n");
    expect(c.text()).toMatch(/\r\n\r\ndeft proxy: forbidden\.test is not allowed\n$/);
    expect(forbiddenEcho.connections).toBe(before);
  });

  it("a CONNECT relayed in the same write as the first goes to the allowed upstream as data", async () => {
    const before = { allowed: allowedEcho.received.length, forbidden: forbiddenEcho.connections, calls: tunnelCalls.length };
    const inner = `CONNECT forbidden.test:${forbiddenEcho.port} HTTP/1.1\r\nProxy-Authorization: ${basic(creds)}\r\n\r\nGET / HTTP/1.1\r\n\r\n`;
    const c = await rawClient();
    c.socket.write(`CONNECT allowed.test:${allowedEcho.port} HTTP/1.1\r\nProxy-Authorization: ${basic(creds)}\r\n\r\n${inner}`);
    // The echo server sends the inner bytes back: they went through the tunnel, unparsed.
    await c.until((t) => t.endsWith(inner));
    expect(c.text()).toBe(`HTTP/1.1 200 Connection established\r\n\r\n${inner}`);
    expect(allowedEcho.received.subarray(before.allowed).toString("latin1")).toBe(inner);
    expect(tunnelCalls.length).toBe(before.calls + 1);
    expect(forbiddenEcho.connections).toBe(before.forbidden);
    c.socket.destroy();
  });

  it("a CONNECT sent after the tunnel is up goes to the allowed upstream as data", async () => {
    const before = { allowed: allowedEcho.received.length, forbidden: forbiddenEcho.connections, calls: tunnelCalls.length };
    const c = await rawClient();
    c.socket.write(`CONNECT allowed.test:${allowedEcho.port} HTTP/1.1\r\nProxy-Authorization: ${basic(creds)}\r\n\r\n`);
    await c.until(headEnd);
    const inner = `CONNECT forbidden.test:${forbiddenEcho.port} HTTP/1.1\r\nProxy-Authorization: ${basic(creds)}\r\n\r\n`;
    c.socket.write(inner);
    await c.until((t) => t.endsWith(inner));
    expect(allowedEcho.received.subarray(before.allowed).toString("latin1")).toBe(inner);
    expect(tunnelCalls.length).toBe(before.calls + 1);
    expect(forbiddenEcho.connections).toBe(before.forbidden);
    c.socket.destroy();
  });

  it("unregistering the session ends its open tunnel", async () => {
    const s2: SessionContext = { sessionId: "sess_proxy_2", tier: "process" };
    const c2 = proxy.sessions.register(s2);
    const c = await rawClient();
    c.socket.write(`CONNECT allowed.test:${allowedEcho.port} HTTP/1.1\r\nProxy-Authorization: ${basic(c2)}\r\n\r\n`);
    await c.until(headEnd);
    proxy.sessions.unregister("sess_proxy_2");
    await c.closed; // the test's timeout is the failure
    const again = await rawClient();
    again.socket.write(`CONNECT allowed.test:${allowedEcho.port} HTTP/1.1\r\nProxy-Authorization: ${basic(c2)}\r\n\r\n`);
    await again.closed;
    expect(again.text()).toMatch(/^HTTP\/1\.1 407 /);
  });

  it("curl tunnels through it (-p)", async () => {
    const out = await curl(["-p", "-x", `http://${creds.username}:${creds.password}@127.0.0.1:${server.port}`, `http://web.test:${webPort}/hello`]);
    expect(out).toBe("hello");
    expect(tunnelCalls.at(-1)!.authority).toBe(`web.test:${webPort}`);
  });

  it("a CONNECT target that is not host:port is a 400", async () => {
    const c = await rawClient();
    c.socket.write(`CONNECT allowed.test HTTP/1.1\r\nProxy-Authorization: ${basic(creds)}\r\n\r\n`);
    await c.closed;
    expect(c.text()).toMatch(/^HTTP\/1\.1 400 Bad Request\r\n/);
  });
});

describe("plain HTTP", () => {
  const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
  afterAll(() => agent.destroy());

  /** One request through the proxy with node:http; the body as a string or chunks (chunked upload). */
  function viaProxy(method: string, path: string, body?: string | string[], host = "web.test"): Promise<{ status: number; headers: http.IncomingHttpHeaders; body: string; reused: boolean }> {
    return new Promise((resolve, reject) => {
      const headers: Record<string, string> = { "proxy-authorization": basic(creds), host: `${host}:${webPort}` };
      if (typeof body === "string") headers["content-length"] = String(Buffer.byteLength(body));
      const req = http.request({ host: "127.0.0.1", port: server.port, method, path: `http://${host}:${webPort}${path}`, headers, agent }, (res) => {
        const chunks: Buffer[] = [];
        res.on("data", (c: Buffer) => chunks.push(c));
        res.on("end", () => resolve({ status: res.statusCode!, headers: res.headers, body: Buffer.concat(chunks).toString("utf8"), reused: req.reusedSocket }));
      });
      req.on("error", reject);
      if (Array.isArray(body)) for (const part of body) req.write(part);
      else if (body) req.write(body);
      req.end();
    });
  }

  it("GET, POST with a length and POST chunked, on one kept-alive client connection", async () => {
    const get = await viaProxy("GET", "/hello");
    expect(get.status).toBe(200);
    expect(get.body).toBe("hello");
    expect(get.headers["set-cookie"]).toEqual(["a=1", "b=2"]);

    const post = await viaProxy("POST", "/echo", "length-delimited body");
    expect(post.body).toBe("POST length-delimited body");
    expect(post.headers["transfer-encoding"]).toBe("chunked");
    expect(post.reused).toBe(true);

    const chunked = await viaProxy("POST", "/echo", ["chunk one, ", "chunk two"]);
    expect(chunked.body).toBe("POST chunk one, chunk two");
    expect(chunked.reused).toBe(true);

    const seen = upstreamSeen.slice(-2);
    expect(seen.map((s) => s.body)).toEqual(["length-delimited body", "chunk one, chunk two"]);
    // The proxy's own header never reaches the upstream; the path is origin-form there.
    expect(seen.every((s) => s.headers["proxy-authorization"] === undefined && s.url === "/echo")).toBe(true);
    const calls = fetchCalls.slice(-3);
    expect(calls.map((c) => [c.method, c.url, c.via, c.sessionId])).toEqual([
      ["GET", `http://web.test:${webPort}/hello`, "proxy", "sess_proxy_1"],
      ["POST", `http://web.test:${webPort}/echo`, "proxy", "sess_proxy_1"],
      ["POST", `http://web.test:${webPort}/echo`, "proxy", "sess_proxy_1"],
    ]);
    expect(calls[1]!.headers["proxy-authorization"]).toBeUndefined();
  });

  it("answers pipelined requests in order on one connection", async () => {
    const c = await rawClient();
    const one = `GET http://web.test:${webPort}/hello HTTP/1.1\r\nHost: web.test\r\nProxy-Authorization: ${basic(creds)}\r\n\r\n`;
    const two = `POST http://web.test:${webPort}/echo HTTP/1.1\r\nHost: web.test\r\nProxy-Authorization: ${basic(creds)}\r\nContent-Length: 3\r\n\r\nabc`;
    c.socket.write(one + two);
    const text = await c.until((t) => t.includes("\r\n0\r\n\r\n"));
    const [first, second] = text.split(/(?=HTTP\/1\.1 )/);
    expect(first).toMatch(/^HTTP\/1\.1 200 OK\r\n[\s\S]*content-length: 5\r\n[\s\S]*\r\n\r\nhello$/);
    const secondHead = second!.slice(0, second!.indexOf("\r\n\r\n") + 2);
    expect(secondHead).toMatch(/^HTTP\/1\.1 200 OK\r\n/);
    expect(secondHead).toContain("\r\ntransfer-encoding: chunked\r\n");
    expect(second!.slice(secondHead.length + 2)).toBe("5\r\nPOST \r\n3\r\nabc\r\n0\r\n\r\n");
    c.socket.destroy();
  });

  it("passes a gateway refusal through and keeps the connection", async () => {
    const refused = await viaProxy("GET", "/", undefined, "elsewhere.test");
    expect(refused.status).toBe(403);
    expect(refused.headers["x-deft-egress"]).toBe("denied");
    expect(refused.body).toBe("deft egress: elsewhere.test is not allowed\n");
  });

  it("a 204 has no body and the connection carries on; a HEAD answer has no body", async () => {
    const r = await viaProxy("GET", "/empty");
    expect(r.status).toBe(204);
    expect(r.body).toBe("");
    const next = await viaProxy("GET", "/hello");
    expect(next.body).toBe("hello");
    expect(next.reused).toBe(true);
    const head = await viaProxy("HEAD", "/hello");
    expect(head.status).toBe(200);
    expect(head.body).toBe("");
  });

  it("a body the gateway did not read is never parsed as the next request: the connection closes", async () => {
    const calls = fetchCalls.length;
    const smuggled = `GET http://web.test:${webPort}/hello?smuggled HTTP/1.1\r\nProxy-Authorization: ${basic(creds)}\r\n\r\n`;
    const c = await rawClient();
    c.socket.write(`POST http://elsewhere.test/ HTTP/1.1\r\nProxy-Authorization: ${basic(creds)}\r\nContent-Length: ${smuggled.length}\r\n\r\n${smuggled}`);
    await c.closed;
    expect(c.text()).toMatch(/^HTTP\/1\.1 403 Forbidden\r\n/);
    expect(c.text()).toContain("\r\nconnection: close\r\n");
    expect(fetchCalls.slice(calls).map((f) => f.url)).toEqual(["http://elsewhere.test/"]);
  });

  it("curl fetches through it", async () => {
    const out = await curl(["-x", `http://${creds.username}:${creds.password}@127.0.0.1:${server.port}`, `http://web.test:${webPort}/hello`]);
    expect(out).toBe("hello");
    const posted = await curl(["-x", `http://${creds.username}:${creds.password}@127.0.0.1:${server.port}`, "--data-binary", "from curl", `http://web.test:${webPort}/echo`]);
    expect(posted).toBe("POST from curl");
  });
});

describe("bad requests", () => {
  /** Send `bytes`, wait for the proxy to close, return what it answered. */
  async function exchange(bytes: string): Promise<string> {
    const c = await rawClient();
    c.socket.write(bytes);
    await c.closed;
    return c.text();
  }
  const auth = () => `Proxy-Authorization: ${basic(creds)}\r\n`;

  it("no proxy credentials, or wrong ones: 407 with Proxy-Authenticate", async () => {
    const missing = await exchange(`GET http://web.test:${webPort}/hello HTTP/1.1\r\nHost: web.test\r\n\r\n`);
    expect(missing).toMatch(/^HTTP\/1\.1 407 Proxy Authentication Required\r\n/);
    expect(missing).toContain('proxy-authenticate: Basic realm="deft"\r\n');
    expect(missing).toMatch(/deft proxy: proxy credentials required\n$/);
    const wrong = await exchange(`CONNECT allowed.test:${allowedEcho.port} HTTP/1.1\r\nProxy-Authorization: ${basic({ username: creds.username, password: "x".repeat(creds.password.length) })}\r\n\r\n`);
    expect(wrong).toMatch(/^HTTP\/1\.1 407 /);
    expect(wrong).toMatch(/deft proxy: proxy credentials not recognised\n$/);
    const notBasic = await exchange(`GET http://web.test:${webPort}/hello HTTP/1.1\r\nProxy-Authorization: Bearer abc\r\n\r\n`);
    expect(notBasic).toMatch(/^HTTP\/1\.1 407 /);
  });

  it("malformed heads: 400", async () => {
    for (const head of [
      "GARBAGE\r\n\r\n",
      `GET http://web.test/ HTTP/1.1\r\n${auth()}no colon here\r\n\r\n`,
      `GET http://web.test/ HTTP/1.1\r\n${auth()}X-Folded: a\r\n  b\r\n\r\n`,
      `GET http://web.test/ HTTP/1.1\r\n${auth()}Bad Name: x\r\n\r\n`,
      `POST http://web.test/ HTTP/1.1\r\n${auth()}Content-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n`,
      `POST http://web.test/ HTTP/1.1\r\n${auth()}Content-Length: 3, 4\r\n\r\n`,
      `POST http://web.test/ HTTP/1.1\r\n${auth()}Transfer-Encoding: gzip, chunked\r\n\r\n`,
      `GET http://web.test/ HTTP/1.1\r\n${auth()}X-Bare: a\rb\r\n\r\n`,
    ]) {
      expect(await exchange(head), JSON.stringify(head)).toMatch(/^HTTP\/1\.1 400 Bad Request\r\n/);
    }
  });

  it("an origin-form request (not a proxy request): 400 saying so", async () => {
    const answer = await exchange(`GET /hello HTTP/1.1\r\nHost: web.test\r\n${auth()}\r\n`);
    expect(answer).toMatch(/^HTTP\/1\.1 400 Bad Request\r\n/);
    expect(answer).toContain("this is a proxy");
  });

  it("a head over 64 KiB: 431", async () => {
    const answer = await exchange(`GET http://web.test/ HTTP/1.1\r\n${auth()}X-Big: ${"a".repeat(70 * 1024)}\r\n\r\n`);
    expect(answer).toMatch(/^HTTP\/1\.1 431 Request Header Fields Too Large\r\n/);
  });

  it("a head with no line break at all, over the cap: 431", async () => {
    const answer = await exchange("G".repeat(70 * 1024));
    expect(answer).toMatch(/^HTTP\/1\.1 431 /);
  });

  it("a client that never finishes its head is closed after the head timeout", async () => {
    const quick = createForwardProxy({ gateway, sessions: proxy.sessions, headTimeoutMs: 100 });
    const quickServer = await serveForwardProxy(quick, {});
    try {
      const calls = fetchCalls.length;
      const c = await rawClient(quickServer.port);
      c.socket.write(`GET http://web.test:${webPort}/hello HTTP/1.1\r\n${auth()}`); // no empty line, ever
      await c.closed; // the test's timeout is the failure
      expect(fetchCalls.length).toBe(calls);
      const silent = await rawClient(quickServer.port);
      await silent.closed; // sends nothing at all
      expect(silent.text()).toBe("");
    } finally {
      await quickServer.close();
    }
  });
});

/** Wait for a condition another party sets (the test timeout decides failure, not a clock). */
async function waitFor(check: () => boolean): Promise<void> {
  while (!check()) await new Promise((r) => setTimeout(r, 5));
}
