/**
 * In-memory `Store` and `BlobStore`: for tests and embedding. Values are copied in and out (as
 * JSON and byte copies), so a caller can never change what is stored by mutating what it passed
 * or got back.
 */
import type { BlobStore, ListOptions, SetOptions, SetResult, Store, StoreKey, StoreValue, Versioned } from "./store.ts";

/** Keys sort by their parts as strings: join with a separator below every printable character. */
const SEP = "\u0000";
const encodeKey = (key: StoreKey): string => key.join(SEP);

export class MemoryStore implements Store {
  readonly name = "memory";
  readonly #entries = new Map<string, { key: string[]; json: string; version: string; expiresAt?: number }>();
  #clock = 0;

  async get<T extends StoreValue = StoreValue>(key: StoreKey): Promise<Versioned<T> | null> {
    const e = this.#live(encodeKey(key));
    return e ? { key: [...e.key], value: JSON.parse(e.json) as T, version: e.version } : null;
  }

  async set(key: StoreKey, value: StoreValue, opts: SetOptions = {}): Promise<SetResult> {
    const k = encodeKey(key);
    const current = this.#live(k);
    if (opts.expectVersion !== undefined && (current?.version ?? null) !== opts.expectVersion) return { ok: false };
    const version = String(++this.#clock).padStart(16, "0");
    this.#entries.set(k, { key: [...key], json: JSON.stringify(value), version, ...(opts.expireInMs !== undefined ? { expiresAt: Date.now() + opts.expireInMs } : {}) });
    return { ok: true, version };
  }

  async delete(key: StoreKey, opts: { expectVersion?: string } = {}): Promise<{ ok: boolean }> {
    const k = encodeKey(key);
    const current = this.#live(k);
    if (opts.expectVersion !== undefined && current?.version !== opts.expectVersion) return { ok: false };
    this.#entries.delete(k);
    return { ok: true };
  }

  async *list<T extends StoreValue = StoreValue>(prefix: StoreKey, opts: ListOptions = {}): AsyncIterable<Versioned<T>> {
    const p = prefix.length ? encodeKey(prefix) + SEP : "";
    const keys = [...this.#entries.keys()].filter((k) => k.startsWith(p) && this.#live(k)).sort();
    if (opts.reverse) keys.reverse();
    let n = 0;
    for (const k of keys) {
      if (opts.limit !== undefined && n++ >= opts.limit) return;
      const e = this.#live(k);
      if (e) yield { key: [...e.key], value: JSON.parse(e.json) as T, version: e.version };
    }
  }

  async close(): Promise<void> {}

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
  async put(key: string, data: Uint8Array): Promise<void> {
    this.#blobs.set(key, data.slice());
  }
  async get(key: string): Promise<Uint8Array | null> {
    const b = this.#blobs.get(key);
    return b ? b.slice() : null;
  }
  async has(key: string): Promise<boolean> {
    return this.#blobs.has(key);
  }
  async delete(key: string): Promise<void> {
    this.#blobs.delete(key);
  }
  async *list(prefix: string): AsyncIterable<string> {
    for (const k of [...this.#blobs.keys()].filter((k) => k.startsWith(prefix)).sort()) yield k;
  }
  async close(): Promise<void> {}
}
