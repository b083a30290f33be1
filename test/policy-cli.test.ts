// `deft policy check` as a real Node process: a valid policy with a sample request, an invalid
// one. The command's other paths are tested in process (core/policy/policy.test.ts).
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { runDeft } from "./cli-helpers.ts";

describe("deft policy check", () => {
  it("summarises examples/policy.json and decides a sample request, without secret values", async () => {
    const r = await runDeft("node", ["policy", "check", "examples/policy.json", "--url", "http://billing.svc/v1/invoices?id=7", "--method", "post"], { GITHUB_TOKEN: "ghp_never_printed" });
    expect(r.stderr).toBe("");
    expect(r.code).toBe(0);
    expect(r.stdout).not.toContain("ghp_never_printed");
    expect(r.stdout).toContain("policy examples/policy.json: valid");
    expect(r.stdout).toMatch(/mode +enforce/);
    expect(r.stdout).toMatch(/hosts +3: api\.github\.com, \*\.githubusercontent\.com, api\.stripe\.com:443/);
    expect(r.stdout).toMatch(/packages +on/);
    expect(r.stdout).toMatch(/allow +1 rule: docs-read \(docs\.example\.com; GET, HEAD; \/v1\/\*\*, \/assets\/\*\)/);
    expect(r.stdout).toMatch(/deny +1 rule: no-repo-deletes/);
    expect(r.stdout).toContain("billing.svc -> http://10.20.0.7:8080/api/ (GET, POST; /v1/**)");
    expect(r.stdout).toMatch(/credentials +2: GITHUB \(api\.github\.com; in header; required; secret from env GITHUB_TOKEN\); STRIPE/);
    expect(r.stdout).toContain("POST http://billing.svc/v1/invoices?id=7 (via fetch):");
    expect(r.stdout).toMatch(/allowed +true/);
    expect(r.stdout).toMatch(/rule +services\.billing/);
    expect(r.stdout).toMatch(/target +http:\/\/10\.20\.0\.7:8080\/api\/v1\/invoices\?id=7/);
  });

  it("an invalid policy exits 2 and lists each problem with its path", async () => {
    const dir = mkdtempSync(join(tmpdir(), "deft-policy-"));
    const bad = join(dir, "bad.json");
    writeFileSync(
      bad,
      JSON.stringify({
        networking: { type: "limited", allowed_hosts: ["10.0.0.1", "ok.example"] },
        credentials: [{ name: "GH", secret: { env: "GH_TOKEN" }, hosts: ["*"] }],
        services: { billing: { url: "ftp://billing.internal/" } },
      }),
    );
    const r = await runDeft("node", ["policy", "check", bad, "--url", "https://ok.example/"]);
    expect(r.code).toBe(2);
    expect(r.stdout).toBe("");
    expect(r.stderr).toContain(`deft: policy ${bad} is invalid (3 problems):`);
    expect(r.stderr).toContain("  networking.allowed_hosts[0]: 10.0.0.1 is not a public address (private)");
    expect(r.stderr).toContain("  services.billing.url: a service URL is http or https, not ftp:");
    expect(r.stderr).toContain("  credentials[0].hosts[0]: a credential cannot be bound to every host");
  });
});
