import { describe, expect, test } from "vitest";
import type { Tool, ToolContext } from "../core/router/mod.ts";
import { ToolError } from "../core/router/mod.ts";
import { createWorkspaceFs, type WorkspaceFsOptions } from "./workspace-fs.ts";
import { standardToolset, type StandardToolsetOptions } from "./standard-toolset.ts";

const noop = (): void => undefined;
const log = { debug: noop, info: noop, warn: noop, error: noop, child: () => log } as unknown as ToolContext["log"];

function setup(fsOpts?: WorkspaceFsOptions, opts?: StandardToolsetOptions) {
  const fs = createWorkspaceFs(fsOpts);
  const tools = new Map(standardToolset(fs, opts).map((t) => [t.name, t] as [string, Tool]));
  const ctx: ToolContext = { sessionId: "s", toolUseId: "t", signal: new AbortController().signal, log };
  /** Runs a tool through its schema; returns text, or `ERR:<message>` for a ToolError. */
  const call = async (name: string, input: unknown): Promise<string> => {
    const tool = tools.get(name)!;
    try {
      const out = await tool.run(tool.input.parse(input), ctx);
      return String(out);
    } catch (err) {
      if (err instanceof ToolError) return `ERR:${err.message}`;
      throw err;
    }
  };
  return { fs, tools, call };
}

const outside = (tool: string, p: string): string => `ERR:${tool}: path "${p}" is outside the session's working directory`;

