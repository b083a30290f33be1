// The egress policy engine: the conformance table in Node, and the same table in real Deno, Bun
// and workerd (through Miniflare), each of which must pass every case; plus focused unit tests.
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { pathToFileURL } from "node:url";
import { bundleForWorkerd } from "../../test/workerd-bundle.ts";
import { Miniflare } from "miniflare";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { checkAddress, classifyAddress } from "./address.ts";
import { runPolicyCommand } from "./check-command.ts";
import { CONFORMANCE_CASES, HOST_CASES, runConformance } from "./conformance.ts";
import { decide } from "./decide.ts";
import { compileHostPattern, normalizeHost, parseAuthority } from "./host.ts";
import { PACKAGE_MANAGER_HOSTS } from "./packages.ts";
import { parsePolicy } from "./parse.ts";
import { compilePaths, pathProblem } from "./paths.ts";
import { PolicyError } from "./policy-error.ts";
import type { EgressRequest, SessionContext } from "./types.ts";
import { runJsonLine } from "../../test/run-json-line.ts";

const ROOT = join(import.meta.dirname, "..", "..");
const CONFORMANCE = join(import.meta.dirname, "conformance.ts");
const bin = (name: string) => join(ROOT, "node_modules", ".bin", name);
const SESSION: SessionContext = { sessionId: "s1", tier: "test" };

interface RuntimeResult {
  passed: number;
  failures: string[];
  total: number;
  /** Wall time of the whole run, process start to answer (ms). */
  wallMs: number;
}

/** The script Deno and Bun run: the table, and one JSON line. */
function scriptFile(dir: string): string {
  const file = join(dir, "run-conformance.ts");
  writeFileSync(
    file,
    `import { CONFORMANCE_CASES, runConformance } from ${JSON.stringify(pathToFileURL(CONFORMANCE).href)};
const r = runConformance();
console.log(JSON.stringify({ passed: r.passed, failures: r.failures, total: CONFORMANCE_CASES.length }));
`,
  );
  return file;
}

async function runProcess(cmd: string, args: string[]): Promise<RuntimeResult> {
  const { value, wallMs } = await runJsonLine<Omit<RuntimeResult, "wallMs">>(cmd, args);
  return { ...value, wallMs };
}

/** The table bundled with a fetch handler, served by workerd; one request runs it. */
async function runWorkerd(): Promise<RuntimeResult> {
  const t0 = performance.now();
  const bundle = await bundleForWorkerd(
    `import { CONFORMANCE_CASES, runConformance } from "./conformance.ts";
const handler = { fetch() { const r = runConformance(); return Response.json({ passed: r.passed, failures: r.failures, total: CONFORMANCE_CASES.length }); } };
export { handler as default };
`,
    import.meta.dirname,
    "conformance-worker.ts",
  );
  const mf = new Miniflare({ modules: [{ type: "ESModule", path: "conformance.mjs", contents: bundle }], compatibilityDate: "2025-09-01" });
  try {
    const res = await mf.dispatchFetch("http://conformance.test/");
    const body = (await res.json()) as Omit<RuntimeResult, "wallMs">;
    return { ...body, wallMs: performance.now() - t0 };
  } finally {
    await mf.dispose();
  }
}

describe("egress policy conformance in every runtime", () => {
  const runs: Record<string, Promise<RuntimeResult>> = {};
  const dir = mkdtempSync(join(tmpdir(), "deft-policy-conf-"));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));
  beforeAll(() => {
    // All three at once; each takes well under 5 s.
    const script = scriptFile(dir);
    runs.deno = runProcess(bin("deno"), ["run", "--no-prompt", "--no-config", "--no-lock", `--allow-read=${ROOT}`, "--node-modules-dir=manual", script]);
    runs.bun = runProcess(bin("bun"), [script]);
    runs.workerd = runWorkerd();
    for (const p of Object.values(runs)) p.catch(() => {});
  });

  it("has at least 60 cases of each of decide and the rest", () => {
    expect(CONFORMANCE_CASES.filter((c) => c.kind === "decide").length).toBeGreaterThanOrEqual(60);
    expect(CONFORMANCE_CASES.length).toBeGreaterThanOrEqual(200);
  });

  it("node: every case passes", () => {
    const t0 = performance.now();
    const r = runConformance();
    console.log(`policy conformance node: ${r.passed}/${CONFORMANCE_CASES.length} in ${(performance.now() - t0).toFixed(0)} ms`);
    expect(r.failures).toEqual([]);
    expect(r.passed).toBe(CONFORMANCE_CASES.length);
  });

  for (const runtime of ["deno", "bun", "workerd"]) {
    it(`${runtime}: every case passes`, async () => {
      const r = await runs[runtime]!;
      console.log(`policy conformance ${runtime}: ${r.passed}/${r.total} in ${r.wallMs.toFixed(0)} ms (wall, including start)`);
      expect(r.failures).toEqual([]);
      expect(r.total).toBe(CONFORMANCE_CASES.length);
      expect(r.passed).toBe(CONFORMANCE_CASES.length);
    });
  }
});

