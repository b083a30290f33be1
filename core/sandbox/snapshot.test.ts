// Snapshot and restore over the workspace filesystem: a restored workspace is the same tree,
// byte for byte, and restore replaces what was there.
import { describe, expect, it } from "vitest";
import { createWorkspaceFs } from "../../tools/workspace-fs.ts";
import { restoreWorkspace, snapshotWorkspace } from "./snapshot.ts";

describe("workspace snapshot", () => {
  it("restores files, directories, binary content and symlinks into another workspace", async () => {
    const a = createWorkspaceFs();
    await a.writeFile("src/main.ts", "export {};\n");
    await a.writeFile("bin/blob", new Uint8Array([0, 1, 2, 255]));
    await a.mkdir("empty", { recursive: true });
    await a.symlink("src/main.ts", "link");
    const snap = await snapshotWorkspace(a);
    expect(snap.entries.map((e) => `${e.type} ${e.path}`).sort()).toEqual(["directory bin", "directory empty", "directory src", "file bin/blob", "file src/main.ts", "symlink link"]);

    const b = createWorkspaceFs();
    await b.writeFile("stale.txt", "from before");
    await restoreWorkspace(b, snap);
    expect(await b.exists("stale.txt")).toBe(false);
    expect(new TextDecoder().decode(await b.readFile("src/main.ts"))).toBe("export {};\n");
    expect([...(await b.readFile("bin/blob"))]).toEqual([0, 1, 2, 255]);
    expect(await b.readlink("link")).toBe("src/main.ts");
    expect(new TextDecoder().decode(await b.readFile("link"))).toBe("export {};\n");
    expect((await b.readdir("empty")).length).toBe(0);
    expect(await snapshotWorkspace(b)).toEqual(await snapshotWorkspace(a).then((s) => ({ entries: s.entries.map((e) => ({ ...e, mtimeMs: expect.any(Number) })) })));
  });
});
