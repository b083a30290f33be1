// The Node shim's stores: Deno KV through the `@deno/kv` package (its SQLite file, the same
// format Deno reads), one file `<dir>/deft.kv` for both the Store and the BlobStore.
import { mkdir } from "node:fs/promises";
import { join } from "node:path";
import { openKv } from "@deno/kv";
import { openKvStores } from "../../core/state/kv-store.ts";
import type { BlobStore, Store } from "../../core/state/store.ts";
import { StoreUnavailableError } from "../../core/state/store.ts";

/** The file under a state directory that holds the Deno KV database. */
export const KV_FILE = "deft.kv";

/**
 * Opens the Store and BlobStore kept in `<dir>/deft.kv` (created with `dir` if missing). The
 * database closes when both have been closed. Durability: Deno KV commits in SQLite WAL mode with
 * SQLite's default `synchronous=FULL`, so a resolved write has been fsynced.
 */
export async function openNodeStores(dir: string): Promise<{ store: Store; blobs: BlobStore }> {
  const path = join(dir, KV_FILE);
  const name = `deno-kv:${path}`;
  try {
    await mkdir(dir, { recursive: true });
    return openKvStores(await openKv(path), name);
  } catch (e) {
    throw new StoreUnavailableError(name, `cannot open: ${e instanceof Error ? e.message.split("\n")[0] : String(e)}`, { cause: e });
  }
}