describe("hosts", () => {
  it("reads every IPv4 spelling exactly as this runtime's URL parser does", () => {
    for (const c of HOST_CASES) {
      if (c.input.startsWith("[") || c.input.includes(":") || c.input === "") continue;
      let viaUrl: string | undefined;
      try {
        viaUrl = new URL(`http://${c.input}/`).hostname;
      } catch {
        viaUrl = undefined;
      }
      let ours: string | undefined;
      try {
        ours = normalizeHost(c.input).host;
      } catch {
        ours = undefined;
      }
      // URL keeps a name's trailing dot and accepts some names we refuse (empty labels, too long).
      if (viaUrl !== undefined && ours !== undefined) expect(ours, c.input).toBe(viaUrl.replace(/\.$/, ""));
      if (/^[0-9a-fA-Fx.]+$/.test(c.input) && /^[0-9]/.test(c.input)) expect(ours, c.input).toBe(viaUrl);
    }
  });

  it("prints IPv6 as the URL parser does", () => {
    for (const text of ["2001:DB8:0:0:1:0:0:1", "1:0:0:0:0:0:0:0", "0:0:0:0:0:0:0:1", "2001:0db8:0000:0001:0000:0000:0000:0001", "fe80::1:2", "1:2:3:4:5:6:7:8", "1:0:0:2:0:0:0:3"]) {
      expect(normalizeHost(`[${text}]`).host, text).toBe(new URL(`http://[${text}]/`).hostname.slice(1, -1));
    }
  });

  it("refuses bad hosts with a PolicyError that says why", () => {
    const e = (() => {
      try {
        normalizeHost("evil.com@good.com");
      } catch (err) {
        return err;
      }
    })();
    expect(e).toBeInstanceOf(PolicyError);
    expect((e as PolicyError).code).toBe("invalid_policy");
    expect((e as PolicyError).message).toBe('invalid host "evil.com@good.com": the character "@" is not allowed in a host');
  });

  it("parses CONNECT authorities into what the gateway needs", () => {
    expect(parseAuthority("[2001:db8::1]:443", 80)).toEqual({ kind: "ipv6", host: "2001:db8::1", port: 443 });
    expect(parseAuthority("0x7f.1:22", 443)).toEqual({ kind: "ipv4", host: "127.0.0.1", port: 22 });
  });

  it("refuses wildcards anywhere but the front, and on addresses", () => {
    expect(() => compileHostPattern("api.*.com")).toThrow(/only as the whole host or as a leading/);
    expect(() => compileHostPattern("*.10.0.0.1")).toThrow(/not an address/);
    expect(compileHostPattern("*.example.com").matches({ kind: "name", host: "a.example.com" }, 1)).toBe(true);
  });
});

describe("paths", () => {
  it("compiles a list once and matches decoded paths", () => {
    const m = compilePaths(["/repos/*/pulls", "/gists/**"]);
    expect(m.matches("/repos/deft/pulls")).toBe(true);
    expect(m.matches("/repos/deft/issues")).toBe(false);
    expect(m.matches("/gists")).toBe(true);
    expect(m.matches("/gistsx")).toBe(false);
  });

  it("names the problem with an unsafe path without repeating it", () => {
    const r = pathProblem("/a/secret-token%2F..");
    expect(r.ok).toBe(false);
    if (!r.ok) expect(r.problem).not.toContain("secret-token");
  });
});

describe("addresses", () => {
  it("refuses every metadata address in every spelling", () => {
    for (const ip of ["169.254.169.254", "0xa9fea9fe", "2852039166", "0251.0376.0251.0376", "[::ffff:169.254.169.254]", "::ffff:a9fe:a9fe", "64:ff9b::a9fe:a9fe", "2002:a9fe:a9fe::", "fd00:ec2::254", "100.100.100.200", "169.254.170.2"]) {
      expect(classifyAddress(ip), ip).toMatchObject({ ok: false, class: "metadata" });
    }
  });

  it("lets a service reach its private address, and nothing else through it", () => {
    const policy = parsePolicy({ services: { billing: { url: "http://10.0.0.5:8080/" } } });
    const d = decide({ method: "GET", url: new URL("http://billing.svc/x"), via: "fetch", placeholders: [] }, policy, SESSION);
    expect(d.privateAddressAllowed).toBe(true);
    expect(checkAddress("10.0.0.5", d).ok).toBe(true);
    expect(checkAddress("169.254.169.254", d)).toMatchObject({ ok: false, class: "metadata" });
    const open = parsePolicy({ networking: { type: "unrestricted" } });
    const d2 = decide({ method: "GET", url: new URL("http://169.254.169.254/latest/meta-data/"), via: "fetch", placeholders: [] }, open, SESSION);
    expect(d2.allowed).toBe(true); // the policy allows any host...
    expect(checkAddress("169.254.169.254", d2)).toMatchObject({ ok: false, class: "metadata" }); // ...the address check does not
  });
});

