// The Workers stores: a `Store` over a Durable Object's storage (`ctx.storage`) and a `BlobStore`
// over an R2 bucket binding. Both are typed against small structural interfaces
// (`DoStorageLike`, `R2BucketLike`) so this file needs no Workers type package.
//
// DoStore layout, in the object's storage (which it may share with other data of that object):
//
//   "deft/" + encodeKey(parts)   { j: UTF-8 JSON of the value, n: version, x?: expiry (ms) }
//   "deft-meta/version"          the last version issued (one counter per object)
//
// encodeKey: each part with U+0001 escaped as U+0001 U+0002 and U+0000 as U+0001 U+0001, then a
// U+0000 terminator. Storage sorts keys by their UTF-8 bytes, so this sorts part by part, and all
// keys under a prefix share the prefix's encoding.
//
// Concurrency: a Durable Object runs one request at a time per event, but calls interleave at
// every `await`; compare-and-set is a read then a write, so every write of one DoStore goes
// through one queue. Use one DoStore per object (two over the same storage would not see each
// other's queue). Each write is one `put()` of the entry and the counter together (atomic).
//
// Durability: a Durable Object's write is confirmed once it is durable (output gates: nothing the
// object sends after a write leaves before the write is stored). R2 `put` resolves once stored.
// R2 has no batch calls: R2BlobStore's `putMany`/`getMany` are `put`s/`get`s, 16 at once.
//
// Limits: a Durable Object value is at most 128 KiB on KV-backed objects (2 MiB on SQLite-backed
// ones); DoStore refuses JSON over 127 KiB so that the same code runs on both. Keys at most 2 KiB.
// R2 keys at most 1,024 bytes; objects up to 5 GiB (a Worker's memory is the practical limit).
// Expired entries are invisible to every read; their rows are removed when next written or deleted.
import { StoreUnavailableError } from "../../core/state/store.ts";
import type { BlobStore, ListOptions, SetOptions, SetResult, Store, StoreKey, StoreValue, Versioned } from "../../core/state/store.ts";
import { forEachLimit } from "../../core/state/for-each-limit.ts";

/** What DoStore uses of `DurableObjectStorage`. */
export interface DoStorageLike {
  get(key: string): Promise<unknown>;
  put(entries: Record<string, unknown>): Promise<void>;
  delete(key: string): Promise<boolean>;
  list(options: { prefix?: string; startAfter?: string; end?: string; reverse?: boolean; limit?: number }): Promise<Map<string, unknown>>;
}

/** What R2BlobStore uses of an `R2Bucket` binding. */
export interface R2BucketLike {
  put(key: string, value: Uint8Array): Promise<unknown>;
  get(key: string): Promise<{ arrayBuffer(): Promise<ArrayBuffer> } | null>;
  head(key: string): Promise<unknown>;
  delete(key: string): Promise<void>;
  list(options: { prefix?: string; cursor?: string; limit?: number }): Promise<{ objects: { key: string }[]; truncated: boolean; cursor?: string }>;
}

/** The largest Store value DoStore accepts (bytes of JSON): under the 128 KiB value limit with room for the record. */
export const DO_MAX_VALUE_BYTES = 127 * 1024;
/** The largest storage key (bytes). */
const DO_MAX_KEY_BYTES = 2_048;
/** The largest R2 key (bytes). */
const R2_MAX_KEY_BYTES = 1_024;
/** Entries per `list()` call while listing. */
const LIST_PAGE = 256;
/** R2 calls in flight at once in `putMany` and `getMany` (a Worker queues what is over its connection limit). */
const R2_CONCURRENCY = 16;

const DATA_PREFIX = "deft/";
const VERSION_KEY = "deft-meta/version";

const utf8 = new TextEncoder();
const fromUtf8 = new TextDecoder();
const showKey = (key: StoreKey): string => JSON.stringify(key);

/** A stored entry. */
interface DoRecord {
  /** The value as UTF-8 JSON (bytes, so the size limit is exact). */
  j: Uint8Array;
  /** Version. */
  n: number;
  /** Expiry deadline (ms since the epoch). */
  x?: number;
}

/** The storage key of a Store key (see the file comment). */
function encodeKey(parts: StoreKey): string {
  return DATA_PREFIX + parts.map((p) => p.replaceAll("\u0001", "\u0001\u0002").replaceAll("\u0000", "\u0001\u0001") + "\u0000").join("");
}

function decodeKey(storageKey: string): string[] {
  const body = storageKey.slice(DATA_PREFIX.length, -1); // drop the last terminator
  return body.split("\u0000").map((p) => p.replace(/\u0001([\u0001\u0002])/g, (_, c: string) => (c === "\u0001" ? "\u0000" : "\u0001")));
}

function errorText(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}

/** `Store` over a Durable Object's storage (see the file comment). */
export class DoStore implements Store {
  readonly name: string;
  readonly #storage: DoStorageLike;
  #closed = false;
  /** The last write queued: each write starts after it. */
  #tail: Promise<unknown> = Promise.resolve();

