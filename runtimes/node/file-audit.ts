// The audit sink on the local filesystem: one append-only JSON-lines file per session under
// `dir`, each record written with a synchronous append (into the page cache: survives a crash
// or kill -9 of the worker) before `write` resolves. node:fs only, so the Deno and Bun shims
// reuse it. Issue 5 moves audit records into the Store with a retention setting.
import { appendFileSync, mkdirSync } from "node:fs";
import { readFile } from "node:fs/promises";
import { join } from "node:path";
import type { AuditQuery, AuditRecord, AuditSink } from "../../core/audit/audit.ts";

const SAFE = /^[A-Za-z0-9_-]{1,128}$/;

export class FileAuditSink implements AuditSink {
  #made = false;
  constructor(readonly dir: string) {}

  #path(sessionId: string): string {
    if (!SAFE.test(sessionId)) throw new Error(`audit: unsafe session id ${JSON.stringify(sessionId)}`);
    return join(this.dir, `${sessionId}.jsonl`);
  }

  async write(record: AuditRecord): Promise<void> {
    const path = this.#path(record.sessionId);
    if (!this.#made) {
      mkdirSync(this.dir, { recursive: true, mode: 0o700 });
      this.#made = true;
    }
    appendFileSync(path, JSON.stringify(record) + "\n", { mode: 0o600 });
  }

  async query(q: AuditQuery): Promise<AuditRecord[]> {
    const text = await readFile(this.#path(q.sessionId), "utf8").catch((e: NodeJS.ErrnoException) => {
      if (e.code === "ENOENT") return "";
      throw e;
    });
    const out: AuditRecord[] = [];
    for (const line of text.split("\n")) {
      if (!line) continue;
      try {
        const r = JSON.parse(line) as AuditRecord;
        if (!q.since || r.time >= q.since) out.push(r);
      } catch {
        // a torn last line from a crash mid-write: that record was never acknowledged
      }
    }
    return q.limit ? out.slice(-q.limit) : out;
  }
}
