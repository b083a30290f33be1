/**
 * The per-session workspace filesystem: a {@link WorkspaceFs} held in memory (just-bash's
 * `InMemoryFs`), shared with the simulated shell of the `bash` tool through `bashFs`.
 *
 * Two views of one tree:
 * - the `WorkspaceFs` methods take the model's paths and confine them to `root` (spec §9.2):
 *   relative paths resolve against the root, `..` collapses lexically, and every symlink on the
 *   way (the leaf too, even dangling; ≤40 hops, else ELOOP) is resolved before the check. The
 *   operations that act on a link itself (`lstat`, `readlink`, `remove`, `rename`, `symlink`)
 *   resolve every component but the leaf: the link lives inside, whatever it points at.
 * - `bashFs` is the whole virtual filesystem the shell sees. It is NOT confined to the root:
 *   just-bash provides virtual `/bin`, `/usr/bin`, `/dev` and `/proc` entries, and a command may
 *   create e.g. `/tmp`. There is no host filesystem behind it at all, so nothing outside the
 *   session's memory is reachable; the file tools still refuse anything outside `root`.
 *
 * Limits (`WorkspaceLimits`) apply to every write through either view, so a shell command
 * writing 100 MB fails with ENOSPC/EFBIG instead of growing memory. Usage counts everything the
 * session created anywhere in the tree; the shell's own virtual layout is excluded.
 *
 * Adaptations to memory: writes are atomic by construction (no temp file + fsync + rename);
 * modes are stored but not enforced; mtimes are made strictly increasing per write so "newest
 * first" is well defined even within one millisecond.
 *
 * Change tracking: every mutation through either view records its path (an entry, or for
 * remove, rename and copy the whole subtree) in one record that `takeChanges` hands to an
 * incremental snapshot (`core/state/workspace-store.ts`), so a save re-reads and hashes only what
 * changed. InMemoryFs applies mutations to the path it is given, without following symlinks,
 * except `utimes`; that one is also recorded where it lands.
 */
import { Bash, InMemoryFs } from "just-bash";
import type { IFileSystem } from "just-bash";
import {
  DEFAULT_WORKSPACE_LIMITS,
  WorkspaceFsError,
  type FsEntryType,
  type FsStat,
  type WorkspaceChanges,
  type WorkspaceFs,
  type WorkspaceLimits,
} from "../core/sandbox/sandbox.ts";

type BashFsStat = Awaited<ReturnType<IFileSystem["stat"]>>;
type FileContent = string | Uint8Array;
type ErrCode = WorkspaceFsError["code"];

const MAX_SYMLINK_HOPS = 40;

/**
 * Most paths one change record holds, at least (twice the entry limit when that is larger). Past
 * it the record says "everything changed" instead of growing: a session that touches this many
 * distinct paths between saves (or never saves) costs the next save a full rescan, not memory.
 */
const MIN_TRACKED_PATHS = 10_000;

/** errno → the text spec §9.2 maps it to. */
export const ERRNO_TEXT: Record<string, string> = {
  ENOENT: "no such file or directory",
  EACCES: "permission denied",
  EPERM: "permission denied",
  ENOTDIR: "not a directory",
  EISDIR: "is a directory",
  ELOOP: "too many levels of symbolic links",
  ENAMETOOLONG: "file name too long",
  ENOSPC: "no space left on device",
  EMFILE: "too many open files",
  ENFILE: "too many open files",
  EEXIST: "file exists",
  ENOTEMPTY: "directory not empty",
  EFBIG: "file too large",
  EINVAL: "invalid argument",
};

const KNOWN: ReadonlySet<string> = new Set(["ENOENT", "EISDIR", "ENOTDIR", "EEXIST", "ENOTEMPTY", "ELOOP", "EFBIG", "ENOSPC", "EOUTSIDE", "EINVAL"]);

/** An errno-style error for the shell's view (just-bash prints `message`). */
function errnoError(code: string, detail: string): Error & { code: string } {
  const err = new Error(`${code}: ${ERRNO_TEXT[code] ?? "i/o error"}${detail}`) as Error & { code: string };
  err.code = code;
  return err;
}

