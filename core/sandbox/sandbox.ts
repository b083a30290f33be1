/**
 * The Sandbox: where one session's tools run. A per-session workspace filesystem, `execute` for
 * code, snapshot/restore hooks (the persistence issue builds on them), and a declared isolation
 * level. Tools are written once against this interface; a tier is chosen per session by config.
 *
 * Paths are the model's paths: absolute under `WorkspaceFs.root` (default "/workspace") or
 * relative to it. Implementations confine every path to the root and enforce `WorkspaceLimits`.
 */

/** How strongly a tier separates guest code from the host (weakest first). */
export type IsolationLevel =
  /** Runs in the host's own process, trusted code only (e.g. a Bun Worker). */
  | "in-process"
  /** A V8 isolate or a runtime permission sandbox in its own process: no host fs, net, env, spawn. */
  | "isolate"
  /** An isolate inside OS namespaces and cgroups (bubblewrap). */
  | "os-sandbox"
  /** A microVM behind an external container API. */
  | "microvm";

export interface WorkspaceLimits {
  /** Largest single file in bytes (default 8 MiB; the standard toolset's 256 KiB read cap is separate). */
  maxFileBytes: number;
  /** Sum of all file sizes in bytes (default 64 MiB). */
  maxTotalBytes: number;
  /** Files, directories and symlinks together (default 10,000). */
  maxEntries: number;
}

export const DEFAULT_WORKSPACE_LIMITS: WorkspaceLimits = { maxFileBytes: 8 * 1024 * 1024, maxTotalBytes: 64 * 1024 * 1024, maxEntries: 10_000 };

export type FsEntryType = "file" | "directory" | "symlink";

export interface FsStat {
  type: FsEntryType;
  /** Bytes (files), target length (symlinks), 0 (directories). */
  size: number;
  mtimeMs: number;
  mode: number;
}

/**
 * Errors carry the errno-style code the standard toolset maps to its messages
 * (spec §9.2): ENOENT, EISDIR, ENOTDIR, EEXIST, ENOTEMPTY, ELOOP, EFBIG, ENOSPC, EOUTSIDE, EINVAL.
 */
export class WorkspaceFsError extends Error {
  override name = "WorkspaceFsError";
  constructor(
    readonly code: "ENOENT" | "EISDIR" | "ENOTDIR" | "EEXIST" | "ENOTEMPTY" | "ELOOP" | "EFBIG" | "ENOSPC" | "EOUTSIDE" | "EINVAL",
    message: string,
    /** The model's path the error is about. */
    readonly path?: string,
  ) {
    super(message);
  }
}

/** The workspace filesystem. Every method takes model paths and throws WorkspaceFsError. */
export interface WorkspaceFs {
  /** Absolute root of the workspace as the model sees it, e.g. "/workspace". */
  readonly root: string;
  readonly limits: WorkspaceLimits;
  /** Canonical absolute path (symlinks resolved, ≤ 40 hops) if inside the root, else EOUTSIDE. */
  realpath(path: string): Promise<string>;
  readFile(path: string): Promise<Uint8Array>;
  /** Creates missing parent directories; replaces the whole file atomically. */
  writeFile(path: string, data: Uint8Array | string): Promise<void>;
  /** Follows symlinks. */
  stat(path: string): Promise<FsStat>;
  /** Does not follow a final symlink. */
  lstat(path: string): Promise<FsStat>;
  /** Entry names of a directory, sorted. */
  readdir(path: string): Promise<Array<{ name: string; type: FsEntryType }>>;
  mkdir(path: string, opts?: { recursive?: boolean }): Promise<void>;
  remove(path: string, opts?: { recursive?: boolean }): Promise<void>;
  rename(from: string, to: string): Promise<void>;
  symlink(target: string, path: string): Promise<void>;
  /** The target of a symlink, as stored. */
  readlink(path: string): Promise<string>;
  exists(path: string): Promise<boolean>;
  /** Current usage against the limits. */
  usage(): { bytes: number; entries: number };
  /** Optional: set the mode bits (follows symlinks). Restoring a snapshot uses it to keep modes. */
  chmod?(path: string, mode: number): Promise<void>;
  /** Optional: set the modification time (follows symlinks). Restoring a snapshot uses it to keep mtimes. */
  utimes?(path: string, mtimeMs: number): Promise<void>;
  /**
   * Optional change tracking, for incremental snapshots (`core/state/workspace-store.ts`): the
   * changes made through any view of the workspace since the previous call, and a fresh record
   * from now on. An implementation that has it must have `returnChanges` too.
   */
  takeChanges?(): WorkspaceChanges;
  /** Hand back changes taken by a save that then failed, so the next save still sees them. */
  returnChanges?(changes: WorkspaceChanges): void;
}

