// The gateway and the Node shim's network (reused by the Deno and Bun shims) behave the same
// under Node, Deno and Bun: the same script, run by each real runtime.
import { execFile } from "node:child_process";
import { join } from "node:path";
import { describe, expect, it } from "vitest";

const ROOT = join(import.meta.dirname, "../..");
const SCRIPT = join(ROOT, "test/egress/gateway-smoke.ts");
const BIN = join(ROOT, "node_modules/.bin");

const RUNTIMES: Record<string, [string, string[]]> = {
  node: [process.execPath, ["--import", "tsx", SCRIPT]],
  deno: [join(BIN, "deno"), ["run", "--allow-net", "--allow-read", "--allow-env", "--allow-sys", "--unstable-sloppy-imports", "--no-lock", SCRIPT]],
  bun: [join(BIN, "bun"), [SCRIPT]],
};

const expected = {
  allowed: [200, "auth=[REDACTED:K] body=b=[REDACTED:K]"],
  loopback: 502,
  loopbackByName: 502,
  metadata: 502,
  audit: ["allow:networking.unrestricted", "deny:address", "deny:address", "deny:address"],
};

describe.concurrent("the gateway under each runtime", () => {
  for (const [name, [cmd, args]] of Object.entries(RUNTIMES)) {
    it(name, async () => {
      const out = await new Promise<string>((resolve, reject) =>
        execFile(cmd, args, { cwd: ROOT, timeout: 60_000 }, (err, stdout, stderr) => (err ? reject(new Error(`${name}: ${err.message}\n${stderr}`)) : resolve(stdout))),
      );
      expect(JSON.parse(out.trim().split("\n").pop()!)).toEqual(expected);
    });
  }
});
