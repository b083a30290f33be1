/**
 * Snapshot and restore over any WorkspaceFs: the hooks the persistence issue builds on
 * (content-addressed chunks and atomic swaps arrive there). A snapshot is a plain value; restore
 * replaces the whole workspace with it.
 */
import type { WorkspaceFs, WorkspaceSnapshot } from "./sandbox.ts";

export async function snapshotWorkspace(fs: WorkspaceFs): Promise<WorkspaceSnapshot> {
  const entries: WorkspaceSnapshot["entries"] = [];
  const walk = async (dir: string, rel: string): Promise<void> => {
    for (const e of await fs.readdir(dir)) {
      const abs = `${dir}/${e.name}`;
      const path = rel ? `${rel}/${e.name}` : e.name;
      const st = await fs.lstat(abs);
      if (e.type === "directory") {
        entries.push({ path, type: "directory", mode: st.mode, mtimeMs: st.mtimeMs });
        await walk(abs, path);
      } else if (e.type === "symlink") {
        entries.push({ path, type: "symlink", mode: st.mode, mtimeMs: st.mtimeMs, target: await fs.readlink(abs) });
      } else {
        entries.push({ path, type: "file", mode: st.mode, mtimeMs: st.mtimeMs, data: await fs.readFile(abs) });
      }
    }
  };
  await walk(fs.root, "");
  return { entries };
}

export async function restoreWorkspace(fs: WorkspaceFs, snap: WorkspaceSnapshot): Promise<void> {
  for (const e of await fs.readdir(fs.root)) await fs.remove(`${fs.root}/${e.name}`, { recursive: true });
  for (const e of snap.entries) {
    const abs = `${fs.root}/${e.path}`;
    if (e.type === "directory") await fs.mkdir(abs, { recursive: true });
    else if (e.type === "symlink") await fs.symlink(e.target ?? "", abs);
    else await fs.writeFile(abs, e.data ?? new Uint8Array());
  }
}
