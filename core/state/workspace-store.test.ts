import { spawn } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, describe, expect, test } from "vitest";
import type { Tool, ToolContext } from "../router/mod.ts";
import type { WorkspaceFs } from "../sandbox/sandbox.ts";
import { openNodeStores } from "../../runtimes/node/state.ts";
import { standardToolset } from "../../tools/standard-toolset.ts";
import { createWorkspaceFs, type BashWorkspaceFs } from "../../tools/workspace-fs.ts";
import { describeTree, pseudoRandomBytes, treeDigest } from "../../test/workspace-helpers.ts";
import { MemoryBlobStore, MemoryStore } from "./memory.ts";
import type { BlobStore, Store } from "./store.ts";
import {
  CHUNK_BYTES,
  WorkspaceConflictError,
  WorkspaceCorruptError,
  chunkKey,
  loadWorkspace,
  manifestKey,
  pruneWorkspaceBlobs,
  saveWorkspace,
  sha256Hex,
  workspaceHeadKey,
  type SnapshotInfo,
} from "./workspace-store.ts";

const ROOT = fileURLToPath(new URL("../..", import.meta.url));

interface Backend {
  name: string;
  open(): Promise<{ store: Store; blobs: BlobStore }>;
}

const tempDirs: string[] = [];
afterAll(() => {
  for (const d of tempDirs) rmSync(d, { recursive: true, force: true });
});
const tempDir = (): string => {
  const d = mkdtempSync(join(tmpdir(), "deft-ws-"));
  tempDirs.push(d);
  return d;
};

const BACKENDS: Backend[] = [
  { name: "memory", open: async () => ({ store: new MemoryStore(), blobs: new MemoryBlobStore() }) },
  { name: "deno-kv file (openNodeStores)", open: () => openNodeStores(tempDir()) },
];

/** A BlobStore that records every call and can fail every `put` after the first `failAfterPuts`. */
class RecordingBlobs implements BlobStore {
  readonly name: string;
  puts: string[] = [];
  hasCalls = 0;
  failAfterPuts = Number.POSITIVE_INFINITY;
  constructor(readonly inner: BlobStore) {
    this.name = `recording(${inner.name})`;
  }
  async put(key: string, data: Uint8Array): Promise<void> {
    if (this.puts.length >= this.failAfterPuts) throw new Error(`simulated crash before put ${key}`);
    this.puts.push(key);
    await this.inner.put(key, data);
  }
  get(key: string): Promise<Uint8Array | null> {
    return this.inner.get(key);
  }
  has(key: string): Promise<boolean> {
    this.hasCalls++;
    return this.inner.has(key);
  }
  delete(key: string): Promise<void> {
    return this.inner.delete(key);
  }
  list(prefix: string): AsyncIterable<string> {
    return this.inner.list(prefix);
  }
  close(): Promise<void> {
    return this.inner.close();
  }
}

/** A Store whose every `set` fails (a crash at the head write); reads go through. */
class FailingSetStore implements Store {
  readonly name = "failing-set";
  constructor(readonly inner: Store) {}
  get: Store["get"] = (key) => this.inner.get(key);
  async set(): Promise<never> {
    throw new Error("simulated crash at the head write");
  }
  delete: Store["delete"] = (key, opts) => this.inner.delete(key, opts);
  list: Store["list"] = (prefix, opts) => this.inner.list(prefix, opts);
  close: Store["close"] = () => this.inner.close();
}

/** `fs` with its `readFile` calls counted (the change-tracking methods still reach `fs`). */
function countingReads(fs: BashWorkspaceFs): { fs: BashWorkspaceFs; reads: string[] } {
  const reads: string[] = [];
  const wrapped: BashWorkspaceFs = {
    ...fs,
    readFile: (p) => {
      reads.push(p);
      return fs.readFile(p);
    },
  };
  return { fs: wrapped, reads };
}

/** The same tree without change tracking: saving it always walks and hashes everything. */
const untracked = (fs: WorkspaceFs): WorkspaceFs => ({ ...fs, takeChanges: undefined, returnChanges: undefined });

/** The manifest id a full walk of `fs` gives (saved into a throwaway store). */
async function fullScanManifestId(fs: WorkspaceFs): Promise<string> {
  const info = await saveWorkspace(untracked(fs), { store: new MemoryStore(), blobs: new MemoryBlobStore(), sessionId: "scan" });
  expect(info.stats.incremental).toBe(false);
  return info.manifestId;
}

const noop = (): void => undefined;
const log = { debug: noop, info: noop, warn: noop, error: noop, child: () => log } as unknown as ToolContext["log"];

