/**
 * In-memory `Store` and `BlobStore`: for tests and embedding. Values are copied in and out (as
 * JSON and byte copies), so a caller can never change what is stored by mutating what it passed
 * or got back.
 */
import { StoreUnavailableError, type BlobStore, type ListOptions, type SetOptions, type SetResult, type Store, type StoreKey, type StoreValue, type Versioned } from "./store.ts";

/** One map key per store key (JSON: no two keys collide, whatever their parts hold). */
const encodeKey = (key: StoreKey): string => JSON.stringify(key);

/** Part-wise order, each part by code point (the UTF-8 byte order the other backends use). */
function compareKeys(a: readonly string[], b: readonly string[]): number {
  for (let i = 0; i < Math.min(a.length, b.length); i++) {
    const c = compareCodePoints(a[i]!, b[i]!);
    if (c) return c;
  }
  return a.length - b.length;
}
function compareCodePoints(a: string, b: string): number {
  const x = [...a];
  const y = [...b];
  for (let i = 0; i < Math.min(x.length, y.length); i++) {
    const d = x[i]!.codePointAt(0)! - y[i]!.codePointAt(0)!;
    if (d) return d;
  }
  return x.length - y.length;
}

export class MemoryStore implements Store {
  readonly name = "memory";
  readonly #entries = new Map<string, { key: string[]; json: string; version: string; expiresAt?: number }>();
  #clock = 0;
  #closed = false;

  #check(op: string): void {
    if (this.#closed) throw new StoreUnavailableError(this.name, `${op}: the store is closed`);
  }

  async get<T extends StoreValue = StoreValue>(key: StoreKey): Promise<Versioned<T> | null> {
    this.#check("get");
    const e = this.#live(encodeKey(key));
    return e ? { key: [...e.key], value: JSON.parse(e.json) as T, version: e.version } : null;
  }

  async set(key: StoreKey, value: StoreValue, opts: SetOptions = {}): Promise<SetResult> {
    this.#check("set");
    const k = encodeKey(key);
    const current = this.#live(k);
    if (opts.expectVersion !== undefined && (current?.version ?? null) !== opts.expectVersion) return { ok: false };
    const version = String(++this.#clock).padStart(16, "0");
    this.#entries.set(k, { key: [...key], json: JSON.stringify(value), version, ...(opts.expireInMs !== undefined ? { expiresAt: Date.now() + opts.expireInMs } : {}) });
    return { ok: true, version };
  }

  async delete(key: StoreKey, opts: { expectVersion?: string } = {}): Promise<{ ok: boolean }> {
    this.#check("delete");
    const k = encodeKey(key);
    const current = this.#live(k);
    if (opts.expectVersion !== undefined && current?.version !== opts.expectVersion) return { ok: false };
    this.#entries.delete(k);
    return { ok: true };
  }

  async *list<T extends StoreValue = StoreValue>(prefix: StoreKey, opts: ListOptions = {}): AsyncIterable<Versioned<T>> {
    this.#check("list");
    const matches = [...this.#entries.entries()]
      .filter(([k, e]) => prefix.every((p, i) => e.key[i] === p) && e.key.length > prefix.length && this.#live(k))
      .sort((a, b) => compareKeys(a[1].key, b[1].key));
    if (opts.reverse) matches.reverse();
    let n = 0;
    for (const [k] of matches) {
      if (opts.limit !== undefined && n++ >= opts.limit) return;
      const e = this.#live(k);
      if (e) yield { key: [...e.key], value: JSON.parse(e.json) as T, version: e.version };
    }
  }

  async close(): Promise<void> {
    this.#closed = true;
  }

  #live(k: string) {
    const e = this.#entries.get(k);
    if (e?.expiresAt !== undefined && e.expiresAt <= Date.now()) {
      this.#entries.delete(k);
      return undefined;
    }
    return e;
  }
}

export class MemoryBlobStore implements BlobStore {
  readonly name = "memory";
  readonly #blobs = new Map<string, Uint8Array>();
  #closed = false;
  #check(op: string): void {
    if (this.#closed) throw new StoreUnavailableError(this.name, `${op}: the blob store is closed`);
  }
  async put(key: string, data: Uint8Array): Promise<void> {
    this.#check("put");
    this.#blobs.set(key, data.slice());
  }
  async putMany(items: Array<{ key: string; data: Uint8Array }>): Promise<void> {
    this.#check("putMany");
    for (const { key, data } of items) this.#blobs.set(key, data.slice());
  }
  async get(key: string): Promise<Uint8Array | null> {
    this.#check("get");
    const b = this.#blobs.get(key);
    return b ? b.slice() : null;
  }
  async getMany(keys: string[]): Promise<Array<Uint8Array | null>> {
    this.#check("getMany");
    return keys.map((key) => this.#blobs.get(key)?.slice() ?? null);
  }
  async has(key: string): Promise<boolean> {
    this.#check("has");
    return this.#blobs.has(key);
  }
  async delete(key: string): Promise<void> {
    this.#check("delete");
    this.#blobs.delete(key);
  }
  async *list(prefix: string): AsyncIterable<string> {
    this.#check("list");
    for (const k of [...this.#blobs.keys()].filter((k) => k.startsWith(prefix)).sort(compareCodePoints)) yield k;
  }
  async close(): Promise<void> {
    this.#closed = true;
  }
}
