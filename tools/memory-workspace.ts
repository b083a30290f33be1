/**
 * A per-session workspace held in memory: the simplest place for the file tools to work until
 * the Sandbox interface (isolate and microVM tiers) arrives. Paths are confined lexically to the
 * workspace root; there are no symlinks to escape through.
 */
export const WORKSPACE_ROOT = "/workspace";
/** Byte cap per file and in total, and a file-count cap. */
export const DEFAULT_LIMITS = { maxFileBytes: 256 * 1024, maxTotalBytes: 64 * 1024 * 1024, maxFiles: 10_000 };

export class WorkspaceError extends Error {
  override name = "WorkspaceError";
  constructor(
    message: string,
    readonly code: "ENOENT" | "EISDIR" | "EFBIG" | "ENOSPC" | "EOUTSIDE",
  ) {
    super(message);
  }
}

interface Entry {
  bytes: Uint8Array;
  mtime: number;
}

export class MemoryWorkspace {
  readonly root = WORKSPACE_ROOT;
  readonly #files = new Map<string, Entry>();
  #total = 0;
  #clock = 0;
  constructor(readonly limits = DEFAULT_LIMITS) {}

  /** Resolve a model-supplied path to a canonical absolute path inside the root, or throw. */
  resolve(path: string): string {
    const joined = path.startsWith("/") ? path : `${this.root}/${path}`;
    const parts: string[] = [];
    for (const seg of joined.split("/")) {
      if (seg === "" || seg === ".") continue;
      if (seg === "..") parts.pop();
      else parts.push(seg);
    }
    const abs = "/" + parts.join("/");
    if (abs !== this.root && !abs.startsWith(this.root + "/")) {
      throw new WorkspaceError(`path "${path}" is outside the session's working directory`, "EOUTSIDE");
    }
    return abs;
  }

  read(abs: string): Uint8Array {
    const e = this.#files.get(abs);
    if (!e) throw new WorkspaceError(this.isDir(abs) ? "is a directory" : "no such file or directory", this.isDir(abs) ? "EISDIR" : "ENOENT");
    return e.bytes;
  }

  write(abs: string, bytes: Uint8Array): void {
    if (this.isDir(abs)) throw new WorkspaceError("is a directory", "EISDIR");
    if (bytes.byteLength > this.limits.maxFileBytes) throw new WorkspaceError(`file too large (${bytes.byteLength} bytes; limit ${this.limits.maxFileBytes})`, "EFBIG");
    const prev = this.#files.get(abs);
    const total = this.#total - (prev?.bytes.byteLength ?? 0) + bytes.byteLength;
    if (total > this.limits.maxTotalBytes || (!prev && this.#files.size >= this.limits.maxFiles)) {
      throw new WorkspaceError("no space left on device", "ENOSPC");
    }
    this.#files.set(abs, { bytes, mtime: ++this.#clock });
    this.#total = total;
  }

  isDir(abs: string): boolean {
    if (abs === this.root) return true;
    const prefix = abs + "/";
    for (const k of this.#files.keys()) if (k.startsWith(prefix)) return true;
    return false;
  }

  /** Files under `dir`, newest first. */
  list(dir: string): Array<{ path: string; mtime: number; size: number }> {
    const prefix = dir === "/" ? "/" : dir + "/";
    const out: Array<{ path: string; mtime: number; size: number }> = [];
    for (const [path, e] of this.#files) if (path.startsWith(prefix)) out.push({ path, mtime: e.mtime, size: e.bytes.byteLength });
    return out.sort((a, b) => b.mtime - a.mtime);
  }
}
