// The gateway on the Node shim's network, run under each runtime (Node, Deno, Bun) by
// runtimes.test.ts: injection in header and body, redaction, a name resolved through a real DNS
// server on loopback, and the address check refusing loopback and metadata. Prints one JSON line.
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { MemoryAuditSink } from "../../core/audit/audit.ts";
import { parsePolicy } from "../../core/policy/parse.ts";
import { createSecretSource } from "../../proxy/credentials.ts";
import { createGateway } from "../../proxy/gateway.ts";
import { createNodeEgressNet } from "../../runtimes/node/egress-net.ts";
import { startDnsServer } from "../net/dns-server.ts";

const server = createServer((req, res) => {
  let body = "";
  req.on("data", (c: Buffer) => (body += c));
  req.on("end", () => res.end(`auth=${req.headers.authorization} body=${body}`));
});
await new Promise<void>((r) => server.listen(0, "127.0.0.1", () => r()));
const port = (server.address() as AddressInfo).port;
const dns = await startDnsServer({ "api.smoke.test": ["203.0.113.10"], "inside.smoke.test": ["127.0.0.1"] });
const net = createNodeEgressNet({
  dnsServers: [`127.0.0.1:${dns.port}`],
  connectHook: (a, p) => (a === "203.0.113.10" ? { address: "127.0.0.1", port } : { address: a, port: p }),
});
const audit = new MemoryAuditSink();
const gateway = createGateway({
  policy: parsePolicy({
    networking: { type: "unrestricted" },
    credentials: [{ name: "K", secret: { env: "K" }, hosts: ["api.smoke.test"], in: ["header", "body"] }],
  }),
  net,
  secrets: createSecretSource({ env: { K: "smoke-secret-value-1" }, readTextFile: async () => "" }),
  audit,
});
const session = { sessionId: "sesn_smoke", tier: "smoke" };
const status = async (url: string) => {
  const r = await gateway.fetch(new Request(url), session);
  await r.text();
  return r.status;
};
const a = await gateway.fetch(new Request("http://api.smoke.test/x", { method: "POST", headers: { authorization: "DEFT_SECRET_K" }, body: "b=DEFT_SECRET_K" }), session);
const out = {
  allowed: [a.status, await a.text()],
  loopback: await status(`http://127.0.0.1:${port}/`),
  loopbackByName: await status(`http://inside.smoke.test:${port}/`),
  metadata: await status("http://[::ffff:169.254.169.254]/"),
  audit: (await audit.query({ sessionId: session.sessionId })).map((r) => `${r.decision}:${r.rule}`),
};
console.log(JSON.stringify(out));
server.close();
net.close?.();
await dns.close();
