// The `execute` tool over a real sandbox (the Deno subprocess tier, hosted from Node): its output
// format, its errors, the session's tools reachable from code, and the workspace it shares with
// the file tools.
import { afterAll, describe, expect, it } from "vitest";
import { createLogger } from "../core/log.ts";
import { Router } from "../core/router/router.ts";
import type { ToolResult } from "../core/router/tool.ts";
import { IsolatePool, IsolateSandbox } from "../isolates/isolate-sandbox.ts";
import { denoSubprocessHost } from "../runtimes/node/deno-isolates.ts";
import { executeTool } from "./execute-tool.ts";
import { standardToolset } from "./standard-toolset.ts";
import { createWorkspaceFs } from "./workspace-fs.ts";

const pool = new IsolatePool(denoSubprocessHost(), 1, { memoryMiB: 64 });
afterAll(() => pool.close());

function session() {
  const fs = createWorkspaceFs();
  const tools = standardToolset(fs);
  const execute = executeTool(new IsolateSandbox({ sessionId: "sesn_exec", pool, fs }), { tools });
  const router = new Router({ builtin: tools, custom: [execute] });
  const ctx = { sessionId: "sesn_exec", toolUseId: "toolu_1", signal: new AbortController().signal, log: createLogger({ level: "error", write: () => {} }) };
  const call = (input: unknown) => router.call("custom", "execute", input, ctx);
  const text = (r: ToolResult) => r.content.map((b) => String((b as { text?: unknown }).text ?? "")).join("\n");
  return { fs, router, ctx, call, text };
}

describe("execute", () => {
  it("returns console output, then the value as JSON", async () => {
    const s = session();
    const r = await s.call({ code: "console.log('a', 1); console.warn('careful'); return { n: 2 }" });
    expect(r.is_error).toBe(false);
    expect(s.text(r)).toBe('a 1\n[warn] careful\n=> {\n  "n": 2\n}');
  });

  it("runs TypeScript, shares the workspace with the file tools, and calls them", async () => {
    const s = session();
    await s.router.call("builtin", "write", { file_path: "notes/todo.txt", content: "TODO: ship\nDONE: test\n" }, s.ctx);
    const r = await s.call({
      language: "ts",
      code: `const hits: string = await tools.grep({ pattern: "TODO" });
await workspace.writeFile("out.txt", hits.toUpperCase());
return (await workspace.readdir(".")).map((e: { name: string }) => e.name);`,
    });
    expect(s.text(r)).toContain('"notes"');
    expect(new TextDecoder().decode(await s.fs.readFile("out.txt"))).toBe("/WORKSPACE/NOTES/TODO.TXT:1:TODO: SHIP");
  });

  it("a tool's error reaches the snippet as an exception with the tool's text", async () => {
    const s = session();
    const r = await s.call({ code: "try { await tools.read({ file_path: '../../etc/passwd' }); } catch (e) { return e.message; }" });
    expect(s.text(r)).toContain("is outside the session's working directory");
  });

  it("a thrown error, a timeout and bad input are is_error results that say so", async () => {
    const s = session();
    const thrown = await s.call({ code: "console.log('before'); throw new TypeError('nope')" });
    expect(thrown.is_error).toBe(true);
    expect(s.text(thrown)).toBe("before\nexecute: TypeError: nope");
    const slow = await s.call({ code: "while (true) {}", timeout_ms: 300 });
    expect(slow.is_error).toBe(true);
    expect(s.text(slow)).toBe("execute: timed out after 300ms (the isolate was stopped)");
    const bad = await s.call({ code: "return 1", language: "python" });
    expect(s.text(bad)).toMatch(/^execute: invalid input: language/);
    const ts = await s.call({ code: "const x: = 1", language: "ts" });
    expect(s.text(ts)).toMatch(/^execute: TypeScript: /);
  });

  it("fetch goes to the outbound handler, deny-all by default", async () => {
    const s = session();
    const r = await s.call({ code: "const res = await fetch('https://example.com/x'); return [res.status, res.headers.get('x-deft-egress'), await res.text()]" });
    expect(JSON.parse(s.text(r).slice(3))).toEqual([403, "denied", "deft: outbound request to example.com refused: no egress policy allows it"]);
  });
});