function codeOf(err: unknown): string | undefined {
  if (err instanceof WorkspaceFsError) return err.code;
  if (err && typeof err === "object") {
    const c = (err as { code?: unknown }).code;
    if (typeof c === "string") return c;
    const m = /^(E[A-Z]+)\b/.exec(String((err as { message?: unknown }).message ?? ""));
    if (m) return m[1];
  }
  return undefined;
}

/** Lexical normalisation of an absolute path: no `.`, `..` or empty segments. */
function normalize(abs: string): string {
  const parts: string[] = [];
  for (const seg of abs.split("/")) {
    if (seg === "" || seg === ".") continue;
    if (seg === "..") parts.pop();
    else parts.push(seg);
  }
  return "/" + parts.join("/");
}

function dirname(abs: string): string {
  const i = abs.lastIndexOf("/");
  return i <= 0 ? "/" : abs.slice(0, i);
}

function byteLength(content: FileContent): number {
  return typeof content === "string" ? new TextEncoder().encode(content).byteLength : content.byteLength;
}

/**
 * The record of what changed under the root since it was last taken: what incremental snapshots
 * read instead of walking and hashing the whole tree. Paths are recorded lexically, as the
 * filesystem was called with them; paths outside the root are not recorded (they are not part
 * of a snapshot). A path that is not absolute cannot be placed, so it marks everything.
 */
class ChangeTracker {
  #entries = new Set<string>();
  #trees = new Set<string>();
  #all = false;

  constructor(
    readonly root: string,
    /** Paths held before the record gives up and says "everything". */
    readonly maxPaths: number,
  ) {}

  /** The entry at `path` may have been created, written, removed, or had its mode or mtime set. */
  entry(path: string): void {
    this.#add(this.#entries, path);
  }

  /** Anything at or under `path` may have changed. */
  tree(path: string): void {
    this.#add(this.#trees, path);
  }

  /** What changed since the last call; starts a new record. */
  take(): WorkspaceChanges {
    const changes: WorkspaceChanges = { entries: this.#entries, trees: this.#trees, all: this.#all };
    this.#entries = new Set();
    this.#trees = new Set();
    this.#all = false;
    return changes;
  }

  /** Merge back a record taken by a save that failed. */
  giveBack(changes: WorkspaceChanges): void {
    if (changes.all) this.#markAll();
    for (const p of changes.entries) this.#add(this.#entries, p);
    for (const p of changes.trees) this.#add(this.#trees, p);
  }

  #add(set: Set<string>, path: string): void {
    if (this.#all) return;
    if (!path.startsWith("/")) return this.#markAll();
    const p = normalize(path);
    if (p !== this.root && !p.startsWith(this.root + "/")) return;
    set.add(p);
    if (this.#entries.size + this.#trees.size > this.maxPaths) this.#markAll();
  }

  #markAll(): void {
    this.#all = true;
    this.#entries.clear();
    this.#trees.clear();
  }
}

/**
 * The limit-enforcing filesystem both views write through: an `IFileSystem` over `InMemoryFs`.
 * Counters are kept incrementally for the hot paths (write, append, mkdir, symlink) and
 * recounted from the tree after the bulk operations (rm, mv, cp, link).
 */
class LimitedFs implements IFileSystem {
  readonly inner: InMemoryFs;
  #bytes = 0;
  #entries = 0;
  #baseBytes = 0;
  #baseEntries = 0;
  #clock = 0;

  /**
   * False while no symlink can exist under the root: then a path's canonical form is its lexical
   * form, and resolving it needs no lookup per segment (the hot path of every file tool). Set,
   * for good, by anything that can put a link there: symlink, link, and cp or mv into the root.
   */
  linksMayExist = false;

  /**
   * Every mutation through this class is recorded here before it runs (a mutation that fails
   * half-way may still have changed something).
   */
  readonly changes: ChangeTracker;

  /**
   * False while no symlink exists anywhere in the tree: `utimes` (which InMemoryFs applies
   * through symlinks, unlike every other mutation) then changes exactly the path it was given.
   */
  #symlinksAnywhere = false;