/**
 * What changed in a workspace since changes were last taken. Paths are absolute and lexically
 * normalised (as the filesystem was called with them; a path may run through a symlinked
 * directory), and only paths under the root are kept. A path may appear where nothing exists any
 * more: that records a removal.
 */
export interface WorkspaceChanges {
  /** Entries that may have been created, written, removed, or had their mode or mtime set. */
  entries: Set<string>;
  /** Paths whose whole subtree may have changed (remove, rename, copy): the path and everything under it. */
  trees: Set<string>;
  /** Everything may have changed: the tracker cannot vouch for its record (it overflowed). */
  all: boolean;
}

/** A point-in-time copy of a workspace, as the persistence layer stores it. */
export interface WorkspaceSnapshot {
  /** Every entry, paths relative to the root, parents before children. */
  entries: Array<{ path: string; type: FsEntryType; mode: number; mtimeMs: number; data?: Uint8Array; target?: string }>;
}

export interface ExecuteRequest {
  code: string;
  language: "js" | "ts";
  /** Wall-clock limit for the snippet, from the call to its result. */
  timeoutMs: number;
}

export type ExecuteErrorKind = "timeout" | "memory" | "output" | "error" | "crashed" | "cancelled";

export interface ExecuteResult {
  ok: boolean;
  /** The snippet's return value, JSON-serialised by the guest (undefined when none). */
  value?: unknown;
  /** What went wrong, with `kind` for the limits. */
  error?: { kind: ExecuteErrorKind; message: string };
  /** console output in order, each line prefixed by its level when not `log`. */
  logs: string[];
  /** The console output was cut at the output limit. */
  truncated: boolean;
  durationMs: number;
}

/**
 * What guest code may call on the host besides the workspace: the session's other tools, and
 * the outbound handler its `fetch` goes to (deny-all by default; the egress issue plugs in the
 * policy).
 */
export interface GuestBindings {
  /** Tool name → run with input → text (or throws with the tool's error text). */
  tools?: Record<string, (input: unknown) => Promise<string>>;
  outbound?: OutboundHandler;
}

export type OutboundHandler = (req: Request) => Promise<Response>;

/** The default outbound handler: refuses every request. */
export const denyAllOutbound: OutboundHandler = async (req) =>
  new Response(`deft: outbound request to ${new URL(req.url).host} refused: no egress policy allows it`, { status: 403, headers: { "x-deft-egress": "denied" } });

export interface Sandbox {
  readonly sessionId: string;
  /** e.g. "deno-subprocess", "bun-worker", "bun-bwrap", "workers-loader". */
  readonly tier: string;
  readonly isolation: IsolationLevel;
  readonly fs: WorkspaceFs;
  execute(req: ExecuteRequest, opts?: { signal?: AbortSignal; bindings?: GuestBindings }): Promise<ExecuteResult>;
  snapshot(): Promise<WorkspaceSnapshot>;
  restore(snapshot: WorkspaceSnapshot): Promise<void>;
  close(): Promise<void>;
}
