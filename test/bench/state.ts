/**
 * The workspace-state section of BENCHMARKS.md: how long a session's workspace takes to save and
 * to restore (`core/state/workspace-store.ts`), per Store/BlobStore backend. The workspace is
 * 1,000 files / 10 MB of deterministic content in 20 directories (one file in a hundred large,
 * several chunks each; the rest a few KiB). Measured per run, on a fresh, empty backend:
 *
 * - full save: the first snapshot (every file read, hashed and uploaded);
 * - full restore: load it into an empty workspace;
 * - incremental save: after one small file changed (the change record says which);
 * - restore after it: load that second snapshot into an empty workspace.
 *
 * Median of 5 runs each, after one warm-up run per backend. `npm run bench:state` runs the
 * in-memory backend and the Node shim's Deno KV file (`openNodeStores`) in a temp dir, replaces
 * the section in BENCHMARKS.md and prints it.
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { MemoryBlobStore, MemoryStore } from "../../core/state/memory.ts";
import type { BlobStore, Store } from "../../core/state/store.ts";
import { loadWorkspace, saveWorkspace } from "../../core/state/workspace-store.ts";
import { openNodeStores } from "../../runtimes/node/state.ts";
import { createWorkspaceFs } from "../../tools/workspace-fs.ts";
import { fillWorkspace, pseudoRandomBytes, treeDigest } from "../workspace-helpers.ts";
import { fmt, mdTable, spliceSection } from "./stats.ts";
import { runJsonLine } from "../run-json-line.ts";

const ROOT = fileURLToPath(new URL("../..", import.meta.url));
/** Where the state section starts in BENCHMARKS.md. */
export const STATE_START = "<!-- state:start -->";
/** Where it ends. */
export const STATE_END = "<!-- state:end -->";

/** The workspace measured. */
const FILES = 1000;
const TOTAL_BYTES = 10_000_000;
const RUNS = 5;
/** Targets (ms, median). */
const FULL_TARGET_MS = 200;
const INCREMENTAL_TARGET_MS = 20;

/** A backend to measure: `open` gives a fresh, empty store pair each time. */
export interface StateBackend {
  name: string;
  open(): Promise<{ store: Store; blobs: BlobStore; close(): Promise<void> }>;
}

/** One backend's medians (ms) and what was moved. */
export interface StateBenchRow {
  backend: string;
  files: number;
  bytes: number;
  runs: number;
  fullSaveMs: number;
  fullRestoreMs: number;
  incrementalSaveMs: number;
  incrementalRestoreMs: number;
  /** Bytes of chunks the incremental save uploaded (besides its manifest). */
  incrementalUploadedBytes: number;
  /** Chunks in the full snapshot (one blob each). */
  chunks: number;
}

const median = (xs: number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2;
};

async function timed<T>(fn: () => Promise<T>): Promise<{ ms: number; value: T }> {
  const t = performance.now();
  const value = await fn();
  return { ms: performance.now() - t, value };
}

/** One run on a fresh backend: the four timings, with the restores checked against the source. */
async function runOnce(backend: StateBackend): Promise<{ fullSave: number; fullRestore: number; incSave: number; incRestore: number; incUploaded: number; chunks: number }> {
  const { store, blobs, close } = await backend.open();
  try {
    const source = createWorkspaceFs();
    const paths = await fillWorkspace(source, { files: FILES, totalBytes: TOTAL_BYTES, seed: 42 });
    const sessionId = "sesn_bench";

    const full = await timed(() => saveWorkspace(source, { store, blobs, sessionId }));
    const restoredFull = createWorkspaceFs();
    const fullRestore = await timed(() => loadWorkspace(restoredFull, { store, blobs, sessionId }));

    // Change one small file (a few KiB, like an edit).
    const changed = paths[3]!;
    await source.writeFile(changed, pseudoRandomBytes(4096, 4242));
    const inc = await timed(() => saveWorkspace(source, { store, blobs, sessionId, previous: full.value }));
    if (!inc.value.stats.incremental || inc.value.stats.hashedFiles !== 1) throw new Error(`bench: the second save was not incremental (${JSON.stringify(inc.value.stats)})`);
    const restoredInc = createWorkspaceFs();
    const incRestore = await timed(() => loadWorkspace(restoredInc, { store, blobs, sessionId }));

    // Not timed: the restores must be the real thing.
    if (fullRestore.value?.manifestId !== full.value.manifestId) throw new Error("bench: full restore loaded another snapshot");
    if ((await treeDigest(restoredInc)) !== (await treeDigest(source))) throw new Error("bench: the restored workspace differs from the source");
    return { fullSave: full.ms, fullRestore: fullRestore.ms, incSave: inc.ms, incRestore: incRestore.ms, incUploaded: inc.value.stats.uploadedBytes, chunks: full.value.chunkIds.size };
  } finally {
    await close();
  }
}

/** Measure every backend: one warm-up run each, then the median of 5 runs per figure. */
export async function benchWorkspaceState(backends: StateBackend[]): Promise<StateBenchRow[]> {
  const rows: StateBenchRow[] = [];
  for (const backend of backends) {
    await runOnce(backend);
    const runs: Array<Awaited<ReturnType<typeof runOnce>>> = [];
    for (let i = 0; i < RUNS; i++) runs.push(await runOnce(backend));
    const row: StateBenchRow = {
      backend: backend.name,
      files: FILES,
      bytes: TOTAL_BYTES,
      runs: RUNS,
      fullSaveMs: median(runs.map((r) => r.fullSave)),
      fullRestoreMs: median(runs.map((r) => r.fullRestore)),
      incrementalSaveMs: median(runs.map((r) => r.incSave)),
      incrementalRestoreMs: median(runs.map((r) => r.incRestore)),
      incrementalUploadedBytes: median(runs.map((r) => r.incUploaded)),
      chunks: runs[0]!.chunks,
    };
    process.stderr.write(`bench: state ${backend.name}: save ${fmt(row.fullSaveMs, 1)} ms, restore ${fmt(row.fullRestoreMs, 1)} ms, incremental save ${fmt(row.incrementalSaveMs, 1)} ms\n`);
    rows.push(row);
  }
  return rows;
}

