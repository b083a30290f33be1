/**
 * The `Store` / `BlobStore` conformance suite: one list of cases every backend must pass, in its
 * own runtime (Node, Deno, Bun, workerd). Framework-free: it needs only Web APIs, so a Deno or Bun
 * script, or a Durable Object, can import it and print the result.
 *
 * Each run works under a fresh namespace (`["conformance", <random>]`, blob keys
 * `conformance/<random>/…`), so a store that already holds data, or another run, is no obstacle.
 *
 * The contract the cases pin down, beyond the doc comments in `store.ts`:
 * - versions are opaque strings that change on every write, including a rewrite of the same value
 *   and a re-creation after a delete (no ABA: a version read before a delete never matches again);
 * - `set` with `expectVersion` never throws for a version it does not know: it answers `ok: false`;
 * - an expired key is absent for every operation (get, list, compare-and-set with `null`);
 * - a Store value whose JSON is up to 60 KiB works on every backend (Deno KV's 64 KiB is the
 *   tightest limit); over a backend's limit `set` rejects with a `RangeError`, not a
 *   `StoreUnavailableError` (a caller bug, not an outage);
 * - a blob of 0 bytes is a blob (`get` answers an empty array, not null);
 * - `putMany`/`getMany`, where a backend has them, leave and answer exactly what `put`/`get` would
 *   (a later item of a key wins; missing keys answer null, in order), whatever the batch's size;
 * - after `close()`, every operation rejects with `StoreUnavailableError` whose `store` is the
 *   backend's name.
 */
import { StoreUnavailableError } from "./store.ts";
import type { BlobStore, Store, StoreKey, StoreValue, Versioned } from "./store.ts";

/** What the backend under test promises beyond the common contract. */
export interface ConformanceOptions {
  /**
   * The backend is durable: after the suite closes the first store and blob store, it calls
   * `makeStore()` then `makeBlobs()` again and expects them to open the same data. Without it the
   * "survives close and reopen" case is skipped.
   */
  reopen?: boolean;
  /**
   * The largest Store value (bytes of JSON) the backend accepts. With it, a value just over is
   * expected to be refused with a `RangeError`; without it that case is skipped.
   */
  valueLimitBytes?: number;
  /**
   * Whether operations after `close()` reject with `StoreUnavailableError` (default true). The
   * in-memory pair keeps working after close, so it opts out.
   */
  closeRejects?: boolean;
}

/** The outcome: `passed` counts cases run and passed; `failures` name each failed case and why. */
export interface ConformanceResult {
  passed: number;
  failures: string[];
  /** Cases run (passed + failed). */
  total: number;
  /** Cases not run for this backend (see `ConformanceOptions`). */
  skipped: string[];
  /** Wall time of the whole suite (ms). */
  ms: number;
}

/** Everything a case can reach. */
interface Ctx {
  store: Store;
  blobs: BlobStore;
  /** A key under this run's namespace. */
  k(...parts: string[]): StoreKey;
  /** A blob key under this run's namespace. */
  b(name: string): string;
}

interface Case {
  name: string;
  /** Only run when the options (or the backend: its optional methods) allow it. */
  when?: (o: ConformanceOptions, ctx: Ctx) => boolean;
  run(ctx: Ctx, o: ConformanceOptions): Promise<void>;
}

// ---- assertions: each throws an Error whose message is the failure line ----

function assert(cond: unknown, message: string): asserts cond {
  if (!cond) throw new Error(message);
}

function deepEqual(a: unknown, b: unknown): boolean {
  if (a === b) return true;
  if (typeof a !== "object" || typeof b !== "object" || a === null || b === null) return false;
  if (Array.isArray(a) !== Array.isArray(b)) return false;
  const ka = Object.keys(a);
  const kb = Object.keys(b);
  if (ka.length !== kb.length) return false;
  return ka.every((k) => Object.prototype.hasOwnProperty.call(b, k) && deepEqual((a as Record<string, unknown>)[k], (b as Record<string, unknown>)[k]));
}

const show = (v: unknown): string => {
  const s = JSON.stringify(v);
  return s === undefined ? String(v) : s.length > 200 ? `${s.slice(0, 200)}…` : s;
};

function eq(actual: unknown, expected: unknown, what: string): void {
  if (!deepEqual(actual, expected)) throw new Error(`${what}: expected ${show(expected)}, got ${show(actual)}`);
}

function bytesEqual(actual: Uint8Array | null, expected: Uint8Array, what: string): void {
  assert(actual !== null, `${what}: expected ${expected.length} bytes, got null`);
  assert(actual instanceof Uint8Array, `${what}: expected a Uint8Array, got ${Object.prototype.toString.call(actual)}`);
  assert(actual.length === expected.length, `${what}: expected ${expected.length} bytes, got ${actual.length}`);
  for (let i = 0; i < expected.length; i++) if (actual[i] !== expected[i]) throw new Error(`${what}: byte ${i} is ${actual[i]}, expected ${expected[i]}`);
}

async function rejectsUnavailable(p: () => Promise<unknown>, storeName: string, what: string): Promise<void> {
  let error: unknown;
  try {
    await p();
  } catch (e) {
    error = e;
  }
  assert(error !== undefined, `${what}: expected a StoreUnavailableError, but it resolved`);
  assert(error instanceof StoreUnavailableError, `${what}: expected a StoreUnavailableError, got ${error instanceof Error ? `${error.name}: ${error.message}` : show(error)}`);
  assert(error.store === storeName && error.message.includes(storeName), `${what}: the error should name the store "${storeName}", got store "${error.store}", message "${error.message}"`);
  assert(error.code === "store_unavailable", `${what}: code should be store_unavailable, got ${error.code}`);
}