describe("parsePolicy and compilePolicy", () => {
  it("reports every problem with its field's path", () => {
    let err: unknown;
    try {
      parsePolicy({ networking: { type: "limited", allowed_hosts: ["ok.com", "bad host"] }, deny: [{ hosts: ["x.com"], paths: ["/a/**/b"] }], limits: { max_redirects: 99 } });
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(PolicyError);
    // Schema problems come first; compile checks run only once the schema holds.
    expect((err as PolicyError).issues).toEqual(["limits.max_redirects: Too big: expected number to be <=20"]);
    try {
      parsePolicy({ networking: { type: "limited", allowed_hosts: ["ok.com", "bad host"] }, deny: [{ hosts: ["x.com"], paths: ["/a/**/b"] }] });
    } catch (e) {
      err = e;
    }
    expect((err as PolicyError).issues).toEqual([
      'networking.allowed_hosts[1]: invalid host "bad host": the character " " is not allowed in a host',
      'deny[0].paths: invalid path pattern "/a/**/b": "**" is allowed only as the last segment',
    ]);
    expect((err as PolicyError).message).toMatch(/^2 problems:\n {2}networking\.allowed_hosts\[1\]/);
  });

  it("examples/policy.json parses, and decides as intended", () => {
    const policy = parsePolicy(JSON.parse(readFileSync(join(ROOT, "examples", "policy.json"), "utf8")));
    expect(policy.allow.map((r) => r.name)).toEqual(["docs-read"]);
    expect(policy.deny.map((r) => r.name)).toEqual(["no-repo-deletes"]);
    expect([...policy.services.keys()]).toEqual(["billing"]);
    expect(policy.credentials.map((c) => c.name)).toEqual(["GITHUB", "STRIPE"]);
    expect(policy.packageHosts.length).toBe(PACKAGE_MANAGER_HOSTS.length);
    const at = (method: string, url: string, placeholders: string[] = []) => decide({ method, url: new URL(url), via: "fetch", placeholders }, policy, SESSION);
    expect(at("GET", "https://api.github.com/user", ["GITHUB"])).toMatchObject({ allowed: true, credentials: ["GITHUB"] });
    expect(at("DELETE", "https://api.github.com/repos/o/r", ["GITHUB"])).toMatchObject({ allowed: false, rule: "no-repo-deletes" });
    expect(at("GET", "https://api.github.com/user")).toMatchObject({ allowed: false, rule: "credentials.GITHUB" });
    expect(at("POST", "http://billing.svc/v1/invoices").target.href).toBe("http://10.20.0.7:8080/api/v1/invoices");
  });
});

describe("decide", () => {
  const policy = parsePolicy({
    networking: { type: "limited", allowed_hosts: ["api.github.com"] },
    credentials: [{ name: "GITHUB", secret: { env: "GITHUB_TOKEN_VALUE_NAME" }, hosts: ["api.github.com"] }],
  });

  it("is pure: the same request gives the same decision, and nothing is changed", () => {
    const url = new URL("https://api.github.com/repos?x=1");
    const request: EgressRequest = { method: "get", url, via: "fetch", placeholders: Object.freeze(["GITHUB"]) };
    const a = decide(request, policy, SESSION);
    const b = decide(request, policy, SESSION);
    expect(a).toEqual(b);
    expect(request.method).toBe("get");
    expect(url.href).toBe("https://api.github.com/repos?x=1");
    expect(a.target).toBe(url);
  });

  it("never throws: a host the URL parser accepts but the policy cannot read is denied", () => {
    const d = decide({ method: "GET", url: new URL("http://a..b/"), via: "fetch", placeholders: [] }, policy, SESSION);
    expect(d).toMatchObject({ allowed: false, verdict: "deny", rule: "host" });
    expect(d.reason).toContain("empty label");
  });

  it("names the credential in a refusal, never where its secret comes from", () => {
    const d = decide({ method: "GET", url: new URL("https://example.org/"), via: "fetch", placeholders: ["GITHUB"] }, parsePolicy({ networking: { type: "unrestricted" }, credentials: [{ name: "GITHUB", secret: { env: "GH_TOKEN" }, hosts: ["api.github.com"] }] }), SESSION);
    expect(d).toMatchObject({ allowed: false, rule: "credentials.GITHUB" });
    expect(d.reason).toContain("GITHUB");
    expect(d.reason).not.toContain("GH_TOKEN");
  });

  it("decides a request in microseconds", () => {
    const url = new URL("https://api.github.com/repos/x");
    const n = 20_000;
    const t0 = performance.now();
    for (let i = 0; i < n; i++) decide({ method: "GET", url, via: "fetch", placeholders: ["GITHUB"] }, policy, SESSION);
    const perCall = ((performance.now() - t0) * 1000) / n;
    expect(perCall).toBeLessThan(50);
  });
});

describe("deft policy check, in process", () => {
  /** Run the command over an in-memory file system. */
  async function check(files: Record<string, string>, args: string[]) {
    const out: string[] = [];
    const err: string[] = [];
    const code = await runPolicyCommand(
      {
        readTextFile: async (path) => {
          if (!(path in files)) throw new Error(`ENOENT: ${path}`);
          return files[path]!;
        },
        stdout: (l) => out.push(l),
        stderr: (l) => err.push(l),
      },
      args,
    );
    return { code, stdout: out.join("\n"), stderr: err.join("\n") };
  }
  const example = readFileSync(join(ROOT, "examples", "policy.json"), "utf8");

  it("a missing required credential, then present; a tunnel to the session's MCP server", async () => {
    const denied = await check({ "p.json": example }, ["check", "p.json", "--url", "https://api.github.com/user"]);
    expect(denied.code).toBe(0);
    expect(denied.stdout).toMatch(/allowed +false/);
    expect(denied.stdout).toMatch(/rule +credentials\.GITHUB/);
    const ok = await check({ "p.json": example }, ["check", "p.json", "--url", "https://api.github.com/user", "--placeholder", "DEFT_SECRET_GITHUB"]);
    expect(ok.stdout).toMatch(/allowed +true/);
    expect(ok.stdout).toMatch(/credentials +GITHUB/);
    const mcp = await check({ "p.json": example }, ["check", "p.json", "--via=connect", "--url", "mcp.example.io:443", "--session-mcp", "a.test,mcp.example.io"]);
    expect(mcp.stdout).toContain("CONNECT mcp.example.io (via connect):");
    expect(mcp.stdout).toMatch(/rule +networking\.allow_mcp_servers/);
    const shadow = await check({ "s.json": JSON.stringify({ mode: "shadow" }) }, ["check", "s.json", "--url", "https://example.org/"]);
    expect(shadow.stdout).toMatch(/verdict +deny \(shadow mode: let through\)/);
    expect(shadow.stdout).toMatch(/allowed +true/);
  });

  it("schema problems, bad JSON, a missing file and bad usage exit 2 with a clear message", async () => {
    const schema = await check({ "p.json": JSON.stringify({ networking: { type: "open" }, extra: true }) }, ["check", "p.json"]);
    expect(schema.code).toBe(2);
    expect(schema.stderr).toContain("deft: policy p.json is invalid (2 problems):");
    expect(schema.stderr).toContain("  networking.type: ");
    expect(schema.stderr).toContain('  (root): Unrecognized key: "extra"');
    const notJson = await check({ "p.json": "{ not json" }, ["check", "p.json"]);
    expect(notJson).toMatchObject({ code: 2, stdout: "" });
    expect(notJson.stderr).toContain("deft: policy p.json is not valid JSON");
    expect(await check({}, ["check", "nope.json"])).toMatchObject({ code: 2, stderr: "deft: cannot read policy nope.json: ENOENT: nope.json" });
    expect(await check({}, ["check"])).toMatchObject({ code: 2, stderr: "deft: deft policy check needs a policy file" });
    expect(await check({}, ["lint", "p.json"])).toMatchObject({ code: 2 });
    expect((await check({ "p.json": "{}" }, ["check", "p.json", "--via", "ftp"])).stderr).toContain("--via is one of fetch, proxy, workers, connect");
    expect((await check({ "p.json": "{}" }, ["check", "p.json", "--url", "not a url"])).stderr).toContain("not a URL");
    const help = await check({}, ["--help"]);
    expect(help.code).toBe(0);
    expect(help.stdout).toContain("Usage: deft policy check FILE");
  });
});