/** Runs the standard toolset's `bash` over `fs`; returns its output text (throws on is_error). */
function bashOver(fs: BashWorkspaceFs): (command: string) => Promise<string> {
  const bash = standardToolset(fs).find((t) => t.name === "bash") as Tool;
  const ctx: ToolContext = { sessionId: "s", toolUseId: "t", signal: new AbortController().signal, log };
  return async (command) => String(await bash.run(bash.input.parse({ command }), ctx));
}

/** Every byte value, three times over, in a scrambled order. */
const allByteValues = (): Uint8Array => {
  const out = new Uint8Array(768);
  for (let i = 0; i < out.length; i++) out[i] = (i * 167) & 0xff;
  return out;
};

/** A workspace with every kind of entry and attribute a snapshot must keep. */
async function richWorkspace(): Promise<BashWorkspaceFs> {
  const fs = createWorkspaceFs();
  await fs.writeFile("bin/all-bytes.dat", allByteValues());
  await fs.writeFile("empty.txt", new Uint8Array(0));
  await fs.mkdir("empty-dir");
  await fs.mkdir("deep/a/b/c/d", { recursive: true });
  await fs.writeFile("deep/a/b/c/d/leaf.txt", "leaf\n");
  await fs.writeFile("deep/a/sibling.txt", "sibling");
  await fs.writeFile("big/five-mib.bin", pseudoRandomBytes(5 * 1024 * 1024 + 123, 5));
  await fs.writeFile("exactly-one-chunk.bin", pseudoRandomBytes(CHUNK_BYTES, 6));
  await fs.symlink("bin/all-bytes.dat", "link-to-file");
  await fs.symlink("deep/a", "link-to-dir");
  await fs.symlink("nowhere/at/all", "dangling");
  await fs.symlink("/etc/passwd", "outside");
  await fs.writeFile("script.sh", "#!/bin/sh\necho hi\n");
  await fs.chmod("script.sh", 0o755);
  await fs.chmod("bin/all-bytes.dat", 0o600);
  await fs.chmod("deep/a/b", 0o700);
  await fs.utimes("empty.txt", 1_600_000_000_000);
  await fs.utimes("deep/a", 1_500_000_000_123);
  return fs;
}

