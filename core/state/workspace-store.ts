/**
 * Workspace persistence: content-addressed, incremental, atomic snapshots of a session's
 * `WorkspaceFs`, kept in a `BlobStore` (content) and a `Store` (which snapshot is current).
 *
 * Layout:
 *
 *   blob  chunks/<sha256 hex>       up to 60 KiB of one file's bytes (one Deno KV value)
 *   blob  manifests/<sha256 hex>    JSON: every entry (path, type, mode, mtime, size, chunk ids,
 *                                   symlink target), paths relative to the root, sorted
 *   key   ["workspace", sessionId]  the head: { manifest, at, files, bytes, seq }
 *   blob  gc/candidates/<ms>        what the pruner found unreferenced on its previous run
 *
 * Save: read and hash what changed (everything on a first save, or when the workspace cannot say
 * what changed), upload the chunks the store lacks, then the manifest, then ONE compare-and-set
 * of the head expecting the version this worker last loaded or saved. Blobs are immutable and
 * named by their hash, so until that compare-and-set the previous head still names a complete
 * snapshot: a crash at any earlier point loses only the new save. A compare-and-set that fails
 * means another worker saved this session meanwhile: `WorkspaceConflictError`, never an overwrite.
 *
 * Load: read the head, the manifest and every chunk, verify each against its hash (a damaged or
 * missing blob is a `WorkspaceCorruptError` naming the file), and only then replace the whole
 * workspace with it.
 *
 * Round trips: where the BlobStore has `putMany`/`getMany` (Deno KV, SQLite, memory), chunks go
 * up in batches of a few MiB while the save reads and hashes the next ones (Deno KV then packs
 * hundreds of chunks into each commit and fsync), without asking first which the store has (the
 * batch is marked `contentAddressed`); they come back in batches of 64. Otherwise, one `has` and
 * `put` (or one `get`) per chunk, 16 at once. The order stays: every chunk durable before the
 * manifest is written, the manifest before the head.
 *
 * Incremental saves: a save reuses the previous manifest's entries for every path the
 * workspace's change record (`WorkspaceFs.takeChanges`) does not name, so one changed file costs
 * reading and hashing that file, uploading its chunks and a new manifest, and one store write.
 * This holds when `previous` is the `SnapshotInfo` of the last save or load of this same
 * `WorkspaceFs` object (checked: otherwise the save rehashes everything, which is always correct).
 *
 * A save reads the workspace while it runs: save when no tool is running (the end of a work item),
 * or a change made during the save may be half in it (the next save still includes it).
 */
import { z } from "zod";
import type { FsStat, WorkspaceChanges, WorkspaceFs } from "../sandbox/sandbox.ts";
import type { BlobStore, Store, StoreKey } from "./store.ts";
import { forEachLimit } from "./for-each-limit.ts";

/** Bytes per chunk: at most one Deno KV value, so a KV-backed BlobStore stores a chunk in one entry. */
export const CHUNK_BYTES = 60 * 1024;

/** The manifest format this module writes and reads. */
export const MANIFEST_FORMAT = "deft.workspace.v1";

/** Default for `pruneWorkspaceBlobs`: a blob must stay unreferenced this long before it is deleted. */
export const DEFAULT_PRUNE_GRACE_MS = 60 * 60 * 1000;

/** Blob and store requests in flight at once during a save or a load (stores are often remote). */
const IO_CONCURRENCY = 16;
/**
 * Files read and hashed at once during a save: many, because each Web Crypto digest is a trip to
 * another thread and the trips cost least when they overlap; ...
 */
const HASH_CONCURRENCY = 32;
/** ... but at most this many bytes of file content read and not yet hashed (a larger file is read on its own). */
const READ_BUDGET_BYTES = 8 * 1024 * 1024;
/**
 * With a batching BlobStore (`putMany`): new chunks are handed over in batches of about this many
 * bytes while the save goes on reading and hashing the next batch (a store can lay out a large
 * batch better: Deno KV sorts it, which saves SQLite a third of its time in a fresh database) ...
 */
const UPLOAD_BATCH_BYTES = 8 * 1024 * 1024;
/** ... except the first, smaller, so that the store starts writing early in the save, ... */
const FIRST_UPLOAD_BATCH_BYTES = 2 * 1024 * 1024;
/**
 * ... with at most this many batches in flight (a save that would start one more waits): so a save
 * holds at most about (this + 1) batches of chunk data, plus READ_BUDGET_BYTES.
 */
const UPLOADS_IN_FLIGHT = 1;
/** With a batching BlobStore (`getMany`): chunks per call during a load, ... */
const FETCH_BATCH_CHUNKS = 64;
/** ... and calls in flight at once. */
const FETCHES_IN_FLIGHT = 4;

const CHUNK_PREFIX = "chunks/";
const MANIFEST_PREFIX = "manifests/";
const CANDIDATES_PREFIX = "gc/candidates/";
const HEAD_PREFIX = "workspace";