  #mark(path: string): void {
    this.#symlinksAnywhere = true;
    if (path === this.root || path.startsWith(this.root + "/") || !path.startsWith("/")) this.linksMayExist = true;
  }

  /**
   * Record the entry InMemoryFs's `utimes` actually changes for `path`: it resolves symlinks on
   * the way, so a path through a linked directory changes an entry elsewhere in the tree.
   */
  async #markResolved(path: string): Promise<void> {
    if (!this.#symlinksAnywhere) return;
    try {
      this.changes.entry(await this.inner.realpath(path));
    } catch {
      // nothing there to change
    }
  }

  constructor(
    readonly limits: WorkspaceLimits,
    readonly root: string,
  ) {
    // The backstop: InMemoryFs refuses to retain more than this, whatever our accounting says.
    this.inner = new InMemoryFs(undefined, { maxTotalBytes: Math.min(Number.MAX_SAFE_INTEGER, limits.maxTotalBytes + 16 * 1024 * 1024) });
    this.changes = new ChangeTracker(root, Math.max(MIN_TRACKED_PATHS, 2 * limits.maxEntries));
  }

  /** Record the current tree (the shell's virtual layout, the root) as the zero point. */
  async setBaseline(): Promise<void> {
    const { bytes, entries } = await this.#scan();
    this.#baseBytes = bytes;
    this.#baseEntries = entries;
    this.#bytes = 0;
    this.#entries = 0;
  }

  /**
   * Run `install` (which writes the shell's virtual layout) without counting what it writes as
   * usage: the delta joins the baseline.
   */
  async excluded(install: () => void): Promise<void> {
    const before = await this.#scan();
    const bytes = this.#bytes;
    const entries = this.#entries;
    install();
    const after = await this.#scan();
    this.#baseBytes += after.bytes - before.bytes;
    this.#baseEntries += after.entries - before.entries;
    this.#bytes = bytes;
    this.#entries = entries;
  }

  usage(): { bytes: number; entries: number } {
    return { bytes: this.#bytes, entries: this.#entries };
  }

  async #scan(): Promise<{ bytes: number; entries: number }> {
    const paths = this.inner.getAllPaths();
    let bytes = 0;
    for (const p of paths) {
      try {
        const st = await this.inner.lstat(p);
        if (st.isFile) bytes += st.size;
      } catch {
        // vanished between listing and stat
      }
    }
    return { bytes, entries: paths.length };
  }

