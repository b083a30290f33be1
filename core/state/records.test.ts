// The ledger, audit sink and session records on a Store (the in-memory one here; the same code
// runs over every backend, whose conformance is core/state/state.test.ts's).
import { describe, expect, it } from "vitest";
import type { AuditRecord } from "../audit/audit.ts";
import { MemoryBlobStore, MemoryStore } from "./memory.ts";
import { SessionRecords } from "./session-records.ts";
import { StoreAuditSink } from "./store-audit.ts";
import { LEDGER_INLINE_MAX, StoreLedger } from "./store-ledger.ts";

describe("StoreLedger", () => {
  it("records started and done durably; a second worker opening the session sees both, large results via blobs", async () => {
    const store = new MemoryStore();
    const blobs = new MemoryBlobStore();
    const a = await new StoreLedger(store, blobs).open("sesn_1");
    await a.started("toolu_a");
    await a.started("toolu_b");
    await a.finished("toolu_b", { content: [{ type: "text", text: "small" }], is_error: false });
    const big = "x".repeat(LEDGER_INLINE_MAX * 2);
    await a.started("toolu_c");
    await a.finished("toolu_c", { content: [{ type: "text", text: big }], is_error: false });
    // Another worker, same store.
    const b = await new StoreLedger(store, blobs).open("sesn_1");
    expect(b.get("toolu_a")).toEqual({ state: "started" });
    expect(b.get("toolu_b")).toEqual({ state: "done", result: { content: [{ type: "text", text: "small" }], is_error: false } });
    expect(b.get("toolu_c")).toEqual({ state: "done", result: { content: [{ type: "text", text: big }], is_error: false } });
    expect(await blobs.has("ledger/sesn_1/toolu_c")).toBe(true);
    expect(await blobs.has("ledger/sesn_1/toolu_b")).toBe(false);
    // Sessions do not see each other's calls.
    expect((await new StoreLedger(store, blobs).open("sesn_2")).get("toolu_a")).toBeUndefined();
  });
});

describe("StoreAuditSink", () => {
  it("keeps a session's records in time order, queryable by session and since", async () => {
    const sink = new StoreAuditSink(new MemoryStore());
    const rec = (id: string, time: string, sessionId = "sesn_a"): AuditRecord => ({
      id, time, sessionId, tier: "t", via: "fetch", method: "GET", host: "h", port: 443, path: "/", decision: "allow", rule: "r", reason: "", bytesOut: 0, bytesIn: 0, durationMs: 1, credentials: [], redactions: 0,
    });
    await sink.write(rec("2", "2026-01-01T00:00:02.000Z"));
    await sink.write(rec("1", "2026-01-01T00:00:01.000Z"));
    await sink.write(rec("x", "2026-01-01T00:00:01.500Z", "sesn_b"));
    expect((await sink.query({ sessionId: "sesn_a" })).map((r) => r.id)).toEqual(["1", "2"]);
    expect((await sink.query({ sessionId: "sesn_a", since: "2026-01-01T00:00:01.500Z" })).map((r) => r.id)).toEqual(["2"]);
    expect((await sink.query({ sessionId: "sesn_b" })).map((r) => r.id)).toEqual(["x"]);
  });
});

describe("SessionRecords", () => {
  it("records work items and tool timings, and prunes whole sessions past the retention", async () => {
    let now = Date.parse("2026-01-01T00:00:00Z");
    const store = new MemoryStore();
    const records = new SessionRecords(store, () => now);
    await records.itemClaimed("sesn_old", "work_1", "w1");
    await records.toolRan("sesn_old", { toolUseId: "toolu_1", name: "bash", kind: "builtin", ms: 12, isError: false, replayed: false });
    await records.itemEnded("sesn_old", "work_1", "idle");
    await store.set(["ledger", "sesn_old", "toolu_1"], { s: "started", at: 0 });
    await store.set(["audit", "sesn_old", "t-1"], { x: 1 });
    await store.set(["workspace", "sesn_old"], { manifest: "m" });
    now += 10 * 86_400_000;
    await records.itemClaimed("sesn_new", "work_2", "w2");
    const old = await records.summary("sesn_old");
    expect(old!.workItems).toEqual([{ workId: "work_1", workerId: "w1", claimedAt: "2026-01-01T00:00:00.000Z", endedAt: "2026-01-01T00:00:00.000Z", end: "idle" }]);
    expect((await records.tools("sesn_old")).map((t) => [t.name, t.ms])).toEqual([["bash", 12]]);
    expect((await records.sessions()).map((s) => s.sessionId)).toEqual(["sesn_new", "sesn_old"]);

    expect(await records.prune(7 * 86_400_000)).toEqual(["sesn_old"]);
    expect(await records.summary("sesn_old")).toBeNull();
    for (const prefix of ["tools", "audit", "ledger"]) {
      const left = [];
      for await (const e of store.list([prefix, "sesn_old"])) left.push(e);
      expect(left, prefix).toEqual([]);
    }
    expect(await store.get(["workspace", "sesn_old"])).toBeNull();
    expect(await records.summary("sesn_new")).not.toBeNull();
  });

  it("concurrent updates from several workers are all kept (compare-and-set)", async () => {
    const records = new SessionRecords(new MemoryStore());
    await Promise.all(Array.from({ length: 10 }, (_, i) => records.itemClaimed("sesn_c", `work_${i}`, `w${i}`)));
    expect((await records.summary("sesn_c"))!.workItems).toHaveLength(10);
  });
});
