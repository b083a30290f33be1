// createHttpFetch against a real server on loopback: what the API client relies on.
import http from "node:http";
import type { AddressInfo } from "node:net";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createHttpFetch } from "./http-fetch.ts";

let server: http.Server;
let base: string;
const release = new Map<string, () => void>();
const ports: number[] = [];

beforeAll(async () => {
  server = http.createServer((req, res) => {
    ports.push(req.socket.remotePort!);
    const url = new URL(req.url!, "http://x");
    if (url.pathname === "/echo") {
      const chunks: Buffer[] = [];
      req.on("data", (c: Buffer) => chunks.push(c));
      req.on("end", () => {
        res.setHeader("set-cookie", ["a=1", "b=2"]);
        res.setHeader("content-type", "application/json");
        res.end(JSON.stringify({ method: req.method, headers: req.headers, body: Buffer.concat(chunks).toString("utf8"), query: url.search }));
      });
    } else if (url.pathname === "/sse") {
      // One event now; the rest only when the test releases it, so the first must arrive alone.
      res.writeHead(200, { "content-type": "text/event-stream" });
      res.write("data: one\n\n");
      release.set(url.searchParams.get("id")!, () => res.end("data: two\n\n"));
    } else if (url.pathname === "/hang") {
      // Headers never come.
    } else if (url.pathname === "/empty") {
      res.writeHead(204).end();
    } else if (url.pathname === "/big") {
      const chunk = Buffer.alloc(64 * 1024, 120);
      let left = 64; // 4 MiB
      const pump = (): void => {
        while (left > 0) {
          left--;
          if (!res.write(chunk)) return void res.once("drain", pump);
        }
        res.end();
      };
      pump();
    } else {
      res.writeHead(404).end("nope");
    }
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});
afterAll(async () => {
  server.closeAllConnections();
  await new Promise((r) => server.close(r));
});

describe("createHttpFetch", () => {
  const f = createHttpFetch();
  afterAll(() => f.close());

  it("sends method, headers, query and a string body; returns status, headers and JSON", async () => {
    const r = await f(`${base}/echo?x=1`, { method: "POST", headers: { authorization: "Bearer t", "content-type": "application/json" }, body: '{"a":"é"}' });
    expect(r.status).toBe(200);
    expect(r.ok).toBe(true);
    expect(r.url).toBe(`${base}/echo?x=1`);
    expect(r.headers.get("content-type")).toBe("application/json");
    expect(r.headers.get("set-cookie")).toBe("a=1, b=2");
    const j = (await r.json()) as { method: string; headers: Record<string, string>; body: string; query: string };
    expect(j).toMatchObject({ method: "POST", body: '{"a":"é"}', query: "?x=1" });
    expect(j.headers["authorization"]).toBe("Bearer t");
    expect(j.headers["content-length"]).toBe(String(Buffer.byteLength('{"a":"é"}')));
  });

  it("takes a Request, a Headers object and a byte body", async () => {
    const r = await f(new Request(`${base}/echo`, { method: "PUT", headers: new Headers({ "x-k": "v" }), body: new Uint8Array([104, 105]) }));
    const j = (await r.json()) as { method: string; headers: Record<string, string>; body: string };
    expect(j).toMatchObject({ method: "PUT", body: "hi" });
    expect(j.headers["x-k"]).toBe("v");
  });

  it("streams: the first event arrives before the response ends", async () => {
    const r = await f(`${base}/sse?id=s1`);
    const rd = r.body!.getReader();
    const first = await rd.read();
    expect(new TextDecoder().decode(first.value)).toBe("data: one\n\n");
    release.get("s1")!();
    let rest = "";
    for (let c = await rd.read(); !c.done; c = await rd.read()) rest += new TextDecoder().decode(c.value);
    expect(rest).toBe("data: two\n\n");
  });

  it("an abort mid-stream errors the body with an AbortError", async () => {
    const ac = new AbortController();
    const r = await f(`${base}/sse?id=s2`, { signal: ac.signal });
    const rd = r.body!.getReader();
    await rd.read();
    ac.abort();
    await expect(rd.read()).rejects.toMatchObject({ name: "AbortError" });
  });

  it("an abort before the headers rejects with an AbortError", async () => {
    const ac = new AbortController();
    const p = f(`${base}/hang`, { signal: ac.signal });
    setTimeout(() => ac.abort(), 20);
    await expect(p).rejects.toMatchObject({ name: "AbortError" });
    await expect(f(`${base}/echo`, { signal: AbortSignal.abort() })).rejects.toMatchObject({ name: "AbortError" });
  });

  it("a refused connection is a TypeError with the cause, as global fetch gives", async () => {
    const closed = http.createServer();
    await new Promise<void>((r) => closed.listen(0, "127.0.0.1", r));
    const port = (closed.address() as AddressInfo).port;
    await new Promise((r) => closed.close(r));
    const err = await f(`http://127.0.0.1:${port}/`).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(TypeError);
    expect((err as TypeError & { cause: { code: string } }).cause.code).toBe("ECONNREFUSED");
  });

  it("204 has a null body; 404 is returned, not thrown", async () => {
    const e = await f(`${base}/empty`);
    expect(e.status).toBe(204);
    expect(e.body).toBeNull();
    const n = await f(`${base}/missing`);
    expect(n.status).toBe(404);
    expect(await n.text()).toBe("nope");
  });

  it("a large body arrives whole", async () => {
    const buf = await (await f(`${base}/big`)).arrayBuffer();
    expect(buf.byteLength).toBe(4 * 1024 * 1024);
  });

  it("keeps connections alive: sequential requests share one socket", async () => {
    const g = createHttpFetch();
    ports.length = 0;
    for (let i = 0; i < 3; i++) await (await g(`${base}/echo`)).text();
    expect(new Set(ports).size).toBe(1);
    g.close();
  });

  it("an abort after the body was read leaves the connection for the next request", async () => {
    // The SDK aborts each request's controller once it is done with the response.
    const g = createHttpFetch();
    ports.length = 0;
    for (let i = 0; i < 3; i++) {
      const ac = new AbortController();
      await (await g(`${base}/echo`, { signal: ac.signal })).text();
      ac.abort();
      await new Promise((r) => setImmediate(r));
    }
    expect(new Set(ports).size).toBe(1);
    g.close();
  });

  it("cancelling a small body leaves the connection for the next request", async () => {
    // The SDK cancels the bodies it does not read (a result POST's answer).
    const g = createHttpFetch();
    ports.length = 0;
    for (let i = 0; i < 3; i++) {
      const r = await g(`${base}/echo`, { method: "POST", body: "{}" });
      await r.body!.cancel(); // at once: the body may not have arrived yet
    }
    await (await g(`${base}/echo`)).text();
    expect(new Set(ports).size).toBe(1);
    g.close();
  });

  it("refuses protocols it does not speak", async () => {
    await expect(f("ftp://127.0.0.1/")).rejects.toThrow(/unsupported protocol ftp:/);
  });
});