async function collect<T>(it: AsyncIterable<T>): Promise<T[]> {
  const out: T[] = [];
  for await (const x of it) out.push(x);
  return out;
}

const keysOf = (entries: Versioned<StoreValue>[]): StoreKey[] => entries.map((e) => e.key);
const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

/** Deterministic pseudo-random bytes (xorshift32): big blobs whose every byte matters. */
function pseudoRandomBytes(n: number, seed: number): Uint8Array {
  const out = new Uint8Array(n);
  let x = seed | 0 || 1;
  for (let i = 0; i < n; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    out[i] = x & 0xff;
  }
  return out;
}

/** A JSON string value whose JSON is exactly `bytes` long in UTF-8, with non-Latin-1 text in it. */
function stringValueOfJsonBytes(bytes: number): string {
  const head = "日本語 ü € 😀 "; // 3+3+3+1+2+1+3+1+4+1 = 22 bytes of UTF-8
  const headBytes = new TextEncoder().encode(head).length;
  return head + "x".repeat(bytes - 2 - headBytes); // 2 for the quotes
}

const jsonBytes = (v: StoreValue): number => new TextEncoder().encode(JSON.stringify(v)).length;

const NESTED: StoreValue = {
  name: "sess_01",
  n: 42,
  neg: -7.25,
  big: 9007199254740991,
  ok: true,
  off: false,
  nothing: null,
  list: [1, "two", { three: [3] }, [], {}],
  deep: { a: { b: { c: { d: ["e", { f: "g" }] } } } },
  text: "quotes \" and \\ and\nnewlines\tand unicode é 日本 😀",
  "key with spaces/and:separators": "x",
};

// ---- the cases ----

