/**
 * The isolate-tier benchmark section of BENCHMARKS.md: runs the Node-hosted tiers
 * (isolates-node.ts) and the Bun-hosted ones (isolates-bun.ts, under bun) in child processes, one
 * after the other, and renders one table. `npm run bench` includes it; `npm run bench:isolates`
 * runs only this and replaces the section in the existing BENCHMARKS.md.
 */
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { summarize } from "./isolate-bench-core.ts";
import { runJsonLine } from "../run-json-line.ts";
import { fmt, mdTable, spliceSection } from "./stats.ts";

const ROOT = fileURLToPath(new URL("../..", import.meta.url));
export const ISOLATES_START = "<!-- isolates:start -->";
export const ISOLATES_END = "<!-- isolates:end -->";
type Summary = ReturnType<typeof summarize>;

async function runJson(cmd: string, args: string[]): Promise<Summary[]> {
  return (await runJsonLine<Summary[]>(cmd, args, { cwd: ROOT, stderr: "inherit" })).value;
}

export async function benchIsolates(): Promise<Summary[]> {
  process.stderr.write("bench: isolate tiers hosted from Node (deno-subprocess, workers-loader)...\n");
  const node = await runJson(process.execPath, ["--import", "tsx", "test/bench/isolates-node.ts"]);
  process.stderr.write("bench: isolate tiers hosted from Bun (bun-worker, bun-bwrap)...\n");
  const bun = await runJson(join(ROOT, "node_modules", ".bin", "bun"), ["test/bench/isolates-bun.ts"]);
  return [...node, ...bun];
}

const WARM_TARGET_MS = 5;
const COLD_TARGET = 1.15;
const mark = (ok: boolean) => (ok ? "✅ pass" : "❌ fail");

export function isolatesSection(rows: Summary[], runs: number): string {
  const table = mdTable(
    ["tier", "cold p50 / p95 (ms)", "bare floor p50 (ms)", "cold / floor", `target ≤ ${COLD_TARGET}`, "warm: call → snippet running p50 / p95 (ms)", `target < ${WARM_TARGET_MS} ms`, "warm round trip p50 / p95 (ms)", "workspace write+read, host (files/s)", "… from a snippet (files/s)"],
    rows.map((r) => [
      `\`${r.tier}\``,
      `${fmt(r.coldP50, 1)} / ${fmt(r.coldP95, 1)}`,
      fmt(r.floorP50, 1),
      fmt(r.coldP50 / r.floorP50),
      mark(r.coldP50 / r.floorP50 <= COLD_TARGET),
      `${fmt(r.warmStartP50, 2)} / ${fmt(r.warmStartP95, 2)}`,
      mark(r.warmStartP50 < WARM_TARGET_MS),
      `${fmt(r.warmP50, 2)} / ${fmt(r.warmP95, 2)}`,
      fmt(r.hostRwFilesPerS, 0),
      fmt(r.guestRwFilesPerS, 0),
    ]),
  );
  const floors = rows.map((r) => `- \`${r.tier}\`: ${r.floorLabel}`).join("\n");
  return `${ISOLATES_START}
## Isolate tiers: start, execute round trip, workspace throughput (${runs} runs each, same run)

${table}

Bare floors, measured interleaved with the cold starts in the same process:

${floors}

Cold: \`execute({code: "return 1"})\` with no isolate started ahead, from the call to its
result (the snippet travels with the start: the guest reads it as soon as it runs). The floor is
the bare runtime doing the least comparable thing, timed to its end (a process's exit, a
Worker's first message, a loaded isolate's response). Warm: from a pool of isolates started
ahead of need (each used once, never shared); "call → snippet running" is the gap between the
host's call and the snippet's first line, both stamped with \`performance.timeOrigin + now()\`
(one machine, one clock; workerd's clock only advances on I/O, so there it reads the start of
the guest's request). Throughput: 200 files of 1 KiB written then read through \`WorkspaceFs\`,
from the host, and from a snippet (each call a round trip over the host–guest channel).
\`workers-loader\` cannot start a warm isolate ahead of the snippet: workerd forbids \`eval\`, so
the snippet must be one of the isolate's modules at load time, and every call pays a load;
its host also reaches workerd over miniflare's loopback HTTP, which a deployment inside
workerd would not.
${ISOLATES_END}
`;
}

/** `npm run bench:isolates`: only this section, spliced into the existing BENCHMARKS.md. */
if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  const rows = await benchIsolates();
  const section = isolatesSection(rows, Number(process.env["BENCH_ISOLATE_RUNS"] ?? 20));
  const path = join(ROOT, "BENCHMARKS.md");
  writeFileSync(path, spliceSection(readFileSync(path, "utf8"), ISOLATES_START, ISOLATES_END, section));
  process.stdout.write(`${section}\nwrote BENCHMARKS.md\n`);
  process.exit(0);
}
