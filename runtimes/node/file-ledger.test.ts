import { appendFileSync, mkdtempSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { FileLedger } from "./file-ledger.ts";

const ok = { content: [{ type: "text" as const, text: "fine" }], is_error: false };

describe.each([false, true])("FileLedger (fsync %s)", (fsync) => {
  it("keeps started and finished entries across reopen", async () => {
    const dir = mkdtempSync(join(tmpdir(), "deft-ledger-"));
    const a = await new FileLedger(dir, { fsync }).open("sesn_1");
    await a.started("t1");
    await a.started("t2");
    await a.finished("t1", ok);
    await a.close();
    const b = await new FileLedger(dir, { fsync }).open("sesn_1");
    expect(b.get("t1")).toEqual({ state: "done", result: ok });
    expect(b.get("t2")).toEqual({ state: "started" });
    expect(b.get("t3")).toBeUndefined();
    await b.close();
  });

  it("survives a torn last line and keeps later writes readable", async () => {
    const dir = mkdtempSync(join(tmpdir(), "deft-ledger-"));
    const a = await new FileLedger(dir, { fsync }).open("sesn_2");
    await a.started("t1");
    await a.close();
    appendFileSync(join(dir, "sesn_2.jsonl"), '{"id":"t2","s":"sta'); // a crash mid-write
    const b = await new FileLedger(dir, { fsync }).open("sesn_2");
    expect(b.get("t2")).toBeUndefined();
    await b.started("t3");
    await b.close();
    const c = await new FileLedger(dir, { fsync }).open("sesn_2");
    expect(c.get("t1")).toEqual({ state: "started" });
    expect(c.get("t3")).toEqual({ state: "started" });
    await c.close();
    expect(readFileSync(join(dir, "sesn_2.jsonl"), "utf8").split("\n").filter(Boolean)).toHaveLength(3);
  });

  it("refuses a session id that could escape its directory", async () => {
    await expect(new FileLedger(tmpdir(), { fsync }).open("../etc/x")).rejects.toThrow(/unsafe/);
  });
});