/** The store key of a session's head. */
export function workspaceHeadKey(sessionId: string): StoreKey {
  return [HEAD_PREFIX, sessionId];
}

/** The blob key of a chunk. */
export const chunkKey = (id: string): string => CHUNK_PREFIX + id;
/** The blob key of a manifest. */
export const manifestKey = (id: string): string => MANIFEST_PREFIX + id;

// ------------------------------------------------------------------------------------ formats

const SHA256_HEX = /^[0-9a-f]{64}$/;

/** A path relative to the root: non-empty segments, none of them "." or "..", no NUL. */
const relativePath = z
  .string()
  .min(1)
  .refine((p) => !p.includes("\0") && p.split("/").every((seg) => seg !== "" && seg !== "." && seg !== ".."), "not a plain relative path");

const attrs = { path: relativePath, mode: z.number().int().min(0), mtimeMs: z.number().finite() };

const manifestEntrySchema = z.discriminatedUnion("type", [
  z.object({ ...attrs, type: z.literal("directory") }),
  z.object({ ...attrs, type: z.literal("symlink"), target: z.string() }),
  z.object({ ...attrs, type: z.literal("file"), size: z.number().int().min(0), chunks: z.array(z.string().regex(SHA256_HEX)) }),
]);

const manifestSchema = z.object({ format: z.literal(MANIFEST_FORMAT), entries: z.array(manifestEntrySchema) });

const headSchema = z.object({
  manifest: z.string().regex(SHA256_HEX),
  at: z.number(),
  files: z.number().int().min(0),
  bytes: z.number().int().min(0),
  seq: z.number().int().min(1),
});

/** One entry of a manifest: a directory, a symlink, or a file with its chunk ids in order. */
export type ManifestEntry = z.infer<typeof manifestEntrySchema>;
/** A file's manifest entry. */
export type FileManifestEntry = Extract<ManifestEntry, { type: "file" }>;

/** A snapshot's table of contents: every entry under the root, sorted by path (parents first). */
export interface WorkspaceManifest {
  format: typeof MANIFEST_FORMAT;
  entries: ManifestEntry[];
}

/** The value of a session's head key. */
export type WorkspaceHead = z.infer<typeof headSchema>;

// ------------------------------------------------------------------------------------ results

/** What one save or load did (all zero where it does not apply). */
export interface SnapshotStats {
  /** The save reused the previous manifest and the change record instead of walking everything. */
  incremental: boolean;
  /** Files read and hashed by the save. */
  hashedFiles: number;
  hashedBytes: number;
  /**
   * Chunks the save uploaded (not counting the manifest). With a batching BlobStore (`putMany`)
   * the save does not ask which chunks the store already has (the store skips rewriting those
   * itself), so this counts every chunk the previous snapshot did not name.
   */
  uploadedChunks: number;
  uploadedBytes: number;
  /** Chunks the load fetched (each distinct chunk once). */
  fetchedChunks: number;
  fetchedBytes: number;
}

/** A snapshot as the session's head names it: what a save returns, and what a load restored. */
export interface SnapshotInfo {
  sessionId: string;
  /** The manifest's sha256 (its blob is `manifests/<id>`). */
  manifestId: string;
  /** The head's version in the store: the next save's compare-and-set expects it. */
  version: string;
  /** Saves of this session so far (1 for the first). */
  seq: number;
  /** When the head was written (ms since the epoch). */
  at: number;
  files: number;
  /** Sum of file sizes. */
  bytes: number;
  manifest: WorkspaceManifest;
  /** Every chunk the manifest names: a following save does not upload these again. */
  chunkIds: ReadonlySet<string>;
  stats: SnapshotStats;
}

/** Where snapshots live and whose they are. */
export interface WorkspaceStoreOptions {
  store: Store;
  blobs: BlobStore;
  sessionId: string;
}

/** Options of `saveWorkspace`. */
export interface SaveWorkspaceOptions extends WorkspaceStoreOptions {
  /**
   * What the last `saveWorkspace` or `loadWorkspace` of this workspace returned. Omitted: this is
   * the session's first snapshot, and the save fails if the session already has one.
   */
  previous?: SnapshotInfo;
}

/** Another writer saved this session's workspace since this worker loaded or saved it. */
export class WorkspaceConflictError extends Error {
  override name = "WorkspaceConflictError";
  readonly code = "workspace_conflict";
  constructor(readonly sessionId: string) {
    super(`workspace of session ${sessionId}: another worker saved it since this one loaded it; not overwriting`);
  }
}

/** A stored snapshot is damaged: a head, manifest or chunk is missing, malformed, or fails its hash. */
export class WorkspaceCorruptError extends Error {
  override name = "WorkspaceCorruptError";
  readonly code = "workspace_corrupt";
  constructor(
    readonly sessionId: string,
    detail: string,
    /** The workspace path (relative to the root) whose content is damaged, when one is. */
    readonly path?: string,
  ) {
    super(`workspace of session ${sessionId}: ${path !== undefined ? `file "${path}": ` : ""}${detail}`);
  }
}

