/**
 * The file tools of `agent_toolset_20260401` (read, write, edit, glob, grep) over a per-session
 * {@link MemoryWorkspace}, with the names, input schemas, output strings and error strings of
 * spec §9. `bash` needs a sandbox and arrives with the isolate tier.
 */
import picomatch from "picomatch/posix.js";
import { z } from "zod";
import { defineTool, ToolError, type Tool } from "../core/router/mod.ts";
import { MemoryWorkspace, WorkspaceError } from "./memory-workspace.ts";

const MAX_GLOB_RESULTS = 200;
const MAX_GREP_BYTES = 100 * 1024;
const MAX_GREP_LINE = 2000;

// Input schemas are built once and shared by every session's tools.
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
const SEARCH_INPUT = z.object({ pattern: z.string().min(1), path: z.string().optional() });

const utf8 = new TextEncoder();
const fromUtf8 = new TextDecoder("utf-8", { fatal: true });

function fail(tool: string, path: string, err: unknown): never {
  if (err instanceof WorkspaceError) {
    throw new ToolError(err.code === "EOUTSIDE" ? `${tool}: ${err.message}` : `${tool}: ${path}: ${err.message}`);
  }
  throw err;
}

function text(tool: string, path: string, bytes: Uint8Array): string {
  if (bytes.includes(0)) throw new ToolError(`${tool}: ${path}: binary file (${bytes.byteLength} bytes) not shown`);
  try {
    return fromUtf8.decode(bytes);
  } catch {
    throw new ToolError(`${tool}: ${path}: not valid UTF-8 (${bytes.byteLength} bytes) not shown`);
  }
}

/** Resolve and read a text file for `tool`, or throw the tool's error. */
function load(ws: MemoryWorkspace, tool: string, path: string): { abs: string; body: string } {
  let abs: string;
  let bytes: Uint8Array;
  try {
    abs = ws.resolve(path);
    bytes = ws.read(abs);
  } catch (err) {
    fail(tool, path, err);
  }
  return { abs, body: text(tool, path, bytes) };
}

export function workspaceTools(ws: MemoryWorkspace = new MemoryWorkspace()): Tool[] {
  const read = defineTool({
    name: "read",
    description: "Read a file in the workspace, optionally a 1-based inclusive line range.",
    input: READ_INPUT,
    idempotent: true,
    run({ file_path, view_range }) {
      const { body } = load(ws, "read", file_path);
      if (!view_range) return body;
      const lines = body.split("\n");
      const [start, end] = view_range;
      if (start < 1) throw new ToolError(`read: view_range start must be >= 1`);
      return lines.slice(start - 1, end <= 0 ? undefined : end).join("\n");
    },
  });

  const write = defineTool({
    name: "write",
    description: "Write a whole file in the workspace, creating parent directories.",
    input: WRITE_INPUT,
    idempotent: true,
    run({ file_path, content }) {
      const bytes = utf8.encode(content);
      try {
        ws.write(ws.resolve(file_path), bytes);
      } catch (err) {
        fail("write", file_path, err);
      }
      return `wrote ${bytes.byteLength} bytes to ${file_path}`;
    },
  });

  const edit = defineTool({
    name: "edit",
    description: "Replace an exact string in a file (unique unless replace_all).",
    input: EDIT_INPUT,
    run({ file_path, old_string, new_string, replace_all }) {
      if (!old_string) throw new ToolError("edit: old_string must not be empty");
      const { abs, body } = load(ws, "edit", file_path);
      const hits = body.split(old_string).length - 1;
      if (hits === 0) throw new ToolError(`edit: old_string not found in ${file_path}`);
      if (hits > 1 && !replace_all) throw new ToolError(`edit: old_string appears ${hits} times in ${file_path} (must be unique)`);
      // split/join is a literal replacement: no `$` patterns.
      const next = replace_all ? body.split(old_string).join(new_string) : body.replace(old_string, () => new_string);
      try {
        ws.write(abs, utf8.encode(next));
      } catch (err) {
        fail("edit", file_path, err);
      }
      const n = replace_all ? hits : 1;
      return `edited ${file_path} (${n} replacement${n === 1 ? "" : "s"})`;
    },
  });

  const glob = defineTool({
    name: "glob",
    description: "Find files by glob pattern (doublestar), newest first.",
    input: SEARCH_INPUT,
    idempotent: true,
    run({ pattern, path }) {
      if (pattern.startsWith("/") || pattern.split("/").includes("..")) {
        throw new ToolError(`glob: pattern must be relative and must not contain ".."`);
      }
      let root: string;
      try {
        root = ws.resolve(path ?? ".");
      } catch (err) {
        fail("glob", path ?? ".", err);
      }
      const isMatch = picomatch(pattern, { dot: false });
      const hits = ws
        .list(root)
        .filter((f) => isMatch(f.path.slice(root.length + 1)))
        .slice(0, MAX_GLOB_RESULTS)
        .map((f) => f.path);
      return hits.length ? hits.join("\n") : "no matches";
    },
  });

  const grep = defineTool({
    name: "grep",
    description: "Search file contents with a regular expression; prints file:line:text.",
    input: SEARCH_INPUT,
    idempotent: true,
    run({ pattern, path }) {
      let re: RegExp;
      try {
        re = new RegExp(pattern);
      } catch (err) {
        throw new ToolError(`grep: invalid regex: ${(err as Error).message}`);
      }
      let root: string;
      try {
        root = ws.resolve(path ?? ".");
      } catch (err) {
        fail("grep", path ?? ".", err);
      }
      const out: string[] = [];
      let size = 0;
      const single = !ws.isDir(root);
      const files = single ? [{ path: root }] : ws.list(root).sort((a, b) => a.path.localeCompare(b.path));
      for (const f of files) {
        let bytes: Uint8Array;
        try {
          bytes = ws.read(f.path);
        } catch (err) {
          fail("grep", path ?? ".", err);
        }
        const nul = bytes.indexOf(0);
        const body = new TextDecoder().decode(nul >= 0 ? bytes.subarray(0, nul) : bytes);
        const lines = body.split("\n");
        for (let i = 0; i < lines.length; i++) {
          const line = lines[i]!;
          if (line.length > MAX_GREP_LINE || !re.test(line)) continue;
          const row = `${f.path}:${i + 1}:${line}`;
          size += row.length + 1;
          if (size > MAX_GREP_BYTES) {
            out.push(`[output truncated at ${MAX_GREP_BYTES} bytes]`);
            return out.join("\n");
          }
          out.push(row);
        }
      }
      return out.length ? out.join("\n") : "no matches";
    },
  });

  return [read, write, edit, glob, grep];
}