const CASES: Case[] = [
  // get / set / delete
  {
    name: "get of a missing key is null",
    async run({ store, k }) {
      eq(await store.get(k("missing")), null, "get");
    },
  },
  {
    name: "set then get round-trips a nested JSON value",
    async run({ store, k }) {
      const r = await store.set(k("nested"), NESTED);
      assert(r.ok, "set should succeed");
      const got = await store.get(k("nested"));
      assert(got, "get should find the key");
      eq(got.value, NESTED, "value");
      eq(got.key, k("nested"), "key");
    },
  },
  {
    name: "set answers the version that get then reports",
    async run({ store, k }) {
      const r = await store.set(k("v"), { a: 1 });
      assert(r.ok && typeof r.version === "string" && r.version.length > 0, `set should answer a non-empty version, got ${show(r)}`);
      eq((await store.get(k("v")))?.version, r.version, "version from get");
    },
  },
  {
    name: "top-level null, false, 0, empty string, empty array and empty object round-trip",
    async run({ store, k }) {
      const values: StoreValue[] = [null, false, 0, "", [], {}, -0.5, "plain"];
      for (const [i, v] of values.entries()) {
        await store.set(k("scalar", String(i)), v);
        const got = await store.get(k("scalar", String(i)));
        assert(got !== null, `get of a key holding ${show(v)} should not be null`);
        eq(got.value, v, `value ${i}`);
      }
    },
  },
  {
    name: "every write changes the version, even rewriting the same value",
    async run({ store, k }) {
      const versions = new Set<string>();
      for (const v of [1, 2, 2, 2]) {
        const r = await store.set(k("ver"), v);
        assert(r.ok, "set should succeed");
        versions.add(r.version);
      }
      eq(versions.size, 4, "distinct versions after 4 writes");
    },
  },
  {
    name: "values are copied in and out",
    async run({ store, k }) {
      const value = { list: [1, 2], inner: { x: "a" } };
      await store.set(k("copy"), value);
      value.list.push(3);
      value.inner.x = "changed";
      const got = await store.get<{ list: number[]; inner: { x: string } }>(k("copy"));
      eq(got?.value, { list: [1, 2], inner: { x: "a" } }, "after changing the object passed to set");
      got!.value.list.push(99);
      eq((await store.get(k("copy")))?.value, { list: [1, 2], inner: { x: "a" } }, "after changing the object get returned");
    },
  },
  {
    name: "delete removes a key; deleting a missing key succeeds",
    async run({ store, k }) {
      await store.set(k("del"), "x");
      eq(await store.delete(k("del")), { ok: true }, "delete");
      eq(await store.get(k("del")), null, "get after delete");
      eq(await store.delete(k("del")), { ok: true }, "delete again");
    },
  },
  {
    name: "a key re-created after delete gets a version it never had",
    async run({ store, k }) {
      const first = await store.set(k("reborn"), "a");
      assert(first.ok, "set");
      await store.delete(k("reborn"));
      const second = await store.set(k("reborn"), "a");
      assert(second.ok && second.version !== first.version, `the version after re-creation must differ: ${show(first)} then ${show(second)}`);
      eq(await store.set(k("reborn"), "b", { expectVersion: first.version }), { ok: false }, "CAS with the pre-delete version");
    },
  },
  // compare-and-set
  {
    name: "CAS with the current version succeeds and answers a new version",
    async run({ store, k }) {
      const a = await store.set(k("cas"), 1);
      assert(a.ok, "set");
      const b = await store.set(k("cas"), 2, { expectVersion: a.version });
      assert(b.ok, `CAS with the current version should succeed, got ${show(b)}`);
      assert(b.version !== a.version, "the version should change");
      eq(await store.get(k("cas")), { key: k("cas"), value: 2, version: b.version }, "entry after CAS");
    },
  },
  {
    name: "CAS with a stale version fails and leaves the value",
    async run({ store, k }) {
      const a = await store.set(k("stale"), 1);
      const b = await store.set(k("stale"), 2);
      assert(a.ok && b.ok, "sets");
      eq(await store.set(k("stale"), 3, { expectVersion: a.version }), { ok: false }, "CAS with a stale version");
      eq(await store.get(k("stale")), { key: k("stale"), value: 2, version: b.version }, "entry after the failed CAS");
    },
  },
  {
    name: "CAS with null creates a missing key",
    async run({ store, k }) {
      const r = await store.set(k("create"), "new", { expectVersion: null });
      assert(r.ok, `create-only on a missing key should succeed, got ${show(r)}`);
      eq((await store.get(k("create")))?.value, "new", "value");
    },
  },
  {
    name: "CAS with null fails when the key exists",
    async run({ store, k }) {
      const a = await store.set(k("exists"), "old");
      assert(a.ok, "set");
      eq(await store.set(k("exists"), "new", { expectVersion: null }), { ok: false }, "create-only on an existing key");
      eq((await store.get(k("exists")))?.value, "old", "value");
    },
  },
  {
    name: "CAS on a deleted key: its old version fails, null succeeds",
    async run({ store, k }) {
      const a = await store.set(k("gone"), 1);
      assert(a.ok, "set");
      await store.delete(k("gone"));
      eq(await store.set(k("gone"), 2, { expectVersion: a.version }), { ok: false }, "CAS with the old version");
      eq(await store.get(k("gone")), null, "still absent");
      assert((await store.set(k("gone"), 3, { expectVersion: null })).ok, "create-only after delete should succeed");
    },
  },
  {
    name: "CAS with a version the store never issued fails without throwing",
    async run({ store, k }) {
      await store.set(k("foreign"), 1);
      for (const v of ["not-a-version", "", "00000000000000000000", "zz"]) eq(await store.set(k("foreign"), 2, { expectVersion: v }), { ok: false }, `CAS with ${show(v)}`);
      eq(await store.set(k("foreign-missing"), 2, { expectVersion: "not-a-version" }), { ok: false }, "CAS on a missing key with a made-up version");
      eq((await store.get(k("foreign")))?.value, 1, "value");
    },
  },
  {
    name: "16 concurrent CAS writes with the same version: exactly one wins",
    async run({ store, k }) {
      const a = await store.set(k("race"), -1);
      assert(a.ok, "set");
      const results = await Promise.all(Array.from({ length: 16 }, (_, i) => store.set(k("race"), i, { expectVersion: a.version })));
      const winners = results.flatMap((r, i) => (r.ok ? [i] : []));
      eq(winners.length, 1, `winners (${show(winners)})`);
      const got = await store.get(k("race"));
      eq(got?.value, winners[0], "the stored value is the winner's");
      eq(got?.version, (results[winners[0]!] as { version: string }).version, "the stored version is the winner's");
    },
  },
  {
    name: "16 concurrent create-only writes: exactly one wins",
    async run({ store, k }) {
      const results = await Promise.all(Array.from({ length: 16 }, (_, i) => store.set(k("race-create"), i, { expectVersion: null })));
      const winners = results.flatMap((r, i) => (r.ok ? [i] : []));
      eq(winners.length, 1, `winners (${show(winners)})`);
      eq((await store.get(k("race-create")))?.value, winners[0], "the stored value is the winner's");
    },
  },
  {
    name: "concurrent unconditional writes all succeed with distinct versions; one of them stays",
    async run({ store, k }) {
      const results = await Promise.all(Array.from({ length: 16 }, (_, i) => store.set(k("race-blind"), i)));
      assert(results.every((r) => r.ok), "every write should succeed");
      eq(new Set(results.map((r) => (r as { version: string }).version)).size, 16, "distinct versions");
      const got = await store.get(k("race-blind"));
      assert(got && typeof got.value === "number" && (results[got.value] as { version: string }).version === got.version, `the stored entry should be one of the writes, got ${show(got)}`);
    },
  },
  {
    name: "a read-modify-write loop of 8 writers × 5 increments loses no update",
    async run({ store, k }) {
      await store.set(k("counter"), 0);
      const writer = async () => {
        for (let done = 0; done < 5; ) {
          const cur = await store.get<number>(k("counter"));
          if ((await store.set(k("counter"), cur!.value + 1, { expectVersion: cur!.version })).ok) done++;
        }
      };
      await Promise.all(Array.from({ length: 8 }, writer));
      eq((await store.get(k("counter")))?.value, 40, "counter");
    },
  },
  {
    name: "delete with the current version deletes",
    async run({ store, k }) {
      const a = await store.set(k("del-cas"), 1);
      assert(a.ok, "set");
      eq(await store.delete(k("del-cas"), { expectVersion: a.version }), { ok: true }, "delete");
      eq(await store.get(k("del-cas")), null, "get after delete");
    },
  },
  {
    name: "delete with a stale version fails and keeps the key",
    async run({ store, k }) {
      const a = await store.set(k("del-stale"), 1);
      const b = await store.set(k("del-stale"), 2);
      assert(a.ok && b.ok, "sets");
      eq(await store.delete(k("del-stale"), { expectVersion: a.version }), { ok: false }, "delete with a stale version");
      eq((await store.get(k("del-stale")))?.version, b.version, "still there, unchanged");
      eq(await store.delete(k("del-missing"), { expectVersion: a.version }), { ok: false }, "delete of a missing key with a version");
    },
  },
  // list
  {
    name: "list by prefix matches whole parts: [a] lists [a, …] but not [ab, …] nor [a] itself",
    async run({ store, k }) {
      for (const key of [k("lp", "a"), k("lp", "a", "x"), k("lp", "a", "y", "z"), k("lp", "ab"), k("lp", "ab", "x"), k("lp", "b")]) await store.set(key, key.at(-1)!);
      eq(keysOf(await collect(store.list(k("lp", "a")))), [k("lp", "a", "x"), k("lp", "a", "y", "z")], "list [a]");
      eq(keysOf(await collect(store.list(k("lp", "ab")))), [k("lp", "ab", "x")], "list [ab]");
      eq(keysOf(await collect(store.list(k("lp", "c")))), [], "list [c]");
    },
  },
  {
    name: "list is in key order, part by part",
    async run({ store, k }) {
      const sorted = [k("ord", "a"), k("ord", "a", "b"), k("ord", "a", "b", "c"), k("ord", "ab"), k("ord", "b"), k("ord", "b", "a"), k("ord", "ba")];
      for (const key of [...sorted].reverse()) await store.set(key, 1);
      eq(keysOf(await collect(store.list(k("ord")))), sorted, "order");
    },
  },
  {
    name: "list reverse, limit, and both",
    async run({ store, k }) {
      const keys = ["1", "2", "3", "4", "5"].map((p) => k("rev", p));
      for (const key of keys) await store.set(key, key.at(-1)!);
      eq(keysOf(await collect(store.list(k("rev"), { reverse: true }))), [...keys].reverse(), "reverse");
      eq(keysOf(await collect(store.list(k("rev"), { limit: 2 }))), keys.slice(0, 2), "limit 2");
      eq(keysOf(await collect(store.list(k("rev"), { limit: 2, reverse: true }))), [keys[4], keys[3]], "limit 2 reverse");
      eq(keysOf(await collect(store.list(k("rev"), { limit: 0 }))), [], "limit 0");
      eq(keysOf(await collect(store.list(k("rev"), { limit: 50 }))), keys, "limit above the count");
    },
  },
  {
    name: "list answers the values and versions get reports",
    async run({ store, k }) {
      const a = await store.set(k("lv", "x"), { n: 1 });
      const b = await store.set(k("lv", "y"), [1, "two"]);
      assert(a.ok && b.ok, "sets");
      eq(await collect(store.list(k("lv"))), [
        { key: k("lv", "x"), value: { n: 1 }, version: a.version },
        { key: k("lv", "y"), value: [1, "two"], version: b.version },
      ], "entries");
    },
  },
  {
    name: "keys with unicode, separators and empty parts round-trip, stay distinct and list in code point order",
    async run({ store, k }) {
      const parts = ["", "a b", "a/b", "a:b", "a|b", "a", "é", "日本", "😀"];
      const sorted = ["", "a", "a b", "a/b", "a:b", "a|b", "é", "日本", "😀"];
      for (const p of parts) await store.set(k("uni", p), p);
      await store.set(k("uni", "a", "b"), "nested");
      for (const p of parts) eq((await store.get(k("uni", p)))?.value, p, `get ${show(p)}`);
      eq((await store.get(k("uni", "a", "b")))?.value, "nested", "[a, b] is not [a/b]");
      const listed = keysOf(await collect(store.list(k("uni")))).map((key) => key.slice(-2));
      const expected = sorted.flatMap((p) => (p === "a" ? [[k("uni")[2]!, "a"], ["a", "b"]] : [[k("uni")[2]!, p]]));
      eq(listed, expected, "order");
      eq(keysOf(await collect(store.list(k("uni", "a/b")))), [], "list [a/b] has no children");
    },
  },
  {
    name: "list skips deleted keys and pages through 250 keys in order",
    async run({ store, k }) {
      const names = Array.from({ length: 250 }, (_, i) => String(i).padStart(3, "0"));
      await Promise.all(names.map((n) => store.set(k("many", n), n)));
      await store.delete(k("many", "100"));
      const listed = keysOf(await collect(store.list(k("many")))).map((key) => key.at(-1));
      eq(listed, names.filter((n) => n !== "100"), "all but the deleted key, in order");
      eq(keysOf(await collect(store.list(k("many"), { reverse: true, limit: 3 }))).map((key) => key.at(-1)), ["249", "248", "247"], "last three");
    },
  },
  // expiry
  {
    name: "expireInMs: gone after the deadline for get, list and create-only; a rewrite without it keeps the key",
    async run({ store, k }) {
      await store.set(k("exp", "a"), "a", { expireInMs: 50 });
      await store.set(k("exp", "b"), "b", { expireInMs: 50 });
      await store.set(k("exp", "b"), "b2"); // no expiry now
      await store.set(k("exp", "c"), "c", { expireInMs: 60_000 });
      // The long deadline shows expiry does not hide live keys (a check of "a" before its 50 ms
      // would depend on this process not stalling for 50 ms).
      eq((await store.get(k("exp", "c")))?.value, "c", "a key before its deadline");
      await sleep(200);
      eq(await store.get(k("exp", "a")), null, "get after the deadline");
      eq(keysOf(await collect(store.list(k("exp")))), [k("exp", "b"), k("exp", "c")], "list after the deadline");
      assert((await store.set(k("exp", "a"), "again", { expectVersion: null })).ok, "create-only on an expired key should succeed");
      eq((await store.get(k("exp", "a")))?.value, "again", "value after re-creation");
    },
  },
  // sizes
  {
    name: "a value whose JSON is 60 KiB (a string with non-Latin-1 text) round-trips",
    async run({ store, k }) {
      const value = stringValueOfJsonBytes(60 * 1024);
      eq(jsonBytes(value), 60 * 1024, "test setup: JSON size");
      assert((await store.set(k("big-string"), value)).ok, "set");
      eq((await store.get(k("big-string")))?.value, value, "value");
    },
  },
  {
    name: "an object of 60 KiB of JSON in many fields round-trips",
    async run({ store, k }) {
      const value: Record<string, StoreValue> = {};
      for (let i = 0; jsonBytes(value) < 60 * 1024 - 200; i++) value[`field_${i}`] = { n: i, s: "ü".repeat(20) };
      assert(jsonBytes(value) <= 60 * 1024, "test setup: JSON size");
      assert((await store.set(k("big-object"), value)).ok, "set");
      eq((await store.get(k("big-object")))?.value, value, "value");
    },
  },
  {
    name: "a value over the backend's limit is refused with a RangeError naming the backend",
    when: (o) => o.valueLimitBytes !== undefined,
    async run({ store, k }, o) {
      const value = "x".repeat(o.valueLimitBytes! + 1024);
      let error: unknown;
      try {
        await store.set(k("too-big"), value);
      } catch (e) {
        error = e;
      }
      assert(error instanceof RangeError, `expected a RangeError, got ${error instanceof Error ? `${error.name}: ${error.message}` : show(error)}`);
      assert(error.message.includes(store.name), `the message should name the backend "${store.name}": ${error.message}`);
      eq(await store.get(k("too-big")), null, "nothing stored");
    },
  },
  // blobs
  {
    name: "blob put, get, has; a missing blob is null and not had",
    async run({ blobs, b }) {
      const data = new TextEncoder().encode("hello blob");
      await blobs.put(b("hello"), data);
      bytesEqual(await blobs.get(b("hello")), data, "get");
      eq(await blobs.has(b("hello")), true, "has");
      eq(await blobs.get(b("missing")), null, "get missing");
      eq(await blobs.has(b("missing")), false, "has missing");
    },
  },
  {
    name: "a 0-byte blob exists and reads back empty",
    async run({ blobs, b }) {
      await blobs.put(b("empty"), new Uint8Array(0));
      eq(await blobs.has(b("empty")), true, "has");
      bytesEqual(await blobs.get(b("empty")), new Uint8Array(0), "get");
    },
  },
  {
    name: "all 256 byte values survive byte-exact",
    async run({ blobs, b }) {
      const data = new Uint8Array(256 * 4).map((_, i) => i % 256);
      await blobs.put(b("bytes"), data);
      bytesEqual(await blobs.get(b("bytes")), data, "get");
    },
  },
  {
    name: "a 5 MiB blob round-trips byte-exact",
    async run({ blobs, b }) {
      const data = pseudoRandomBytes(5 * 1024 * 1024, 5);
      await blobs.put(b("five-mib"), data);
      bytesEqual(await blobs.get(b("five-mib")), data, "get");
    },
  },
  {
    name: "blobs of sizes around chunk boundaries round-trip byte-exact",
    async run({ blobs, b }) {
      for (const size of [1, 61_439, 61_440, 61_441, 65_536, 65_537, 737_280, 737_281, 1_048_577]) {
        const data = pseudoRandomBytes(size, size);
        await blobs.put(b(`size-${size}`), data);
        bytesEqual(await blobs.get(b(`size-${size}`)), data, `size ${size}`);
      }
    },
  },
  {
    name: "writing a blob again with the same bytes keeps it, once",
    async run({ blobs, b }) {
      for (const size of [100, 200_000]) {
        const data = pseudoRandomBytes(size, 7);
        await blobs.put(b(`same-${size}`), data);
        await blobs.put(b(`same-${size}`), data.slice());
        bytesEqual(await blobs.get(b(`same-${size}`)), data, `get (${size} bytes)`);
        eq(await collect(blobs.list(b(`same-${size}`))), [b(`same-${size}`)], `listed once (${size} bytes)`);
      }
    },
  },
  {
    name: "overwriting a blob with different bytes (bigger, smaller, chunked to small) answers the new bytes",
    async run({ blobs, b }) {
      for (const [i, size] of [10, 300_000, 200_000, 5, 0].entries()) {
        const data = pseudoRandomBytes(size, 100 + i);
        await blobs.put(b("over"), data);
        bytesEqual(await blobs.get(b("over")), data, `write ${i} (${size} bytes)`);
      }
    },
  },
  {
    name: "blob delete: gone for has and get; deleting a missing blob succeeds",
    async run({ blobs, b }) {
      for (const size of [10, 200_000]) {
        await blobs.put(b(`del-${size}`), pseudoRandomBytes(size, 3));
        await blobs.delete(b(`del-${size}`));
        eq(await blobs.has(b(`del-${size}`)), false, `has after delete (${size} bytes)`);
        eq(await blobs.get(b(`del-${size}`)), null, `get after delete (${size} bytes)`);
      }
      await blobs.delete(b("never-was"));
    },
  },
  {
    name: "blob list is by plain string prefix, in key order",
    async run({ blobs, b }) {
      const names = ["lp/a", "lp/a/b", "lp/ab", "lp/a-c", "lp/b", "lq", "lp/日本", "lp/😀", "lp/é"];
      for (const n of names) await blobs.put(b(n), new TextEncoder().encode(n));
      eq(await collect(blobs.list(b("lp/a"))), [b("lp/a"), b("lp/a-c"), b("lp/a/b"), b("lp/ab")], "prefix lp/a");
      eq(await collect(blobs.list(b("lp/"))), ["a", "a-c", "a/b", "ab", "b", "é", "日本", "😀"].map((n) => b(`lp/${n}`)), "prefix lp/");
      eq(await collect(blobs.list(b("zz"))), [], "no match");
    },
  },
  {
    name: "blob bytes are copied in and out",
    async run({ blobs, b }) {
      const data = new Uint8Array([1, 2, 3]);
      await blobs.put(b("copy"), data);
      data[0] = 9;
      const got = await blobs.get(b("copy"));
      bytesEqual(got, new Uint8Array([1, 2, 3]), "after changing the array passed to put");
      got![1] = 9;
      bytesEqual(await blobs.get(b("copy")), new Uint8Array([1, 2, 3]), "after changing the array get returned");
    },
  },
  {
    name: "20 concurrent blob puts of different keys all land",
    async run({ blobs, b }) {
      const datas = Array.from({ length: 20 }, (_, i) => pseudoRandomBytes(i % 2 ? 100 : 100_000, 200 + i));
      await Promise.all(datas.map((d, i) => blobs.put(b(`par/${String(i).padStart(2, "0")}`), d)));
      const got = await Promise.all(datas.map((_, i) => blobs.get(b(`par/${String(i).padStart(2, "0")}`))));
      got.forEach((g, i) => bytesEqual(g, datas[i]!, `blob ${i}`));
      eq((await collect(blobs.list(b("par/")))).length, 20, "listed");
    },
  },
  // batches (only where the backend has them)
  {
    name: "putMany then getMany: byte-exact, in order, missing keys null, the same as get",
    when: (_o, { blobs }) => blobs.putMany !== undefined && blobs.getMany !== undefined,
    async run({ blobs, b }) {
      const sizes = [0, 1, 256 * 3, 61_439, 61_440, 61_441, 200_000, 737_281];
      const datas = sizes.map((size, i) => (i === 2 ? new Uint8Array(size).map((_, j) => (j * 167) % 256) : pseudoRandomBytes(size, 300 + i)));
      await blobs.putMany!(datas.map((data, i) => ({ key: b(`pm/${i}`), data })));
      const keys = [b("pm/missing-a"), ...datas.flatMap((_, i) => [b(`pm/${i}`), ...(i % 3 === 0 ? [b(`pm/missing-${i}`)] : [])]), b("pm/1"), b("pm/missing-z")];
      const got = await blobs.getMany!(keys);
      eq(got.length, keys.length, "one answer per key");
      keys.forEach((key, i) => {
        const n = /\/pm\/(\d+)$/.exec(key);
        if (n) bytesEqual(got[i]!, datas[Number(n[1])]!, `getMany ${key.slice(key.lastIndexOf("/") + 1)}`);
        else eq(got[i], null, `getMany ${key.slice(key.lastIndexOf("/") + 1)}`);
      });
      for (const [i, data] of datas.entries()) bytesEqual(await blobs.get(b(`pm/${i}`)), data, `get ${i}`);
      eq(await collect(blobs.list(b("pm/"))), datas.map((_, i) => b(`pm/${i}`)).sort(), "listed, each once");
      eq(await blobs.getMany!([]), [], "getMany of nothing");
      await blobs.putMany!([]);
    },
  },
  {
    // Over each of Deno KV's limits per commit: 1,000 mutations, 800 KiB, 80 KiB of keys, 10 checks.
    name: "putMany of a batch bigger than one commit (1,665 blobs, 6 MiB, long keys, two-part blobs, a 1 MiB blob) stores every blob",
    when: (_o, { blobs }) => blobs.putMany !== undefined && blobs.getMany !== undefined,
    async run({ blobs, b }) {
      const items = [
        ...Array.from({ length: 1_100 }, (_, i) => ({ key: b(`pm-big/s${String(i).padStart(4, "0")}`), data: pseudoRandomBytes(1 + (i % 200), 1_000 + i) })),
        ...Array.from({ length: 440 }, (_, i) => ({ key: b(`pm-big/k${String(i).padStart(3, "0")}-${"k".repeat(200)}`), data: pseudoRandomBytes(10, 2_000 + i) })),
        ...Array.from({ length: 40 }, (_, i) => ({ key: b(`pm-big/m${String(i).padStart(2, "0")}`), data: pseudoRandomBytes(61_440 - i, 3_000 + i) })),
        ...Array.from({ length: 24 }, (_, i) => ({ key: b(`pm-big/t${String(i).padStart(2, "0")}`), data: pseudoRandomBytes(61_441 + i, 4_000 + i) })),
        ...Array.from({ length: 60 }, (_, i) => ({ key: b(`pm-big/v${String(i).padStart(2, "0")}`), data: pseudoRandomBytes(1 + ((i * 7_919) % 61_440), 6_000 + i) })),
        { key: b("pm-big/l"), data: pseudoRandomBytes(1_048_577, 5_000) },
      ];
      await blobs.putMany!(items);
      const got = await blobs.getMany!(items.map((it) => it.key));
      items.forEach((it, i) => bytesEqual(got[i]!, it.data, `getMany ${it.key.slice(it.key.lastIndexOf("/") + 1, it.key.lastIndexOf("/") + 12)}`));
      for (const i of [0, 1_099, 1_100, 1_539, 1_540, 1_579, 1_580, 1_603, 1_604, 1_663, 1_664]) bytesEqual(await blobs.get(items[i]!.key), items[i]!.data, `get ${i}`);
      eq((await collect(blobs.list(b("pm-big/")))).length, items.length, "listed");
    },
  },
  {
    name: "putMany over existing blobs (small, chunked, same bytes) and a key twice: the later item wins",
    when: (_o, { blobs }) => blobs.putMany !== undefined && blobs.getMany !== undefined,
    async run({ blobs, b }) {
      const before = [10, 200_000, 300_000, 5_000, 150_000];
      for (const [i, size] of before.entries()) await blobs.put(b(`pm-over/${i}`), pseudoRandomBytes(size, 500 + i));
      const after = [
        pseudoRandomBytes(200_000, 600), // small → chunked
        pseudoRandomBytes(7, 601), // chunked → small
        pseudoRandomBytes(250_000, 602), // chunked → chunked
        pseudoRandomBytes(5_000, 503), // the same bytes again
        pseudoRandomBytes(150_000, 504), // the same bytes again, chunked
      ];
      await blobs.putMany!([
        ...after.map((data, i) => ({ key: b(`pm-over/${i}`), data })),
        { key: b("pm-over/twice"), data: pseudoRandomBytes(100, 1) },
        { key: b("pm-over/twice"), data: pseudoRandomBytes(70_000, 2) },
        { key: b("pm-over/twice-small"), data: pseudoRandomBytes(70_000, 3) },
        { key: b("pm-over/twice-small"), data: pseudoRandomBytes(100, 4) },
      ]);
      const got = await blobs.getMany!([...after.map((_, i) => b(`pm-over/${i}`)), b("pm-over/twice"), b("pm-over/twice-small")]);
      after.forEach((data, i) => bytesEqual(got[i]!, data, `blob ${i}`));
      bytesEqual(got[5]!, pseudoRandomBytes(70_000, 2), "twice: the later item");
      bytesEqual(got[6]!, pseudoRandomBytes(100, 4), "twice-small: the later item");
      eq((await collect(blobs.list(b("pm-over/")))).length, 7, "listed, each once");
    },
  },
  {
    name: "putMany with contentAddressed over blobs already there (small and chunked) keeps them all readable",
    when: (_o, { blobs }) => blobs.putMany !== undefined && blobs.getMany !== undefined,
    async run({ blobs, b }) {
      const datas = [pseudoRandomBytes(4_000, 700), pseudoRandomBytes(180_000, 701), pseudoRandomBytes(61_440, 702)];
      await blobs.put(b("pm-ca/0"), datas[0]!);
      await blobs.put(b("pm-ca/1"), datas[1]!);
      const fresh = Array.from({ length: 12 }, (_, i) => ({ key: b(`pm-ca/new-${String(i).padStart(2, "0")}`), data: pseudoRandomBytes(i % 2 ? 90_000 : 3_000, 710 + i) }));
      // The same bytes under the same keys, new blobs around them (in Deno KV: one commit whose check fails, then retried).
      await blobs.putMany!([...datas.map((data, i) => ({ key: b(`pm-ca/${i}`), data })), ...fresh], { contentAddressed: true });
      await blobs.putMany!(datas.map((data, i) => ({ key: b(`pm-ca/${i}`), data })), { contentAddressed: true });
      const got = await blobs.getMany!([...datas.map((_, i) => b(`pm-ca/${i}`)), ...fresh.map((f) => f.key)]);
      datas.forEach((data, i) => bytesEqual(got[i]!, data, `blob ${i}`));
      fresh.forEach((f, i) => bytesEqual(got[datas.length + i]!, f.data, `new blob ${i}`));
      eq((await collect(blobs.list(b("pm-ca/")))).length, datas.length + fresh.length, "listed, each once");
    },
  },
  {
    name: "putMany and getMany copy bytes in and out",
    when: (_o, { blobs }) => blobs.putMany !== undefined && blobs.getMany !== undefined,
    async run({ blobs, b }) {
      const small = new Uint8Array([1, 2, 3]);
      const big = pseudoRandomBytes(100_000, 800);
      const bigCopy = big.slice();
      const written = blobs.putMany!([
        { key: b("pm-copy/small"), data: small },
        { key: b("pm-copy/big"), data: big },
      ]);
      small[0] = 9; // while the batch is being written
      big[50_000] = big[50_000]! ^ 1;
      await written;
      const [gotSmall, gotBig] = await blobs.getMany!([b("pm-copy/small"), b("pm-copy/big")]);
      bytesEqual(gotSmall!, new Uint8Array([1, 2, 3]), "after changing the array passed to putMany");
      bytesEqual(gotBig!, bigCopy, "after changing the big array passed to putMany");
      gotSmall![1] = 9;
      gotBig![0] = gotBig![0]! ^ 1;
      const [again, againBig] = await blobs.getMany!([b("pm-copy/small"), b("pm-copy/big")]);
      bytesEqual(again!, new Uint8Array([1, 2, 3]), "after changing the array getMany returned");
      bytesEqual(againBig!, bigCopy, "after changing the big array getMany returned");
    },
  },
];

