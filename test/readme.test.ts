// The README stays true: its first lines give the two commands, and its example scenario is valid.
import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { parseScenario } from "../core/emulator/mod.ts";
import { ENV_VARS, flagName } from "../core/config.ts";
import { parsePolicy } from "../core/policy/parse.ts";
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

  const jsonBlocks = [...readme.matchAll(/```json\n([\s\S]*?)```/g)].map((m) => m[1]!);

  it("shows a scenario the emulator accepts", () => {
    const block = jsonBlocks.find((b) => b.includes('"turns"'));
    expect(block).toBeDefined();
    expect(() => parseScenario(JSON.parse(block!))).not.toThrow();
  });

  it("shows the complete policy example, the same as examples/policy.json, and valid", () => {
    const block = jsonBlocks.find((b) => b.includes('"networking"'));
    expect(block).toBeDefined();
    const example = JSON.parse(readFileSync(new URL("../examples/policy.json", import.meta.url), "utf8"));
    expect(JSON.parse(block!)).toEqual(example);
    expect(() => parsePolicy(example)).not.toThrow();
  });

  it("documents every option in its table", () => {
    for (const field of Object.keys(ENV_VARS)) expect(readme, field).toContain(`\`--${flagName(field)}\``);
  });
});
