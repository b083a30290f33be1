// The Workers face: the gateway itself runs inside workerd (through Miniflare), bundled from
// proxy/ and core/ as a deployment would, behind a parent Worker whose `fetch` stands for a
// dynamic isolate's `globalOutbound`. Upstream is a real server on loopback, reached as a private
// service (the only way a policy lets loopback in); the Worker's platform fetch carries it.
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { bundleForWorkerd } from "../workerd-bundle.ts";
import { Miniflare } from "miniflare";
import { afterAll, beforeAll, describe, expect, it } from "vitest";

const SECRET = "wk_secret_value_123456";
let server: Server;
let seen: Array<{ url: string; auth: string | undefined }> = [];
let mf: Miniflare;

beforeAll(async () => {
  server = createServer((req, res) => {
    seen.push({ url: req.url!, auth: req.headers.authorization });
    res.end(`echo ${req.headers.authorization ?? ""}`);
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  const port = (server.address() as AddressInfo).port;
  const policy = {
    networking: { type: "limited", allowed_hosts: ["api.example.com"] },
    services: { inventory: { url: `http://127.0.0.1:${port}/api` } },
    credentials: [{ name: "INV", secret: { env: "INV_TOKEN" }, hosts: ["inventory.svc"] }],
  };
  const bundle = await bundleForWorkerd(
    `import { createGateway } from "../../proxy/gateway.ts";
import { fetchEgressNet } from "../../proxy/fetch-net.ts";
import { workersOutbound } from "../../proxy/workers-outbound.ts";
import { createSecretSource } from "../../proxy/credentials.ts";
import { parsePolicy } from "../../core/policy/parse.ts";
import { MemoryAuditSink } from "../../core/audit/audit.ts";
const audit = new MemoryAuditSink();
let outbound;
const handler = {
  async fetch(req, env) {
    outbound ??= workersOutbound(createGateway({
      policy: parsePolicy(${JSON.stringify(policy)}),
      net: fetchEgressNet(fetch),
      secrets: createSecretSource({ env: { INV_TOKEN: env.INV_TOKEN }, readTextFile: async () => { throw new Error("no files"); } }),
      audit,
    }));
    const url = new URL(req.url);
    if (url.pathname === "/_audit") return Response.json(await audit.query({ sessionId: "sesn_wk" }));
    // What a dynamic isolate's fetch() would have sent, carried in the query for the test.
    const target = url.searchParams.get("to");
    const headers = JSON.parse(url.searchParams.get("headers") ?? "{}");
    return outbound(new Request(target, { headers }), { sessionId: "sesn_wk", toolUseId: "toolu_wk" });
  },
};
export { handler as default };
`,
    import.meta.dirname,
    "outbound-worker.ts",
  );
  mf = new Miniflare({
    modules: [{ type: "ESModule", path: "outbound.mjs", contents: bundle }],
    compatibilityDate: "2025-09-01",
    bindings: { INV_TOKEN: SECRET },
  });
}, 30_000);

afterAll(async () => {
  await mf?.dispose();
  server?.closeAllConnections();
  await new Promise((r) => server?.close(r));
});

const call = (to: string, headers: Record<string, string> = {}) =>
  mf.dispatchFetch(`http://parent.test/?to=${encodeURIComponent(to)}&headers=${encodeURIComponent(JSON.stringify(headers))}`);

describe("the gateway inside workerd (Workers outbound face)", () => {
  it("decides, injects, redacts and audits there exactly as on Node", async () => {
    const ok = await call("http://inventory.svc/items", { authorization: "DEFT_SECRET_INV" });
    expect(ok.status).toBe(200);
    expect(await ok.text()).toBe("echo [REDACTED:INV]");
    expect(seen.at(-1)).toEqual({ url: "/api/items", auth: SECRET });

    const before = seen.length;
    const denied = await call("http://elsewhere.example.com/", { authorization: "DEFT_SECRET_INV" });
    expect(denied.status).toBe(403);
    await denied.text();
    // Address literals are checked here too: loopback in any spelling, and the metadata address.
    for (const to of ["http://127.0.0.1:1/", "http://0x7f.1:1/", "http://[::ffff:127.0.0.1]:1/", "http://169.254.169.254/"]) {
      const r = await call(to);
      expect(r.status, to).toBe(403);
      await r.text();
    }
    expect(seen.length).toBe(before);
    const audit = (await (await mf.dispatchFetch("http://parent.test/_audit")).json()) as Array<{ host: string; decision: string; rule: string; via: string; credentials: string[] }>;
    expect(audit[0]).toMatchObject({ host: "inventory.svc", decision: "allow", rule: "services.inventory", via: "workers", credentials: ["INV"] });
    expect(audit.slice(1).every((r) => r.decision === "deny")).toBe(true);
    expect(JSON.stringify(audit)).not.toContain(SECRET);
  });
});