  constructor(storage: DoStorageLike, opts: { name?: string } = {}) {
    this.#storage = storage;
    this.name = opts.name ?? "durable-object";
  }

  async get<T extends StoreValue = StoreValue>(key: StoreKey): Promise<Versioned<T> | null> {
    const k = this.#key(key, "get");
    const record = await this.#call(`get ${showKey(key)}`, () => this.#storage.get(k));
    const live = this.#live(key, record);
    return live ? { key: [...key], value: JSON.parse(fromUtf8.decode(live.j)) as T, version: String(live.n) } : null;
  }

  async set(key: StoreKey, value: StoreValue, opts: SetOptions = {}): Promise<SetResult> {
    const k = this.#key(key, "set");
    if (opts.expireInMs !== undefined && !(opts.expireInMs >= 0)) throw new RangeError(`${this.name}: set ${showKey(key)}: expireInMs must be a number ≥ 0, got ${opts.expireInMs}`);
    const json = JSON.stringify(value);
    if (json === undefined) throw new TypeError(`${this.name}: set ${showKey(key)}: the value is not JSON`);
    const bytes = utf8.encode(json);
    if (bytes.length > DO_MAX_VALUE_BYTES) {
      throw new RangeError(`${this.name}: set ${showKey(key)}: the value is ${bytes.length} bytes as JSON; a Durable Object value holds at most ${DO_MAX_VALUE_BYTES} here (put larger data in the BlobStore)`);
    }
    return this.#exclusive(`set ${showKey(key)}`, async () => {
      if (opts.expectVersion !== undefined) {
        const current = this.#live(key, await this.#storage.get(k));
        if ((current ? String(current.n) : null) !== opts.expectVersion) return { ok: false };
      }
      const version = (((await this.#storage.get(VERSION_KEY)) as number | undefined) ?? 0) + 1;
      const record: DoRecord = { j: bytes, n: version };
      if (opts.expireInMs !== undefined) record.x = Date.now() + opts.expireInMs;
      await this.#storage.put({ [k]: record, [VERSION_KEY]: version });
      return { ok: true, version: String(version) };
    });
  }

  async delete(key: StoreKey, opts: { expectVersion?: string } = {}): Promise<{ ok: boolean }> {
    const k = this.#key(key, "delete");
    return this.#exclusive(`delete ${showKey(key)}`, async () => {
      if (opts.expectVersion !== undefined) {
        const current = this.#live(key, await this.#storage.get(k));
        if (current === null || String(current.n) !== opts.expectVersion) return { ok: false };
      }
      await this.#storage.delete(k);
      return { ok: true };
    });
  }

  async *list<T extends StoreValue = StoreValue>(prefix: StoreKey, opts: ListOptions = {}): AsyncIterable<Versioned<T>> {
    const base = this.#key(prefix, "list");
    const op = `list ${showKey(prefix)}`;
    const limit = opts.limit ?? Infinity;
    if (limit <= 0) return;
    // Page by key: forwards from after the last key seen, backwards up to (excluding) it.
    let cursor: string | undefined;
    let n = 0;
    while (true) {
      const position = cursor === undefined ? {} : opts.reverse ? { end: cursor } : { startAfter: cursor };
      const page = await this.#call(op, () => this.#storage.list({ prefix: base, reverse: opts.reverse ?? false, limit: LIST_PAGE, ...position }));
      for (const [storageKey, record] of page) {
        cursor = storageKey;
        if (storageKey === base) continue; // the prefix itself is not under itself
        const key = decodeKey(storageKey);
        const live = this.#live(key, record);
        if (!live) continue;
        yield { key, value: JSON.parse(fromUtf8.decode(live.j)) as T, version: String(live.n) };
        if (++n >= limit) return;
      }
      if (page.size < LIST_PAGE) return;
    }
  }

  async close(): Promise<void> {
    this.#closed = true;
  }

  /** Runs `fn` after every write queued before it. */
  #exclusive<T>(op: string, fn: () => Promise<T>): Promise<T> {
    const result = this.#tail.then(() => this.#call(op, fn));
    this.#tail = result.catch(() => {});
    return result;
  }

  async #call<T>(op: string, fn: () => Promise<T>): Promise<T> {
    if (this.#closed) throw new StoreUnavailableError(this.name, `${op}: the store is closed`);
    try {
      return await fn();
    } catch (e) {
      if (e instanceof StoreUnavailableError) throw e;
      throw new StoreUnavailableError(this.name, `${op} failed: ${errorText(e)}`, { cause: e });
    }
  }

  /** The record if present and not expired. */
  #live(key: StoreKey, record: unknown): DoRecord | null {
    if (record === undefined) return null;
    const r = record as DoRecord;
    if (typeof r !== "object" || r === null || !(r.j instanceof Uint8Array) || typeof r.n !== "number") throw new StoreUnavailableError(this.name, `${showKey(key)} holds a value Deft did not write`);
    return r.x !== undefined && r.x <= Date.now() ? null : r;
  }

  #key(key: StoreKey, op: string): string {
    if (!Array.isArray(key) || key.some((p) => typeof p !== "string")) throw new TypeError(`${this.name}: ${op}: a key is an array of strings, got ${JSON.stringify(key)}`);
    const k = encodeKey(key);
    if (utf8.encode(k).length > DO_MAX_KEY_BYTES) throw new RangeError(`${this.name}: ${op}: the key ${showKey(key).slice(0, 80)}… is longer than ${DO_MAX_KEY_BYTES} bytes`);
    return k;
  }
}