describe.each(BACKENDS)("workspace snapshots on $name", (backend) => {
  test("round trip is byte-identical: binary, empty, nested, symlinks, modes, mtimes, 5 MiB", async () => {
    const { store, blobs } = await backend.open();
    try {
      const source = await richWorkspace();
      const expected = await describeTree(source);
      expect(expected.find((r) => r.path === "script.sh")?.mode).toBe(0o755);
      expect(expected.find((r) => r.path === "deep/a")?.mtimeMs).toBe(1_500_000_000_123);

      const saved = await saveWorkspace(source, { store, blobs, sessionId: "sesn_rt" });
      expect(saved.seq).toBe(1);
      expect(saved.files).toBe(expected.filter((r) => r.type === "file").length);
      expect(saved.bytes).toBe(expected.reduce((n, r) => n + (r.type === "file" ? r.size : 0), 0));
      // The 5 MiB file spans ceil(size / CHUNK_BYTES) chunks.
      const big = saved.manifest.entries.find((e) => e.path === "big/five-mib.bin");
      expect(big?.type === "file" && big.chunks.length).toBe(Math.ceil((5 * 1024 * 1024 + 123) / CHUNK_BYTES));

      // The target already has content: restore replaces all of it.
      const target = createWorkspaceFs();
      await target.writeFile("stale/file.txt", "must disappear");
      const loaded = await loadWorkspace(target, { store, blobs, sessionId: "sesn_rt" });
      expect(loaded?.manifestId).toBe(saved.manifestId);
      expect(loaded?.version).toBe(saved.version);
      expect(await describeTree(target)).toEqual(expected);
      expect(await target.exists("stale")).toBe(false);
      expect(Buffer.from(await target.readFile("bin/all-bytes.dat")).equals(Buffer.from(allByteValues()))).toBe(true);
    } finally {
      await store.close();
      await blobs.close();
    }
  });

  test("a session without a snapshot loads as null and the workspace is left alone", async () => {
    const { store, blobs } = await backend.open();
    try {
      const fs = createWorkspaceFs();
      await fs.writeFile("keep.txt", "mine");
      expect(await loadWorkspace(fs, { store, blobs, sessionId: "sesn_none" })).toBeNull();
      expect(new TextDecoder().decode(await fs.readFile("keep.txt"))).toBe("mine");
    } finally {
      await store.close();
      await blobs.close();
    }
  });

  test("an incremental save after one change uploads that file's chunks and one manifest, and reads only that file", async () => {
    const { store, blobs: inner } = await backend.open();
    const blobs = new RecordingBlobs(inner);
    try {
      const base = createWorkspaceFs();
      for (let i = 0; i < 50; i++) await base.writeFile(`dir${i % 5}/file${i}.bin`, pseudoRandomBytes(1000 + i * 97, i + 1));
      await base.writeFile("dir0/three-chunks.bin", pseudoRandomBytes(2 * CHUNK_BYTES + 10, 99));
      const { fs, reads } = countingReads(base);
      const first = await saveWorkspace(fs, { store, blobs, sessionId: "sesn_inc" });
      expect(first.stats.incremental).toBe(false);
      expect(first.stats.hashedFiles).toBe(51);

      // Rewrite one three-chunk file with entirely new content.
      await fs.writeFile("dir0/three-chunks.bin", pseudoRandomBytes(2 * CHUNK_BYTES + 10, 100));
      blobs.puts = [];
      reads.length = 0;
      const second = await saveWorkspace(fs, { store, blobs, sessionId: "sesn_inc", previous: first });
      expect(second.stats.incremental).toBe(true);
      expect(second.stats.hashedFiles).toBe(1);
      expect(second.stats.hashedBytes).toBe(2 * CHUNK_BYTES + 10);
      expect(reads).toEqual(["/workspace/dir0/three-chunks.bin"]);
      const entry = second.manifest.entries.find((e) => e.path === "dir0/three-chunks.bin");
      const newChunks = entry?.type === "file" ? entry.chunks.map(chunkKey) : [];
      expect(newChunks).toHaveLength(3);
      expect([...blobs.puts].sort()).toEqual([...newChunks, manifestKey(second.manifestId)].sort());
      expect(second.seq).toBe(2);
      // The incremental manifest is exactly what a full walk produces.
      expect(second.manifestId).toBe(await fullScanManifestId(fs));

      // Nothing changed: no blob written, the head still moves (seq) and stays loadable.
      blobs.puts = [];
      reads.length = 0;
      const third = await saveWorkspace(fs, { store, blobs, sessionId: "sesn_inc", previous: second });
      expect(blobs.puts).toEqual([]);
      expect(reads).toEqual([]);
      expect(third.manifestId).toBe(second.manifestId);
      expect(third.seq).toBe(3);

      const restored = createWorkspaceFs();
      await loadWorkspace(restored, { store, blobs, sessionId: "sesn_inc" });
      expect(await treeDigest(restored)).toBe(await treeDigest(base));
    } finally {
      await store.close();
      await blobs.close();
    }
  });

  test("a CAS conflict from a second writer raises WorkspaceConflictError and the first writer's head stays", async () => {
    const { store, blobs } = await backend.open();
    try {
      const origin = createWorkspaceFs();
      await origin.writeFile("shared.txt", "v0");
      await saveWorkspace(origin, { store, blobs, sessionId: "sesn_cas" });

      // Two workers restore the same snapshot (the lease should prevent this; the store must not rely on it).
      const a = createWorkspaceFs();
      const b = createWorkspaceFs();
      const fromA = (await loadWorkspace(a, { store, blobs, sessionId: "sesn_cas" }))!;
      const fromB = (await loadWorkspace(b, { store, blobs, sessionId: "sesn_cas" }))!;
      await a.writeFile("shared.txt", "written by A");
      await b.writeFile("shared.txt", "written by B");
      await b.writeFile("only-b.txt", "B");
      const savedA = await saveWorkspace(a, { store, blobs, sessionId: "sesn_cas", previous: fromA });

      const err = await saveWorkspace(b, { store, blobs, sessionId: "sesn_cas", previous: fromB }).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(WorkspaceConflictError);
      expect((err as WorkspaceConflictError).code).toBe("workspace_conflict");
      expect((err as Error).message).toContain("sesn_cas");
      // A fresh writer that never loaded cannot overwrite either.
      await expect(saveWorkspace(createWorkspaceFs(), { store, blobs, sessionId: "sesn_cas" })).rejects.toBeInstanceOf(WorkspaceConflictError);

      const head = await store.get<{ manifest: string }>(workspaceHeadKey("sesn_cas"));
      expect(head?.value.manifest).toBe(savedA.manifestId);
      const check = createWorkspaceFs();
      await loadWorkspace(check, { store, blobs, sessionId: "sesn_cas" });
      expect(new TextDecoder().decode(await check.readFile("shared.txt"))).toBe("written by A");
      expect(await check.exists("only-b.txt")).toBe(false);
      // B's change record was handed back, not lost.
      const pending = b.takeChanges();
      expect(pending.entries).toContain("/workspace/only-b.txt");
      expect(pending.entries).toContain("/workspace/shared.txt");
    } finally {
      await store.close();
      await blobs.close();
    }
  });

  test("a save that crashes after any number of blob writes leaves the previous snapshot loadable and identical", async () => {
    const { store, blobs: inner } = await backend.open();
    const blobs = new RecordingBlobs(inner);
    try {
      const fs = createWorkspaceFs();
      for (let i = 0; i < 8; i++) await fs.writeFile(`src/${i}.txt`, pseudoRandomBytes(3000 + i, 40 + i));
      const first = await saveWorkspace(fs, { store, blobs, sessionId: "sesn_crash" });
      const before = await treeDigest(fs);

      await fs.writeFile("src/0.txt", "changed");
      await fs.writeFile("new/big.bin", pseudoRandomBytes(3 * CHUNK_BYTES, 77));
      await fs.remove("src/7.txt");
      const keysBefore = new Set<string>();
      for await (const key of inner.list("")) keysBefore.add(key);
      // The save needs 4 chunk puts ("changed" and three for big.bin), then the manifest's.
      const savePuts = 5;
      for (let failAfter = 0; failAfter < savePuts; failAfter++) {
        blobs.puts = [];
        blobs.failAfterPuts = failAfter;
        await expect(saveWorkspace(fs, { store, blobs, sessionId: "sesn_crash", previous: first })).rejects.toThrow(/simulated crash/);
        expect(blobs.puts).toHaveLength(failAfter);
        const check = createWorkspaceFs();
        const loaded = await loadWorkspace(check, { store, blobs, sessionId: "sesn_crash" });
        expect(loaded?.manifestId).toBe(first.manifestId);
        expect(await treeDigest(check)).toBe(before);
        // Start the next attempt from the same blobs as this one (a crash leaves nothing else behind).
        for await (const key of inner.list("")) if (!keysBefore.has(key)) await inner.delete(key);
      }
      // The store failing at the compare-and-set is the same: nothing moved.
      const failingStore = new FailingSetStore(store);
      blobs.failAfterPuts = Number.POSITIVE_INFINITY;
      await expect(saveWorkspace(fs, { store: failingStore, blobs, sessionId: "sesn_crash", previous: first })).rejects.toThrow(/head write/);

      // Every failed attempt handed its change record back: the retry saves all of the changes.
      const retried = await saveWorkspace(fs, { store, blobs, sessionId: "sesn_crash", previous: first });
      expect(retried.stats.incremental).toBe(true);
      expect(retried.manifestId).toBe(await fullScanManifestId(fs));
      const check = createWorkspaceFs();
      await loadWorkspace(check, { store, blobs, sessionId: "sesn_crash" });
      expect(await treeDigest(check)).toBe(await treeDigest(fs));
    } finally {
      await store.close();
      await blobs.close();
    }
  });

  test("concurrent saves of two sessions do not mix", async () => {
    const { store, blobs } = await backend.open();
    try {
      const a = createWorkspaceFs();
      const b = createWorkspaceFs();
      for (let i = 0; i < 30; i++) {
        await a.writeFile(`same/name-${i}.txt`, pseudoRandomBytes(2000 + i, 100 + i));
        await b.writeFile(`same/name-${i}.txt`, pseudoRandomBytes(2000 + i, 200 + i));
      }
      await a.writeFile("shared-content.bin", pseudoRandomBytes(CHUNK_BYTES + 5, 9)); // same bytes in both: one set of chunks
      await b.writeFile("shared-content.bin", pseudoRandomBytes(CHUNK_BYTES + 5, 9));
      let [infoA, infoB] = await Promise.all([
        saveWorkspace(a, { store, blobs, sessionId: "sesn_a" }),
        saveWorkspace(b, { store, blobs, sessionId: "sesn_b" }),
      ]);
      await a.writeFile("same/name-3.txt", "A's change");
      await b.remove("same/name-3.txt");
      [infoA, infoB] = await Promise.all([
        saveWorkspace(a, { store, blobs, sessionId: "sesn_a", previous: infoA }),
        saveWorkspace(b, { store, blobs, sessionId: "sesn_b", previous: infoB }),
      ]);
      expect(infoA.manifestId).not.toBe(infoB.manifestId);
      const [ra, rb] = [createWorkspaceFs(), createWorkspaceFs()];
      await Promise.all([loadWorkspace(ra, { store, blobs, sessionId: "sesn_a" }), loadWorkspace(rb, { store, blobs, sessionId: "sesn_b" })]);
      expect(await treeDigest(ra)).toBe(await treeDigest(a));
      expect(await treeDigest(rb)).toBe(await treeDigest(b));
      expect(await treeDigest(ra)).not.toBe(await treeDigest(rb));
    } finally {
      await store.close();
      await blobs.close();
    }
  });
});