/** Written before close, read after reopen. */
const DURABLE_VALUE: StoreValue = { survives: ["close", "reopen"], n: 1 };
const DURABLE_BLOB = pseudoRandomBytes(300_000, 11);

/** The number of cases a backend that supports everything runs. */
export const STORE_CONFORMANCE_CASES = CASES.length + 3;

/**
 * Runs every case against a fresh store and blob store and reports what failed. Never throws
 * for a failing case (only if `makeStore`/`makeBlobs` themselves fail).
 *
 * Order of calls: `makeStore()` then `makeBlobs()` once for the main run; after the cases that
 * close them, once more each (in that order) when `opts.reopen` is set, expecting the same data.
 */
export async function runStoreConformance(makeStore: () => Promise<Store>, makeBlobs: () => Promise<BlobStore>, opts: ConformanceOptions = {}): Promise<ConformanceResult> {
  const t0 = performance.now();
  const run = crypto.randomUUID().slice(0, 8);
  const failures: string[] = [];
  const skipped: string[] = [];
  let passed = 0;
  const store = await makeStore();
  const blobs = await makeBlobs();
  const ctx: Ctx = { store, blobs, k: (...parts) => ["conformance", run, ...parts], b: (name) => `conformance/${run}/${name}` };

  const attempt = async (name: string, fn: () => Promise<void>) => {
    try {
      await fn();
      passed++;
    } catch (e) {
      failures.push(`${name}: ${e instanceof Error ? e.message : String(e)}`);
    }
  };

  for (const c of CASES) {
    if (c.when && !c.when(opts, ctx)) skipped.push(c.name);
    else await attempt(c.name, () => c.run(ctx, opts));
  }

  // Durability: written now, checked after close and reopen.
  let durableVersion = "";
  await attempt("data written before close is readable before close", async () => {
    const r = await store.set(ctx.k("durable"), DURABLE_VALUE);
    assert(r.ok, "set");
    durableVersion = r.version;
    await blobs.put(ctx.b("durable"), DURABLE_BLOB);
    bytesEqual(await blobs.get(ctx.b("durable")), DURABLE_BLOB, "blob");
  });

  await store.close();
  await blobs.close();
  const closedCase = "operations after close reject with StoreUnavailableError naming the backend";
  if (opts.closeRejects === false) skipped.push(closedCase);
  else {
    await attempt(closedCase, async () => {
      await rejectsUnavailable(() => store.get(ctx.k("durable")), store.name, "store.get");
      await rejectsUnavailable(() => store.set(ctx.k("after-close"), 1), store.name, "store.set");
      await rejectsUnavailable(() => store.set(ctx.k("after-close"), 1, { expectVersion: null }), store.name, "store.set with CAS");
      await rejectsUnavailable(() => store.delete(ctx.k("durable")), store.name, "store.delete");
      await rejectsUnavailable(() => collect(store.list(ctx.k())), store.name, "store.list");
      await rejectsUnavailable(() => blobs.put(ctx.b("after-close"), new Uint8Array(1)), blobs.name, "blobs.put");
      await rejectsUnavailable(() => blobs.get(ctx.b("durable")), blobs.name, "blobs.get");
      await rejectsUnavailable(() => blobs.has(ctx.b("durable")), blobs.name, "blobs.has");
      await rejectsUnavailable(() => blobs.delete(ctx.b("durable")), blobs.name, "blobs.delete");
      await rejectsUnavailable(() => collect(blobs.list(ctx.b(""))), blobs.name, "blobs.list");
      if (blobs.putMany) await rejectsUnavailable(() => blobs.putMany!([{ key: ctx.b("after-close"), data: new Uint8Array(1) }]), blobs.name, "blobs.putMany");
      if (blobs.getMany) await rejectsUnavailable(() => blobs.getMany!([ctx.b("durable")]), blobs.name, "blobs.getMany");
    });
  }

  const reopenCase = "after close and reopen, values, versions and blobs are still there";
  if (!opts.reopen) skipped.push(reopenCase);
  else {
    await attempt(reopenCase, async () => {
      const store2 = await makeStore();
      const blobs2 = await makeBlobs();
      try {
        eq(await store2.get(ctx.k("durable")), { key: ctx.k("durable"), value: DURABLE_VALUE, version: durableVersion }, "entry");
        eq(await store2.get(ctx.k("after-close")), null, "nothing written after close");
        eq((await store2.get(ctx.k("nested")))?.value, NESTED, "an entry from an earlier case");
        bytesEqual(await blobs2.get(ctx.b("durable")), DURABLE_BLOB, "blob");
        eq(await blobs2.has(ctx.b("after-close")), false, "no blob written after close");
        const next = await store2.set(ctx.k("durable"), 2, { expectVersion: durableVersion });
        assert(next.ok && next.version !== durableVersion, `CAS after reopen should succeed with a new version, got ${show(next)}`);
      } finally {
        await store2.close();
        await blobs2.close();
      }
    });
  }

  return { passed, failures, total: passed + failures.length, skipped, ms: Math.round(performance.now() - t0) };
}

