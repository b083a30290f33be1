/**
 * The standard tool set `agent_toolset_20260401` (spec §9): `bash`, `read`, `write`, `edit`,
 * `glob`, `grep` over a per-session {@link WorkspaceFs}, with the spec's names, input schemas,
 * output strings and error strings.
 *
 * Adaptations to an in-memory workspace (the spec describes a real host):
 * - `bash` is just-bash's simulated shell, not `/bin/bash`: one per toolset instance, calls
 *   serialised, cwd and exported/assigned variables carried from call to call (just-bash
 *   isolates each `exec`; functions, aliases and background jobs do not persist). Its
 *   filesystem is `bashFs`: the workspace plus just-bash's virtual /bin, /usr/bin, /dev, /proc;
 *   there is no host filesystem, network or process behind it. stderr is appended after stdout
 *   (just-bash buffers the two streams separately, so their interleaving is lost). A busy loop
 *   runs on the event loop: it ends at the call's deadline or at just-bash's command-count limit
 *   (100 000 commands, then exit 126), whichever comes first.
 * - `grep` always uses the built-in walker (no `rg`), with RE2 syntax (re2js, linear time) so a
 *   pathological pattern cannot hang the session.
 * - `write`/`edit` are atomic by construction; file modes (0600/0700) are not applied.
 */
import picomatch from "picomatch/posix.js";
import { RE2JS } from "re2js";
import { Bash } from "just-bash";
import type { IFileSystem } from "just-bash";
import { z } from "zod";
import { defineTool, ToolError, type Tool, type ToolContext } from "../core/router/mod.ts";
import { WorkspaceFsError, type WorkspaceFs } from "../core/sandbox/sandbox.ts";
import { ERRNO_TEXT, type BashWorkspaceFs } from "./workspace-fs.ts";

export const DEFAULT_READ_CAP = 256 * 1024;
export const DEFAULT_BASH_TIMEOUT_MS = 120_000;
const BASH_OUTPUT_CAP = 100 * 1024;
const MAX_GLOB_RESULTS = 200;
const MAX_WALK_ENTRIES = 50_000;
const MAX_WALK_DEPTH = 40;
const MAX_GREP_BYTES = 100 * 1024;
const MAX_GREP_LINE = 2000;
const GREP_BUDGET_MS = 60_000;
const MAX_CONCURRENT_GREPS = 4;
const SKIP_DIRS = new Set([".git", "node_modules"]);

export interface StandardToolsetOptions {
  /** Cap for whole-file `read` and for `edit` (default 256 KiB; null = unlimited). */
  maxFileBytes?: number | null;
  /** The runner's default `bash` timeout, used when `timeout_ms` is 0 or omitted (120 s). */
  bashTimeoutMs?: number;
}

const BASH_INPUT = z.object({
  command: z.string().optional(),
  restart: z.boolean().optional(),
  timeout_ms: z.number().int().min(0).optional(),
});
const READ_INPUT = z.object({
  file_path: z.string().min(1),
  view_range: z.tuple([z.number().int(), z.number().int()]).optional(),
});
const WRITE_INPUT = z.object({ file_path: z.string().min(1), content: z.string() });
const EDIT_INPUT = z.object({
  file_path: z.string().min(1),
  old_string: z.string(),
  new_string: z.string(),
  replace_all: z.boolean().optional(),
});
const GLOB_INPUT = z.object({ pattern: z.string().min(1), path: z.string().optional() });
const GREP_INPUT = z.object({ pattern: z.string().min(1), path: z.string().optional() });

const utf8 = new TextEncoder();
const strictUtf8 = new TextDecoder("utf-8", { fatal: true });
const looseUtf8 = new TextDecoder("utf-8");

/** Map a workspace error to the tool's error text (spec §9.2). */
function fail(tool: string, path: string, err: unknown): never {
  if (err instanceof ToolError) throw err;
  if (err instanceof WorkspaceFsError) {
    if (err.code === "EOUTSIDE") throw new ToolError(`${tool}: ${err.message}`);
    throw new ToolError(`${tool}: ${path}: ${err.message}`);
  }
  throw err;
}

function isBinary(bytes: Uint8Array): boolean {
  if (bytes.subarray(0, 8192).includes(0)) return true;
  try {
    strictUtf8.decode(bytes);
    return false;
  } catch {
    return true;
  }
}

