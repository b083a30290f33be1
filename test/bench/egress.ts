/**
 * The egress benchmark section of BENCHMARKS.md: what the gateway adds over a direct request to
 * the same loopback server. The upstream runs in its own process (test/bench/egress-upstream.ts);
 * the sandbox side here calls `gateway.fetch` exactly as an isolate's outbound handler does.
 * Baselines: the global `fetch` (what a program would call) and a bare node:http request (the
 * client the gateway itself uses). The gateway's target is a TEST-NET address that its connect
 * routes to loopback, so the address check runs on every request as it would for a public host.
 *
 * `npm run bench` includes it; `npm run bench:egress` runs only this and replaces the section.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { request as httpRequest, Agent } from "node:http";
import { readFileSync, writeFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { join } from "node:path";
import { MemoryAuditSink } from "../../core/audit/audit.ts";
import { parsePolicy } from "../../core/policy/parse.ts";
import { createSecretSource } from "../../proxy/credentials.ts";
import { createGateway, type Gateway } from "../../proxy/gateway.ts";
import { createNodeEgressNet } from "../../runtimes/node/egress-net.ts";
import { fmt, mdTable, spliceSection } from "./stats.ts";

const ROOT = fileURLToPath(new URL("../..", import.meta.url));
export const EGRESS_START = "<!-- egress:start -->";
export const EGRESS_END = "<!-- egress:end -->";
const PUBLIC = "203.0.113.10";
const BIG = 100 * 1024 * 1024;

export interface EgressBench {
  smallN: number;
  rounds: number;
  /** Sequential small requests, ms per request: p50 and p99 per path. */
  small: Record<"fetch" | "http" | "gateway", { p50: number; p99: number }>;
  /** 100 MB downloads, MB/s, median of `bigRuns`. */
  big: Record<"fetch" | "http" | "gateway", number>;
  bigRuns: number;
  upload: Record<"fetch" | "gateway", number>;
}

function startUpstream(): Promise<{ port: number; child: ChildProcess }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ["--import", "tsx", join(ROOT, "test/bench/egress-upstream.ts")], { stdio: ["ignore", "pipe", "inherit"] });
    child.stdout!.once("data", (b: Buffer) => resolve({ port: Number(b.toString().trim()), child }));
    child.once("error", reject);
  });
}

const pct = (xs: number[], p: number) => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))]!;
};

async function drain(body: ReadableStream<Uint8Array> | null): Promise<number> {
  if (!body) return 0;
  let n = 0;
  const rd = body.getReader();
  for (let c = await rd.read(); !c.done; c = await rd.read()) n += c.value.byteLength;
  return n;
}

function httpGet(agent: Agent, port: number, path: string): Promise<number> {
  return new Promise((resolve, reject) => {
    httpRequest({ host: "127.0.0.1", port, path, agent }, (res) => {
      let n = 0;
      res.on("data", (c: Buffer) => (n += c.length));
      res.on("end", () => resolve(n));
      res.on("error", reject);
    })
      .on("error", reject)
      .end();
  });
}

export async function benchEgress(opts: { smallN?: number; rounds?: number; bigRuns?: number } = {}): Promise<EgressBench> {
  const smallN = opts.smallN ?? 1000;
  const rounds = opts.rounds ?? 5;
  const bigRuns = opts.bigRuns ?? 5;
  const { port, child } = await startUpstream();
  const net = createNodeEgressNet({ connectHook: (address, p) => (address === PUBLIC ? { address: "127.0.0.1", port } : { address, port: p }) });
  const gateway: Gateway = createGateway({
    policy: parsePolicy({ networking: { type: "limited", allowed_hosts: [PUBLIC] }, limits: { response_body_bytes: 2 * BIG, request_body_bytes: 2 * BIG, requests_per_minute: 0 } }),
    net,
    secrets: createSecretSource({ env: {}, readTextFile: async () => "" }),
    audit: new MemoryAuditSink({ maxPerSession: 100 }),
  });
  const session = { sessionId: "sesn_bench", tier: "bench" };
  const agent = new Agent({ keepAlive: true });
  const paths = {
    fetch: async (path: string) => drain((await fetch(`http://127.0.0.1:${port}${path}`)).body),
    http: (path: string) => httpGet(agent, port, path),
    gateway: async (path: string) => {
      const res = await gateway.fetch(new Request(`http://${PUBLIC}${path}`), session);
      if (res.status !== 200) throw new Error(`gateway: ${res.status} ${await res.text()}`);
      return drain(res.body);
    },
  } as const;
  const names = Object.keys(paths) as Array<keyof typeof paths>;
  try {
    // Warm every path (connections, JIT).
    for (const n of names) for (let i = 0; i < 200; i++) await paths[n]("/small");
    const samples: Record<string, number[]> = { fetch: [], http: [], gateway: [] };
    for (let r = 0; r < rounds; r++) {
      for (const n of names) {
        for (let i = 0; i < smallN / rounds; i++) {
          const t = performance.now();
          await paths[n]("/small");
          samples[n]!.push(performance.now() - t);
        }
      }
    }
    const small = Object.fromEntries(names.map((n) => [n, { p50: pct(samples[n]!, 50), p99: pct(samples[n]!, 99) }])) as EgressBench["small"];
    process.stderr.write(`bench: egress small requests done (gateway p50 ${fmt(small.gateway.p50, 3)} ms, fetch ${fmt(small.fetch.p50, 3)} ms)\n`);
    const bigSamples: Record<string, number[]> = { fetch: [], http: [], gateway: [] };
    for (let r = 0; r < bigRuns; r++) {
      for (const n of names) {
        const t = performance.now();
        const got = await paths[n]("/big");
        if (got !== BIG) throw new Error(`${n}: got ${got} bytes of ${BIG}`);
        bigSamples[n]!.push(BIG / 1e6 / ((performance.now() - t) / 1000));
      }
    }
    const big = Object.fromEntries(names.map((n) => [n, pct(bigSamples[n]!, 50)])) as EgressBench["big"];
    // Upload: 100 MB streamed up, counted by the server.
    const upSamples: Record<string, number[]> = { fetch: [], gateway: [] };
    const bodyStream = () => {
      let left = BIG;
      const chunk = new Uint8Array(64 * 1024).fill(97);
      return new ReadableStream<Uint8Array>({
        pull(c) {
          if (left <= 0) return c.close();
          const n = Math.min(left, chunk.byteLength);
          left -= n;
          c.enqueue(n === chunk.byteLength ? chunk : chunk.subarray(0, n));
        },
      });
    };
    for (let r = 0; r < bigRuns; r++) {
      for (const n of ["fetch", "gateway"] as const) {
        const t = performance.now();
        const init = { method: "POST", body: bodyStream(), duplex: "half" } as RequestInit;
        const res = n === "fetch" ? await fetch(`http://127.0.0.1:${port}/upload`, init) : await gateway.fetch(new Request(`http://${PUBLIC}/upload`, init), session);
        const got = Number(await res.text());
        if (got !== BIG) throw new Error(`${n} upload: server got ${got} bytes of ${BIG}`);
        upSamples[n]!.push(BIG / 1e6 / ((performance.now() - t) / 1000));
      }
    }
    const upload = { fetch: pct(upSamples["fetch"]!, 50), gateway: pct(upSamples["gateway"]!, 50) };
    return { smallN, rounds, small, big, bigRuns, upload };
  } finally {
    agent.destroy();
    child.kill();
  }
}