const mark = (ms: number, target: number): string => (ms < target ? `✅ < ${target}` : `❌ ≥ ${target}`);

/** The BENCHMARKS.md section for `rows`, between the state markers. */
export function stateSection(rows: StateBenchRow[]): string {
  const table = mdTable(
    ["backend", "full save (ms)", "full restore (ms)", "incremental save (ms)", "restore after it (ms)", "incremental upload (bytes)"],
    rows.map((r) => [
      r.backend,
      `${fmt(r.fullSaveMs, 1)} ${mark(r.fullSaveMs, FULL_TARGET_MS)}`,
      `${fmt(r.fullRestoreMs, 1)} ${mark(r.fullRestoreMs, FULL_TARGET_MS)}`,
      `${fmt(r.incrementalSaveMs, 1)} ${mark(r.incrementalSaveMs, INCREMENTAL_TARGET_MS)}`,
      `${fmt(r.incrementalRestoreMs, 1)} ${mark(r.incrementalRestoreMs, FULL_TARGET_MS)}`,
      String(r.incrementalUploadedBytes),
    ]),
  );
  const files = rows[0]?.files ?? FILES;
  const mb = (rows[0]?.bytes ?? TOTAL_BYTES) / 1e6;
  const chunks = rows[0]?.chunks ?? 0;
  return `${STATE_START}
## Workspace snapshots: save and restore

${table}

A ${files}-file, ${fmt(mb, 0)} MB workspace (20 directories; one file in a hundred large, the rest a few KiB;
deterministic content) saved as content-addressed 60 KiB chunks (${chunks} blobs) plus a manifest and one
compare-and-set of the session's head (\`core/state/workspace-store.ts\`). Full save: the first
snapshot, on an empty backend (every chunk read, hashed, uploaded). Incremental: after one 4 KiB
file changed, the workspace's change record names it, so the save reads, hashes and uploads only
that file, then writes a new manifest. Restores load into an empty workspace and verify every
chunk's hash. Median of ${rows[0]?.runs ?? RUNS} runs, each on a fresh backend, after a warm-up run. Targets:
full < ${FULL_TARGET_MS} ms, incremental save < ${INCREMENTAL_TARGET_MS} ms. Backends on the local disk, each in its own
runtime: Deno KV through \`@deno/kv\` on Node (\`openNodeStores\`), SQLite on Bun (\`bun:sqlite\`,
synchronous=FULL), Deno's native KV; all fsync every commit. Chunks are uploaded with \`putMany\`
(as many blobs per commit as the backend's limits allow, while hashing continues) and restored with
\`getMany\`; an incremental save writes the changed file's chunks, one manifest and the head,
whatever the workspace's size.
${STATE_END}`;
}


/** The in-memory pair. */
export const memoryBackend: StateBackend = {
  name: "memory (MemoryStore + MemoryBlobStore)",
  open: async () => ({ store: new MemoryStore(), blobs: new MemoryBlobStore(), close: async () => {} }),
};

/** A backend opened in a fresh temp dir each time, the dir removed on close. */
export function inTempDir(name: string, open: (dir: string) => Promise<{ store: Store; blobs: BlobStore }>): StateBackend {
  return {
    name,
    open: async () => {
      const dir = mkdtempSync(join(tmpdir(), "deft-bench-state-"));
      const { store, blobs } = await open(dir);
      return {
        store,
        blobs,
        close: async () => {
          await store.close();
          await blobs.close();
          rmSync(dir, { recursive: true, force: true });
        },
      };
    },
  };
}

/** The Node shim's Deno KV file in a fresh temp dir per open. */
export const nodeKvBackend: StateBackend = inTempDir("Deno KV file (`openNodeStores`)", openNodeStores);

/** The backends that need their own runtime (SQLite on Bun, Deno's native KV), each in a child process. */
export async function benchStateInRuntimes(): Promise<StateBenchRow[]> {
  const bin = (n: string) => join(ROOT, "node_modules", ".bin", n);
  const script = join(ROOT, "test/bench/state-backend.ts");
  const run = async (cmd: string, args: string[]) => (await runJsonLine<StateBenchRow[]>(cmd, args, { cwd: ROOT, stderr: "inherit" })).value;
  const bun = await run(bin("bun"), [script, "bun-sqlite"]);
  const deno = await run(bin("deno"), ["run", "-A", "--unstable-kv", "--unstable-sloppy-imports", "--no-lock", script, "deno-kv"]);
  return [...bun, ...deno];
}

/** Every backend: memory and Deno KV (@deno/kv) here, SQLite under Bun, native Deno KV under Deno. */
export async function benchAllState(): Promise<StateBenchRow[]> {
  return [...(await benchWorkspaceState([memoryBackend, nodeKvBackend])), ...(await benchStateInRuntimes())];
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const rows = await benchAllState();
  const section = stateSection(rows);
  const path = join(ROOT, "BENCHMARKS.md");
  writeFileSync(path, spliceSection(readFileSync(path, "utf8"), STATE_START, STATE_END, section));
  process.stdout.write(`${section}\n\nwrote the state section of BENCHMARKS.md\n`);
}