describe("change tracking", () => {
  test("bash-made changes are tracked: echo, mv, rm -r", async () => {
    const store = new MemoryStore();
    const blobs = new RecordingBlobs(new MemoryBlobStore());
    const fs = createWorkspaceFs();
    const bash = bashOver(fs);
    await fs.writeFile("dir/inner/x.txt", "x");
    await fs.writeFile("dir/y.txt", "y");
    for (let i = 0; i < 20; i++) await fs.writeFile(`other/${i}.txt`, `other ${i}`);
    const first = await saveWorkspace(fs, { store, blobs, sessionId: "sesn_bash" });

    await bash("echo hi > a.txt; mv a.txt b.txt; rm -r dir");
    const changes = fs.takeChanges();
    expect(changes.all).toBe(false);
    expect([...changes.entries, ...changes.trees]).toEqual(expect.arrayContaining(["/workspace/a.txt", "/workspace/b.txt", "/workspace/dir"]));
    fs.returnChanges(changes);

    blobs.puts = [];
    const second = await saveWorkspace(fs, { store, blobs, sessionId: "sesn_bash", previous: first });
    expect(second.stats.incremental).toBe(true);
    expect(second.stats.hashedFiles).toBe(1);
    expect(second.manifest.entries.map((e) => e.path).filter((p) => !p.startsWith("other"))).toEqual(["b.txt"]);
    expect(second.manifestId).toBe(await fullScanManifestId(fs));

    const check = createWorkspaceFs();
    await loadWorkspace(check, { store, blobs, sessionId: "sesn_bash" });
    expect(new TextDecoder().decode(await check.readFile("b.txt"))).toBe("hi\n");
    expect(await check.exists("a.txt")).toBe(false);
    expect(await check.exists("dir")).toBe(false);
  });

  test("after every kind of change, the incremental manifest equals a full walk's", async () => {
    const store = new MemoryStore();
    const blobs = new MemoryBlobStore();
    const fs = createWorkspaceFs();
    const bash = bashOver(fs);
    await fs.writeFile("real/sub/f.txt", "f");
    await fs.writeFile("keep/k.txt", "k");
    let info: SnapshotInfo = await saveWorkspace(fs, { store, blobs, sessionId: "sesn_eq" });
    const steps: Array<[string, () => Promise<unknown>]> = [
      ["write through the fs", () => fs.writeFile("new/deep/file.txt", "new")],
      ["symlink to a directory", () => bash("ln -s real link")],
      ["write through a symlinked directory", () => bash("echo ghost > link/ghost.txt")],
      ["touch through a symlinked directory", () => bash("touch link/sub/f.txt")],
      ["touch a symlink to a directory", () => bash("touch link")],
      ["cp -r", () => bash("cp -r real copy")],
      ["mv a directory into an existing one", () => bash("mkdir -p dest && mv copy dest/")],
      ["chmod", () => bash("chmod 600 keep/k.txt && chmod 700 keep")],
      ["append", () => bash("echo more >> keep/k.txt")],
      ["hard link then write the original", () => bash("ln keep/k.txt hard.txt && echo changed > keep/k.txt")],
      ["remove a symlink and make a directory in its place", async () => {
        await fs.remove("link");
        await bash("mkdir link");
      }],
      ["rm -r and re-create the same name", () => bash("rm -r real && mkdir -p real/other && echo again > real/other/g.txt")],
      ["replace a file with a directory", () => bash("rm hard.txt && mkdir hard.txt")],
      ["rename through the fs", () => fs.rename("dest", "renamed")],
      ["touch with a date", () => bash("touch -d '2020-01-01' keep/k.txt")],
      ["remove everything", () => bash("rm -r /workspace/*")],
      ["start again", () => bash("mkdir a && echo 1 > a/1 && ln -s a b")],
      ["rename a symlink to a directory", () => bash("mv b c")],
    ];
    for (const [name, step] of steps) {
      await step();
      info = await saveWorkspace(fs, { store, blobs, sessionId: "sesn_eq", previous: info });
      expect({ step: name, incremental: info.stats.incremental, id: info.manifestId }).toEqual({ step: name, incremental: true, id: await fullScanManifestId(fs) });
    }
  });

  test("random sequences of changes through both views (seeded): every incremental manifest equals a full walk's", async () => {
    const names = ["a", "b", "c", "a/b", "a/c", "b/a", "c/c/c", "a/b/c", "l", "a/l", "l/a", "l/b/c", "a/l/b"];
    for (let seed = 1; seed <= 10; seed++) {
      const random = pseudoRandomBytes(4 * 60, seed);
      let r = 0;
      const pick = <T,>(xs: readonly T[]): T => xs[random[r++]! % xs.length]!;
      const fs = createWorkspaceFs();
      const bash = bashOver(fs);
      const sh = (command: string): Promise<unknown> => bash(command).catch(() => undefined);
      const store = new MemoryStore();
      const blobs = new MemoryBlobStore();
      let info = await saveWorkspace(fs, { store, blobs, sessionId: "sesn_fuzz" });
      const history: string[] = [];
      for (let step = 0; step < 60; step++) {
        const p = pick(names);
        const q = pick(names);
        const ops: Array<[string, () => Promise<unknown>]> = [
          [`write ${p}`, () => fs.writeFile(p, `v${step}`)],
          [`mkdir ${p}`, () => fs.mkdir(p, { recursive: true })],
          [`remove ${p}`, () => fs.remove(p, { recursive: true })],
          [`rename ${p} ${q}`, () => fs.rename(p, q)],
          [`symlink ${q} ${p}`, () => fs.symlink(step % 2 ? q : `/workspace/${q}`, p)],
          [`chmod ${p}`, () => fs.chmod(p, 0o600 + step)],
          [`sh echo > ${p}`, () => sh(`echo ${step} > ${p}`)],
          [`sh echo >> ${p}`, () => sh(`echo ${step} >> ${p}`)],
          [`sh cp -r ${p} ${q}`, () => sh(`cp -r ${p} ${q}`)],
          [`sh mv ${p} ${q}`, () => sh(`mv ${p} ${q}`)],
          [`sh rm -rf ${p}`, () => sh(`rm -rf ${p}`)],
          [`sh touch ${p}`, () => sh(`touch ${p}`)],
          [`sh ln -s ${q} ${p}`, () => sh(`ln -s ${q} ${p}`)],
          [`sh ln ${q} ${p}`, () => sh(`ln ${q} ${p}`)],
          [`sh chmod 700 ${p}`, () => sh(`chmod 700 ${p}`)],
          [`sh touch -d 2020-01-01 ${p}`, () => sh(`touch -d 2020-01-01 ${p}`)],
        ];
        const [name, op] = pick(ops);
        history.push(name);
        await op().catch(() => undefined); // many operations fail (ENOENT, EEXIST...): that is part of the test
        if (pick([0, 1, 2]) === 0 || step === 59) {
          info = await saveWorkspace(fs, { store, blobs, sessionId: "sesn_fuzz", previous: info });
          expect({ seed, history, incremental: info.stats.incremental, id: info.manifestId }).toEqual({ seed, history, incremental: true, id: await fullScanManifestId(fs) });
        }
      }
    }
  }, 60_000);

  test("a change record that overflows says so, and the save walks everything instead", async () => {
    const store = new MemoryStore();
    const blobs = new MemoryBlobStore();
    const fs = createWorkspaceFs({ limits: { maxEntries: 100 } });
    await fs.writeFile("kept.txt", "kept");
    const first = await saveWorkspace(fs, { store, blobs, sessionId: "sesn_many" });
    // 5,001 short-lived files: 10,002 recorded paths, past the record's cap (10,000 here).
    for (let i = 0; i <= 5000; i++) {
      await fs.writeFile(`tmp/${i}`, "x");
      await fs.remove(`tmp/${i}`);
    }
    await fs.writeFile("last.txt", "last");
    const second = await saveWorkspace(fs, { store, blobs, sessionId: "sesn_many", previous: first });
    expect(second.stats.incremental).toBe(false);
    expect(second.manifest.entries.map((e) => e.path)).toEqual(["kept.txt", "last.txt", "tmp"]);
    expect(second.manifestId).toBe(await fullScanManifestId(fs));
    // The next change is tracked again.
    await fs.writeFile("after.txt", "after");
    const third = await saveWorkspace(fs, { store, blobs, sessionId: "sesn_many", previous: second });
    expect(third.stats).toMatchObject({ incremental: true, hashedFiles: 1 });
  });

  test("a save with a stale or foreign `previous` falls back to a full walk", async () => {
    const store = new MemoryStore();
    const blobs = new MemoryBlobStore();
    const fs = createWorkspaceFs();
    await fs.writeFile("a.txt", "a");
    const first = await saveWorkspace(fs, { store, blobs, sessionId: "sesn_stale" });
    await fs.writeFile("b.txt", "b");
    const second = await saveWorkspace(fs, { store, blobs, sessionId: "sesn_stale", previous: first });
    // Another workspace object, restored elsewhere: its change record is not relative to `second`.
    const other = createWorkspaceFs();
    await other.writeFile("c.txt", "c");
    const third = await saveWorkspace(other, { store, blobs, sessionId: "sesn_stale", previous: second });
    expect(third.stats.incremental).toBe(false);
    expect(third.manifest.entries.map((e) => e.path)).toEqual(["c.txt"]);
  });
});

