// The HTTP client's own share of a live session's memory: a Node process with no Deft code opens
// 100 SSE streams to a loopback server, each receiving one event and sending one POST, and
// reports RSS and heap per stream after GC; once with the global fetch (undici), once with the
// Node shim's node:http fetch, each in a fresh process. Run: npm run bench:bare-sse. Quoted in
// BENCHMARKS.md next to Deft's memory per live session.
import { spawn, spawnSync } from "node:child_process";
import { createHttpFetch } from "../../runtimes/node/http-fetch.ts";

const N = 100;
const clients = { undici: ["global fetch (undici)", fetch], http: ["node:http fetch (runtimes/node)", createHttpFetch()] } as const;
const [mode, base] = process.argv.slice(2) as [keyof typeof clients | undefined, string];

if (!mode) {
  const server = spawn(process.execPath, ["-e", `
const http = require("http");
http.createServer((req, res) => {
  if (req.method === "POST") { req.resume(); req.on("end", () => res.end("{}")); return; }
  res.writeHead(200, { "content-type": "text/event-stream" });
  res.write("event: x\\ndata: {\\"type\\":\\"hello\\",\\"pad\\":\\"" + "y".repeat(300) + "\\"}\\n\\n");
}).listen(0, "127.0.0.1", function () { console.log(this.address().port); });`], { stdio: ["ignore", "pipe", "inherit"] });
  const port = String(await new Promise((r) => server.stdout!.once("data", r))).trim();
  for (const m of Object.keys(clients)) spawnSync(process.execPath, [...process.execArgv, process.argv[1]!, m, `http://127.0.0.1:${port}`], { stdio: "inherit" });
  server.kill();
  process.exit(0);
}

const gc = (globalThis as { gc?: () => void }).gc ?? (() => {});
const [label, f] = clients[mode];
const open = async () => {
  const r = await f(`${base}/s`);
  const rd = r.body!.getReader();
  await rd.read();
  await (await f(`${base}/p`, { method: "POST", body: "{}" })).text();
  return rd;
};
const keep: unknown[] = [];
for (let i = 0; i < 5; i++) keep.push(await open()); // warm-up
await new Promise((r) => setTimeout(r, 500));
gc();
gc();
const m0 = process.memoryUsage();
await Promise.all(Array.from({ length: N }, async () => keep.push(await open())));
await new Promise((r) => setTimeout(r, 1000));
gc();
gc();
const m1 = process.memoryUsage();
console.log(`${label}, ${N} SSE streams: RSS ${((m1.rss - m0.rss) / N / 1024).toFixed(0)} KiB/stream, heap ${((m1.heapUsed - m0.heapUsed) / N / 1024).toFixed(0)} KiB/stream`);
process.exit(0);
