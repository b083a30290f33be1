/**
 * `Store` and `BlobStore` over Deno KV: native `Deno.Kv` on Deno (and Deno Deploy), the
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
 * Limits (Deno KV's, the same natively and in @deno/kv): a value is at most 65,536 bytes, so a
 * Store value's JSON must fit in that with its envelope (the Store contract promises 60 KiB); a
 * key at most 2,048 bytes encoded; an atomic commit at most 1,000 mutations and 800 KiB.
 *
 * Expiry: Deno KV deletes expired keys lazily (a read shortly after the deadline still sees the
 * entry), so the deadline is also kept in the envelope and reads treat an expired entry as absent.
 */
import { StoreUnavailableError } from "./store.ts";
import type { BlobStore, ListOptions, SetOptions, SetResult, Store, StoreKey, StoreValue, Versioned } from "./store.ts";

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
 * The part of Deno KV this file uses, satisfied by both `Deno.Kv` and `@deno/kv`'s `Kv`
 * (structurally: nothing here imports either).
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

/** `BlobStore` over Deno KV: blobs up to 60 KiB in one entry, larger ones in 60 KiB parts. */
export class KvBlobStore extends KvBase implements BlobStore {
  constructor(kv: KvLike, opts: KvStoreOptions) {
    super(kv, opts);
  }

  async put(key: string, data: Uint8Array): Promise<void> {
    this.#checkKey(key, "put");
    const bytes = new Uint8Array(data); // a copy: the caller may change its array while we write
    await this.call(`put ${JSON.stringify(key)}`, async () => {
      const headerKey = [BLOB_HEADER_ROOT, key];
      const inline = bytes.length <= KV_BLOB_PART_BYTES;
      const manifest: Manifest = { id: crypto.randomUUID(), size: bytes.length, parts: Math.ceil(bytes.length / KV_BLOB_PART_BYTES), sha256: inline ? "" : await sha256Hex(bytes) };
      const headerValue = inline ? concat([Uint8Array.of(HEADER_INLINE), bytes]) : concat([Uint8Array.of(HEADER_CHUNKED), utf8.encode(JSON.stringify(manifest))]);
      // Parts and header in one commit when they fit; otherwise the parts go first, in their own
      // commits, where nothing points at them until the header does.
      const oneCommit = inline || manifest.parts <= PARTS_PER_COMMIT;
      let current = await this.kv.get(headerKey);
      if (this.#holds(key, current, bytes, manifest)) return;
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
    });
  }

  async get(key: string): Promise<Uint8Array | null> {
    this.#checkKey(key, "get");
    return this.call(`get ${JSON.stringify(key)}`, async () => {
      for (let attempt = 0; attempt < BLOB_RETRIES; attempt++) {
        const header = this.#parseHeader(key, await this.kv.get([BLOB_HEADER_ROOT, key]));
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

  /** Whether the header already holds these bytes (then writing them again is a no-op). */
  #holds(key: string, entry: KvEntryLike, bytes: Uint8Array, manifest: Manifest): boolean {
    const header = this.#parseHeader(key, entry);
    if (header?.kind === "inline") return sameBytes(header.data, bytes);
    if (header?.kind === "chunked") return header.manifest.size === manifest.size && header.manifest.sha256 === manifest.sha256;
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
    if (v[0] === HEADER_INLINE) return { kind: "inline", data: new Uint8Array(v.subarray(1)) };
    if (v[0] === HEADER_CHUNKED) return { kind: "chunked", manifest: JSON.parse(fromUtf8.decode(v.subarray(1))) as Manifest };
    throw new TypeError(`${this.name}: blob ${JSON.stringify(key)} has a header of unknown kind ${v[0]}`);
  }

  #checkKey(key: string, op: string): void {
    if (typeof key !== "string" || key === "") throw new TypeError(`${this.name}: ${op}: a blob key is a non-empty string, got ${JSON.stringify(key)}`);
    if (utf8.encode(key).length > MAX_BLOB_KEY_BYTES) throw new RangeError(`${this.name}: ${op}: the blob key ${JSON.stringify(key.slice(0, 80))}… is longer than ${MAX_BLOB_KEY_BYTES} bytes`);
  }
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