// ------------------------------------------------------------------------------------ helpers

const encoder = new TextEncoder();

const HEX_BYTE = Array.from({ length: 256 }, (_, b) => b.toString(16).padStart(2, "0"));

/** Lowercase hex sha256 of `data` (Web Crypto). */
export async function sha256Hex(data: Uint8Array): Promise<string> {
  const digest = new Uint8Array(await crypto.subtle.digest("SHA-256", data as Uint8Array<ArrayBuffer>));
  let hex = "";
  for (let i = 0; i < digest.length; i++) hex += HEX_BYTE[digest[i]!];
  return hex;
}


/** Code-unit order, so a parent ("a") always sorts before its children ("a/b"). */
const byPath = (a: string, b: string): number => (a < b ? -1 : a > b ? 1 : 0);

/** "a/b/c" → ["a", "a/b"]. */
function ancestorsOf(path: string): string[] {
  const out: string[] = [];
  for (let i = path.indexOf("/"); i >= 0; i = path.indexOf("/", i + 1)) out.push(path.slice(0, i));
  return out;
}

/** `path` or one of its ancestors is in `trees`. */
function withinAny(path: string, trees: ReadonlySet<string>): boolean {
  if (trees.has(path)) return true;
  for (const a of ancestorsOf(path)) if (trees.has(a)) return true;
  return false;
}

function emptyStats(): SnapshotStats {
  return { incremental: false, hashedFiles: 0, hashedBytes: 0, uploadedChunks: 0, uploadedBytes: 0, fetchedChunks: 0, fetchedBytes: 0 };
}

/**
 * The manifest each workspace object last saved or loaded: a save may trust the change record
 * only relative to that manifest.
 */
const baselines = new WeakMap<WorkspaceFs, string>();

// ------------------------------------------------------------------------------------ save

/**
 * Makes sure the chunks a save produces are stored. With `putMany`, while the save is still
 * reading and hashing: chunks collect into a batch, and a full batch (UPLOAD_BATCH_BYTES; the
 * first FIRST_UPLOAD_BATCH_BYTES) is handed to the store while the save goes on, at most
 * UPLOADS_IN_FLIGHT at once (a save that would start one more waits, so it holds a bounded amount
 * of chunk data). Without it, after hashing: one `has`, then a `put` if missing, per chunk
 * (IO_CONCURRENCY at once).
 */
class ChunkUploader {
  /** Chunks queued by this save (each is stored once). */
  readonly #queued = new Set<string>();
  /** Without `putMany`: every chunk to store, for `finish`. */
  readonly #pending: Array<[string, Uint8Array]> = [];
  #batch: Array<{ key: string; data: Uint8Array }> = [];
  #batchBytes = 0;
  /** Batches handed to the store so far. */
  #flushes = 0;
  readonly #inFlight = new Set<Promise<void>>();
  #failure: { error: unknown } | undefined;

  constructor(
    readonly blobs: BlobStore,
    /** Chunks known to be stored already (the previous manifest's). */
    readonly knownChunks: ReadonlySet<string>,
    readonly stats: SnapshotStats,
  ) {}

