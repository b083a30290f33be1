// A durable idempotency ledger on the local filesystem: one append-only JSON-lines file per
// session. Each write reaches the OS before its promise resolves, so it survives a crash or a
// kill -9 of the worker; with `fsync` it also survives power loss. Uses only node:fs, which
// Deno and Bun implement too, so their shims reuse it.
//
// Without fsync a line is written with a synchronous write(2) into the page cache: a few
// microseconds, against ~0.2 ms for a trip through the thread pool, and it sits on every tool
// call's path twice. With fsync the wait is the disk's, so it goes through the thread pool.
import { closeSync, openSync, writeSync } from "node:fs";
import { mkdir, open, readFile, type FileHandle } from "node:fs/promises";
import { join } from "node:path";
import type { Ledger, LedgerEntry, SessionLedger } from "../../core/session/ledger.ts";
import type { ToolResult } from "../../core/router/mod.ts";

type Line = { id: string; s: "started" } | { id: string; s: "done"; r: ToolResult };

const SAFE = /^[A-Za-z0-9_-]{1,128}$/;

export class FileLedger implements Ledger {
  constructor(
    readonly dir: string,
    readonly opts: { fsync?: boolean } = {},
  ) {}

  async open(sessionId: string): Promise<SessionLedger> {
    if (!SAFE.test(sessionId)) throw new Error(`ledger: unsafe session id ${JSON.stringify(sessionId)}`);
    await mkdir(this.dir, { recursive: true, mode: 0o700 });
    const path = join(this.dir, `${sessionId}.jsonl`);
    const entries = new Map<string, LedgerEntry>();
    const text = await readFile(path, "utf8").catch((e: NodeJS.ErrnoException) => {
      if (e.code === "ENOENT") return "";
      throw e;
    });
    for (const raw of text.split("\n")) {
      if (!raw) continue;
      let line: Line;
      try {
        line = JSON.parse(raw) as Line;
      } catch {
        continue; // a torn last line from a crash mid-write: that write was never acknowledged
      }
      entries.set(line.id, line.s === "done" ? { state: "done", result: line.r } : { state: "started" });
    }
    // After a torn last line, start on a fresh line so the next entry is not glued to it.
    const lead = text.length > 0 && !text.endsWith("\n") ? "\n" : "";
    const fsync = !!this.opts.fsync;
    let append: (line: Line) => Promise<void>;
    let closeFile: () => Promise<void>;
    if (!fsync) {
      const fd = openSync(path, "a", 0o600);
      if (lead) writeSync(fd, lead);
      append = async (line) => void writeSync(fd, JSON.stringify(line) + "\n");
      closeFile = async () => closeSync(fd);
    } else {
      const fh: FileHandle = await open(path, "a", 0o600);
      if (lead) await fh.appendFile(lead);
      let chain: Promise<void> = Promise.resolve();
      append = (line) => {
        // Serialised so lines never interleave.
        chain = chain.then(async () => {
          await fh.appendFile(JSON.stringify(line) + "\n");
          await fh.datasync();
        });
        return chain;
      };
      closeFile = async () => {
        await chain.catch(() => {});
        await fh.close();
      };
    }
    return {
      get: (id) => entries.get(id),
      started: async (id) => {
        entries.set(id, { state: "started" });
        await append({ id, s: "started" });
      },
      finished: async (id, result) => {
        entries.set(id, { state: "done", result });
        await append({ id, s: "done", r: result });
      },
      close: () => closeFile(),
    };
  }
}