/** `BlobStore` over an R2 bucket: one object per blob, under the blob's key. */
export class R2BlobStore implements BlobStore {
  readonly name: string;
  readonly #bucket: R2BucketLike;
  #closed = false;

  constructor(bucket: R2BucketLike, opts: { name?: string } = {}) {
    this.#bucket = bucket;
    this.name = opts.name ?? "r2";
  }

  async put(key: string, data: Uint8Array): Promise<void> {
    this.#checkKey(key, "put");
    const copy = new Uint8Array(data); // the caller may change its array while R2 reads it
    await this.#call(`put ${JSON.stringify(key)}`, () => this.#bucket.put(key, copy));
  }

  /** Parallel `put`s (R2 has no batch write), R2_CONCURRENCY at once; a later item of a key wins. */
  async putMany(items: Array<{ key: string; data: Uint8Array }>): Promise<void> {
    const latest = new Map<string, Uint8Array>();
    for (const { key, data } of items) {
      this.#checkKey(key, "putMany");
      latest.delete(key);
      latest.set(key, new Uint8Array(data)); // copies, now: the caller may change its arrays meanwhile
    }
    await forEachLimit([...latest], R2_CONCURRENCY, ([key, copy]) => this.#call(`put ${JSON.stringify(key)}`, () => this.#bucket.put(key, copy)));
  }

  async get(key: string): Promise<Uint8Array | null> {
    this.#checkKey(key, "get");
    return this.#call(`get ${JSON.stringify(key)}`, async () => {
      const object = await this.#bucket.get(key);
      return object === null ? null : new Uint8Array(await object.arrayBuffer());
    });
  }

  /** Parallel `get`s, R2_CONCURRENCY at once. */
  async getMany(keys: string[]): Promise<Array<Uint8Array | null>> {
    for (const key of keys) this.#checkKey(key, "getMany");
    const out = new Array<Uint8Array | null>(keys.length).fill(null);
    await forEachLimit(
      keys.map((key, i) => [key, i] as const),
      R2_CONCURRENCY,
      async ([key, i]) => {
        out[i] = await this.get(key);
      },
    );
    return out;
  }

  async has(key: string): Promise<boolean> {
    this.#checkKey(key, "has");
    return (await this.#call(`has ${JSON.stringify(key)}`, () => this.#bucket.head(key))) !== null;
  }

  async delete(key: string): Promise<void> {
    this.#checkKey(key, "delete");
    await this.#call(`delete ${JSON.stringify(key)}`, () => this.#bucket.delete(key));
  }

  async *list(prefix: string): AsyncIterable<string> {
    if (typeof prefix !== "string") throw new TypeError(`${this.name}: list: a prefix is a string, got ${JSON.stringify(prefix)}`);
    let cursor: string | undefined;
    do {
      const page = await this.#call(`list ${JSON.stringify(prefix)}`, () => this.#bucket.list({ prefix, limit: 1000, ...(cursor === undefined ? {} : { cursor }) }));
      for (const object of page.objects) yield object.key;
      cursor = page.truncated ? page.cursor : undefined;
    } while (cursor !== undefined);
  }

  async close(): Promise<void> {
    this.#closed = true;
  }

  async #call<T>(op: string, fn: () => Promise<T>): Promise<T> {
    if (this.#closed) throw new StoreUnavailableError(this.name, `${op}: the store is closed`);
    try {
      return await fn();
    } catch (e) {
      throw new StoreUnavailableError(this.name, `${op} failed: ${errorText(e)}`, { cause: e });
    }
  }

  #checkKey(key: string, op: string): void {
    if (typeof key !== "string" || key === "") throw new TypeError(`${this.name}: ${op}: a blob key is a non-empty string, got ${JSON.stringify(key)}`);
    if (utf8.encode(key).length > R2_MAX_KEY_BYTES) throw new RangeError(`${this.name}: ${op}: the blob key ${JSON.stringify(key.slice(0, 80))}… is longer than R2's ${R2_MAX_KEY_BYTES} bytes`);
  }
}


/** The Store and BlobStore of one Durable Object and one R2 bucket. */
export function openWorkersStores(storage: DoStorageLike, bucket: R2BucketLike, opts: { storeName?: string; blobsName?: string } = {}): { store: DoStore; blobs: R2BlobStore } {
  return { store: new DoStore(storage, { name: opts.storeName ?? "durable-object" }), blobs: new R2BlobStore(bucket, { name: opts.blobsName ?? "r2" }) };
}
