/**
 * `Store` and `BlobStore` over Deno KV: Deno's own KV on Deno (and Deno Deploy), the
 * `@deno/kv` package on Node and Bun (a SQLite file, the same format Deno reads). The runtime
 * shims open the database (`runtimes/{node,deno,bun}/state.ts`); this file only needs the small
 * structural `KvLike` interface that both satisfy, so it stays runtime-neutral.
 *
 * Layout (every value is a `Uint8Array`, which Deno KV stores as raw bytes: no V8 serialization,
 * so a file written on Bun, Node or Deno reads the same everywhere):
 *
 *   ["deft", ...parts]                     a Store entry: UTF-8 JSON `{"v": value, "x"?: expiresAtMs}`
 *   ["deft-blob", key]                     a blob header: byte 0x00 + the bytes (blobs ≤ 60 KiB), or
 *                                          byte 0x01 + UTF-8 JSON {id, size, parts, sha256}
 *   ["deft-blob-part", key, id, i]         part i (60 KiB each) of the chunked blob write `id`
 *
 * Parts live under their own top-level prefix so that listing blobs reads only headers, and under
 * a fresh `id` per write so that overwriting a blob never mixes old and new parts. The header is
 * always written last (in the same atomic commit as the parts when they fit in one), so a blob
 * that is half written, or whose writer crashed, is invisible: `get` returns the old bytes or null.
 *
 * Batches: `putMany` packs many blobs into each commit (a commit costs an fsync, whatever it
 * holds), each blob still with its parts and header in that one commit; `getMany` reads headers
 * ten at a time with several reads in flight.
 *
 * Limits (Deno KV's, the same natively and in @deno/kv unless said): a value is at most 65,536
 * bytes, so a Store value's JSON must fit in that with its envelope (the Store contract promises
 * 60 KiB); a key at most 2,048 bytes encoded; an atomic commit at most 1,000 mutations and 800 KiB
 * (native Deno counts each key twice in that), 80 KiB of mutation keys (native Deno), and 10
 * checks (@deno/kv; 100 natively); `getMany` at most 10 keys.
 *
 * Expiry: Deno KV deletes expired keys lazily (a read shortly after the deadline still sees the
 * entry), so the deadline is also kept in the envelope and reads treat an expired entry as absent.
 */
import { StoreUnavailableError } from "./store.ts";
import type { BlobStore, ListOptions, PutManyOptions, SetOptions, SetResult, Store, StoreKey, StoreValue, Versioned } from "./store.ts";
import { forEachLimit } from "./for-each-limit.ts";

/** A key part as Deno KV accepts it (Deft itself only writes strings and numbers). */
export type KvKeyPartLike = string | number | bigint | boolean | Uint8Array;
/** A Deno KV key. */
export type KvKeyLike = readonly KvKeyPartLike[];

/** One entry as `get` and `list` return it; `versionstamp` is null when the key is absent. */
export interface KvEntryLike {
  readonly key: readonly unknown[];
  readonly value: unknown;
  readonly versionstamp: string | null;
}

/** The result of a commit: `ok: false` when a check failed. */
export type KvCommitLike = { ok: true; versionstamp: string } | { ok: false };

/** The part of Deno KV's atomic operation this file uses. */
export interface KvAtomicLike {
  check(...checks: { key: KvKeyLike; versionstamp: string | null }[]): KvAtomicLike;
  set(key: KvKeyLike, value: unknown, options?: { expireIn?: number }): KvAtomicLike;
  delete(key: KvKeyLike): KvAtomicLike;
  commit(): Promise<KvCommitLike>;
}

/**
 * The part of Deno KV this file uses, satisfied by both Deno's own `Kv` and `@deno/kv`'s `Kv`
 * (structurally: nothing here imports either). Every read hands over values of the caller's own
 * (deserialized afresh, as both do): `KvBlobStore` returns blob bytes without copying them again.
 */
export interface KvLike {
  get(key: KvKeyLike): Promise<KvEntryLike>;
  /** At most 10 keys per call. */
  getMany(keys: KvKeyLike[]): Promise<KvEntryLike[]>;
  set(key: KvKeyLike, value: unknown, options?: { expireIn?: number }): Promise<{ ok: true; versionstamp: string }>;
  delete(key: KvKeyLike): Promise<void>;
  list(selector: { prefix: KvKeyLike } | { prefix: KvKeyLike; start: KvKeyLike }, options?: { limit?: number; reverse?: boolean; batchSize?: number }): AsyncIterable<KvEntryLike>;
  atomic(): KvAtomicLike;
  close(): void;
}

