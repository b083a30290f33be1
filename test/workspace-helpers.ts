/**
 * Workspaces for the persistence tests and the state benchmark: deterministic content, and a
 * description of a whole tree (every entry's type, mode, mtime, size, content hash and symlink
 * target) to compare a restored workspace with the original.
 */
import { createHash } from "node:crypto";
import type { FsEntryType, WorkspaceFs } from "../core/sandbox/sandbox.ts";

/** `n` bytes from a seeded xorshift32: the same seed always gives the same bytes. */
export function pseudoRandomBytes(n: number, seed: number): Uint8Array {
  const out = new Uint8Array(n);
  let x = seed >>> 0 || 0x9e3779b9;
  for (let i = 0; i < n; i++) {
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    out[i] = x & 0xff;
  }
  return out;
}

/** One entry of a tree, as `describeTree` reports it. */
export interface TreeRecord {
  path: string;
  type: FsEntryType;
  mode: number;
  /** Absent for symlinks (a restored symlink's own mtime is its creation time). */
  mtimeMs?: number;
  size: number;
  /** sha256 of a file's bytes. */
  sha256?: string;
  target?: string;
}

/** Every entry under the root, sorted by path. */
export async function describeTree(fs: WorkspaceFs): Promise<TreeRecord[]> {
  const out: TreeRecord[] = [];
  const walk = async (rel: string): Promise<void> => {
    for (const child of await fs.readdir(rel === "" ? fs.root : `${fs.root}/${rel}`)) {
      const path = rel === "" ? child.name : `${rel}/${child.name}`;
      const abs = `${fs.root}/${path}`;
      const st = await fs.lstat(abs);
      if (st.type === "symlink") {
        out.push({ path, type: st.type, mode: st.mode, size: st.size, target: await fs.readlink(abs) });
      } else if (st.type === "file") {
        const sha256 = createHash("sha256").update(await fs.readFile(abs)).digest("hex");
        out.push({ path, type: st.type, mode: st.mode, mtimeMs: st.mtimeMs, size: st.size, sha256 });
      } else {
        out.push({ path, type: st.type, mode: st.mode, mtimeMs: st.mtimeMs, size: 0 });
        await walk(path);
      }
    }
  };
  await walk("");
  return out.sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0));
}

/** One hash of `describeTree`: equal digests mean byte-identical trees with the same metadata. */
export async function treeDigest(fs: WorkspaceFs): Promise<string> {
  return createHash("sha256").update(JSON.stringify(await describeTree(fs))).digest("hex");
}

/**
 * Fill `fs` with `files` files of varying sizes spread over 20 directories, `totalBytes` in all,
 * deterministic for a seed: one file in a hundred is large (together half the bytes, several
 * chunks each), the rest small and of varying sizes. Returns the paths written.
 */
export async function fillWorkspace(fs: WorkspaceFs, opts: { files: number; totalBytes: number; seed: number }): Promise<string[]> {
  const weights: number[] = [];
  const r = pseudoRandomBytes(opts.files, opts.seed);
  const large = Math.max(1, Math.floor(opts.files / 100));
  for (let i = 0; i < opts.files; i++) {
    weights.push(i % 100 === 7 ? (opts.files - large) / large : 0.5 + r[i]! / 255);
  }
  const sum = weights.reduce((a, b) => a + b, 0);
  const paths: string[] = [];
  let written = 0;
  for (let i = 0; i < opts.files; i++) {
    const size = i === opts.files - 1 ? opts.totalBytes - written : Math.floor((weights[i]! / sum) * opts.totalBytes);
    const path = `d${String(i % 20).padStart(2, "0")}/f${String(i).padStart(4, "0")}.bin`;
    await fs.writeFile(path, pseudoRandomBytes(size, opts.seed * 7919 + i + 1));
    paths.push(path);
    written += size;
  }
  return paths;
}