  /** Queue a chunk for storing (nothing if known or already queued); resolves when the save may go on. */
  async add(id: string, data: Uint8Array): Promise<void> {
    if (this.#failure) throw this.#failure.error;
    if (this.knownChunks.has(id) || this.#queued.has(id)) return;
    this.#queued.add(id);
    if (!this.blobs.putMany) {
      this.#pending.push([id, data]);
      return;
    }
    this.#batch.push({ key: chunkKey(id), data });
    this.#batchBytes += data.byteLength;
    if (this.#batchBytes >= (this.#flushes === 0 ? FIRST_UPLOAD_BATCH_BYTES : UPLOAD_BATCH_BYTES)) await this.#flush();
  }

  /** Every chunk queued is durable; rejects with the first failure. */
  async finish(): Promise<void> {
    if (this.blobs.putMany) {
      await this.#flush();
      await Promise.all(this.#inFlight);
      if (this.#failure) throw this.#failure.error;
      return;
    }
    await forEachLimit(this.#pending, IO_CONCURRENCY, async ([id, data]) => {
      if (await this.blobs.has(chunkKey(id))) return;
      await this.blobs.put(chunkKey(id), data);
      this.stats.uploadedChunks++;
      this.stats.uploadedBytes += data.byteLength;
    });
  }

  /** Waits for the batches in flight, whatever their outcome (a failed save reports only once nothing of it runs). */
  async settle(): Promise<void> {
    await Promise.all(this.#inFlight);
  }

  /** Hands the current batch to the store once fewer than UPLOADS_IN_FLIGHT are in flight. */
  async #flush(): Promise<void> {
    while (this.#inFlight.size >= UPLOADS_IN_FLIGHT) await Promise.race(this.#inFlight);
    if (this.#failure) throw this.#failure.error;
    if (this.#batch.length === 0) return; // another caller took it while this one waited
    this.#flushes++;
    const items = this.#batch;
    const bytes = this.#batchBytes;
    this.#batch = [];
    this.#batchBytes = 0;
    const upload: Promise<void> = this.blobs.putMany!(items, { contentAddressed: true })
      .then(
        () => {
          this.stats.uploadedChunks += items.length;
          this.stats.uploadedBytes += bytes;
        },
        (error: unknown) => {
          this.#failure ??= { error };
        },
      )
      .finally(() => this.#inFlight.delete(upload));
    this.#inFlight.add(upload);
  }
}

/** A count of bytes that callers take and give back, waiting (in order) while too few are free. */
class ByteBudget {
  #free: number;
  readonly #waiting: Array<{ bytes: number; go: () => void }> = [];
  constructor(readonly total: number) {
    this.#free = total;
  }
  /** Takes `bytes` (at most the whole budget) once free; resolves with what was taken, for `give`. */
  async take(bytes: number): Promise<number> {
    const n = Math.min(Math.max(bytes, 0), this.total);
    if (this.#waiting.length === 0 && this.#free >= n) this.#free -= n;
    else await new Promise<void>((go) => this.#waiting.push({ bytes: n, go }));
    return n;
  }
  give(n: number): void {
    this.#free += n;
    while (this.#waiting.length > 0 && this.#free >= this.#waiting[0]!.bytes) {
      const next = this.#waiting.shift()!;
      this.#free -= next.bytes;
      next.go();
    }
  }
}

/** Reads entries from a workspace into manifest entries, hashing file contents into chunks for the uploader. */
class EntryReader {
  /** File bytes read and not yet hashed and handed to the uploader. */
  readonly #budget = new ByteBudget(READ_BUDGET_BYTES);

  constructor(
    readonly fs: WorkspaceFs,
    readonly uploader: ChunkUploader,
    readonly stats: SnapshotStats,
  ) {}

  abs(path: string): string {
    return path === "" ? this.fs.root : `${this.fs.root}/${path}`;
  }

  /** The entry at `path`, or null when nothing is there. */
  async lstat(path: string): Promise<FsStat | null> {
    try {
      return await this.fs.lstat(this.abs(path));
    } catch (err) {
      if ((err as { code?: unknown }).code === "ENOENT" || (err as { code?: unknown }).code === "ENOTDIR") return null;
      throw err;
    }
  }

  /** The manifest entry for `path`, whose lstat is `st` (files are read and hashed). */
  async entry(path: string, st: FsStat): Promise<ManifestEntry> {
    if (st.type === "directory") return { path, type: "directory", mode: st.mode, mtimeMs: st.mtimeMs };
    if (st.type === "symlink") return { path, type: "symlink", mode: st.mode, mtimeMs: st.mtimeMs, target: await this.fs.readlink(this.abs(path)) };
    const taken = await this.#budget.take(st.size);
    try {
      const data = await this.fs.readFile(this.abs(path));
      const pieces: Uint8Array[] = [];
      for (let off = 0; off < data.byteLength; off += CHUNK_BYTES) pieces.push(data.subarray(off, Math.min(off + CHUNK_BYTES, data.byteLength)));
      const chunks = await Promise.all(pieces.map((p) => sha256Hex(p)));
      for (let i = 0; i < chunks.length; i++) await this.uploader.add(chunks[i]!, pieces[i]!);
      this.stats.hashedFiles++;
      this.stats.hashedBytes += data.byteLength;
      return { path, type: "file", mode: st.mode, mtimeMs: st.mtimeMs, size: data.byteLength, chunks };
    } finally {
      this.#budget.give(taken);
    }
  }

  /** Put every entry under the directory `dir` ("" for the root) into `into`, recursively. */
  async walk(dir: string, into: Map<string, ManifestEntry>): Promise<void> {
    const children = await this.fs.readdir(this.abs(dir));
    const dirs: string[] = [];
    await forEachLimit(children, HASH_CONCURRENCY, async (child) => {
      const path = dir === "" ? child.name : `${dir}/${child.name}`;
      const st = await this.lstat(path);
      if (!st) return;
      into.set(path, await this.entry(path, st));
      if (st.type === "directory") dirs.push(path);
    });
    for (const d of dirs) await this.walk(d, into);
  }
}

/** Every entry of the workspace, read from scratch. */
async function scanAll(reader: EntryReader): Promise<Map<string, ManifestEntry>> {
  const entries = new Map<string, ManifestEntry>();
  await reader.walk("", entries);
  return entries;
}

/** Relative path of an absolute workspace path, or null if it is not under the root. */
function relativeTo(root: string, abs: string): string | null {
  if (abs === root) return "";
  return abs.startsWith(root + "/") ? abs.slice(root.length + 1) : null;
}

/**
 * The previous manifest's entries brought up to date with a change record: every recorded path
 * is read again, and everything else is kept as it was. Produces exactly what `scanAll` would
 * (a test checks it after every kind of change).
 */
async function applyChanges(reader: EntryReader, base: readonly ManifestEntry[], changes: WorkspaceChanges): Promise<Map<string, ManifestEntry> | null> {
  const root = reader.fs.root;
  const trees = new Set<string>();
  const touched = new Set<string>();
  for (const abs of changes.trees) {
    const rel = relativeTo(root, abs);
    if (rel !== null) trees.add(rel);
  }
  for (const abs of changes.entries) {
    const rel = relativeTo(root, abs);
    if (rel !== null) touched.add(rel);
  }
  // The root's own mode and mtime are not part of a snapshot; a change to its whole tree is a rescan.
  if (trees.has("")) return null;
  touched.delete("");

  const entries = new Map<string, ManifestEntry>();
  for (const e of base) if (!withinAny(e.path, trees)) entries.set(e.path, e);
  const before = new Map<string, ManifestEntry["type"]>(base.map((e) => [e.path, e.type]));

  /** Directories whose subtree this update has read in full (nothing under them needs a visit). */
  const walked = new Set<string>();
  const stats = new Map<string, FsStat | null>();
  const lstat = async (path: string): Promise<FsStat | null> => {
    if (!stats.has(path)) stats.set(path, await reader.lstat(path));
    return stats.get(path)!;
  };
  /**
   * Forget every entry under `path`. Only a path that was a directory in the previous manifest can
   * have any here (a subtree read during this update is never visited again), so the scan over
   * all entries is skipped for the common case, a changed file.
   */
  const dropUnder = (path: string): void => {
    if (before.get(path) !== "directory") return;
    for (const p of entries.keys()) if (p.startsWith(path + "/")) entries.delete(p);
  };
  /** Read `path` (a directory) and everything under it again. */
  const rewalk = async (path: string, st: FsStat): Promise<void> => {
    dropUnder(path);
    entries.set(path, await reader.entry(path, st));
    await reader.walk(path, entries);
    walked.add(path);
  };

  for (const path of [...new Set([...trees, ...touched])].sort(byPath)) {
    if (withinAny(path, walked)) continue;
    // Its ancestors first: each must (still) be a real directory for the path to be in the tree
    // at all (a path through a symlink or a removed directory is not), and a directory created
    // since the last save is read whole (it may hold more than the record names).
    let reachable = true;
    for (const dir of ancestorsOf(path)) {
      const st = await lstat(dir);
      if (!st || st.type !== "directory") {
        reachable = false;
        break;
      }
      if (before.get(dir) !== "directory") {
        await rewalk(dir, st);
        break;
      }
      entries.set(dir, await reader.entry(dir, st));
    }
    if (withinAny(path, walked)) continue;
    const st = reachable ? await lstat(path) : null;
    if (!st) {
      entries.delete(path);
      dropUnder(path);
      continue;
    }
    if (st.type === "directory" && (trees.has(path) || before.get(path) !== "directory")) {
      await rewalk(path, st);
      continue;
    }
    if (st.type !== "directory") dropUnder(path);
    entries.set(path, await reader.entry(path, st));
  }
  return entries;
}

/** The manifest for a set of entries, its bytes and its id. */
async function buildManifest(entries: Map<string, ManifestEntry>): Promise<{ manifest: WorkspaceManifest; bytes: Uint8Array; id: string }> {
  const manifest: WorkspaceManifest = { format: MANIFEST_FORMAT, entries: [...entries.keys()].sort(byPath).map((p) => entries.get(p)!) };
  const bytes = encoder.encode(JSON.stringify(manifest));
  return { manifest, bytes, id: await sha256Hex(bytes) };
}

function totals(manifest: WorkspaceManifest): { files: number; bytes: number; chunkIds: Set<string> } {
  let files = 0;
  let bytes = 0;
  const chunkIds = new Set<string>();
  for (const e of manifest.entries) {
    if (e.type !== "file") continue;
    files++;
    bytes += e.size;
    for (const c of e.chunks) chunkIds.add(c);
  }
  return { files, bytes, chunkIds };
}

/**
 * Save the workspace as the session's current snapshot. Uploads the chunks the store lacks and a
 * manifest, then moves the head with one compare-and-set (expecting `previous.version`, or no
 * head at all when `previous` is omitted).
 *
 * Throws `WorkspaceConflictError` when the head moved since `previous` (another worker saved);
 * store errors propagate. On any failure the previous snapshot stays current and intact, and the
 * workspace's change record is handed back, so retrying (or the next save) is still correct.
 */
export async function saveWorkspace(fs: WorkspaceFs, opts: SaveWorkspaceOptions): Promise<SnapshotInfo> {
  const { store, blobs, sessionId, previous } = opts;
  if (previous && previous.sessionId !== sessionId) {
    throw new TypeError(`saveWorkspace: previous snapshot is of session ${previous.sessionId}, not ${sessionId}`);
  }
  const changes = fs.takeChanges?.();
  const stats = emptyStats();
  const uploader = new ChunkUploader(blobs, previous?.chunkIds ?? new Set(), stats);
  try {
    const reader = new EntryReader(fs, uploader, stats);
    const canTrust = previous !== undefined && changes !== undefined && !changes.all && baselines.get(fs) === previous.manifestId;
    const updated = canTrust ? await applyChanges(reader, previous.manifest.entries, changes) : null;
    stats.incremental = updated !== null;
    const entries = updated ?? (await scanAll(reader));
    // 1. Chunks (those the previous snapshot did not name): durable before the manifest is
    // written. The manifest is built meanwhile; both settle before anything is reported.
    const [uploaded, built] = await Promise.allSettled([uploader.finish(), buildManifest(entries)]);
    if (uploaded.status === "rejected") throw uploaded.reason;
    if (built.status === "rejected") throw built.reason;
    const { manifest, bytes: manifestBytes, id } = built.value;
    // 2. The manifest (already stored when nothing changed). Named by its hash like the chunks.
    if (id !== previous?.manifestId) {
      if (blobs.putMany) await blobs.putMany([{ key: manifestKey(id), data: manifestBytes }], { contentAddressed: true });
      else await blobs.put(manifestKey(id), manifestBytes);
    }
    // 3. The head: the one write that makes the new snapshot current.
    const { files, bytes, chunkIds } = totals(manifest);
    const head: WorkspaceHead = { manifest: id, at: Date.now(), files, bytes, seq: (previous?.seq ?? 0) + 1 };
    const set = await store.set(workspaceHeadKey(sessionId), head, { expectVersion: previous?.version ?? null });
    if (!set.ok) throw new WorkspaceConflictError(sessionId);

    baselines.set(fs, id);
    return { sessionId, manifestId: id, version: set.version, seq: head.seq, at: head.at, files, bytes, manifest, chunkIds, stats };
  } catch (err) {
    await uploader.settle();
    if (changes) {
      if (fs.returnChanges) fs.returnChanges(changes);
      else baselines.delete(fs);
    }
    throw err;
  }
}

// ------------------------------------------------------------------------------------ load

/** Read and check a session's head; null when the session has no snapshot. */
async function readHead(store: Store, sessionId: string): Promise<{ head: WorkspaceHead; version: string } | null> {
  const got = await store.get(workspaceHeadKey(sessionId));
  if (!got) return null;
  const parsed = headSchema.safeParse(got.value);
  if (!parsed.success) throw new WorkspaceCorruptError(sessionId, `head record is malformed (${parsed.error.issues[0]?.message ?? "invalid"})`);
  return { head: parsed.data, version: got.version };
}

/** Fetch, hash-check and parse a manifest; checks that every entry's parent is a directory entry. */
async function readManifest(blobs: BlobStore, sessionId: string, id: string): Promise<WorkspaceManifest> {
  const bytes = await blobs.get(manifestKey(id));
  if (!bytes) throw new WorkspaceCorruptError(sessionId, `manifest ${id} is missing`);
  if ((await sha256Hex(bytes)) !== id) throw new WorkspaceCorruptError(sessionId, `manifest ${id} does not match its hash`);
  let json: unknown;
  try {
    json = JSON.parse(new TextDecoder().decode(bytes));
  } catch {
    throw new WorkspaceCorruptError(sessionId, `manifest ${id} is not JSON`);
  }
  const parsed = manifestSchema.safeParse(json);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    throw new WorkspaceCorruptError(sessionId, `manifest ${id} is malformed (${issue?.path.join(".")}: ${issue?.message})`);
  }
  const dirs = new Set<string>();
  for (const e of parsed.data.entries) {
    const parent = e.path.includes("/") ? e.path.slice(0, e.path.lastIndexOf("/")) : "";
    if (parent !== "" && !dirs.has(parent)) throw new WorkspaceCorruptError(sessionId, `manifest ${id}: entry before (or without) its directory`, e.path);
    if (e.type === "directory") dirs.add(e.path);
  }
  return parsed.data;
}

/** Fetch every chunk the manifest names (each once), checking each against its hash. */
async function fetchChunks(blobs: BlobStore, sessionId: string, manifest: WorkspaceManifest, stats: SnapshotStats): Promise<Map<string, Uint8Array>> {
  const firstUser = new Map<string, string>();
  for (const e of manifest.entries) if (e.type === "file") for (const c of e.chunks) if (!firstUser.has(c)) firstUser.set(c, e.path);
  const chunks = new Map<string, Uint8Array>();
  const accept = async (id: string, path: string, data: Uint8Array | null): Promise<void> => {
    if (!data) throw new WorkspaceCorruptError(sessionId, `chunk ${id} is missing`, path);
    if ((await sha256Hex(data)) !== id) throw new WorkspaceCorruptError(sessionId, `chunk ${id} does not match its hash`, path);
    chunks.set(id, data);
    stats.fetchedChunks++;
    stats.fetchedBytes += data.byteLength;
  };
  const wanted = [...firstUser];
  if (blobs.getMany) {
    const batches: Array<Array<[string, string]>> = [];
    for (let i = 0; i < wanted.length; i += FETCH_BATCH_CHUNKS) batches.push(wanted.slice(i, i + FETCH_BATCH_CHUNKS));
    await forEachLimit(batches, FETCHES_IN_FLIGHT, async (batch) => {
      const got = await blobs.getMany!(batch.map(([id]) => chunkKey(id)));
      if (got.length !== batch.length) throw new Error(`${blobs.name}: getMany answered ${got.length} blobs for ${batch.length} keys`);
      // Every chunk's check settles before the first failure is reported.
      const checked = await Promise.allSettled(batch.map(([id, path], i) => accept(id, path, got[i]!)));
      for (const c of checked) if (c.status === "rejected") throw c.reason;
    });
  } else {
    await forEachLimit(wanted, IO_CONCURRENCY, async ([id, path]) => accept(id, path, await blobs.get(chunkKey(id))));
  }
  return chunks;
}

/** A file's bytes from its chunks; its size must match the manifest. */
function assemble(sessionId: string, e: FileManifestEntry, chunks: Map<string, Uint8Array>): Uint8Array {
  const parts = e.chunks.map((c) => chunks.get(c)!);
  const total = parts.reduce((n, p) => n + p.byteLength, 0);
  if (total !== e.size) throw new WorkspaceCorruptError(sessionId, `chunks hold ${total} bytes, manifest says ${e.size}`, e.path);
  if (parts.length === 1) return parts[0]!;
  const out = new Uint8Array(total);
  let off = 0;
  for (const p of parts) {
    out.set(p, off);
    off += p.byteLength;
  }
  return out;
}

/**
 * Restore the session's current snapshot into `fs`, replacing everything under its root (modes,
 * mtimes and symlinks included where the workspace supports `chmod`/`utimes`; a symlink's own
 * mtime is not restored). Returns null, leaving `fs` untouched, when the session has no snapshot.
 *
 * Everything is fetched and verified before the workspace is touched: a missing or damaged blob
 * throws `WorkspaceCorruptError` (naming the file) with the workspace as it was. Pass the result
 * as `previous` to the next `saveWorkspace` of the same `fs`.
 */
export async function loadWorkspace(fs: WorkspaceFs, opts: WorkspaceStoreOptions): Promise<SnapshotInfo | null> {
  const { store, blobs, sessionId } = opts;
  const read = await readHead(store, sessionId);
  if (!read) return null;
  const { head, version } = read;
  const stats = emptyStats();
  const manifest = await readManifest(blobs, sessionId, head.manifest);
  const chunks = await fetchChunks(blobs, sessionId, manifest, stats);
  const contents = new Map<string, Uint8Array>();
  for (const e of manifest.entries) if (e.type === "file") contents.set(e.path, assemble(sessionId, e, chunks));
  chunks.clear();

  try {
    for (const child of await fs.readdir(fs.root)) await fs.remove(`${fs.root}/${child.name}`, { recursive: true });
    for (const e of manifest.entries) {
      const abs = `${fs.root}/${e.path}`;
      if (e.type === "directory") await fs.mkdir(abs, { recursive: true });
      else if (e.type === "symlink") await fs.symlink(e.target, abs);
      else await fs.writeFile(abs, contents.get(e.path)!);
    }
    // Attributes last, children before parents, so creating an entry cannot disturb one already set.
    for (let i = manifest.entries.length - 1; i >= 0; i--) {
      const e = manifest.entries[i]!;
      if (e.type === "symlink") continue; // chmod and utimes would follow it to its target
      const abs = `${fs.root}/${e.path}`;
      if (fs.chmod) await fs.chmod(abs, e.mode);
      if (fs.utimes) await fs.utimes(abs, e.mtimeMs);
    }
  } catch (err) {
    // Half restored (e.g. the workspace's limits are smaller than the snapshot): no save may
    // trust its change record any more.
    baselines.delete(fs);
    throw err;
  }
  // What the restore itself wrote is the snapshot, not a change to save.
  fs.takeChanges?.();
  baselines.set(fs, head.manifest);
  const { files, bytes, chunkIds } = totals(manifest);
  return { sessionId, manifestId: head.manifest, version, seq: head.seq, at: head.at, files, bytes, manifest, chunkIds, stats };
}

// ------------------------------------------------------------------------------------ prune

/** Options of `pruneWorkspaceBlobs`. */
export interface PruneWorkspaceOptions {
  store: Store;
  blobs: BlobStore;
  /**
   * A blob is deleted only after two runs at least this far apart both found it unreferenced
   * (default one hour). 0 deletes every unreferenced blob at once: only when no save can be
   * running anywhere.
   */
  graceMs?: number;
  /** The clock (tests). */
  now?: () => number;
}

/** What a prune run found and did. */
export interface PruneResult {
  /** Session heads found. */
  heads: number;
  /** Chunks and manifests the heads reference (kept). */
  referenced: number;
  /** Chunk and manifest blobs no head references. */
  unreferenced: number;
  deletedChunks: number;
  deletedManifests: number;
  /** Unreferenced blobs left for a later run (still inside the grace period). */
  waiting: number;
}

/**
 * Garbage-collect workspace blobs: mark every chunk and manifest a session head references, and
 * delete the rest once they have stayed unreferenced for `graceMs` (each run records what it
 * found unreferenced, as a blob; the next run at least `graceMs` later deletes what is still
 * unreferenced from that list).
 *
 * Concurrency: blobs are immutable, and a save makes them referenced only at its final
 * compare-and-set, so a run that overlaps saves must not delete what they are about to reference.
 * The grace period covers chunks a save uploads (they did not exist, or were not yet on the list,
 * a grace period earlier), provided every save finishes within `graceMs`. It does NOT cover a
 * save that needs an orphaned chunk (left by a crashed save, or dropped from every workspace)
 * while that chunk is being deleted (the save finds it with `has` and skips it, or with a batching
 * store writes it again just before the delete lands): so run this where no save is in progress
 * anywhere (a maintenance window, or one worker that is not serving sessions), or accept that
 * window. Runs may overlap each other. Deleting a session's head (the session is over)
 * is what frees its blobs.
 */
export async function pruneWorkspaceBlobs(opts: PruneWorkspaceOptions): Promise<PruneResult> {
  const { store, blobs } = opts;
  const graceMs = opts.graceMs ?? DEFAULT_PRUNE_GRACE_MS;
  const now = (opts.now ?? Date.now)();

  // Mark.
  const referenced = new Set<string>();
  let heads = 0;
  for await (const entry of store.list([HEAD_PREFIX])) {
    if (entry.key.length !== 2) continue;
    const sessionId = entry.key[1]!;
    const parsed = headSchema.safeParse(entry.value);
    if (!parsed.success) throw new WorkspaceCorruptError(sessionId, "head record is malformed; not pruning (cannot tell what it references)");
    heads++;
    referenced.add(manifestKey(parsed.data.manifest));
    // A head whose manifest is gone references nothing that still exists.
    const manifest = await readManifest(blobs, sessionId, parsed.data.manifest).catch((err: unknown) => {
      if (err instanceof WorkspaceCorruptError) return null;
      throw err;
    });
    for (const e of manifest?.entries ?? []) if (e.type === "file") for (const c of e.chunks) referenced.add(chunkKey(c));
  }

  // Sweep candidates: everything stored that nothing references.
  const unreferenced = new Set<string>();
  for (const prefix of [CHUNK_PREFIX, MANIFEST_PREFIX]) for await (const key of blobs.list(prefix)) if (!referenced.has(key)) unreferenced.add(key);

  const result: PruneResult = { heads, referenced: referenced.size, unreferenced: unreferenced.size, deletedChunks: 0, deletedManifests: 0, waiting: 0 };
  const remove = async (keys: string[]): Promise<void> => {
    await forEachLimit(keys, IO_CONCURRENCY, async (key) => {
      await blobs.delete(key);
      if (key.startsWith(CHUNK_PREFIX)) result.deletedChunks++;
      else result.deletedManifests++;
    });
  };

  const lists: string[] = [];
  for await (const key of blobs.list(CANDIDATES_PREFIX)) lists.push(key);
  if (graceMs <= 0) {
    await remove([...unreferenced]);
    for (const key of lists) await blobs.delete(key);
    return result;
  }

  // The newest list from an earlier run (keys are zero-padded times, so they sort by time).
  const latest = lists.sort(byPath).at(-1);
  const listedAt = latest ? Number(latest.slice(CANDIDATES_PREFIX.length)) : Number.NaN;
  if (latest && now - listedAt < graceMs) {
    // Too soon after the run that wrote it: nothing has been unreferenced long enough yet.
    result.waiting = unreferenced.size;
    return result;
  }
  let due: string[] = [];
  if (latest) {
    const bytes = await blobs.get(latest);
    const listed = bytes ? (JSON.parse(new TextDecoder().decode(bytes)) as { keys?: unknown }).keys : [];
    due = (Array.isArray(listed) ? listed : []).filter((k): k is string => typeof k === "string" && unreferenced.has(k));
  }
  await remove(due);
  for (const k of due) unreferenced.delete(k);
  result.waiting = unreferenced.size;
  await blobs.put(`${CANDIDATES_PREFIX}${String(now).padStart(16, "0")}`, encoder.encode(JSON.stringify({ at: now, keys: [...unreferenced] })));
  for (const key of lists) await blobs.delete(key);
  return result;
}