  async #recount(): Promise<void> {
    const { bytes, entries } = await this.#scan();
    this.#bytes = Math.max(0, bytes - this.#baseBytes);
    this.#entries = Math.max(0, entries - this.#baseEntries);
  }

  #tick(): Date {
    this.#clock = Math.max(Date.now(), this.#clock + 1);
    return new Date(this.#clock);
  }

  async #lstatOrNull(path: string): Promise<BashFsStat | null> {
    try {
      return await this.inner.lstat(path);
    } catch {
      return null;
    }
  }

  /** How many directories `mkdir -p` of `dir` would create. */
  async #missingDirs(dir: string): Promise<number> {
    let n = 0;
    for (let d = normalize(dir); d !== "/"; d = dirname(d)) {
      if (await this.inner.exists(d)) break;
      n++;
    }
    return n;
  }

  #checkFile(path: string, size: number): void {
    if (size > this.limits.maxFileBytes) throw errnoError("EFBIG", ` (${size} bytes; limit ${this.limits.maxFileBytes}), write '${path}'`);
  }

  #checkSpace(path: string, addBytes: number, addEntries: number): void {
    if (this.#bytes + addBytes > this.limits.maxTotalBytes) throw errnoError("ENOSPC", ` (workspace limit ${this.limits.maxTotalBytes} bytes), write '${path}'`);
    if (addEntries > 0 && this.#entries + addEntries > this.limits.maxEntries) throw errnoError("ENOSPC", ` (workspace limit ${this.limits.maxEntries} entries), write '${path}'`);
  }

  async #put(path: string, size: number, prevSize: number, created: number, op: () => Promise<void>, leafWasLink: boolean): Promise<void> {
    this.#checkFile(path, size);
    this.#checkSpace(path, size - prevSize, created);
    this.changes.entry(path);
    await op();
    if (leafWasLink) {
      await this.#recount();
    } else {
      this.#bytes += size - prevSize;
      this.#entries += created;
    }
    const t = this.#tick();
    try {
      await this.inner.utimes(path, t, t);
    } catch {
      // the write went somewhere utimes cannot follow; mtime stays the fs's own
    }
    await this.#markResolved(path);
  }

  async writeFile(path: string, content: FileContent, options?: Parameters<IFileSystem["writeFile"]>[2]): Promise<void> {
    const prev = await this.#lstatOrNull(path);
    if (prev?.isDirectory) throw errnoError("EISDIR", `, open '${path}'`);
    const size = byteLength(content);
    const created = prev ? 0 : 1 + (await this.#missingDirs(dirname(path)));
    await this.#put(path, size, prev?.isFile ? prev.size : 0, created, () => this.inner.writeFile(path, content, options), prev?.isSymbolicLink ?? false);
  }

  async appendFile(path: string, content: FileContent, options?: Parameters<IFileSystem["appendFile"]>[2]): Promise<void> {
    const prev = await this.#lstatOrNull(path);
    if (prev?.isDirectory) throw errnoError("EISDIR", `, open '${path}'`);
    const prevSize = prev?.isFile ? prev.size : 0;
    const add = byteLength(content);
    const created = prev ? 0 : 1 + (await this.#missingDirs(dirname(path)));
    await this.#put(path, prevSize + add, prevSize, created, () => this.inner.appendFile(path, content, options), prev?.isSymbolicLink ?? false);
  }

  async mkdir(path: string, options?: { recursive?: boolean }): Promise<void> {
    const n = await this.#missingDirs(path);
    this.#checkSpace(path, 0, n);
    if (n > 0) this.changes.entry(path);
    await this.inner.mkdir(path, options);
    this.#entries += n;
  }

  async symlink(target: string, linkPath: string): Promise<void> {
    this.#mark(linkPath);
    const n = (await this.inner.exists(dirname(linkPath))) ? 1 : 1 + (await this.#missingDirs(dirname(linkPath)));
    this.#checkSpace(linkPath, 0, n);
    this.changes.entry(linkPath);
    await this.inner.symlink(target, linkPath);
    await this.#recount();
  }

  async link(existingPath: string, newPath: string): Promise<void> {
    this.#mark(newPath);
    const st = await this.inner.stat(existingPath);
    this.#checkSpace(newPath, st.isFile ? st.size : 0, 1);
    this.changes.entry(newPath);
    await this.inner.link(existingPath, newPath);
    await this.#recount();
  }

  async cp(src: string, dest: string, options?: { recursive?: boolean }): Promise<void> {
    this.#mark(dest);
    // Pre-check the copy's size conservatively (ignores what it overwrites).
    let bytes = 0;
    let entries = 0;
    const walk = async (p: string, depth: number): Promise<void> => {
      const st = await this.inner.lstat(p);
      entries++;
      if (st.isFile) bytes += st.size;
      if (st.isFile) this.#checkFile(dest, st.size);
      if (st.isDirectory && options?.recursive && depth < 1000) {
        for (const name of await this.inner.readdir(p)) await walk(p === "/" ? `/${name}` : `${p}/${name}`, depth + 1);
      }
      this.#checkSpace(dest, bytes, entries);
    };
    await walk(src, 0);
    this.changes.tree(dest);
    await this.inner.cp(src, dest, options);
    await this.#recount();
  }

  async rm(path: string, options?: { recursive?: boolean; force?: boolean }): Promise<void> {
    this.changes.tree(path);
    await this.inner.rm(path, options);
    await this.#recount();
  }

  async mv(src: string, dest: string): Promise<void> {
    this.#mark(dest);
    this.changes.tree(src);
    this.changes.tree(dest);
    await this.inner.mv(src, dest);
    await this.#recount();
    const t = this.#tick();
    try {
      await this.inner.utimes(dest, t, t);
    } catch {
      // best effort
    }
    await this.#markResolved(dest);
  }

  // Reads and metadata pass straight through.
  readFile(path: string, options?: Parameters<IFileSystem["readFile"]>[1]): Promise<string> {
    return this.inner.readFile(path, options);
  }
  readFileBytes(path: string): ReturnType<InMemoryFs["readFileBytes"]> {
    return this.inner.readFileBytes(path);
  }
  readFileBuffer(path: string): Promise<Uint8Array> {
    return this.inner.readFileBuffer(path);
  }
  exists(path: string): Promise<boolean> {
    return this.inner.exists(path);
  }
  stat(path: string): Promise<BashFsStat> {
    return this.inner.stat(path);
  }
  lstat(path: string): Promise<BashFsStat> {
    return this.inner.lstat(path);
  }
  readdir(path: string): Promise<string[]> {
    return this.inner.readdir(path);
  }
  readdirWithFileTypes(path: string): ReturnType<InMemoryFs["readdirWithFileTypes"]> {
    return this.inner.readdirWithFileTypes(path);
  }
  resolvePath(base: string, path: string): string {
    return this.inner.resolvePath(base, path);
  }
  getAllPaths(): string[] {
    return this.inner.getAllPaths();
  }
  chmod(path: string, mode: number): Promise<void> {
    this.changes.entry(path);
    return this.inner.chmod(path, mode);
  }
  readlink(path: string): Promise<string> {
    return this.inner.readlink(path);
  }
  realpath(path: string): Promise<string> {
    return this.inner.realpath(path);
  }
  async utimes(path: string, atime: Date, mtime: Date): Promise<void> {
    this.changes.entry(path);
    await this.#markResolved(path);
    await this.inner.utimes(path, atime, mtime);
  }

  // just-bash installs its virtual layout (/bin, /usr/bin, /dev, /proc) through these
  // synchronous methods when a `Bash` is constructed; they are not part of IFileSystem and are
  // not reachable from shell commands, so they bypass the accounting (not the change record).
  writeFileSync(...args: Parameters<InMemoryFs["writeFileSync"]>): void {
    this.changes.entry(args[0]);
    this.inner.writeFileSync(...args);
  }
  mkdirSync(...args: Parameters<InMemoryFs["mkdirSync"]>): void {
    this.changes.entry(args[0]);
    this.inner.mkdirSync(...args);
  }
  writeFileLazy(...args: Parameters<InMemoryFs["writeFileLazy"]>): void {
    this.changes.entry(args[0]);
    this.inner.writeFileLazy(...args);
  }
}

export interface WorkspaceFsOptions {
  /** Absolute root as the model sees it (default "/workspace"). */
  root?: string;
  limits?: Partial<WorkspaceLimits>;
}

export type BashWorkspaceFs = WorkspaceFs & {
  readonly bashFs: IFileSystem;
  // Always present here (optional in WorkspaceFs): change tracking covers both views.
  takeChanges(): WorkspaceChanges;
  returnChanges(changes: WorkspaceChanges): void;
  chmod(path: string, mode: number): Promise<void>;
  utimes(path: string, mtimeMs: number): Promise<void>;
  /**
   * Install the simulated shell's virtual layout (/bin, /usr/bin, /dev, /proc), outside the
   * usage counts. Done on the first `bash` call, not at creation: the layout is ~90 KiB of heap
   * per session, and most sessions never run bash.
   */
  prepareShell(): Promise<void>;
};

/** An empty in-memory workspace at `root`, with the shell's view of the same tree. */
export function createWorkspaceFs(opts: WorkspaceFsOptions = {}): BashWorkspaceFs {
  const root = normalize(opts.root ?? "/workspace");
  if (root === "/") throw new TypeError("createWorkspaceFs: root must not be /");
  const limits: WorkspaceLimits = { ...DEFAULT_WORKSPACE_LIMITS, ...opts.limits };
  const fs = new LimitedFs(limits, root);
  fs.inner.mkdirSync(root, { recursive: true });
  let ready: Promise<void> | null = fs.setBaseline();
  let shellReady: Promise<void> | undefined;
  const init = async (): Promise<void> => {
    if (ready) {
      await ready;
      ready = null;
    }
  };

  const outside = (p: string): WorkspaceFsError => new WorkspaceFsError("EOUTSIDE", `path "${p}" is outside the session's working directory`, p);
  const inside = (abs: string): boolean => abs === root || abs.startsWith(root + "/");

  const fail = (err: unknown, p: string): never => {
    if (err instanceof WorkspaceFsError) throw err;
    const code = codeOf(err) ?? "EIO";
    if (KNOWN.has(code)) {
      const detail = code === "EFBIG" || code === "ENOSPC" ? /\(([^)]*)\)/.exec(String((err as Error).message))?.[1] : undefined;
      throw new WorkspaceFsError(code as ErrCode, (ERRNO_TEXT[code] ?? code) + (detail ? ` (${detail})` : ""), p);
    }
    throw new WorkspaceFsError("EINVAL", ERRNO_TEXT[code] ?? `i/o error (${code})`, p);
  };

  /**
   * Resolve a model path to its canonical absolute path: lexical first, then every symlink on
   * the way (the leaf too unless `followLeaf` is false). Missing components are kept lexically.
   * Throws ELOOP past 40 hops and EOUTSIDE when the result is not under the root.
   */
  const resolve = async (p: string, followLeaf = true): Promise<string> => {
    if (typeof p !== "string" || p === "") throw new WorkspaceFsError("ENOENT", ERRNO_TEXT.ENOENT!, p);
    if (p.includes("\0")) throw new WorkspaceFsError("EINVAL", ERRNO_TEXT.EINVAL!, p);
    const lexical = normalize(p.startsWith("/") ? p : `${root}/${p}`);
    if (!fs.linksMayExist) {
      if (!inside(lexical)) throw outside(p);
      return lexical;
    }
    let pending = lexical.split("/").filter(Boolean);
    let done = "/";
    let hops = 0;
    while (pending.length) {
      const seg = pending.shift()!;
      const next = done === "/" ? `/${seg}` : `${done}/${seg}`;
      const isLeaf = pending.length === 0;
      let st: BashFsStat | null = null;
      try {
        st = await fs.inner.lstat(next);
      } catch {
        st = null;
      }
      if (!st) {
        // Nothing more to resolve: the rest is lexical.
        done = normalize([next, ...pending].join("/"));
        break;
      }
      if (st.isSymbolicLink && (followLeaf || !isLeaf)) {
        if (++hops > MAX_SYMLINK_HOPS) throw new WorkspaceFsError("ELOOP", ERRNO_TEXT.ELOOP!, p);
        const target = await fs.inner.readlink(next);
        const base = target.startsWith("/") ? target : `${done}/${target}`;
        pending = [...normalize(base).split("/").filter(Boolean), ...pending];
        done = "/";
        continue;
      }
      if (!st.isDirectory && !isLeaf) {
        // A file in the middle: the operation fails with ENOTDIR, lexically inside or not.
        done = normalize([next, ...pending].join("/"));
        break;
      }
      done = next;
    }
    if (!inside(done)) throw outside(p);
    return done;
  };

  const toStat = (st: BashFsStat): FsStat => ({
    type: st.isSymbolicLink ? "symlink" : st.isDirectory ? "directory" : "file",
    size: st.isDirectory ? 0 : st.size,
    mtimeMs: st.mtime.getTime(),
    mode: st.mode,
  });

  const ws: BashWorkspaceFs = {
    root,
    limits,
    bashFs: fs,
    prepareShell() {
      shellReady ??= init().then(() => fs.excluded(() => void new Bash({ fs, cwd: root })));
      return shellReady;
    },
    async realpath(p) {
      await init();
      return resolve(p);
    },
    async readFile(p) {
      await init();
      const abs = await resolve(p);
      try {
        const st = await fs.inner.stat(abs);
        if (st.isDirectory) throw new WorkspaceFsError("EISDIR", ERRNO_TEXT.EISDIR!, p);
        return await fs.inner.readFileBuffer(abs);
      } catch (err) {
        return fail(err, p);
      }
    },
    async writeFile(p, data) {
      await init();
      const abs = await resolve(p);
      try {
        if (abs === root) throw new WorkspaceFsError("EISDIR", ERRNO_TEXT.EISDIR!, p);
        await fs.mkdir(dirname(abs), { recursive: true });
        await fs.writeFile(abs, data);
      } catch (err) {
        fail(err, p);
      }
    },
    async stat(p) {
      await init();
      const abs = await resolve(p);
      try {
        return toStat(await fs.inner.stat(abs));
      } catch (err) {
        return fail(err, p);
      }
    },
    async lstat(p) {
      await init();
      const abs = await resolve(p, false);
      try {
        return toStat(await fs.inner.lstat(abs));
      } catch (err) {
        return fail(err, p);
      }
    },
    async readdir(p) {
      await init();
      const abs = await resolve(p);
      try {
        const st = await fs.inner.stat(abs);
        if (!st.isDirectory) throw new WorkspaceFsError("ENOTDIR", ERRNO_TEXT.ENOTDIR!, p);
        const list = await fs.inner.readdirWithFileTypes(abs);
        return list
          .map((d) => ({ name: d.name, type: (d.isSymbolicLink ? "symlink" : d.isDirectory ? "directory" : "file") as FsEntryType }))
          .sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
      } catch (err) {
        return fail(err, p);
      }
    },
    async mkdir(p, o) {
      await init();
      const abs = await resolve(p);
      try {
        await fs.mkdir(abs, o);
      } catch (err) {
        fail(err, p);
      }
    },
    async remove(p, o) {
      await init();
      const abs = await resolve(p, false);
      if (abs === root) throw new WorkspaceFsError("EINVAL", "cannot remove the workspace root", p);
      try {
        const st = await fs.inner.lstat(abs);
        if (st.isDirectory && !o?.recursive && (await fs.inner.readdir(abs)).length > 0) {
          throw new WorkspaceFsError("ENOTEMPTY", ERRNO_TEXT.ENOTEMPTY!, p);
        }
        await fs.rm(abs, { recursive: o?.recursive ?? false });
      } catch (err) {
        fail(err, p);
      }
    },
    async rename(from, to) {
      await init();
      const a = await resolve(from, false);
      const b = await resolve(to, false);
      if (a === root || b === root) throw new WorkspaceFsError("EINVAL", "cannot rename the workspace root", a === root ? from : to);
      try {
        await fs.inner.lstat(a);
        await fs.mv(a, b);
      } catch (err) {
        fail(err, from);
      }
    },
    async symlink(target, p) {
      await init();
      const abs = await resolve(p, false);
      try {
        if (await fs.inner.lstat(abs).then(() => true, () => false)) throw new WorkspaceFsError("EEXIST", ERRNO_TEXT.EEXIST!, p);
        await fs.symlink(target, abs);
      } catch (err) {
        fail(err, p);
      }
    },
    async readlink(p) {
      await init();
      const abs = await resolve(p, false);
      try {
        const st = await fs.inner.lstat(abs);
        if (!st.isSymbolicLink) throw new WorkspaceFsError("EINVAL", ERRNO_TEXT.EINVAL!, p);
        return await fs.inner.readlink(abs);
      } catch (err) {
        return fail(err, p);
      }
    },
    async exists(p) {
      await init();
      let abs: string;
      try {
        abs = await resolve(p);
      } catch (err) {
        if (err instanceof WorkspaceFsError && err.code === "ENOENT") return false;
        throw err;
      }
      return fs.inner.exists(abs);
    },
    async chmod(p, mode) {
      await init();
      const abs = await resolve(p);
      try {
        await fs.chmod(abs, mode);
      } catch (err) {
        fail(err, p);
      }
    },
    async utimes(p, mtimeMs) {
      await init();
      const abs = await resolve(p);
      try {
        const t = new Date(mtimeMs);
        await fs.utimes(abs, t, t);
      } catch (err) {
        fail(err, p);
      }
    },
    usage() {
      return fs.usage();
    },
    takeChanges() {
      return fs.changes.take();
    },
    returnChanges(changes) {
      fs.changes.giveBack(changes);
    },
  };
  return ws;
}
