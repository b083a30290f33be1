/**
 * The idempotency ledger on a `Store`: one key per tool call, `["ledger", session, toolUseId]`,
 * so any worker sharing the store sees what ran. `started` is written before the tool runs and
 * `finished` (with the result) before the result is posted; both are durable when they resolve.
 * A result too large for one store value (over 48 KiB as JSON) goes to the BlobStore first,
 * and the ledger entry, written after it, points to it: an entry never points to a missing blob.
 */
import type { ToolResult } from "../router/mod.ts";
import type { Ledger, LedgerEntry, SessionLedger } from "../session/ledger.ts";
import type { BlobStore, Store, StoreValue } from "./store.ts";

/** Results larger than this (JSON bytes) are kept as blobs. */
export const LEDGER_INLINE_MAX = 48 * 1024;

type Stored = { s: "started"; at: number } | { s: "done"; at: number; r?: StoreValue; blob?: string };

export class StoreLedger implements Ledger {
  constructor(
    readonly store: Store,
    readonly blobs: BlobStore,
  ) {}

  async open(sessionId: string): Promise<SessionLedger> {
    const entries = new Map<string, LedgerEntry>();
    for await (const e of this.store.list<Stored>(["ledger", sessionId])) {
      const id = e.key[2]!;
      const v = e.value;
      if (v.s === "started") entries.set(id, { state: "started" });
      else if (v.blob) {
        const bytes = await this.blobs.get(v.blob);
        // A missing blob cannot happen (written first), but a damaged store must not crash the session.
        entries.set(id, bytes ? { state: "done", result: JSON.parse(new TextDecoder().decode(bytes)) as ToolResult } : { state: "started" });
      } else entries.set(id, { state: "done", result: v.r as unknown as ToolResult });
    }
    const { store, blobs } = this;
    return {
      get: (id) => entries.get(id),
      started: async (id) => {
        entries.set(id, { state: "started" });
        await store.set(["ledger", sessionId, id], { s: "started", at: Date.now() });
      },
      finished: async (id, result) => {
        entries.set(id, { state: "done", result });
        const json = JSON.stringify(result);
        if (json.length > LEDGER_INLINE_MAX / 3 && new TextEncoder().encode(json).byteLength > LEDGER_INLINE_MAX) {
          const blob = `ledger/${sessionId}/${id}`;
          await blobs.put(blob, new TextEncoder().encode(json));
          await store.set(["ledger", sessionId, id], { s: "done", at: Date.now(), blob });
        } else {
          await store.set(["ledger", sessionId, id], { s: "done", at: Date.now(), r: JSON.parse(json) as StoreValue });
        }
      },
      close: async () => {},
    };
  }
}
