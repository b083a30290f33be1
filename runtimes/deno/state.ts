/// <reference lib="deno.unstable" />
// The Deno shim's stores: native Deno KV (`Deno.openKv`), one file `<dir>/deft.kv` for both the
// Store and the BlobStore. Needs `--unstable-kv` (or `"unstable": ["kv"]` in deno.json) and read
// and write permission on `dir`. On Deno Deploy, pass no directory to get the managed database.
import { openKvStores } from "../../core/state/kv-store.ts";
import type { BlobStore, Store } from "../../core/state/store.ts";
import { StoreUnavailableError } from "../../core/state/store.ts";

/** The file under a state directory that holds the Deno KV database. */
export const KV_FILE = "deft.kv";

/**
 * Opens the Store and BlobStore kept in `<dir>/deft.kv` (creating `dir` if missing), or, with no
 * `dir`, the default database (Deno Deploy's managed KV there). The database closes when both
 * have been closed. Durability: locally Deno KV commits in SQLite WAL mode with SQLite's default
 * `synchronous=FULL`, so a resolved write has been fsynced; on Deploy a resolved write is
 * replicated before it resolves.
 */
export async function openDenoStores(dir?: string): Promise<{ store: Store; blobs: BlobStore }> {
  const path = dir === undefined ? undefined : `${dir.replace(/\/+$/, "")}/${KV_FILE}`;
  const name = `deno-kv:${path ?? "default"}`;
  if (typeof Deno.openKv !== "function") {
    throw new StoreUnavailableError(name, "Deno.openKv is missing: run with --unstable-kv (or add \"kv\" to \"unstable\" in deno.json)");
  }
  try {
    if (dir !== undefined) await Deno.mkdir(dir, { recursive: true });
    return openKvStores(await Deno.openKv(path), name);
  } catch (e) {
    throw new StoreUnavailableError(name, `cannot open: ${e instanceof Error ? e.message : String(e)}`, { cause: e });
  }
}