const binary = (tool: string, path: string, n: number): ToolError => new ToolError(`${tool}: ${path}: binary file (${n} bytes), not shown`);

// CSI, OSC and two-character escape sequences.
// eslint-disable-next-line no-control-regex
const ANSI = /\x1b\[[0-?]*[ -/]*[@-~]|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)|\x1b[@-Z\\-_]/g;

/** Keep the last `cap` bytes of `text` on a character boundary. */
function tailBytes(text: string, cap: number): { text: string; truncated: boolean } {
  const bytes = utf8.encode(text);
  if (bytes.byteLength <= cap) return { text, truncated: false };
  let start = bytes.byteLength - cap;
  while (start < bytes.byteLength && (bytes[start]! & 0xc0) === 0x80) start++;
  return { text: looseUtf8.decode(bytes.subarray(start)), truncated: true };
}

/** A tiny FIFO mutex. */
function serial(): <T>(fn: () => Promise<T>) => Promise<T> {
  let tail: Promise<unknown> = Promise.resolve();
  return <T>(fn: () => Promise<T>): Promise<T> => {
    const run = tail.then(fn, fn);
    tail = run.catch(() => undefined);
    return run;
  };
}

/** A counting semaphore. */
function limiter(n: number): <T>(fn: () => Promise<T>) => Promise<T> {
  let active = 0;
  const waiting: Array<() => void> = [];
  return async <T>(fn: () => Promise<T>): Promise<T> => {
    if (active >= n) await new Promise<void>((r) => waiting.push(r));
    active++;
    try {
      return await fn();
    } finally {
      active--;
      waiting.shift()?.();
    }
  };
}

/** Whether just-bash's defense-in-depth layer works on this runtime (learnt on first use). */
let defenseInDepthWorks = true;

