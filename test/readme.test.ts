// The README stays true: its first lines give the two commands, and its example scenario is valid.
import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { parseScenario } from "../core/emulator/mod.ts";
import pkg from "../package.json" with { type: "json" };
import { readmeWithTable } from "../scripts/hostile-table.ts";

const readme = readFileSync(new URL("../README.md", import.meta.url), "utf8");

describe("README", () => {
  it("opens with the main job and the test command, both real npm scripts", () => {
    const head = readme.split("\n").slice(0, 6).join("\n");
    expect(head).toContain("npm ci && npm run dev");
    expect(head).toContain("npm test");
    expect(pkg.scripts.dev).toBeTruthy();
    expect(pkg.scripts.test).toBeTruthy();
  });

  it("carries the hostile-suite table as the suite last wrote it (npm run hostile:table)", () => {
    expect(readme).toBe(readmeWithTable(readme));
  });

  it("shows a scenario the emulator accepts", () => {
    const block = readme.match(/```json\n([\s\S]*?)```/);
    expect(block).not.toBeNull();
    expect(() => parseScenario(JSON.parse(block![1]!))).not.toThrow();
  });
});