describe("standardToolset", () => {
  test("the six tools with their schemas", () => {
    const { tools } = setup();
    expect([...tools.keys()]).toEqual(["bash", "read", "write", "edit", "glob", "grep"]);
    expect(tools.get("read")!.idempotent).toBe(true);
    expect(tools.get("glob")!.idempotent).toBe(true);
    expect(tools.get("grep")!.idempotent).toBe(true);
    expect(tools.get("edit")!.idempotent).toBeFalsy();
    expect(Object.keys((tools.get("bash")!.inputSchema() as { properties: object }).properties)).toEqual(["command", "restart", "timeout_ms"]);
    expect((tools.get("read")!.inputSchema() as { required: string[] }).required).toEqual(["file_path"]);
    expect(tools.get("read")!.input.safeParse({ file_path: "a", view_range: [1] }).success).toBe(false);
  });

  test("write, read, view_range", async () => {
    const { call } = setup();
    expect(await call("write", { file_path: "src/a.txt", content: "one\ntwo\nthree\nné\n" })).toBe("wrote 18 bytes to src/a.txt");
    expect(await call("read", { file_path: "src/a.txt" })).toBe("one\ntwo\nthree\nné\n");
    expect(await call("read", { file_path: "/workspace/src/a.txt", view_range: [2, 3] })).toBe("two\nthree");
    expect(await call("read", { file_path: "src/a.txt", view_range: [3, 0] })).toBe("three\nné");
    expect(await call("read", { file_path: "src/a.txt", view_range: [3, -1] })).toBe("three\nné");
    expect(await call("read", { file_path: "nope.txt" })).toBe("ERR:read: nope.txt: no such file or directory");
    expect(await call("read", { file_path: "src" })).toBe("ERR:read: src: is a directory");
    expect(await call("write", { file_path: "src", content: "x" })).toBe("ERR:write: src: is a directory");
    expect(await call("read", { file_path: "src/a.txt/x" })).toMatch(/^ERR:read: src\/a.txt\/x: /);
  });

  test("read caps whole-file reads and suggests view_range", async () => {
    const { call } = setup(undefined, { maxFileBytes: 100 });
    await call("write", { file_path: "big.txt", content: Array.from({ length: 50 }, (_, i) => `line ${i + 1}`).join("\n") });
    expect(await call("read", { file_path: "big.txt" })).toMatch(/^ERR:read: big.txt: file is \d+ bytes, larger than the 100-byte limit; use view_range/);
    expect(await call("read", { file_path: "big.txt", view_range: [1, 2] })).toBe("line 1\nline 2");
    const capped = await call("read", { file_path: "big.txt", view_range: [1, 0] });
    expect(capped).toContain("line 1\n");
    expect(capped).toMatch(/\[output truncated at 100 bytes; continue with view_range \[\d+, 0\]\]$/);
    await call("write", { file_path: "long.txt", content: "x".repeat(200) });
    expect(await call("read", { file_path: "long.txt", view_range: [1, 1] })).toBe("ERR:read: long.txt: line 1 is longer than the 100-byte limit");
    expect(await call("edit", { file_path: "big.txt", old_string: "line 1", new_string: "x" })).toMatch(/^ERR:edit: big.txt: file is \d+ bytes, larger than the 100-byte limit$/);
  });

  test("binary files are not shown, and grep skips them", async () => {
    const { fs, call } = setup();
    await fs.writeFile("bin.dat", new Uint8Array([0x6d, 0x61, 0x74, 0x63, 0x68, 0, 1, 2, 0x6d, 0x61, 0x74, 0x63, 0x68]));
    await fs.writeFile("latin1.txt", new Uint8Array([0xff, 0xfe, 0x41]));
    expect(await call("read", { file_path: "bin.dat" })).toBe("ERR:read: bin.dat: binary file (13 bytes), not shown");
    expect(await call("read", { file_path: "latin1.txt" })).toBe("ERR:read: latin1.txt: binary file (3 bytes), not shown");
    expect(await call("edit", { file_path: "bin.dat", old_string: "match", new_string: "x" })).toBe("ERR:edit: bin.dat: binary file (13 bytes), not shown");
    // The walker stops a file at its first NUL byte: the bytes after it are never matched or printed.
    expect(await call("grep", { pattern: "\\x02match" })).toBe("no matches");
  });

  test("edit", async () => {
    const { call } = setup();
    await call("write", { file_path: "f.ts", content: "a = 1; b = 1; c = 2;" });
    expect(await call("edit", { file_path: "f.ts", old_string: "c = 2", new_string: "c = $& $1 $$" })).toBe("edited f.ts (1 replacement)");
    expect(await call("read", { file_path: "f.ts" })).toBe("a = 1; b = 1; c = $& $1 $$;");
    expect(await call("edit", { file_path: "f.ts", old_string: "= 1", new_string: "= 3" })).toBe("ERR:edit: old_string appears 2 times in f.ts (must be unique)");
    expect(await call("edit", { file_path: "f.ts", old_string: "= 1", new_string: "= 3", replace_all: true })).toBe("edited f.ts (2 replacements)");
    expect(await call("read", { file_path: "f.ts" })).toBe("a = 3; b = 3; c = $& $1 $$;");
    expect(await call("edit", { file_path: "f.ts", old_string: "zzz", new_string: "y" })).toBe("ERR:edit: old_string not found in f.ts");
    expect(await call("edit", { file_path: "f.ts", old_string: "", new_string: "y" })).toBe("ERR:edit: old_string must not be empty");
    expect(await call("edit", { file_path: "none.ts", old_string: "a", new_string: "y" })).toBe("ERR:edit: none.ts: no such file or directory");
  });

  test("glob: newest first, absolute, skips .git and node_modules", async () => {
    const { call } = setup();
    expect(await call("glob", { pattern: "**/*.ts" })).toBe("no matches");
    await call("write", { file_path: "old.ts", content: "1" });
    await call("write", { file_path: "src/mid.ts", content: "1" });
    await call("write", { file_path: "src/deep/new.ts", content: "1" });
    await call("write", { file_path: "node_modules/x/index.ts", content: "1" });
    await call("write", { file_path: ".git/hooks/a.ts", content: "1" });
    await call("write", { file_path: "readme.md", content: "1" });
    expect(await call("glob", { pattern: "**/*.ts" })).toBe("/workspace/src/deep/new.ts\n/workspace/src/mid.ts\n/workspace/old.ts");
    // Touching a file moves it to the front.
    await call("edit", { file_path: "old.ts", old_string: "1", new_string: "2" });
    expect((await call("glob", { pattern: "**/*.ts" })).split("\n")[0]).toBe("/workspace/old.ts");
    expect(await call("glob", { pattern: "*.ts", path: "src" })).toBe("/workspace/src/mid.ts");
    expect(await call("glob", { pattern: "../*" })).toBe('ERR:glob: pattern must be relative and must not contain ".."');
    expect(await call("glob", { pattern: "/etc/*" })).toBe('ERR:glob: pattern must be relative and must not contain ".."');
    expect(await call("glob", { pattern: "*", path: "/etc" })).toBe(outside("glob", "/etc"));
  });

  test("glob caps at 200 results", async () => {
    const { call } = setup();
    for (let i = 0; i < 210; i++) await call("write", { file_path: `f${i}.txt`, content: "" });
    const out = (await call("glob", { pattern: "*.txt" })).split("\n");
    expect(out).toHaveLength(200);
    expect(out[0]).toBe("/workspace/f209.txt");
  });

  test("grep: file:line:text, long lines skipped, invalid regex, truncation", async () => {
    const { call } = setup();
    expect(await call("grep", { pattern: "x" })).toBe("no matches");
    await call("write", { file_path: "a.txt", content: `alpha\nbeta\n${"beta".repeat(600)}\ngamma beta\n` });
    await call("write", { file_path: "sub/b.txt", content: "betamax\n" });
    await call("write", { file_path: "node_modules/m/c.txt", content: "beta\n" });
    expect(await call("grep", { pattern: "^beta|a beta" })).toBe("/workspace/a.txt:2:beta\n/workspace/a.txt:4:gamma beta\n/workspace/sub/b.txt:1:betamax");
    expect(await call("grep", { pattern: "beta", path: "sub/b.txt" })).toBe("/workspace/sub/b.txt:1:betamax");
    expect(await call("grep", { pattern: "(unclosed" })).toMatch(/^ERR:grep: invalid regex: /);
    expect(await call("grep", { pattern: "x", path: "../.." })).toBe(outside("grep", "../.."));
    await call("write", { file_path: "many.txt", content: Array.from({ length: 3000 }, (_, i) => `match ${i} ${"y".repeat(40)}`).join("\n") });
    const out = await call("grep", { pattern: "match", path: "many.txt" });
    expect(out.endsWith("\n[output truncated at 102400 bytes]")).toBe(true);
    expect(new TextEncoder().encode(out).byteLength).toBeLessThan(102400 + 100);
  });

  test("grep with a pathological regex returns a result", async () => {
    const { call } = setup();
    await call("write", { file_path: "evil.txt", content: `${"a".repeat(1900)}b\n` });
    expect(await call("grep", { pattern: "(a+)+$" })).toBe("no matches");
    expect(await call("grep", { pattern: "(a+)+b$" })).toMatch(/^\/workspace\/evil.txt:1:a+b$/);
  });

  test("confinement: hostile paths through every file tool", async () => {
    const { call } = setup();
    for (const p of ["../../etc/passwd", "/etc/passwd", "/workspace/../x"]) {
      expect(await call("read", { file_path: p })).toBe(outside("read", p));
      expect(await call("write", { file_path: p, content: "x" })).toBe(outside("write", p));
      expect(await call("edit", { file_path: p, old_string: "a", new_string: "b" })).toBe(outside("edit", p));
    }
    // Symlinks made by the shell pointing out of the workspace.
    expect(await call("bash", { command: "echo root:x:0:0 > /etc-passwd-like; mkdir -p /etc; echo secret > /etc/passwd; ln -s / rootlink; ln -s /etc etclink; ln -s /etc/nowhere dangling; ln -s a loop1; ln -s loop1 a" })).toBe("");
    expect(await call("read", { file_path: "rootlink/etc/passwd" })).toBe(outside("read", "rootlink/etc/passwd"));
    expect(await call("read", { file_path: "etclink/passwd" })).toBe(outside("read", "etclink/passwd"));
    expect(await call("write", { file_path: "etclink/passwd", content: "pwned" })).toBe(outside("write", "etclink/passwd"));
    expect(await call("edit", { file_path: "etclink/passwd", old_string: "secret", new_string: "x" })).toBe(outside("edit", "etclink/passwd"));
    expect(await call("write", { file_path: "dangling", content: "x" })).toBe(outside("write", "dangling"));
    expect(await call("glob", { pattern: "**", path: "etclink" })).toBe(outside("glob", "etclink"));
    expect(await call("grep", { pattern: "secret", path: "rootlink" })).toBe(outside("grep", "rootlink"));
    // Searching the root does not follow the links out.
    expect(await call("grep", { pattern: "secret" })).toBe("no matches");
    expect(await call("glob", { pattern: "**" })).toBe("no matches");
    expect(await call("read", { file_path: "loop1" })).toBe("ERR:read: loop1: too many levels of symbolic links");
    expect(await call("bash", { command: "cat /etc/passwd" })).toBe("secret");
  });

  test("limits: file too large, too many files, total bytes, a shell writing a huge file", async () => {
    const { call, fs } = setup({ limits: { maxFileBytes: 1024, maxTotalBytes: 4096, maxEntries: 6 } });
    expect(await call("write", { file_path: "big", content: "x".repeat(1025) })).toMatch(/^ERR:write: big: file too large/);
    for (let i = 0; i < 4; i++) expect(await call("write", { file_path: `f${i}`, content: "x".repeat(1000) })).toBe(`wrote 1000 bytes to f${i}`);
    expect(await call("write", { file_path: "f4", content: "x".repeat(1000) })).toBe("ERR:write: f4: no space left on device (workspace limit 4096 bytes)");
    expect(await call("write", { file_path: "g0", content: "" })).toBe("wrote 0 bytes to g0");
    expect(await call("write", { file_path: "g1", content: "" })).toBe("wrote 0 bytes to g1");
    expect(await call("write", { file_path: "g2", content: "" })).toBe("ERR:write: g2: no space left on device (workspace limit 6 entries)");
    // 1 MiB through a `>` redirect: refused by the workspace limits.
    const mib = await call("bash", { command: "rm f0 f1 f2 f3; s=xxxxxxxxxxxxxxxx; for i in 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16; do s=$s$s; done; echo $s > huge; echo after" });
    expect(mib).toMatch(/^ERR:bash: file too large/);
    // 128 MiB: refused before it is ever built (the shell's own string/output caps).
    const huge = await call("bash", { command: "s=xxxxxxxxxxxxxxxx; for i in $(seq 1 23); do s=$s$s; done; echo $s > huge" });
    expect(huge).toMatch(/^ERR:bash: .*(limit exceeded|size exceeded)/s);
    expect(await call("bash", { command: "for i in 1 2 3 4 5 6 7 8 9 10; do echo xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx >> grow || exit 9; done" })).toMatch(/^ERR:[\s\S]*(file too large|no space left)/);
    expect(fs.usage().bytes).toBeLessThanOrEqual(4096);
  });

  test("bash: persistence, restart, exit codes, stderr, ANSI", async () => {
    const { call } = setup();
    expect(await call("bash", {})).toBe("ERR:bash: command is required");
    expect(await call("bash", { command: "pwd" })).toBe("/workspace");
    expect(await call("bash", { command: "mkdir -p sub/dir && cd sub/dir && X=41 && export Y=hello" })).toBe("");
    expect(await call("bash", { command: 'pwd; echo "$((X + 1)) $Y"' })).toBe("/workspace/sub/dir\n42 hello");
    expect(await call("bash", { command: "echo out; echo err >&2" })).toBe("out\nerr");
    expect(await call("bash", { command: "printf '\\033[31mred\\033[0m\\n\\n\\n'" })).toBe("red");
    expect(await call("bash", { command: "echo failing; exit 3" })).toBe("ERR:failing");
    expect(await call("bash", { command: "exit 4" })).toBe("ERR:exit 4");
    expect(await call("bash", { command: "false" })).toBe("ERR:exit 1");
    expect(await call("bash", { restart: true })).toBe("bash session restarted");
    expect(await call("bash", { command: 'pwd; echo "[$X]"' })).toBe("/workspace\n[]");
    expect(await call("bash", { command: "cd sub; V=1", restart: false })).toBe("");
    expect(await call("bash", { command: 'pwd; echo "[$V]"', restart: true })).toBe("/workspace\n[]");
    // Files written by the shell are visible to the file tools and vice versa.
    expect(await call("bash", { command: "echo from-shell > s.txt" })).toBe("");
    expect(await call("read", { file_path: "s.txt" })).toBe("from-shell\n");
    await call("write", { file_path: "t.txt", content: "from-tool" });
    expect(await call("bash", { command: "cat t.txt" })).toBe("from-tool");
  });

  test("bash: timeout, and the next call starts a fresh shell", async () => {
    const { call } = setup();
    await call("bash", { command: "cd /tmp 2>/dev/null || mkdir -p sub && cd sub; Z=1" });
    expect(await call("bash", { command: "while true; do :; done", timeout_ms: 200 })).toBe("ERR:bash: bash command timed out after 200ms");
    expect(await call("bash", { command: "sleep 10", timeout_ms: 100 })).toBe("ERR:bash: bash command timed out after 100ms");
    expect(await call("bash", { command: 'pwd; echo "[$Z]"' })).toBe("/workspace\n[]");
  });

  test("bash: output keeps the last 100 KiB", async () => {
    const { call } = setup();
    const out = await call("bash", { command: "for i in $(seq 1 4000); do echo line-$i-xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx; done" });
    expect(out.startsWith("[output truncated]\n")).toBe(true);
    expect(out.endsWith("line-4000-xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx")).toBe(true);
    expect(new TextEncoder().encode(out).byteLength).toBeLessThanOrEqual(100 * 1024 + "[output truncated]\n".length);
  });

  test("bash: calls are serialised", async () => {
    const { call } = setup();
    const [a, b] = await Promise.all([call("bash", { command: "cd /workspace && mkdir -p q && cd q && sleep 0.05" }), call("bash", { command: "pwd" })]);
    expect(a).toBe("");
    expect(b).toBe("/workspace/q");
  });
});
