// The runtime's own share of a live session's memory: a bare Node process (no Deft code) opens
// 100 fetch SSE streams to a loopback server, each receiving one event and sending one POST,
// and reports RSS and heap per stream after GC. Run: npm run bench:bare-sse. Quoted in
// BENCHMARKS.md next to Deft's memory per live session.
import { spawn } from "node:child_process";
const N = 100;
const server = spawn(process.execPath, ["-e", `
const http = require("http");
http.createServer((req, res) => {
  if (req.method === "POST") { req.resume(); req.on("end", () => res.end("{}")); return; }
  res.writeHead(200, { "content-type": "text/event-stream" });
  res.write("event: x\\ndata: {\\"type\\":\\"hello\\",\\"pad\\":\\"" + "y".repeat(300) + "\\"}\\n\\n");
}).listen(4032, "127.0.0.1", () => console.log("up"));`], { stdio: ["ignore", "pipe", "inherit"] });
await new Promise((r) => server.stdout!.once("data", r));
const gc = (globalThis as any).gc;
// warm-up: a few streams and posts
const open = async () => { const r = await fetch("http://127.0.0.1:4032/s"); const rd = r.body!.getReader(); await rd.read(); await (await fetch("http://127.0.0.1:4032/p", { method: "POST", body: "{}" })).text(); return rd; };
const keep: unknown[] = [];
for (let i = 0; i < 5; i++) keep.push(await open());
await new Promise((r) => setTimeout(r, 500)); gc(); gc();
const m0 = process.memoryUsage();
await Promise.all(Array.from({ length: N }, async () => keep.push(await open())));
await new Promise((r) => setTimeout(r, 1000)); gc(); gc();
const m1 = process.memoryUsage();
console.log(`bare fetch SSE streams: RSS ${((m1.rss - m0.rss) / N / 1024).toFixed(0)} KiB/stream, heap ${((m1.heapUsed - m0.heapUsed) / N / 1024).toFixed(0)} KiB/stream`);
server.kill(); process.exit(0);
