// The Bun shim's stores: SQLite through bun:sqlite (the default: built in, no native addon), or
// Deno KV through the `@deno/kv` package (a file Deno and Node can open too). Either way one file
// under the state directory holds both the Store and the BlobStore.
import { mkdirSync } from "node:fs";
import { join } from "node:path";
import { deserialize, serialize } from "node:v8";
import { openKv } from "@deno/kv";
import { openKvStores } from "../../core/state/kv-store.ts";
import type { BlobStore, Store } from "../../core/state/store.ts";
import { StoreUnavailableError } from "../../core/state/store.ts";
import { openSqliteStores, type SqliteSynchronous } from "./sqlite-store.ts";

/** Which backend the Bun shim opens: "sqlite" (default) or "deno-kv". */
export type BunStoreBackend = "sqlite" | "deno-kv";

/** The files under a state directory, per backend. */
export const BUN_STORE_FILES: Record<BunStoreBackend, string> = { sqlite: "deft.sqlite", "deno-kv": "deft.kv" };

/** What `openBunStores` takes besides the directory. */
export interface BunStoreOptions {
  /** Default "sqlite". */
  backend?: BunStoreBackend;
  /** SQLite only: "full" (default) fsyncs every commit; "normal" survives a crash of the process but not of the machine. */
  synchronous?: SqliteSynchronous;
}

/**
 * Opens the Store and BlobStore under `dir` (created if missing): `<dir>/deft.sqlite` or
 * `<dir>/deft.kv`. The database closes when both have been closed.
 */
export async function openBunStores(dir: string, opts: BunStoreOptions = {}): Promise<{ store: Store; blobs: BlobStore }> {
  const backend = opts.backend ?? "sqlite";
  const path = join(dir, BUN_STORE_FILES[backend]);
  const name = backend === "sqlite" ? `sqlite:${path}` : `deno-kv:${path}`;
  try {
    mkdirSync(dir, { recursive: true });
  } catch (e) {
    throw new StoreUnavailableError(name, `cannot create ${dir}: ${e instanceof Error ? e.message : String(e)}`, { cause: e });
  }
  if (backend === "sqlite") return openSqliteStores(path, { synchronous: opts.synchronous ?? "full" });
  try {
    // @deno/kv refuses to guess a V8 serializer on Bun. Deft stores only bytes (never serialized),
    // so these are never called for its own data; they must still be given.
    return openKvStores(await openKv(path, { encodeV8: serialize, decodeV8: deserialize }), name);
  } catch (e) {
    throw new StoreUnavailableError(name, `cannot open: ${e instanceof Error ? e.message.split("\n")[0] : String(e)}`, { cause: e });
  }
}