export function standardToolset(fs: BashWorkspaceFs, opts: StandardToolsetOptions = {}): Tool[] {
  const readCap = opts.maxFileBytes === undefined ? DEFAULT_READ_CAP : opts.maxFileBytes;
  const bashDefaultTimeout = opts.bashTimeoutMs ?? DEFAULT_BASH_TIMEOUT_MS;

  /** Read a text file for `tool`, refusing directories, binaries and (with `cap`) big files. */
  const loadText = async (tool: string, path: string, cap: number | null): Promise<{ abs: string; body: string; size: number }> => {
    let abs: string;
    let bytes: Uint8Array;
    try {
      abs = await fs.realpath(path);
      const st = await fs.stat(abs);
      if (st.type !== "file") throw new WorkspaceFsError("EISDIR", ERRNO_TEXT.EISDIR!, path);
      if (cap !== null && st.size > cap) {
        throw new ToolError(`${tool}: ${path}: file is ${st.size} bytes, larger than the ${cap}-byte limit${tool === "read" ? "; use view_range to read part of it" : ""}`);
      }
      bytes = await fs.readFile(abs);
    } catch (err) {
      fail(tool, path, err);
    }
    if (isBinary(bytes)) throw binary(tool, path, bytes.byteLength);
    return { abs, body: strictUtf8.decode(bytes), size: bytes.byteLength };
  };

  // ---------------------------------------------------------------- bash
  const shellRoot = fs.root;
  const initialEnv = (): Record<string, string> => ({ HOME: shellRoot, PS1: "", PS2: "", TERM: "dumb" });
  let shellCwd = shellRoot;
  let shellEnv: Record<string, string> | null = null;
  // One just-bash instance per deadline (the deadline is an instance setting); all of them share
  // the filesystem and the carried cwd/env, so together they are the session's one shell.
  let shells = new Map<number, Bash>();
  const shellFor = (timeoutMs: number): Bash => {
    let b = shells.get(timeoutMs);
    if (!b) {
      b = new Bash({
        fs: fs.bashFs,
        cwd: shellRoot,
        env: initialEnv(),
        executionLimits: {
          maxExecutionTimeMs: timeoutMs,
          // Bound what one call can hold in memory (the workspace limits bound the files).
          maxOutputSize: 16 * 1024 * 1024,
          maxStringLength: 16 * 1024 * 1024,
          maxHeredocSize: 16 * 1024 * 1024,
        },
        // just-bash's second layer patches the host's own globals while a command runs. It
        // cannot patch Bun's module loader and then fails every command, so after the first
        // such failure shells are made without it (the shell's filesystem is the in-memory
        // workspace either way; it never reaches the host's).
        defenseInDepth: defenseInDepthWorks,
      });
      if (shells.size > 8) shells = new Map();
      shells.set(timeoutMs, b);
    }
    return b;
  };
  const resetShell = (): void => {
    shellCwd = shellRoot;
    shellEnv = null;
    shells = new Map();
  };
  const bashQueue = serial();

  const runBash = async (command: string, timeoutMs: number, ctx: ToolContext): Promise<string> => {
    try {
      return await runBashOnce(command, timeoutMs, ctx);
    } catch (err) {
      if (!defenseInDepthWorks || !(err instanceof Error) || !err.message.includes("DefenseInDepthBox: critical patches failed")) throw err;
      defenseInDepthWorks = false;
      ctx.log.info("just-bash's defense-in-depth layer is not supported on this runtime; shells run without it", { error: err.message });
      resetShell();
      return runBashOnce(command, timeoutMs, ctx);
    }
  };
  const runBashOnce = async (command: string, timeoutMs: number, ctx: ToolContext): Promise<string> => {
    await fs.prepareShell();
    const shell = shellFor(timeoutMs);
    const ac = new AbortController();
    const onAbort = (): void => ac.abort(ctx.signal.reason);
    if (ctx.signal.aborted) onAbort();
    else ctx.signal.addEventListener("abort", onAbort, { once: true });
    let timer: ReturnType<typeof setTimeout> | undefined;
    const timedOut = new Promise<"timeout">((resolve) => {
      timer = setTimeout(() => {
        ac.abort(new Error("timeout"));
        resolve("timeout");
      }, timeoutMs);
    });
    const aborted = new Promise<"aborted">((resolve) => ac.signal.addEventListener("abort", () => resolve("aborted"), { once: true }));
    const timeoutText = `bash: bash command timed out after ${timeoutMs}ms`;
    try {
      const exec = shell.exec(command, { cwd: shellCwd, env: shellEnv ?? initialEnv(), replaceEnv: true, stdin: "", signal: ac.signal });
      exec.catch(() => undefined);
      const r = await Promise.race([exec, timedOut, aborted]);
      if (r === "timeout" || (r !== "aborted" && r.exitCode === 124 && /execution deadline/.test(r.stderr))) {
        resetShell();
        throw new ToolError(timeoutText);
      }
      if (r === "aborted") {
        resetShell();
        if (!ctx.signal.aborted) throw new ToolError(timeoutText);
        const reason = ctx.signal.reason;
        throw new ToolError(`bash: ${reason instanceof Error ? reason.message : String(reason ?? "aborted")}`);
      }
      const { "?": _status, ...env } = r.env;
      shellEnv = env;
      if (env.PWD) shellCwd = env.PWD;
      let out = (r.stdout + r.stderr).replace(ANSI, "").replace(/\n+$/, "");
      const tail = tailBytes(out, BASH_OUTPUT_CAP);
      out = tail.truncated ? `[output truncated]\n${tail.text}` : tail.text;
      if (r.exitCode !== 0) throw new ToolError(out || `exit ${r.exitCode}`);
      return out;
    } catch (err) {
      if (err instanceof ToolError) throw err;
      // just-bash lets some filesystem errors (e.g. ENOSPC on a `>` redirect) escape `exec`.
      const msg = err instanceof Error ? err.message : String(err);
      const m = /^(E[A-Z]+): (.*)$/s.exec(msg);
      throw new ToolError(`bash: ${m ? m[2] : msg}`);
    } finally {
      clearTimeout(timer);
      ctx.signal.removeEventListener("abort", onAbort);
    }
  };

  const bash = defineTool({
    name: "bash",
    description:
      "Run a command in a persistent simulated bash shell (just-bash) whose working directory starts at the workspace root; cwd and variables persist between calls. stderr is merged into stdout.",
    input: BASH_INPUT,
    timeoutMs: bashDefaultTimeout + 5_000,
    run({ command, restart, timeout_ms }, ctx) {
      return bashQueue(async () => {
        if (restart) resetShell();
        if (command === undefined || command === "") {
          if (restart) return "bash session restarted";
          throw new ToolError("bash: command is required");
        }
        const timeoutMs = Math.min(timeout_ms ? timeout_ms : bashDefaultTimeout, bashDefaultTimeout);
        return runBash(command, timeoutMs, ctx);
      });
    },
  });

  // ---------------------------------------------------------------- read
  const read = defineTool({
    name: "read",
    description: "Read a UTF-8 text file in the workspace, optionally a 1-based inclusive line range [start, end] (end <= 0 means end of file).",
    input: READ_INPUT,
    idempotent: true,
    async run({ file_path, view_range }) {
      if (!view_range) return (await loadText("read", file_path, readCap)).body;
      const [start, end] = view_range;
      if (start < 1) throw new ToolError("read: view_range start must be >= 1");
      if (end > 0 && end < start) throw new ToolError(`read: view_range end (${end}) is before start (${start})`);
      // The file itself is in memory (bounded by the workspace's maxFileBytes); the cap applies to
      // the selected lines.
      const { body } = await loadText("read", file_path, null);
      const lines = body.split("\n");
      if (lines.length > 1 && lines[lines.length - 1] === "") lines.pop();
      const selected = lines.slice(start - 1, end <= 0 ? undefined : end);
      if (readCap === null) return selected.join("\n");
      const out: string[] = [];
      let size = 0;
      for (let i = 0; i < selected.length; i++) {
        const n = utf8.encode(selected[i]!).byteLength + 1;
        if (n - 1 > readCap) throw new ToolError(`read: ${file_path}: line ${start + i} is longer than the ${readCap}-byte limit`);
        if (size + n > readCap) {
          out.push(`[output truncated at ${readCap} bytes; continue with view_range [${start + i}, ${end}]]`);
          break;
        }
        size += n;
        out.push(selected[i]!);
      }
      return out.join("\n");
    },
  });

  // ---------------------------------------------------------------- write
  const write = defineTool({
    name: "write",
    description: "Write a whole file in the workspace (overwrites), creating parent directories.",
    input: WRITE_INPUT,
    idempotent: true,
    async run({ file_path, content }) {
      const bytes = utf8.encode(content);
      try {
        const abs = await fs.realpath(file_path);
        if (await fs.exists(abs)) {
          const st = await fs.stat(abs);
          if (st.type !== "file") throw new WorkspaceFsError("EISDIR", ERRNO_TEXT.EISDIR!, file_path);
        }
        await fs.writeFile(abs, bytes);
      } catch (err) {
        fail("write", file_path, err);
      }
      return `wrote ${bytes.byteLength} bytes to ${file_path}`;
    },
  });

  // ---------------------------------------------------------------- edit
  const edit = defineTool({
    name: "edit",
    description: "Replace an exact string in a file; it must be unique unless replace_all is set.",
    input: EDIT_INPUT,
    async run({ file_path, old_string, new_string, replace_all }) {
      if (!old_string) throw new ToolError("edit: old_string must not be empty");
      const { abs, body } = await loadText("edit", file_path, readCap);
      const parts = body.split(old_string);
      const hits = parts.length - 1;
      if (hits === 0) throw new ToolError(`edit: old_string not found in ${file_path}`);
      if (hits > 1 && !replace_all) throw new ToolError(`edit: old_string appears ${hits} times in ${file_path} (must be unique)`);
      // split/join is a literal replacement: no `$` patterns.
      const next = parts.join(new_string);
      try {
        await fs.writeFile(abs, utf8.encode(next));
      } catch (err) {
        fail("edit", file_path, err);
      }
      return `edited ${file_path} (${hits} replacement${hits === 1 ? "" : "s"})`;
    },
  });

  /** Resolve a search root for glob/grep. */
  const searchRoot = async (tool: string, path: string | undefined): Promise<{ root: string; isFile: boolean }> => {
    const p = path ?? fs.root;
    try {
      const root = await fs.realpath(p);
      const st = await fs.stat(root);
      return { root, isFile: st.type === "file" };
    } catch (err) {
      fail(tool, p, err);
    }
  };

  /**
   * Walk regular files under `root` (skipping .git/node_modules, not descending symlinks), up
   * to 50 000 entries and depth 40. `followFileLinks` includes symlinks to regular files whose
   * real path stays under `root`.
   */
  const walk = async (root: string, followFileLinks: boolean, deadline = Infinity): Promise<Array<{ path: string; real: string; mtimeMs: number }>> => {
    const out: Array<{ path: string; real: string; mtimeMs: number }> = [];
    let seen = 0;
    const visit = async (dir: string, depth: number): Promise<void> => {
      if (depth > MAX_WALK_DEPTH) return;
      let entries: Array<{ name: string; type: string }>;
      try {
        entries = await fs.readdir(dir);
      } catch {
        return;
      }
      for (const e of entries) {
        if (++seen > MAX_WALK_ENTRIES || Date.now() > deadline) return;
        const abs = dir === "/" ? `/${e.name}` : `${dir}/${e.name}`;
        if (e.type === "directory") {
          if (!SKIP_DIRS.has(e.name)) await visit(abs, depth + 1);
        } else if (e.type === "file") {
          try {
            out.push({ path: abs, real: abs, mtimeMs: (await fs.stat(abs)).mtimeMs });
          } catch {
            // vanished
          }
        } else if (followFileLinks) {
          try {
            const real = await fs.realpath(abs);
            if (!real.startsWith(root + "/")) continue;
            const st = await fs.stat(real);
            if (st.type === "file") out.push({ path: abs, real, mtimeMs: st.mtimeMs });
          } catch {
            // dangling, looping or outside: not a match
          }
        }
      }
    };
    await visit(root, 0);
    return out;
  };

  // ---------------------------------------------------------------- glob
  const glob = defineTool({
    name: "glob",
    description: "Find files by glob pattern (doublestar, e.g. **/*.ts) relative to path or the workspace root; newest first, at most 200.",
    input: GLOB_INPUT,
    idempotent: true,
    async run({ pattern, path }) {
      if (pattern.startsWith("/") || pattern.split("/").includes("..")) {
        throw new ToolError(`glob: pattern must be relative and must not contain ".."`);
      }
      const { root, isFile } = await searchRoot("glob", path);
      if (isFile) throw new ToolError(`glob: ${path}: ${ERRNO_TEXT.ENOTDIR}`);
      const isMatch = picomatch(pattern, { dot: true });
      const hits = (await walk(root, true))
        .filter((f) => isMatch(f.path.slice(root.length + 1)))
        .sort((a, b) => b.mtimeMs - a.mtimeMs || (a.path < b.path ? -1 : a.path > b.path ? 1 : 0))
        .slice(0, MAX_GLOB_RESULTS)
        .map((f) => f.path);
      return hits.length ? hits.join("\n") : "no matches";
    },
  });

  // ---------------------------------------------------------------- grep
  const grepSlot = limiter(MAX_CONCURRENT_GREPS);
  const grep = defineTool({
    name: "grep",
    description: "Search file contents with a regular expression (RE2 syntax); prints <file>:<line>:<text> for each matching line.",
    input: GREP_INPUT,
    idempotent: true,
    async run({ pattern, path }, ctx) {
      let re: RE2JS;
      try {
        re = RE2JS.compile(pattern);
      } catch (err) {
        throw new ToolError(`grep: invalid regex: ${err instanceof Error ? err.message : String(err)}`);
      }
      const { root, isFile } = await searchRoot("grep", path);
      return grepSlot(async () => {
        const deadline = Date.now() + GREP_BUDGET_MS;
        const files = isFile ? [{ path: root, real: root, mtimeMs: 0 }] : await walk(root, false, deadline);
        const out: string[] = [];
        let size = 0;
        for (const f of files) {
          if (ctx.signal.aborted || Date.now() > deadline) break;
          let bytes: Uint8Array;
          try {
            bytes = await fs.readFile(f.real);
          } catch {
            continue;
          }
          // Stop a file at its first NUL byte: binary content is never searched or printed.
          const nul = bytes.indexOf(0);
          const body = looseUtf8.decode(nul >= 0 ? bytes.subarray(0, nul) : bytes);
          const lines = body.split("\n");
          if (lines.length > 1 && lines[lines.length - 1] === "") lines.pop();
          for (let i = 0; i < lines.length; i++) {
            const line = lines[i]!;
            if (line.length > MAX_GREP_LINE || !re.matcher(line).find()) continue;
            const row = `${f.path}:${i + 1}:${line}`;
            const n = utf8.encode(row).byteLength + 1;
            if (size + n > MAX_GREP_BYTES) {
              out.push(`[output truncated at ${MAX_GREP_BYTES} bytes]`);
              return out.join("\n");
            }
            size += n;
            out.push(row);
          }
        }
        return out.length ? out.join("\n") : "no matches";
      });
    },
  });

  return [bash, read, write, edit, glob, grep];
}
