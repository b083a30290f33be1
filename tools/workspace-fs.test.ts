import { describe, expect, test } from "vitest";
import { WorkspaceFsError } from "../core/sandbox/sandbox.ts";
import { snapshotWorkspace, restoreWorkspace } from "../core/sandbox/snapshot.ts";
import { createWorkspaceFs } from "./workspace-fs.ts";

const outsideMsg = (p: string): string => `path "${p}" is outside the session's working directory`;

async function code(p: Promise<unknown>): Promise<string> {
  try {
    await p;
  } catch (err) {
    expect(err).toBeInstanceOf(WorkspaceFsError);
    return (err as WorkspaceFsError).code;
  }
  throw new Error("expected a WorkspaceFsError");
}

describe("createWorkspaceFs", () => {
  test("starts empty at /workspace and round-trips files", async () => {
    const fs = createWorkspaceFs();
    expect(fs.root).toBe("/workspace");
    expect(await fs.readdir(".")).toEqual([]);
    expect(fs.usage()).toEqual({ bytes: 0, entries: 0 });
    await fs.writeFile("a/b/c.txt", "hello");
    expect(new TextDecoder().decode(await fs.readFile("/workspace/a/b/c.txt"))).toBe("hello");
    expect(await fs.readdir("a")).toEqual([{ name: "b", type: "directory" }]);
    expect((await fs.stat("a/b/c.txt")).size).toBe(5);
    expect(fs.usage()).toEqual({ bytes: 5, entries: 3 });
    await fs.rename("a/b/c.txt", "a/d.txt");
    expect(await fs.exists("a/b/c.txt")).toBe(false);
    expect(await fs.exists("a/d.txt")).toBe(true);
    expect(await code(fs.remove("a"))).toBe("ENOTEMPTY");
    await fs.remove("a", { recursive: true });
    expect(fs.usage()).toEqual({ bytes: 0, entries: 0 });
    expect(await code(fs.readFile("nope"))).toBe("ENOENT");
    expect(await code(fs.readFile("."))).toBe("EISDIR");
  });

  test("confines lexical escapes", async () => {
    const fs = createWorkspaceFs();
    for (const p of ["../../etc/passwd", "/etc/passwd", "/workspace/../x", "/workspace-other/x"]) {
      await expect(fs.readFile(p)).rejects.toThrow(outsideMsg(p));
      expect(await code(fs.writeFile(p, "x"))).toBe("EOUTSIDE");
    }
    expect(await fs.realpath("/workspace/a/../b")).toBe("/workspace/b");
  });

  test("resolves symlinks before the check, the leaf too, even dangling", async () => {
    const fs = createWorkspaceFs();
    await fs.symlink("/", "root");
    await fs.symlink("/etc", "etc");
    await fs.symlink("/etc/shadow-does-not-exist", "dangling");
    await fs.symlink("../..", "up");
    await fs.writeFile("real.txt", "inside");
    await fs.symlink("real.txt", "ok");
    await expect(fs.readFile("root/etc/passwd")).rejects.toThrow(outsideMsg("root/etc/passwd"));
    expect(await code(fs.writeFile("etc/x", "x"))).toBe("EOUTSIDE");
    expect(await code(fs.writeFile("dangling", "x"))).toBe("EOUTSIDE");
    expect(await code(fs.readFile("up/etc/passwd"))).toBe("EOUTSIDE");
    expect(await code(fs.realpath("root"))).toBe("EOUTSIDE");
    // Operations on the link itself stay inside.
    expect(await fs.readlink("dangling")).toBe("/etc/shadow-does-not-exist");
    expect((await fs.lstat("root")).type).toBe("symlink");
    expect(new TextDecoder().decode(await fs.readFile("ok"))).toBe("inside");
    expect(await fs.realpath("ok")).toBe("/workspace/real.txt");
    await fs.remove("root");
    expect(await fs.exists("root")).toBe(false);
  });

  test("a symlink loop is ELOOP", async () => {
    const fs = createWorkspaceFs();
    await fs.symlink("b", "a");
    await fs.symlink("a", "b");
    await expect(fs.readFile("a")).rejects.toThrow("too many levels of symbolic links");
    expect(await code(fs.readFile("a"))).toBe("ELOOP");
  });

  test("enforces maxFileBytes, maxTotalBytes and maxEntries", async () => {
    const fs = createWorkspaceFs({ limits: { maxFileBytes: 100, maxTotalBytes: 250, maxEntries: 5 } });
    expect(await code(fs.writeFile("big", "x".repeat(101)))).toBe("EFBIG");
    await fs.writeFile("a", "x".repeat(100));
    await fs.writeFile("b", "x".repeat(100));
    expect(await code(fs.writeFile("c", "x".repeat(100)))).toBe("ENOSPC");
    // Overwriting credits the old size.
    await fs.writeFile("b", "y".repeat(100));
    expect(fs.usage().bytes).toBe(200);
    await fs.writeFile("c", "1");
    await fs.writeFile("d", "1");
    await fs.writeFile("e", "1");
    expect(await code(fs.writeFile("f", "1"))).toBe("ENOSPC");
    expect(await code(fs.mkdir("dir"))).toBe("ENOSPC");
    expect(fs.usage()).toEqual({ bytes: 203, entries: 5 });
  });

  test("bashFs writes respect the limits too", async () => {
    const fs = createWorkspaceFs({ limits: { maxFileBytes: 1000, maxTotalBytes: 1500 } });
    await expect(fs.bashFs.writeFile("/tmp/big", "x".repeat(1001))).rejects.toThrow(/EFBIG/);
    await fs.bashFs.writeFile("/tmp/a", "x".repeat(1000));
    await expect(fs.bashFs.appendFile("/workspace/b", "x".repeat(600))).rejects.toThrow(/ENOSPC/);
    expect(fs.usage().bytes).toBe(1000);
  });

  test("snapshot and restore work over it", async () => {
    const fs = createWorkspaceFs();
    await fs.writeFile("src/a.ts", "a");
    await fs.symlink("/etc", "link");
    const snap = await snapshotWorkspace(fs);
    expect(snap.entries.map((e) => `${e.type}:${e.path}`)).toEqual(["symlink:link", "directory:src", "file:src/a.ts"]);
    const other = createWorkspaceFs();
    await other.writeFile("junk", "j");
    await restoreWorkspace(other, snap);
    expect((await other.readdir(".")).map((e) => e.name)).toEqual(["link", "src"]);
    expect(await other.readlink("link")).toBe("/etc");
  });

  test("a link that reaches the workspace by a copy or a move, not by symlink(), is still resolved", async () => {
    // Paths resolve lexically while no link can exist under the root; anything that can bring
    // one in (here the shell copying and moving a link made outside the root) ends that.
    for (const op of ["cp", "mv"] as const) {
      const fs = createWorkspaceFs();
      await fs.writeFile("plain.txt", "x");
      expect(await fs.realpath("plain.txt")).toBe("/workspace/plain.txt");
      await fs.bashFs.mkdir("/tmp", { recursive: true });
      await fs.bashFs.symlink("/", "/tmp/escape");
      await fs.bashFs[op]("/tmp/escape", "/workspace/escape");
      const err = await fs.readFile("escape/tmp/escape").catch((e: unknown) => e);
      expect(err).toBeInstanceOf(WorkspaceFsError);
      expect((err as WorkspaceFsError).code).toBe("EOUTSIDE");
    }
  });
});