/** Deno KV's largest value (bytes). */
export const KV_MAX_VALUE_BYTES = 65_536;
/** Deno KV's largest key for a write (bytes, encoded). */
export const KV_MAX_KEY_BYTES = 2_048;
/** Blob part size, and the largest blob stored inline in its header: 60 KiB. */
export const KV_BLOB_PART_BYTES = 61_440;
/** Parts per atomic commit: 12 × 60 KiB plus keys and a header stays under the 800 KiB commit limit. */
const PARTS_PER_COMMIT = 12;
/** Deletes per atomic commit (the limit is 1,000 mutations). */
const DELETES_PER_COMMIT = 500;
/** `getMany` reads at most 10 keys. */
const GET_MANY_MAX = 10;
/** Checks per atomic commit: @deno/kv's SQLite allows 10 (native Deno 100). */
const COMMIT_MAX_CHECKS = 10;
/** Mutations per atomic commit. */
const COMMIT_MAX_MUTATIONS = 1_000;
/**
 * Bytes per batched commit, counted as values plus twice their keys: the limit is 819,200 and
 * native Deno counts a key twice (@deno/kv once); the rest is a margin.
 */
const COMMIT_MAX_BYTES = 816_000;
/** Encoded key bytes of a commit's mutations (native Deno's limit is 81,920). */
const COMMIT_MAX_KEY_BYTES = 80_000;
/** An encoded number key part: a tag byte and 8 bytes. */
const NUMBER_PART_BYTES = 9;
/** `getMany` calls (and chunked blob reads) in flight at once during a batch. */
const READS_IN_FLIGHT = 8;
/** Batched commits in flight at once: the database applies them one at a time, this overlaps preparing one with writing another. */
const COMMITS_IN_FLIGHT = 2;
/** A blob key is at most this many UTF-8 bytes, so that its part keys stay under the key limit. */
const MAX_BLOB_KEY_BYTES = 1_024;
/** How often a blob operation re-reads the header after losing a race with another writer. */
const BLOB_RETRIES = 5;

const STORE_ROOT = "deft";
const BLOB_HEADER_ROOT = "deft-blob";
const BLOB_PART_ROOT = "deft-blob-part";
const HEADER_INLINE = 0x00;
const HEADER_CHUNKED = 0x01;

const utf8 = new TextEncoder();
const fromUtf8 = new TextDecoder();

/** The encoded size of a key of strings, as Deno KV counts it: per part a tag byte, the UTF-8 (NUL escaped to two bytes), a terminator. */
function encodedKeyBytes(parts: readonly string[]): number {
  let n = 0;
  for (const p of parts) n += 2 + utf8.encode(p).length + (p.match(/\u0000/g)?.length ?? 0);
  return n;
}

/** A store key as a string for messages. */
const showKey = (key: StoreKey): string => JSON.stringify(key);

/**
 * Opens a `KvStore` and a `KvBlobStore` over one database: the database is closed when both
 * have been closed. This is how the shims hand one file to both stores.
 */
export function openKvStores(kv: KvLike, name: string): { store: KvStore; blobs: KvBlobStore } {
  let open = 2;
  const release = () => {
    open--;
    if (open === 0) kv.close();
  };
  return { store: new KvStore(kv, { name, onClose: release }), blobs: new KvBlobStore(kv, { name, onClose: release }) };
}

/** What `KvStore` and `KvBlobStore` take besides the database. */
export interface KvStoreOptions {
  /** Names the backend in errors, e.g. "deno-kv:/var/lib/deft/deft.kv". */
  name: string;
  /** Called by `close()` instead of closing the database (when it is shared). */
  onClose?: () => void;
}

/** The calls both stores share: the closed check and the error wrapping. */
class KvBase {
  readonly name: string;
  protected readonly kv: KvLike;
  #closed = false;
  readonly #onClose: (() => void) | undefined;

  constructor(kv: KvLike, opts: KvStoreOptions) {
    this.kv = kv;
    this.name = opts.name;
    this.#onClose = opts.onClose;
  }