const ADDED_TARGET_MS = 0.5;
const THROUGHPUT_TARGET = 0.9;
const mark = (ok: boolean) => (ok ? "✅ pass" : "❌ fail");

export function egressSection(b: EgressBench): string {
  const added = b.small.gateway.p50 - b.small.fetch.p50;
  const addedHttp = b.small.gateway.p50 - b.small.http.p50;
  const latency = mdTable(
    ["path", "p50 (ms)", "p99 (ms)", "gateway added p50 (ms)", `target < ${ADDED_TARGET_MS} ms`],
    [
      ["direct: global `fetch`", fmt(b.small.fetch.p50, 3), fmt(b.small.fetch.p99, 3), fmt(added, 3), mark(added < ADDED_TARGET_MS)],
      ["direct: bare `node:http`, keep-alive (reference: the client under the gateway)", fmt(b.small.http.p50, 3), fmt(b.small.http.p99, 3), fmt(addedHttp, 3), "(not the target's baseline)"],
      ["through the gateway", fmt(b.small.gateway.p50, 3), fmt(b.small.gateway.p99, 3), "", ""],
    ],
  );
  const tput = mdTable(
    ["100 MB over loopback", "direct `fetch` (MB/s)", "bare `node:http` (MB/s)", "gateway (MB/s)", "gateway / direct fetch", `target ≥ ${THROUGHPUT_TARGET}`],
    [
      ["download", fmt(b.big.fetch, 0), fmt(b.big.http, 0), fmt(b.big.gateway, 0), fmt(b.big.gateway / b.big.fetch), mark(b.big.gateway / b.big.fetch >= THROUGHPUT_TARGET)],
      ["upload", fmt(b.upload.fetch, 0), "", fmt(b.upload.gateway, 0), fmt(b.upload.gateway / b.upload.fetch), mark(b.upload.gateway / b.upload.fetch >= THROUGHPUT_TARGET)],
    ],
  );
  return `${EGRESS_START}
## Egress gateway: added latency and throughput (same run)

${latency}

${tput}

Small: ${b.smallN} sequential GETs of a 2-byte body per path, in ${b.rounds} interleaved rounds, after 200 warm-up
requests each; the upstream is a node:http server in its own process on loopback. Through the gateway
each request is decided by the policy, its address checked (a TEST-NET address the Node shim's
connect routes to loopback), audited, and counted both ways; the sandbox side is the
isolate outbound handler's call, \`gateway.fetch(request, session)\`, in process. Large: 100 MB
streamed each way, median of ${b.bigRuns} runs per path, never buffered whole (the upload is a
64 KiB-chunk stream; the server counts bytes).
${EGRESS_END}`;
}


if (import.meta.url === `file://${process.argv[1]}`) {
  const b = await benchEgress();
  const section = egressSection(b);
  const path = join(ROOT, "BENCHMARKS.md");
  writeFileSync(path, spliceSection(readFileSync(path, "utf8"), EGRESS_START, EGRESS_END, section));
  process.stdout.write(`${section}\n\nwrote the egress section of BENCHMARKS.md\n`);
}