describe("damaged snapshots", () => {
  async function saved(): Promise<{ store: MemoryStore; blobs: MemoryBlobStore; info: SnapshotInfo }> {
    const store = new MemoryStore();
    const blobs = new MemoryBlobStore();
    const fs = createWorkspaceFs();
    await fs.writeFile("docs/readme.md", "hello");
    await fs.writeFile("data/big.bin", pseudoRandomBytes(2 * CHUNK_BYTES, 3));
    const info = await saveWorkspace(fs, { store, blobs, sessionId: "sesn_bad" });
    return { store, blobs, info };
  }
  const chunksOf = (info: SnapshotInfo, path: string): string[] => {
    const e = info.manifest.entries.find((x) => x.path === path);
    return e?.type === "file" ? e.chunks : [];
  };

  test("a corrupted chunk is an error naming the file, and the workspace is left as it was", async () => {
    const { store, blobs, info } = await saved();
    const chunk = chunksOf(info, "data/big.bin")[1]!;
    const bytes = (await blobs.get(chunkKey(chunk)))!;
    bytes[100] = bytes[100]! ^ 1;
    await blobs.put(chunkKey(chunk), bytes);
    const fs = createWorkspaceFs();
    await fs.writeFile("untouched.txt", "here before");
    const err = await loadWorkspace(fs, { store, blobs, sessionId: "sesn_bad" }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(WorkspaceCorruptError);
    expect((err as WorkspaceCorruptError).path).toBe("data/big.bin");
    expect((err as Error).message).toContain(`file "data/big.bin": chunk ${chunk} does not match its hash`);
    expect(await describeTree(fs)).toEqual([expect.objectContaining({ path: "untouched.txt" })]);
  });

  test("a missing chunk, a missing or altered manifest, a malformed head: each a clear error", async () => {
    const { store, blobs, info } = await saved();
    await blobs.delete(chunkKey(chunksOf(info, "docs/readme.md")[0]!));
    await expect(loadWorkspace(createWorkspaceFs(), { store, blobs, sessionId: "sesn_bad" })).rejects.toThrow(/file "docs\/readme.md": chunk [0-9a-f]{64} is missing/);

    const manifest = (await blobs.get(manifestKey(info.manifestId)))!;
    await blobs.put(manifestKey(info.manifestId), manifest.subarray(1));
    await expect(loadWorkspace(createWorkspaceFs(), { store, blobs, sessionId: "sesn_bad" })).rejects.toThrow(/does not match its hash/);
    await blobs.delete(manifestKey(info.manifestId));
    await expect(loadWorkspace(createWorkspaceFs(), { store, blobs, sessionId: "sesn_bad" })).rejects.toThrow(/manifest [0-9a-f]{64} is missing/);

    await store.set(workspaceHeadKey("sesn_bad"), { manifest: "not-a-hash" });
    await expect(loadWorkspace(createWorkspaceFs(), { store, blobs, sessionId: "sesn_bad" })).rejects.toBeInstanceOf(WorkspaceCorruptError);
  });

  test("a manifest with a path escaping the root is refused before anything is written", async () => {
    const store = new MemoryStore();
    const blobs = new MemoryBlobStore();
    for (const path of ["../escape.txt", "/etc/passwd", "a/../../b", "a//b"]) {
      const json = new TextEncoder().encode(JSON.stringify({ format: "deft.workspace.v1", entries: [{ path, type: "symlink", mode: 511, mtimeMs: 0, target: "x" }] }));
      const id = await sha256Hex(json);
      await blobs.put(manifestKey(id), json);
      await store.set(workspaceHeadKey("sesn_evil"), { manifest: id, at: 0, files: 0, bytes: 0, seq: 1 });
      const err = await loadWorkspace(createWorkspaceFs(), { store, blobs, sessionId: "sesn_evil" }).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(WorkspaceCorruptError);
      expect((err as Error).message).toMatch(/malformed/);
    }
  });
});

describe("pruneWorkspaceBlobs", () => {
  test("deletes only blobs no head references, after the grace period, and every head still loads", async () => {
    const store = new MemoryStore();
    const blobs = new MemoryBlobStore();
    const a = createWorkspaceFs();
    const b = createWorkspaceFs();
    await a.writeFile("a.bin", pseudoRandomBytes(CHUNK_BYTES * 2, 1));
    await b.writeFile("b.bin", pseudoRandomBytes(1000, 2));
    await b.writeFile("shared.bin", pseudoRandomBytes(5000, 3));
    await a.writeFile("shared.bin", pseudoRandomBytes(5000, 3));
    let infoA = await saveWorkspace(a, { store, blobs, sessionId: "sesn_a" });
    const infoB = await saveWorkspace(b, { store, blobs, sessionId: "sesn_b" });
    // A replaces a.bin: its two old chunks and the old manifest become garbage.
    await a.writeFile("a.bin", "small now");
    infoA = await saveWorkspace(a, { store, blobs, sessionId: "sesn_a", previous: infoA });
    const digests = { a: await treeDigest(a), b: await treeDigest(b) };
    const count = async (prefix: string): Promise<number> => {
      let n = 0;
      for await (const _ of blobs.list(prefix)) n++;
      return n;
    };
    expect(await count("chunks/")).toBe(2 + 1 + 1 + 1); // old a.bin ×2, shared, b.bin, new a.bin
    expect(await count("manifests/")).toBe(3);

    const t0 = 1_000_000;
    const grace = 60_000;
    const run1 = await pruneWorkspaceBlobs({ store, blobs, graceMs: grace, now: () => t0 });
    expect(run1).toMatchObject({ heads: 2, unreferenced: 3, deletedChunks: 0, deletedManifests: 0, waiting: 3 });
    // A crashed save's chunk appears after the first run: not on its list.
    await blobs.put(chunkKey("f".repeat(64)), new Uint8Array([1]));
    const early = await pruneWorkspaceBlobs({ store, blobs, graceMs: grace, now: () => t0 + grace - 1 });
    expect(early).toMatchObject({ deletedChunks: 0, deletedManifests: 0 });
    const run2 = await pruneWorkspaceBlobs({ store, blobs, graceMs: grace, now: () => t0 + grace });
    expect(run2).toMatchObject({ deletedChunks: 2, deletedManifests: 1, waiting: 1 });
    expect(await blobs.has(chunkKey("f".repeat(64)))).toBe(true);
    const run3 = await pruneWorkspaceBlobs({ store, blobs, graceMs: grace, now: () => t0 + 2 * grace });
    expect(run3).toMatchObject({ deletedChunks: 1, waiting: 0 });
    expect(await count("chunks/")).toBe(3);
    expect(await count("manifests/")).toBe(2);

    for (const [sessionId, digest] of [["sesn_a", digests.a], ["sesn_b", digests.b]] as const) {
      const fs = createWorkspaceFs();
      await loadWorkspace(fs, { store, blobs, sessionId });
      expect(await treeDigest(fs)).toBe(digest);
    }
    // A later incremental save of A still works (its known chunks were all kept).
    await a.writeFile("more.txt", "more");
    await saveWorkspace(a, { store, blobs, sessionId: "sesn_a", previous: infoA });

    // Deleting a session's head frees what only it used (graceMs 0: at once).
    await store.delete(workspaceHeadKey("sesn_b"));
    const last = await pruneWorkspaceBlobs({ store, blobs, graceMs: 0 });
    expect(last.heads).toBe(1);
    expect(await blobs.has(manifestKey(infoB.manifestId))).toBe(false);
    expect(await count("gc/")).toBe(0);
  });
});

describe("kill -9 mid-save", () => {
  const run = (dir: string, mode: string, onLine?: (line: string, kill: () => void) => void): Promise<{ lines: string[]; signal: NodeJS.Signals | null; code: number | null; stderr: string }> =>
    new Promise((resolve, reject) => {
      const child = spawn(process.execPath, ["--import", "tsx", join(ROOT, "test/fixtures/workspace-save-child.ts"), dir, mode], { cwd: ROOT, stdio: ["ignore", "pipe", "pipe"] });
      const lines: string[] = [];
      let stderr = "";
      let buf = "";
      child.stdout.on("data", (b: Buffer) => {
        buf += b.toString();
        for (let i = buf.indexOf("\n"); i >= 0; i = buf.indexOf("\n")) {
          const line = buf.slice(0, i);
          buf = buf.slice(i + 1);
          lines.push(line);
          onLine?.(line, () => child.kill("SIGKILL"));
        }
      });
      child.stderr.on("data", (b: Buffer) => (stderr += b.toString()));
      child.on("error", reject);
      child.on("exit", (code, signal) => resolve({ lines, signal, code, stderr }));
    });

  test("a process killed with SIGKILL while saving leaves the previous snapshot, which a fresh process loads byte-identical", async () => {
    const dir = tempDir();
    const seed = await run(dir, "seed");
    expect(seed.stderr).toBe("");
    const seeded = /^saved ([0-9a-f]{64})$/.exec(seed.lines[0] ?? "")?.[1];
    expect(seeded).toBeDefined();

    const crash = await run(dir, "crash", (line, kill) => {
      if (line === "saving") kill();
    });
    expect(crash.lines).toEqual(["saving"]);
    expect(crash.signal).toBe("SIGKILL");

    const verify = await run(dir, "verify");
    expect(verify.stderr).toBe("");
    expect(verify.lines).toEqual([`loaded ${seeded}`, "resaved 2"]);
  }, 60_000);
});
