// The `deft` command line as a real Node process.
import { mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { NODE_FLAGS } from "../runtimes/node/runtime.ts";
import { runDeft } from "./cli-helpers.ts";

describe("deft CLI", () => {
  it("--help documents every command and option", async () => {
    const r = await runDeft("node", ["--help"]);
    expect(r.code).toBe(0);
    for (const w of ["dev", "worker", "emulator", "tools", "--max-sessions", "ANTHROPIC_ENVIRONMENT_KEY", "--config"]) expect(r.stdout).toContain(w);
  });

  it("dev runs the demo session on the embedded defaults and exits 0", async () => {
    const r = await runDeft("node", ["dev"]);
    expect(r.stderr).toBe("");
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/demo passed: 11 tool calls, 11 answered exactly once/);
    expect(r.stdout).toContain("→ write");
    expect(r.stdout).toContain("deft_whereami (custom)");
    expect(r.stdout).toContain("tools run in: deno-subprocess (isolate) on node");
    expect(r.stdout).toMatch(/← execute [\d.]+ ms: greet\.ts is 53 bytes/);
  });

  it("worker without its environment says which variables to set", async () => {
    const r = await runDeft("node", ["worker"]);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain("ANTHROPIC_ENVIRONMENT_ID");
    expect(r.stderr).toContain("ANTHROPIC_ENVIRONMENT_KEY");
  });

  it("a wrong value fails at start with the field and what was expected", async () => {
    const r = await runDeft("node", ["worker", "--max-sessions", "0"], { ANTHROPIC_ENVIRONMENT_ID: "env_x", ANTHROPIC_ENVIRONMENT_KEY: "k" });
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/maxSessions \(--max-sessions or DEFT_MAX_SESSIONS\): .*>=1/);
    const bad = await runDeft("node", ["worker", "--no-such-flag"]);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toContain("unknown option --no-such-flag");
  });

  it("reads options from a config file; flags win over the file", async () => {
    const dir = mkdtempSync(join(tmpdir(), "deft-cfg-"));
    const file = join(dir, "deft.json");
    writeFileSync(file, JSON.stringify({ maxSessions: "many" }));
    const r = await runDeft("node", ["tools", "--config", file]);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain("maxSessions");
    writeFileSync(file, JSON.stringify({ maxSessions: 0 }));
    expect((await runDeft("node", ["tools", "--config", file, "--max-sessions", "3"])).code).toBe(0);
    writeFileSync(file, JSON.stringify({ bogus: 1 }));
    const unknown = await runDeft("node", ["tools", "--config", file]);
    expect(unknown.code).toBe(2);
    expect(unknown.stderr).toContain("bogus");
  });

  it("tools --json prints the agent's tools array with custom tools' JSON schemas", async () => {
    const dir = mkdtempSync(join(tmpdir(), "deft-tools-"));
    const mod = join(dir, "my-tools.ts");
    writeFileSync(
      mod,
      `import { z } from "${join(import.meta.dirname, "..", "node_modules", "zod", "index.js")}";
import { defineTool } from "${join(import.meta.dirname, "..", "core", "router", "mod.ts")}";
export const lookup = defineTool({ name: "lookup_order", description: "Find an order", input: z.object({ id: z.number().int(), note: z.string().optional() }), run: ({ id }) => "order " + id });
`,
    );
    const r = await runDeft("node", ["tools", "--json", "--custom-tools", mod]);
    expect(r.stderr).toBe("");
    expect(r.code).toBe(0);
    const tools = JSON.parse(r.stdout);
    expect(tools[0]).toEqual({ type: "agent_toolset_20260401" });
    expect(tools[1]).toMatchObject({ type: "custom", name: "lookup_order", description: "Find an order", input_schema: { type: "object", required: ["id"] } });
    expect(tools[1].input_schema.properties.id.type).toBe("integer");
    // `execute` is declared as a custom tool too (the runtime hosts an isolate tier).
    expect(tools[2]).toMatchObject({ type: "custom", name: "execute", input_schema: { type: "object", required: ["code"] } });
    expect(tools[2].input_schema.properties.language.enum).toEqual(["js", "ts"]);
  });

  it("--sandbox none drops execute; a tier the runtime does not host is refused with the choices", async () => {
    const none = await runDeft("node", ["tools", "--json", "--sandbox", "none"]);
    expect(none.code).toBe(0);
    expect(JSON.parse(none.stdout)).toEqual([{ type: "agent_toolset_20260401" }]);
    const wrong = await runDeft("node", ["tools", "--sandbox", "bun-bwrap"]);
    expect(wrong.code).toBe(2);
    expect(wrong.stderr).toContain('node does not host the "bun-bwrap" tier (choose one of: auto, none, deno-subprocess)');
  });

  it("dev records the session and audits its snippet's refused fetch; deft sessions and deft audit print them", async () => {
    const dir = mkdtempSync(join(tmpdir(), "deft-audit-"));
    const dev = await runDeft("node", ["dev", "--state-dir", dir]);
    expect(dev.code).toBe(0);
    const sessions = await runDeft("node", ["sessions", "--json", "--state-dir", dir]);
    expect(sessions.code).toBe(0);
    const list = JSON.parse(sessions.stdout) as Array<{ sessionId: string; workItems: unknown[] }>;
    expect(list).toHaveLength(1);
    const sessionId = list[0]!.sessionId;
    const one = await runDeft("node", ["sessions", sessionId, "--state-dir", dir]);
    expect(one.stdout).toMatch(/11 tool call\(s\)/);
    expect(one.stdout).toMatch(/ execute \(custom\) [\d.]+ ms/);
    const text = await runDeft("node", ["audit", sessionId, "--state-dir", dir]);
    expect(text.code).toBe(0);
    expect(text.stdout).toMatch(/ deny +GET example\.com\/ rule=default .* tool=\S+ reason="no rule allows GET example\.com:443"/);
    const json = await runDeft("node", ["audit", sessionId, "--json", "--state-dir", dir]);
    const [rec] = json.stdout.trim().split("\n").map((l) => JSON.parse(l));
    expect(rec).toMatchObject({ sessionId, host: "example.com", decision: "deny", rule: "default", tier: "deno-subprocess", via: "fetch" });
  });

  it("--policy: a missing or invalid policy file fails at start with what is wrong", async () => {
    const missing = await runDeft("node", ["tools", "--policy", "/nonexistent/policy.json"]);
    expect(missing.code).toBe(2);
    expect(missing.stderr).toContain("policy: cannot read /nonexistent/policy.json");
    const dir = mkdtempSync(join(tmpdir(), "deft-policy-"));
    writeFileSync(join(dir, "p.json"), JSON.stringify({ networking: { type: "limited", allowed_hosts: ["10.0.0.1"] } }));
    const bad = await runDeft("node", ["tools", "--policy", join(dir, "p.json")]);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toMatch(/policy .*p\.json: .*allowed_hosts/);
    const services = await runDeft("node", ["tools", "--json", "--policy", join(import.meta.dirname, "../examples/policy.json")]);
    expect(services.code).toBe(0);
    expect(JSON.parse(services.stdout).map((t: { name?: string; type: string }) => t.name ?? t.type)).toContain("call_service");
  });
});

describe("deft on Node runs with the shim's V8 flags", () => {
  it("bin/deft.mjs's shebang and the dev and deft scripts pass NODE_FLAGS", () => {
    const root = join(import.meta.dirname, "..");
    const flags = NODE_FLAGS.join(" ");
    expect(readFileSync(join(root, "bin", "deft.mjs"), "utf8").split("\n")[0]).toBe(`#!/usr/bin/env -S node ${flags}`);
    const scripts = (JSON.parse(readFileSync(join(root, "package.json"), "utf8")) as { scripts: Record<string, string> }).scripts;
    expect(scripts["dev"]).toBe(`node ${flags} bin/deft.mjs dev`);
    expect(scripts["deft"]).toBe(`node ${flags} bin/deft.mjs`);
  });
});