/** Throughput of one backend (not a test: one run, for reports). */
export interface StoreSpeed {
  /** 1,000 sequential `set`s of a 1 KiB value (ms). */
  set1000x1KiBMs: number;
  /** 10 MiB of blobs in 10 KiB pieces: all `put`s, then all `get`s, sequentially (ms). */
  blobs10MiBPutMs: number;
  blobs10MiBGetMs: number;
}

/** Measures a store and a blob store (writes under `["speed", …]` and `speed/…`, and deletes nothing). */
export async function measureStoreSpeed(store: Store, blobs: BlobStore): Promise<StoreSpeed> {
  const run = crypto.randomUUID().slice(0, 8);
  const value = "v".repeat(1024 - 2);
  let t = performance.now();
  for (let i = 0; i < 1000; i++) await store.set(["speed", run, String(i)], value);
  const set1000x1KiBMs = performance.now() - t;
  const pieces = 1024;
  const piece = pseudoRandomBytes(10 * 1024, 1);
  t = performance.now();
  for (let i = 0; i < pieces; i++) await blobs.put(`speed/${run}/${i}`, piece);
  const blobs10MiBPutMs = performance.now() - t;
  t = performance.now();
  for (let i = 0; i < pieces; i++) if ((await blobs.get(`speed/${run}/${i}`))?.length !== piece.length) throw new Error(`${blobs.name}: speed blob ${i} did not read back`);
  const blobs10MiBGetMs = performance.now() - t;
  return { set1000x1KiBMs: Math.round(set1000x1KiBMs), blobs10MiBPutMs: Math.round(blobs10MiBPutMs), blobs10MiBGetMs: Math.round(blobs10MiBGetMs) };
}

/**
 * `runStoreConformance` for a backend opened as a pair (one database behind both stores, as the
 * runtime shims open them): `open()` is called once for the main run and once more to reopen.
 */
export function runStorePairConformance(open: () => Promise<{ store: Store; blobs: BlobStore }>, opts: ConformanceOptions = {}): Promise<ConformanceResult> {
  let opened: Promise<{ store: Store; blobs: BlobStore }> | undefined;
  return runStoreConformance(
    async () => (await (opened = open())).store,
    async () => (await opened!).blobs,
    opts,
  );
}
