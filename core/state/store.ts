/**
 * Durable state, runtime-neutral: a `Store` (a key-value store with compare-and-set and listing
 * by prefix) for small records, and a `BlobStore` for large immutable values (workspace chunks
 * and manifests, large outputs). Everything a session needs to move between workers lives here:
 * the idempotency ledger, workspace snapshots, session records, egress audit records.
 *
 * Implementations: `MemoryStore`/`MemoryBlobStore` (tests, embedding), Deno KV (native on Deno,
 * the `@deno/kv` package on Node and Bun, file-backed locally), SQLite on Bun (`bun:sqlite`), and
 * on Workers a Durable Object's storage plus R2. One conformance suite
 * (`core/state/conformance.ts`) runs against each in its own runtime.
 */

/** A key: parts from most to least significant; listing by prefix matches whole parts. */
export type StoreKey = readonly string[];

/** A value: anything JSON can carry. */
export type StoreValue = null | boolean | number | string | StoreValue[] | { [k: string]: StoreValue };

export interface Versioned<T> {
  key: StoreKey;
  value: T;
  /** Opaque; changes on every write of the key. */
  version: string;
}

export interface SetOptions {
  /**
   * Compare-and-set: write only if the key's current version is this one; `null` means only if
   * the key does not exist. Omitted: write unconditionally.
   */
  expectVersion?: string | null;
  /** Delete the key after this many milliseconds (best effort; at least this long). */
  expireInMs?: number;
}

export type SetResult = { ok: true; version: string } | { ok: false };

export interface ListOptions {
  /** At most this many entries (default: all). */
  limit?: number;
  /** Newest keys first (keys sort by their parts, as strings, byte-wise). */
  reverse?: boolean;
}

export interface Store {
  /** Names the backend in errors and logs: "memory", "deno-kv:/path", "sqlite:/path", "durable-object". */
  readonly name: string;
  get<T extends StoreValue = StoreValue>(key: StoreKey): Promise<Versioned<T> | null>;
  /** Resolves once the write is durable in this store. */
  set(key: StoreKey, value: StoreValue, opts?: SetOptions): Promise<SetResult>;
  /** With `expectVersion`, delete only if it still has that version. */
  delete(key: StoreKey, opts?: { expectVersion?: string }): Promise<{ ok: boolean }>;
  /** Entries whose key starts with `prefix` (whole parts), in key order. */
  list<T extends StoreValue = StoreValue>(prefix: StoreKey, opts?: ListOptions): AsyncIterable<Versioned<T>>;
  close(): Promise<void>;
}

export interface BlobStore {
  readonly name: string;
  /** Resolves once the blob is durable. Writing a key twice with the same bytes is a no-op. */
  put(key: string, data: Uint8Array): Promise<void>;
  /**
   * Optional batch of `put`s, for backends where a write has a fixed cost (a commit, an fsync, a
   * round trip) that many blobs can share. Resolves once every blob is durable; each blob is
   * written on its own terms, as by `put` (never visible half written; when a key appears twice,
   * the later item wins). NOT all or nothing: when it rejects, any of the blobs may or may not have
   * been written. Callers that need an order (these blobs durable before that one) await one call
   * before the next. The whole batch is in memory: keep it to a few MiB. A backend without it is
   * used through `put`; `putMany` must leave the store as those `put`s would (in any order).
   */
  putMany?(items: Array<{ key: string; data: Uint8Array }>, opts?: PutManyOptions): Promise<void>;
  get(key: string): Promise<Uint8Array | null>;
  /**
   * Optional batch of `get`s: one answer per key, in the order of `keys` (null where a blob is
   * missing; a key asked twice answers twice, each a copy of its own). Each answer is what `get`
   * would have answered at some moment during the call (the batch is not one snapshot).
   */
  getMany?(keys: string[]): Promise<Array<Uint8Array | null>>;
  has(key: string): Promise<boolean>;
  delete(key: string): Promise<void>;
  /** Keys starting with `prefix` (a plain string prefix), in key order. */
  list(prefix: string): AsyncIterable<string>;
  close(): Promise<void>;
}

/** Options of `BlobStore.putMany`. */
export interface PutManyOptions {
  /**
   * The caller promises that every key names its content (e.g. `chunks/<sha256 of the bytes>`): a
   * key that already exists holds exactly these bytes. The store may then write without first
   * looking at what each key holds (Deno KV: no read per blob). A caller that breaks the promise
   * still gets its bytes stored, but the space of what they replaced may never be reclaimed.
   */
  contentAddressed?: boolean;
}

/** The store cannot be reached or refused the operation: the caller must not acknowledge what it was saving. */
export class StoreUnavailableError extends Error {
  override name = "StoreUnavailableError";
  readonly code = "store_unavailable";
  constructor(
    readonly store: string,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(`${store}: ${message}`, options);
  }
}