  /** Runs one backend call; any failure becomes a `StoreUnavailableError` naming the operation. */
  protected async call<T>(op: string, fn: () => Promise<T>): Promise<T> {
    if (this.#closed) throw new StoreUnavailableError(this.name, `${op}: the store is closed`);
    try {
      return await fn();
    } catch (e) {
      if (e instanceof StoreUnavailableError) throw e;
      throw new StoreUnavailableError(this.name, `${op} failed: ${e instanceof Error ? e.message.split("\n")[0] : String(e)}`, { cause: e });
    }
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    if (this.#onClose) this.#onClose();
    else this.kv.close();
  }
}

/** A Store entry as kept in Deno KV. */
interface Envelope {
  v: StoreValue;
  /** Expiry deadline (ms since the epoch). */
  x?: number;
}

/** `Store` over Deno KV (see the file comment for the layout and limits). */
export class KvStore extends KvBase implements Store {
  constructor(kv: KvLike, opts: KvStoreOptions) {
    super(kv, opts);
  }

  async get<T extends StoreValue = StoreValue>(key: StoreKey): Promise<Versioned<T> | null> {
    this.#checkKey(key, "get");
    const entry = await this.call(`get ${showKey(key)}`, () => this.kv.get([STORE_ROOT, ...key]));
    const live = this.#decode(key, entry);
    return live ? { key: [...key], value: live.value as T, version: live.version } : null;
  }

  async set(key: StoreKey, value: StoreValue, opts: SetOptions = {}): Promise<SetResult> {
    this.#checkKey(key, "set");
    if (opts.expireInMs !== undefined && !(opts.expireInMs >= 0)) throw new RangeError(`${this.name}: set ${showKey(key)}: expireInMs must be a number ≥ 0, got ${opts.expireInMs}`);
    const valueJson = JSON.stringify(value);
    if (valueJson === undefined) throw new TypeError(`${this.name}: set ${showKey(key)}: the value is not JSON`);
    // The Envelope, written out so the value is serialized once.
    const bytes = utf8.encode(opts.expireInMs === undefined ? `{"v":${valueJson}}` : `{"v":${valueJson},"x":${Date.now() + opts.expireInMs}}`);
    if (bytes.length > KV_MAX_VALUE_BYTES) {
      throw new RangeError(`${this.name}: set ${showKey(key)}: the value is ${bytes.length} bytes as JSON; Deno KV holds at most ${KV_MAX_VALUE_BYTES} (keep Store values under 60 KiB, put larger data in the BlobStore)`);
    }
    // Deno KV wants a positive integer; the envelope's deadline is the exact one.
    const kvOpts = opts.expireInMs !== undefined ? { expireIn: Math.max(1, Math.ceil(opts.expireInMs)) } : undefined;
    const k = [STORE_ROOT, ...key];
    if (opts.expectVersion === undefined) {
      const res = await this.call(`set ${showKey(key)}`, () => this.kv.set(k, bytes, kvOpts));
      return { ok: true, version: res.versionstamp };
    }
    // Compare-and-set: read, compare the logical version (an expired entry has none), then commit
    // with a check on the physical versionstamp so that a write in between makes it fail.
    const current = await this.call(`set ${showKey(key)}`, () => this.kv.get(k));
    if ((this.#decode(key, current)?.version ?? null) !== opts.expectVersion) return { ok: false };
    const res = await this.call(`set ${showKey(key)}`, () => this.kv.atomic().check({ key: k, versionstamp: current.versionstamp }).set(k, bytes, kvOpts).commit());
    return res.ok ? { ok: true, version: res.versionstamp } : { ok: false };
  }

  async delete(key: StoreKey, opts: { expectVersion?: string } = {}): Promise<{ ok: boolean }> {
    this.#checkKey(key, "delete");
    const k = [STORE_ROOT, ...key];
    if (opts.expectVersion === undefined) {
      await this.call(`delete ${showKey(key)}`, () => this.kv.delete(k));
      return { ok: true };
    }
    const current = await this.call(`delete ${showKey(key)}`, () => this.kv.get(k));
    if (this.#decode(key, current)?.version !== opts.expectVersion) return { ok: false };
    const res = await this.call(`delete ${showKey(key)}`, () => this.kv.atomic().check({ key: k, versionstamp: current.versionstamp }).delete(k).commit());
    return { ok: res.ok };
  }

  async *list<T extends StoreValue = StoreValue>(prefix: StoreKey, opts: ListOptions = {}): AsyncIterable<Versioned<T>> {
    this.#checkKey(prefix, "list");
    const limit = opts.limit ?? Infinity;
    if (limit <= 0) return;
    // No `limit` for Deno KV: expired entries are skipped here and must not count. A small limit
    // still reads a small batch.
    const batchSize = Number.isFinite(limit) ? Math.min(Math.max(limit, 1), 500) : 500;
    const op = `list ${showKey(prefix)}`;
    const iterator = await this.call(op, async () => this.kv.list({ prefix: [STORE_ROOT, ...prefix] }, { reverse: opts.reverse ?? false, batchSize })[Symbol.asyncIterator]());
    let n = 0;
    while (n < limit) {
      const step = await this.call(op, () => iterator.next());
      if (step.done) return;
      const key = step.value.key.slice(1).map(String);
      const live = this.#decode(key, step.value);
      if (!live) continue;
      n++;
      yield { key, value: live.value as T, version: live.version };
    }
  }

  /** The live value and version of an entry, or null when absent or expired. */
  #decode(key: StoreKey, entry: KvEntryLike): { value: StoreValue; version: string } | null {
    if (entry.versionstamp === null) return null;
    if (!(entry.value instanceof Uint8Array)) throw new TypeError(`${this.name}: ${showKey(key)} holds a value Deft did not write (not bytes)`);
    const envelope = JSON.parse(fromUtf8.decode(entry.value)) as Envelope;
    if (envelope.x !== undefined && envelope.x <= Date.now()) return null;
    return { value: envelope.v, version: entry.versionstamp };
  }

  #checkKey(key: StoreKey, op: string): void {
    if (!Array.isArray(key) || key.some((p) => typeof p !== "string")) throw new TypeError(`${this.name}: ${op}: a key is an array of strings, got ${JSON.stringify(key)}`);
    if (encodedKeyBytes([STORE_ROOT, ...key]) > KV_MAX_KEY_BYTES) throw new RangeError(`${this.name}: ${op}: the key ${showKey(key).slice(0, 80)}… is longer than Deno KV's ${KV_MAX_KEY_BYTES} bytes`);
  }
}

/** A chunked blob's header. */
interface Manifest {
  id: string;
  size: number;
  parts: number;
  sha256: string;
}

type Header = { kind: "inline"; data: Uint8Array } | { kind: "chunked"; manifest: Manifest };

async function sha256Hex(data: Uint8Array): Promise<string> {
  const digest = new Uint8Array(await crypto.subtle.digest("SHA-256", data as Uint8Array<ArrayBuffer>));
  return Array.from(digest, (b) => b.toString(16).padStart(2, "0")).join("");
}

function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

/** One blob ready to be written: its bytes (a copy of the caller's), its header, and the id of its parts. */
interface BlobWrite {
  key: string;
  headerKey: KvKeyLike;
  bytes: Uint8Array;
  inline: boolean;
  manifest: Manifest;
  headerValue: Uint8Array;
}

/** A blob's bytes, copied from the caller's: a small blob is copied straight into its header value. */
interface StagedBlob {
  key: string;
  bytes: Uint8Array;
  /** The header of a blob stored inline (its bytes are `inlineHeader.subarray(1)`); null for a chunked one. */
  inlineHeader: Uint8Array | null;
}

/** The store's own copy of `data` (one copy, made at once). */
function stage(key: string, data: Uint8Array): StagedBlob {
  if (data.length > KV_BLOB_PART_BYTES) return { key, bytes: new Uint8Array(data), inlineHeader: null };
  const inlineHeader = new Uint8Array(1 + data.length);
  inlineHeader[0] = HEADER_INLINE;
  inlineHeader.set(data, 1);
  return { key, bytes: inlineHeader.subarray(1), inlineHeader };
}

/** A blob in a batched commit, with the header it replaces (as read before the commit). */
interface GroupMember {
  write: BlobWrite;
  current: KvEntryLike;
  old: Header | null;
  /** The commit checks that the header is still `current` (see `putMany`). */
  check: boolean;
}

/** What a blob adds to a batched commit, against Deno KV's limits per commit. */
interface CommitCost {
  mutations: number;
  /** Values plus keys, each key counted twice (as native Deno does; @deno/kv counts it once). */
  bytes: number;
  keyBytes: number;
  checks: number;
}

/** `BlobStore` over Deno KV: blobs up to 60 KiB in one entry, larger ones in 60 KiB parts. */
export class KvBlobStore extends KvBase implements BlobStore {
  constructor(kv: KvLike, opts: KvStoreOptions) {
    super(kv, opts);
  }

  async put(key: string, data: Uint8Array): Promise<void> {
    this.#checkKey(key, "put");
    const staged = stage(key, data); // a copy: the caller may change its array while we write
    await this.call(`put ${JSON.stringify(key)}`, async () => this.#write(await this.#prepare(staged)));
  }

  /**
   * Many blobs in few commits: every blob that fits in one commit (up to 12 parts) is packed with
   * others into commits that stay within Deno KV's limits (1,000 mutations, 800 KiB, 80 KiB of
   * keys, 10 checks); larger blobs are written one by one as by `put`. Each blob keeps its own
   * layout (parts and header in the same commit), so none is ever visible half written.
   *
   * The headers are read first (`getMany`, ten at a time): a blob that already holds its bytes is
   * skipped, and a blob with parts, or replacing one with parts, is written with a check on the
   * header read (if another writer changed it meanwhile, that commit fails and its blobs are
   * written one by one instead, as `put` does). A small blob replacing an absent or small one is
   * not checked (checks are scarce: 10 per commit): if another writer puts a large blob under the
   * same key at that very moment, the last commit wins as with `put`, but the loser's parts may
   * stay behind unreferenced (space, never a wrong answer).
   *
   * With `contentAddressed`, no header is read at all (a read per blob costs about as much as the
   * write it could save): a small blob is written as above, unchecked (if present, it held these
   * same bytes), and a blob with parts is checked against no header existing (if one does, it held
   * these same bytes: the retry in `#commitGroup` finds that and leaves it).
   */
  async putMany(items: Array<{ key: string; data: Uint8Array }>, opts: PutManyOptions = {}): Promise<void> {
    if (!Array.isArray(items)) throw new TypeError(`${this.name}: putMany: expected an array of {key, data}, got ${typeof items}`);
    // Copies, taken now (the caller may change its arrays while we write); a later item of a key wins.
    const latest = new Map<string, StagedBlob>();
    for (const { key, data } of items) {
      this.#checkKey(key, "putMany");
      latest.delete(key);
      latest.set(key, stage(key, data));
    }
    await this.call(`putMany (${latest.size} blobs)`, async () => {
      if (latest.size === 0) return;
      // In key order: SQLite then fills its B-tree pages in order instead of touching (and
      // rewriting, at every commit) pages all over it (into a fresh database: a third less time).
      const writes = (await Promise.all(Array.from(latest.values(), (staged) => this.#prepare(staged)))).sort((a, b) => compareStrings(a.key, b.key));
      // Content-addressed blobs are written without reading their headers: see `#commitGroup`.
      const headers = opts.contentAddressed ? null : await this.#readHeaders(writes.map((w) => w.headerKey));
      const alone: BlobWrite[] = [];
      const groups: GroupMember[][] = [];
      let group: GroupMember[] = [];
      const total: CommitCost = { mutations: 0, bytes: 0, keyBytes: 0, checks: 0 };
      for (let i = 0; i < writes.length; i++) {
        const write = writes[i]!;
        const current = headers?.[i] ?? ABSENT;
        const old = this.#parseHeader(write.key, current);
        if (this.#holds(old, write)) continue;
        if (!write.inline && write.manifest.parts > PARTS_PER_COMMIT) {
          alone.push(write);
          continue;
        }
        const check = !write.inline || old?.kind === "chunked";
        const cost = this.#cost(write, check);
        const fits =
          total.mutations + cost.mutations <= COMMIT_MAX_MUTATIONS && total.bytes + cost.bytes <= COMMIT_MAX_BYTES && total.keyBytes + cost.keyBytes <= COMMIT_MAX_KEY_BYTES && total.checks + cost.checks <= COMMIT_MAX_CHECKS;
        if (!fits && group.length > 0) {
          groups.push(group);
          group = [];
          total.mutations = total.bytes = total.keyBytes = total.checks = 0;
        }
        group.push({ write, current, old, check });
        total.mutations += cost.mutations;
        total.bytes += cost.bytes;
        total.keyBytes += cost.keyBytes;
        total.checks += cost.checks;
      }
      if (group.length > 0) groups.push(group);
      await forEachLimit(groups, COMMITS_IN_FLIGHT, (g) => this.#commitGroup(g));
      for (const write of alone) await this.#write(write);
    });
  }

  async get(key: string): Promise<Uint8Array | null> {
    this.#checkKey(key, "get");
    return this.call(`get ${JSON.stringify(key)}`, () => this.#read(key));
  }

  /** Headers with `getMany` (10 keys a call, several calls at once), then the parts of chunked blobs. */
  async getMany(keys: string[]): Promise<Array<Uint8Array | null>> {
    if (!Array.isArray(keys)) throw new TypeError(`${this.name}: getMany: expected an array of keys, got ${typeof keys}`);
    for (const key of keys) this.#checkKey(key, "getMany");
    return this.call(`getMany (${keys.length} blobs)`, async () => {
      const entries = await this.#readHeaders(keys.map((key) => [BLOB_HEADER_ROOT, key]));
      const out: Array<Uint8Array | null> = new Array<Uint8Array | null>(keys.length).fill(null);
      const chunked: Array<{ i: number; header: Header }> = [];
      for (let i = 0; i < keys.length; i++) {
        const header = this.#parseHeader(keys[i]!, entries[i]!);
        if (header?.kind === "inline") out[i] = header.data;
        else if (header) chunked.push({ i, header });
      }
      await forEachLimit(chunked, READS_IN_FLIGHT, async ({ i, header }) => {
        out[i] = await this.#read(keys[i]!, header);
      });
      return out;
    });
  }

  async has(key: string): Promise<boolean> {
    this.#checkKey(key, "has");
    const entry = await this.call(`has ${JSON.stringify(key)}`, () => this.kv.get([BLOB_HEADER_ROOT, key]));
    return entry.versionstamp !== null;
  }

  async delete(key: string): Promise<void> {
    this.#checkKey(key, "delete");
    await this.call(`delete ${JSON.stringify(key)}`, async () => {
      const headerKey = [BLOB_HEADER_ROOT, key];
      for (let attempt = 0; attempt < BLOB_RETRIES; attempt++) {
        const current = await this.kv.get(headerKey);
        const header = this.#parseHeader(key, current);
        if (header === null) return;
        const res = await this.kv.atomic().check({ key: headerKey, versionstamp: current.versionstamp }).delete(headerKey).commit();
        if (!res.ok) continue;
        if (header.kind === "chunked") await this.#deleteParts(key, header.manifest);
        return;
      }
      throw new Error(`blob ${JSON.stringify(key)} kept changing under ${BLOB_RETRIES} attempts to delete it`);
    });
  }

  async *list(prefix: string): AsyncIterable<string> {
    if (typeof prefix !== "string") throw new TypeError(`${this.name}: list: a prefix is a string, got ${JSON.stringify(prefix)}`);
    const op = `list ${JSON.stringify(prefix)}`;
    // Headers sort by key bytes, so every key starting with `prefix` follows ["deft-blob", prefix]
    // and they are contiguous: read from there and stop at the first that does not match.
    const iterator = await this.call(op, async () => this.kv.list({ prefix: [BLOB_HEADER_ROOT], start: [BLOB_HEADER_ROOT, prefix] }, { batchSize: 100 })[Symbol.asyncIterator]());
    while (true) {
      const step = await this.call(op, () => iterator.next());
      if (step.done) return;
      const key = String(step.value.key[1]);
      if (!key.startsWith(prefix)) return;
      yield key;
    }
  }

  /** A staged blob's header and parts, ready to write. */
  async #prepare({ key, bytes, inlineHeader }: StagedBlob): Promise<BlobWrite> {
    const inline = inlineHeader !== null;
    const manifest: Manifest = { id: crypto.randomUUID(), size: bytes.length, parts: Math.ceil(bytes.length / KV_BLOB_PART_BYTES), sha256: inline ? "" : await sha256Hex(bytes) };
    const headerValue = inlineHeader ?? concat([Uint8Array.of(HEADER_CHUNKED), utf8.encode(JSON.stringify(manifest))]);
    return { key, headerKey: [BLOB_HEADER_ROOT, key], bytes, inline, manifest, headerValue };
  }

  /** `put` of one prepared blob: reads its header, then writes it with a check on that header (retrying on a race). */
  async #write(write: BlobWrite): Promise<void> {
    const { key, headerKey, bytes, inline, manifest, headerValue } = write;
    // Parts and header in one commit when they fit; otherwise the parts go first, in their own
    // commits, where nothing points at them until the header does.
    const oneCommit = inline || manifest.parts <= PARTS_PER_COMMIT;
    let current = await this.kv.get(headerKey);
    if (this.#holds(this.#parseHeader(key, current), write)) return;
    if (!oneCommit) await this.#writeParts(key, bytes, manifest, 0, manifest.parts);
    for (let attempt = 0; attempt < BLOB_RETRIES; attempt++) {
      if (attempt > 0) current = await this.kv.get(headerKey);
      const old = this.#parseHeader(key, current);
      const commit = this.kv.atomic().check({ key: headerKey, versionstamp: current.versionstamp });
      if (!inline && oneCommit) for (let i = 0; i < manifest.parts; i++) commit.set(this.#partKey(key, manifest.id, i), this.#part(bytes, i));
      const res = await commit.set(headerKey, headerValue).commit();
      if (res.ok) {
        if (old?.kind === "chunked") await this.#deleteParts(key, old.manifest);
        return;
      }
      // Another writer changed the header since we read it: read it again and retry.
    }
    if (!oneCommit) await this.#deleteParts(key, manifest);
    throw new Error(`blob ${JSON.stringify(key)} kept changing during ${BLOB_RETRIES} attempts to write it`);
  }

  /**
   * One commit of several blobs (parts and header of each). Blobs with parts are checked against
   * the header read before (or, unread, against none existing). When a check fails, the checked
   * headers are read again, blobs that now hold their bytes are dropped, and the rest committed
   * once more; if that fails too, each blob is written on its own, as by `put`.
   */
  async #commitGroup(group: GroupMember[], retried = false): Promise<void> {
    const commit = this.kv.atomic();
    for (const { write, current, check } of group) {
      if (check) commit.check({ key: write.headerKey, versionstamp: current.versionstamp });
      if (!write.inline) for (let i = 0; i < write.manifest.parts; i++) commit.set(this.#partKey(write.key, write.manifest.id, i), this.#part(write.bytes, i));
      commit.set(write.headerKey, write.headerValue);
    }
    const res = await commit.commit();
    if (res.ok) {
      for (const { write, old } of group) if (old?.kind === "chunked") await this.#deleteParts(write.key, old.manifest);
      return;
    }
    // Nothing of this commit was written.
    if (retried) {
      for (const { write } of group) await this.#write(write);
      return;
    }
    const checked = group.filter((m) => m.check);
    const fresh = await this.#readHeaders(checked.map((m) => m.write.headerKey));
    const reread = new Map(checked.map((m, i) => [m, fresh[i]!]));
    const again: GroupMember[] = [];
    for (const member of group) {
      const current = reread.get(member);
      if (current === undefined) {
        again.push(member);
        continue;
      }
      const old = this.#parseHeader(member.write.key, current);
      if (!this.#holds(old, member.write)) again.push({ write: member.write, current, old, check: true });
    }
    if (again.length > 0) await this.#commitGroup(again, true);
  }

  /** What `write` adds to a batched commit. */
  #cost(write: BlobWrite, check: boolean): CommitCost {
    const headerKeyBytes = encodedKeyBytes([BLOB_HEADER_ROOT, write.key]);
    const cost: CommitCost = { mutations: 1, bytes: write.headerValue.length + 2 * headerKeyBytes, keyBytes: headerKeyBytes, checks: check ? 1 : 0 };
    if (!write.inline) {
      const partKeyBytes = encodedKeyBytes([BLOB_PART_ROOT, write.key, write.manifest.id]) + NUMBER_PART_BYTES;
      cost.mutations += write.manifest.parts;
      cost.bytes += write.bytes.length + 2 * write.manifest.parts * partKeyBytes;
      cost.keyBytes += write.manifest.parts * partKeyBytes;
    }
    return cost;
  }

  /** The blob's bytes, or null; `header` is its header when already read (then read again only if its parts are gone). */
  async #read(key: string, header?: Header | null): Promise<Uint8Array | null> {
    for (let attempt = 0; attempt < BLOB_RETRIES; attempt++) {
      if (attempt > 0 || header === undefined) header = this.#parseHeader(key, await this.kv.get([BLOB_HEADER_ROOT, key]));
      if (header === null) return null;
      if (header.kind === "inline") return header.data;
      const data = await this.#readParts(key, header.manifest);
      if (data === null) continue; // a part is gone: the blob was replaced or deleted meanwhile
      if (data.length !== header.manifest.size || (await sha256Hex(data)) !== header.manifest.sha256) {
        throw new Error(`blob ${JSON.stringify(key)} is corrupt (its parts do not match its header)`);
      }
      return data;
    }
    throw new Error(`blob ${JSON.stringify(key)} has a part missing on ${BLOB_RETRIES} reads`);
  }

  /** Entries for `keys`, in order: `getMany` of 10 keys at a time, several at once. */
  async #readHeaders(keys: KvKeyLike[]): Promise<KvEntryLike[]> {
    const out = new Array<KvEntryLike>(keys.length);
    const firsts: number[] = [];
    for (let first = 0; first < keys.length; first += GET_MANY_MAX) firsts.push(first);
    await forEachLimit(firsts, READS_IN_FLIGHT, async (first) => {
      const entries = await this.kv.getMany(keys.slice(first, first + GET_MANY_MAX));
      for (let j = 0; j < entries.length; j++) out[first + j] = entries[j]!;
    });
    return out;
  }

  /** Whether the header already holds these bytes (then writing them again is a no-op). */
  #holds(header: Header | null, write: BlobWrite): boolean {
    if (header?.kind === "inline") return write.inline && sameBytes(header.data, write.bytes);
    if (header?.kind === "chunked") return header.manifest.size === write.manifest.size && header.manifest.sha256 === write.manifest.sha256 && !write.inline;
    return false;
  }

  async #writeParts(key: string, bytes: Uint8Array, manifest: Manifest, from: number, to: number): Promise<void> {
    for (let first = from; first < to; first += PARTS_PER_COMMIT) {
      const batch = this.kv.atomic();
      for (let i = first; i < Math.min(first + PARTS_PER_COMMIT, to); i++) batch.set(this.#partKey(key, manifest.id, i), this.#part(bytes, i));
      const res = await batch.commit();
      if (!res.ok) throw new Error(`writing parts ${first}.. of blob ${JSON.stringify(key)} was refused`);
    }
  }

  #partKey(key: string, id: string, i: number): KvKeyLike {
    return [BLOB_PART_ROOT, key, id, i];
  }

  #part(bytes: Uint8Array, i: number): Uint8Array {
    return bytes.subarray(i * KV_BLOB_PART_BYTES, Math.min((i + 1) * KV_BLOB_PART_BYTES, bytes.length));
  }

  /** The whole blob, or null when a part is missing. */
  async #readParts(key: string, manifest: Manifest): Promise<Uint8Array | null> {
    const out = new Uint8Array(manifest.size);
    for (let first = 0; first < manifest.parts; first += GET_MANY_MAX) {
      const keys: KvKeyLike[] = [];
      for (let i = first; i < Math.min(first + GET_MANY_MAX, manifest.parts); i++) keys.push(this.#partKey(key, manifest.id, i));
      const entries = await this.kv.getMany(keys);
      for (let j = 0; j < entries.length; j++) {
        const value = entries[j]!.value;
        if (entries[j]!.versionstamp === null || !(value instanceof Uint8Array)) return null;
        const offset = (first + j) * KV_BLOB_PART_BYTES;
        if (offset + value.length > out.length) return null;
        out.set(value, offset);
      }
    }
    return out;
  }

  async #deleteParts(key: string, manifest: Manifest): Promise<void> {
    for (let first = 0; first < manifest.parts; first += DELETES_PER_COMMIT) {
      const batch = this.kv.atomic();
      for (let i = first; i < Math.min(first + DELETES_PER_COMMIT, manifest.parts); i++) batch.delete(this.#partKey(key, manifest.id, i));
      await batch.commit();
    }
  }

  #parseHeader(key: string, entry: KvEntryLike): Header | null {
    if (entry.versionstamp === null) return null;
    const v = entry.value;
    if (!(v instanceof Uint8Array) || v.length === 0) throw new TypeError(`${this.name}: blob ${JSON.stringify(key)} has a header Deft did not write`);
    // No copy: every read hands over a value of its own (see `KvLike`).
    if (v[0] === HEADER_INLINE) return { kind: "inline", data: v.subarray(1) };
    if (v[0] === HEADER_CHUNKED) return { kind: "chunked", manifest: JSON.parse(fromUtf8.decode(v.subarray(1))) as Manifest };
    throw new TypeError(`${this.name}: blob ${JSON.stringify(key)} has a header of unknown kind ${v[0]}`);
  }

  #checkKey(key: string, op: string): void {
    if (typeof key !== "string" || key === "") throw new TypeError(`${this.name}: ${op}: a blob key is a non-empty string, got ${JSON.stringify(key)}`);
    if (utf8.encode(key).length > MAX_BLOB_KEY_BYTES) throw new RangeError(`${this.name}: ${op}: the blob key ${JSON.stringify(key.slice(0, 80))}… is longer than ${MAX_BLOB_KEY_BYTES} bytes`);
  }
}


/** The entry of an absent key (a header not read is treated as absent, see `putMany`). */
const ABSENT: KvEntryLike = { key: [], value: null, versionstamp: null };

/** Code-unit order (for blob keys of one batch: any fixed order groups them; this one is cheap). */
function compareStrings(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

function concat(chunks: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(chunks.reduce((n, c) => n + c.length, 0));
  let offset = 0;
  for (const c of chunks) {
    out.set(c, offset);
    offset += c.length;
  }
  return out;
}
