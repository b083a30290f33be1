// createNodeEgressNet against real servers on loopback: HTTP and HTTPS exchanges with a pinned
// address, streaming both ways, aborts, upstream failures, the test-only connectHook, raw TCP
// connections with half-close, and name resolution.
import { execFileSync } from "node:child_process";
import dgram from "node:dgram";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import http from "node:http";
import https from "node:https";
import net from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startDnsServer } from "../../test/net/dns-server.ts";
import { createNodeEgressNet, EgressNetError, type NodeEgressNet } from "./egress-net.ts";

/** A self-signed certificate for example.test, made with openssl for this run. */
function makeCertificate(): { key: string; cert: string } {
  const dir = mkdtempSync(join(tmpdir(), "deft-egress-cert-"));
  try {
    execFileSync("openssl", ["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-keyout", join(dir, "key.pem"), "-out", join(dir, "cert.pem"), "-days", "1", "-subj", "/CN=example.test", "-addext", "subjectAltName=DNS:example.test"], { stdio: "ignore" });
    return { key: readFileSync(join(dir, "key.pem"), "utf8"), cert: readFileSync(join(dir, "cert.pem"), "utf8") };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** Listen on an ephemeral loopback port; resolves to the port. */
async function listen(server: net.Server): Promise<number> {
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  return (server.address() as net.AddressInfo).port;
}

async function closeServer(server: http.Server | net.Server): Promise<void> {
  if (server instanceof http.Server) server.closeAllConnections();
  await new Promise((r) => server.close(r));
}

async function readAll(stream: ReadableStream<Uint8Array>): Promise<string> {
  return new Response(stream).text();
}

const text = new TextEncoder();
const utf8 = new TextDecoder();

/** What the HTTP server saw, by request path. */
const seen = new Map<string, { headers: http.IncomingHttpHeaders; remotePort: number; servername?: string | false }>();
const serverSockets = new Set<net.Socket>();
/** Release hooks for /stream requests, by id. */
const release = new Map<string, () => void>();

function handler(req: http.IncomingMessage, res: http.ServerResponse): void {
  const url = new URL(req.url!, "http://x");
  const tlsSocket = req.socket as Partial<import("node:tls").TLSSocket>;
  seen.set(url.pathname + url.search, { headers: req.headers, remotePort: req.socket.remotePort!, servername: tlsSocket.servername ?? undefined });
  switch (url.pathname) {
    case "/hello":
      res.setHeader("set-cookie", ["a=1; Path=/", "b=2; Path=/"]);
      res.setHeader("x-thing", "yes");
      res.writeHead(201, "Made It", { "content-type": "text/plain" });
      res.end("hello " + req.method);
      return;
    case "/echo-live":
      // Each request chunk is echoed as it arrives: proves both directions stream.
      res.writeHead(200, { "content-type": "application/octet-stream" });
      req.on("data", (c: Buffer) => res.write(c));
      req.on("end", () => res.end("|end"));
      return;
    case "/stream":
      res.writeHead(200);
      res.write("first;");
      release.set(url.searchParams.get("id")!, () => res.end("second"));
      return;
    case "/empty":
      res.writeHead(204).end();
      return;
    case "/not-modified":
      res.writeHead(304, { etag: '"x"' }).end();
      return;
    case "/redirect":
      res.writeHead(302, { location: "http://elsewhere.test/" }).end("moved");
      return;
    case "/hang":
      return; // no answer, ever
    case "/reset-before":
      req.socket.destroy();
      return;
    case "/reset-during":
      res.writeHead(200, { "content-length": "100000" });
      res.write("partial");
      setTimeout(() => req.socket.destroy(), 20);
      return;
    case "/big": {
      const size = Number(url.searchParams.get("bytes"));
      const chunk = Buffer.alloc(64 * 1024);
      for (let i = 0; i < chunk.length; i++) chunk[i] = i % 251;
      res.writeHead(200, { "content-length": String(size) });
      let left = size;
      const pump = (): void => {
        while (left > 0) {
          const n = Math.min(left, chunk.length);
          left -= n;
          if (!res.write(n === chunk.length ? chunk : chunk.subarray(0, n))) return void res.once("drain", pump);
        }
        res.end();
      };
      pump();
      return;
    }
    default:
      res.writeHead(404).end("nope");
  }
}

let httpServer: http.Server;
let httpPort: number;
let httpsServer: https.Server;
let httpsPort: number;
let cert: { key: string; cert: string };
let egress: NodeEgressNet;

beforeAll(async () => {
  cert = makeCertificate();
  httpServer = http.createServer(handler);
  httpServer.on("connection", (s) => serverSockets.add(s));
  httpPort = await listen(httpServer);
  httpsServer = https.createServer({ key: cert.key, cert: cert.cert }, handler);
  httpsPort = await listen(httpsServer);
  egress = createNodeEgressNet({ ca: cert.cert });
});

afterAll(async () => {
  egress.close();
  await closeServer(httpServer);
  await closeServer(httpsServer);
});

const never = new AbortController().signal;

function httpTarget(servername = "example.test") {
  return { address: "127.0.0.1", port: httpPort, protocol: "http:" as const, servername };
}

describe("request over HTTP", () => {
  it("dials the pinned address without a lookup; sends Host from the URL; returns status, reason and every header", async () => {
    // example.test does not resolve: the exchange can only work by dialling the address given.
    const res = await egress.request(httpTarget(), new Request(`http://example.test:${httpPort}/hello?q=1`, { headers: { "x-req": "v" } }), never);
    expect(res.status).toBe(201);
    expect(res.statusText).toBe("Made It");
    expect(res.headers.getSetCookie()).toEqual(["a=1; Path=/", "b=2; Path=/"]);
    expect(res.headers.get("x-thing")).toBe("yes");
    expect(await res.text()).toBe("hello GET");
    const s = seen.get("/hello?q=1")!;
    expect(s.headers.host).toBe(`example.test:${httpPort}`);
    expect(s.headers["x-req"]).toBe("v");
  });

  it("drops hop-by-hop request headers", async () => {
    const req = new Request(`http://example.test:${httpPort}/hello?hop`, { headers: { connection: "x-secret", "x-secret": "1", "proxy-authorization": "Basic abc", te: "trailers", "keep-alive": "timeout=1" } });
    await (await egress.request(httpTarget(), req, never)).text();
    const h = seen.get("/hello?hop")!.headers;
    expect(h["x-secret"]).toBeUndefined();
    expect(h.connection).toBe("keep-alive"); // Node's own, for its pool
    expect(h["proxy-authorization"]).toBeUndefined();
    expect(h.te).toBeUndefined();
    expect(h["keep-alive"]).toBeUndefined();
  });

  it("streams the request body and the response body both ways at once", async () => {
    let send!: (s: string | null) => void;
    const body = new ReadableStream<Uint8Array>({
      start(c) {
        send = (s) => (s === null ? c.close() : c.enqueue(text.encode(s)));
      },
    });
    send("one;");
    const res = await egress.request(httpTarget(), new Request(`http://example.test:${httpPort}/echo-live`, { method: "POST", body, duplex: "half" } as RequestInit), never);
    const reader = res.body!.getReader();
    // The first chunk comes back before the second is even produced.
    expect(utf8.decode((await reader.read()).value)).toBe("one;");
    send("two;");
    expect(utf8.decode((await reader.read()).value)).toBe("two;");
    send(null);
    let rest = "";
    for (let r = await reader.read(); !r.done; r = await reader.read()) rest += utf8.decode(r.value);
    expect(rest).toBe("|end");
  });

  it("returns the response before its body has finished arriving", async () => {
    const res = await egress.request(httpTarget(), new Request(`http://example.test:${httpPort}/stream?id=s1`), never);
    const reader = res.body!.getReader();
    expect(utf8.decode((await reader.read()).value)).toBe("first;");
    release.get("s1")!();
    expect(utf8.decode((await reader.read()).value)).toBe("second");
    expect((await reader.read()).done).toBe(true);
  });

  it("gives a null body for 204, 304 and HEAD", async () => {
    const r204 = await egress.request(httpTarget(), new Request(`http://example.test:${httpPort}/empty`), never);
    expect(r204.status).toBe(204);
    expect(r204.body).toBeNull();
    const r304 = await egress.request(httpTarget(), new Request(`http://example.test:${httpPort}/not-modified`), never);
    expect(r304.status).toBe(304);
    expect(r304.body).toBeNull();
    expect(r304.headers.get("etag")).toBe('"x"');
    const head = await egress.request(httpTarget(), new Request(`http://example.test:${httpPort}/hello`, { method: "HEAD" }), never);
    expect(head.status).toBe(201);
    expect(head.body).toBeNull();
  });

  it("does not follow redirects", async () => {
    const res = await egress.request(httpTarget(), new Request(`http://example.test:${httpPort}/redirect`), never);
    expect(res.status).toBe(302);
    expect(res.headers.get("location")).toBe("http://elsewhere.test/");
    expect(await res.text()).toBe("moved");
  });

  it("reuses a keep-alive connection for the same address and name", async () => {
    await (await egress.request(httpTarget(), new Request(`http://example.test:${httpPort}/hello?ka1`), never)).text();
    await (await egress.request(httpTarget(), new Request(`http://example.test:${httpPort}/hello?ka2`), never)).text();
    expect(seen.get("/hello?ka1")!.remotePort).toBe(seen.get("/hello?ka2")!.remotePort);
  });

  it("carries a large body whole and in order", async () => {
    const size = 8 * 1024 * 1024 + 123;
    const res = await egress.request(httpTarget(), new Request(`http://example.test:${httpPort}/big?bytes=${size}`), never);
    const reader = res.body!.getReader();
    let offset = 0;
    let bad = -1;
    for (let r = await reader.read(); !r.done; r = await reader.read()) {
      for (let i = 0; i < r.value.length && bad < 0; i++) if (r.value[i] !== ((offset + i) % (64 * 1024)) % 251) bad = offset + i;
      offset += r.value.length;
    }
    expect(bad).toBe(-1);
    expect(offset).toBe(size);
  });

  it("refuses a target that is a name rather than an address", async () => {
    const err = await egress.request({ ...httpTarget(), address: "localhost" }, new Request("http://localhost/"), never).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(EgressNetError);
    expect((err as EgressNetError).code).toBe("EINVAL");
  });
});

describe("request: aborts and upstream failures", () => {
  it("an abort before the answer rejects with the abort's reason and closes the connection", async () => {
    const ac = new AbortController();
    const pending = egress.request(httpTarget(), new Request(`http://example.test:${httpPort}/hang`), ac.signal);
    await waitFor(() => seen.has("/hang"));
    ac.abort();
    const err = await pending.catch((e: unknown) => e);
    expect((err as Error).name).toBe("AbortError");
  });

  it("an abort during the body errors the body stream", async () => {
    const ac = new AbortController();
    const res = await egress.request(httpTarget(), new Request(`http://example.test:${httpPort}/stream?id=ab`), ac.signal);
    const reader = res.body!.getReader();
    expect(utf8.decode((await reader.read()).value)).toBe("first;");
    ac.abort();
    const err = await reader.read().catch((e: unknown) => e);
    expect((err as Error).name).toBe("AbortError");
  });

  it("a connection refused is a clear rejection", async () => {
    const closed = net.createServer();
    const port = await listen(closed);
    await closeServer(closed);
    const err = await egress.request({ ...httpTarget(), port }, new Request(`http://example.test:${port}/`), never).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(EgressNetError);
    expect((err as EgressNetError).code).toBe("ECONNREFUSED");
    expect((err as Error).message).toBe(`connection refused by example.test (127.0.0.1:${port})`);
  });

  it("a reset before the answer rejects; a reset during the body errors the body", async () => {
    const before = await egress.request(httpTarget(), new Request(`http://example.test:${httpPort}/reset-before`), never).catch((e: unknown) => e);
    expect(before).toBeInstanceOf(EgressNetError);
    expect((before as EgressNetError).code).toBe("ECONNRESET");
    expect((before as Error).message).toContain("example.test");

    const res = await egress.request(httpTarget(), new Request(`http://example.test:${httpPort}/reset-during`), never);
    expect(res.status).toBe(200);
    const err = await res.text().catch((e: unknown) => e);
    expect(err).toBeInstanceOf(Error);
  });

  it("a signal that times out rejects with a TimeoutError", async () => {
    const err = await egress.request(httpTarget(), new Request(`http://example.test:${httpPort}/hang?t`), AbortSignal.timeout(50)).catch((e: unknown) => e);
    expect((err as Error).name).toBe("TimeoutError");
  });

  it("a request body that fails cuts the exchange and rejects", async () => {
    const body = new ReadableStream<Uint8Array>({
      pull(c) {
        c.error(new Error("sandbox went away"));
      },
    });
    const err = await egress.request(httpTarget(), new Request(`http://example.test:${httpPort}/echo-live?fail`, { method: "POST", body, duplex: "half" } as RequestInit), never).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(Error);
  });
});

describe("request over HTTPS", () => {
  const httpsTarget = (servername = "example.test") => ({ address: "127.0.0.1", port: httpsPort, protocol: "https:" as const, servername });

  it("sends SNI for the name and verifies the certificate against it, not the address", async () => {
    const res = await egress.request(httpsTarget(), new Request(`https://example.test:${httpsPort}/hello?tls`), never);
    expect(res.status).toBe(201);
    expect(await res.text()).toBe("hello GET");
    expect(seen.get("/hello?tls")!.servername).toBe("example.test");
  });

  it("rejects a certificate for another name", async () => {
    const err = await egress.request(httpsTarget("other.test"), new Request(`https://other.test:${httpsPort}/hello`), never).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(EgressNetError);
    expect((err as EgressNetError).code).toBe("ERR_TLS_CERT_ALTNAME_INVALID");
    expect((err as Error).message).toContain("TLS with other.test");
  });

  it("rejects a certificate it has no trust for", async () => {
    const untrusting = createNodeEgressNet();
    try {
      const err = await untrusting.request(httpsTarget(), new Request(`https://example.test:${httpsPort}/hello`), never).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(EgressNetError);
      expect((err as EgressNetError).code).toBe("DEPTH_ZERO_SELF_SIGNED_CERT");
    } finally {
      untrusting.close();
    }
  });

  it("speaking TLS to a plain HTTP server is a clear TLS error", async () => {
    const err = await egress.request({ ...httpsTarget(), port: httpPort }, new Request(`https://example.test:${httpPort}/hello`), never).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(EgressNetError);
    expect((err as Error).message).toMatch(/^TLS with example\.test/);
  });
});

describe("connectHook (tests and lab networks)", () => {
  it("maps a checked public address to a loopback server at the socket level only", async () => {
    const dialled: string[] = [];
    const lab = createNodeEgressNet({
      ca: cert.cert,
      connectHook: (address, port) => {
        dialled.push(`${address}:${port}`);
        return address === "203.0.113.10" && port === 443 ? { address: "127.0.0.1", port: httpsPort } : { address, port };
      },
    });
    try {
      const res = await lab.request({ address: "203.0.113.10", port: 443, protocol: "https:", servername: "example.test" }, new Request("https://example.test/hello?lab"), never);
      expect(await res.text()).toBe("hello GET");
      expect(dialled).toEqual(["203.0.113.10:443"]);
      // The name and Host are the request's, not the lab address.
      expect(seen.get("/hello?lab")!.servername).toBe("example.test");
      expect(seen.get("/hello?lab")!.headers.host).toBe("example.test");
    } finally {
      lab.close();
    }
  });
});

describe("connect", () => {
  let tcp: net.Server;
  let tcpPort: number;
  beforeAll(async () => {
    // Echoes until the client's FIN, then says "bye" and ends its side.
    tcp = net.createServer({ allowHalfOpen: true }, (s) => {
      s.on("data", (c) => s.write(c));
      s.on("end", () => s.end("bye"));
    });
    tcpPort = await listen(tcp);
  });
  afterAll(() => closeServer(tcp));

  it("carries bytes both ways; closing the writable side half-closes, the peer's end ends the readable side", async () => {
    const conn = await egress.connect({ address: "127.0.0.1", port: tcpPort }, never);
    const writer = conn.writable.getWriter();
    const reader = conn.readable.getReader();
    await writer.write(text.encode("ping"));
    expect(utf8.decode((await reader.read()).value)).toBe("ping");
    await writer.close(); // FIN: the server answers "bye" and ends
    let rest = "";
    for (let r = await reader.read(); !r.done; r = await reader.read()) rest += utf8.decode(r.value);
    expect(rest).toBe("bye");
  });

  it("goes through connectHook", async () => {
    const lab = createNodeEgressNet({ connectHook: (address, port) => (address === "203.0.113.10" ? { address: "127.0.0.1", port: tcpPort } : { address, port }) });
    const conn = await lab.connect({ address: "203.0.113.10", port: 5432 }, never);
    const writer = conn.writable.getWriter();
    await writer.write(text.encode("lab"));
    await writer.close();
    expect(await readAll(conn.readable)).toBe("labbye");
  });

  it("close() tears the connection down and the peer sees it", async () => {
    const peerClosed = new Promise<void>((r) => tcp.once("connection", (s) => s.once("close", () => r())));
    const conn = await egress.connect({ address: "127.0.0.1", port: tcpPort }, never);
    conn.close();
    await peerClosed;
    const err = await conn.readable.getReader().read().catch((e: unknown) => e);
    expect(err).toBeInstanceOf(Error);
  });

  it("an abort tears an open connection down", async () => {
    const ac = new AbortController();
    const conn = await egress.connect({ address: "127.0.0.1", port: tcpPort }, ac.signal);
    ac.abort();
    const err = await conn.readable.getReader().read().catch((e: unknown) => e);
    expect((err as Error).name).toBe("AbortError");
  });

  it("a refused connection is a clear rejection", async () => {
    const closed = net.createServer();
    const port = await listen(closed);
    await closeServer(closed);
    const err = await egress.connect({ address: "127.0.0.1", port }, never).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(EgressNetError);
    expect((err as EgressNetError).code).toBe("ECONNREFUSED");
    expect((err as Error).message).toBe(`connection refused by 127.0.0.1:${port}`);
  });
});

describe("resolve", () => {
  it("returns a literal address as it is", async () => {
    expect(await egress.resolve("192.0.2.1")).toEqual(["192.0.2.1"]);
    expect(await egress.resolve("[::1]")).toEqual(["::1"]);
  });

  it("asks the system resolver when no DNS servers are given", async () => {
    const addresses = await egress.resolve("localhost");
    expect(addresses.some((a) => a === "127.0.0.1" || a === "::1")).toBe(true);
  });

  it("rejects a name that does not exist", async () => {
    const err = await egress.resolve("no-such-host.invalid").catch((e: unknown) => e);
    expect(err).toBeInstanceOf(EgressNetError);
    expect(["ENOTFOUND", "ETIMEOUT"]).toContain((err as EgressNetError).code);
    expect((err as Error).message).toContain("no-such-host.invalid");
  });

  it("asks the given DNS servers for A and AAAA, every time; NXDOMAIN is a clear rejection", async () => {
    const dns = await startDnsServer({ "api.example.test": ["203.0.113.7", "2001:db8::7"], "v4only.example.test": ["198.51.100.4"] });
    try {
      const viaServer = createNodeEgressNet({ dnsServers: [`127.0.0.1:${dns.port}`], lookupTimeoutMs: 2000 });
      expect((await viaServer.resolve("api.example.test")).sort()).toEqual(["2001:db8::7", "203.0.113.7"]);
      expect(await viaServer.resolve("v4only.example.test")).toEqual(["198.51.100.4"]);
      await viaServer.resolve("api.example.test");
      expect(dns.queries("api.example.test", "A")).toBe(2); // no cache here: the gateway decides that
      expect(dns.queries("api.example.test", "AAAA")).toBe(2);
      const err = await viaServer.resolve("missing.example.test").catch((e: unknown) => e);
      expect(err).toBeInstanceOf(EgressNetError);
      expect((err as EgressNetError).code).toBe("ENOTFOUND");
      expect((err as Error).message).toBe("missing.example.test does not exist (NXDOMAIN)");
    } finally {
      await dns.close();
    }
  });

  it("a DNS server that never answers is a timeout", async () => {
    const silent = dgram.createSocket("udp4"); // bound, reads nothing, answers nothing
    await new Promise<void>((r) => silent.bind(0, "127.0.0.1", r));
    try {
      const viaSilent = createNodeEgressNet({ dnsServers: [`127.0.0.1:${silent.address().port}`], lookupTimeoutMs: 200 });
      const err = await viaSilent.resolve("api.example.test").catch((e: unknown) => e);
      expect(err).toBeInstanceOf(EgressNetError);
      expect((err as EgressNetError).code).toBe("ETIMEOUT");
      expect((err as Error).message).toBe("resolving api.example.test timed out after 200 ms");
    } finally {
      silent.close();
    }
  });

  it("an abort cancels a lookup", async () => {
    const silent = dgram.createSocket("udp4");
    await new Promise<void>((r) => silent.bind(0, "127.0.0.1", r));
    try {
      const viaSilent = createNodeEgressNet({ dnsServers: [`127.0.0.1:${silent.address().port}`], lookupTimeoutMs: 30_000 });
      const ac = new AbortController();
      const pending = viaSilent.resolve("api.example.test", ac.signal);
      ac.abort();
      const err = await pending.catch((e: unknown) => e);
      expect((err as Error).name).toBe("AbortError");
    } finally {
      silent.close();
    }
  });
});

/** Poll a condition the server side sets (no timing decides pass or fail: the test timeout does). */
async function waitFor(check: () => boolean): Promise<void> {
  while (!check()) await new Promise((r) => setTimeout(r, 5));
}
