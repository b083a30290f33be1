/**
 * `deft policy check FILE [--url URL] [--method M] [--via fetch|proxy|workers|connect]
 *  [--session-mcp HOST]... [--placeholder NAME]...`: validate an egress policy file, print a
 * one-screen summary of it, and, with `--url`, the decision for that sample request.
 * Never prints a secret value (credentials appear by name, with where their secret is read from).
 * Exit codes: 0 valid, 2 invalid policy or bad usage.
 */
import type { CliHost } from "../runtime.ts";
import type { CompiledPolicy } from "./compile.ts";
import { decide } from "./decide.ts";
import { parseAuthority } from "./host.ts";
import { PACKAGE_MANAGER_HOSTS } from "./packages.ts";
import { parsePolicy } from "./parse.ts";
import { PolicyError } from "./policy-error.ts";
import type { SecretRef } from "./schema.ts";
import type { Decision, EgressVia } from "./types.ts";

/** The help text of `deft policy`. */
export const POLICY_USAGE = `Usage: deft policy check FILE [options]

Validate an egress policy file (JSON) and print what it allows. With --url, also print the
decision for that sample request. Exits 2 when the policy is invalid, listing each problem.

Options:
  --url URL              a sample request's URL (with --via connect: host:port also works)
  --method M             its method (default GET)
  --via V                how it arrives: fetch (default), proxy, workers or connect (a tunnel)
  --placeholder NAME     a credential whose placeholder the request carries (repeat, or a,b)
  --session-mcp HOST     a host of the session's MCP servers (repeat, or a,b)
  -h, --help             this help`;

const VIAS: readonly EgressVia[] = ["fetch", "proxy", "workers", "connect"];

interface CheckArgs {
  file: string;
  url?: string;
  method: string;
  via: EgressVia;
  placeholders: string[];
  mcpHosts: string[];
}

class UsageError extends Error {}

/** Parse the arguments after `policy`. Returns undefined for --help. */
function parseCheckArgs(args: readonly string[]): CheckArgs | undefined {
  const [sub, ...rest] = args;
  if (sub === undefined || sub === "-h" || sub === "--help") return undefined;
  if (sub !== "check") throw new UsageError(`unknown policy command ${JSON.stringify(sub)} (try: deft policy check FILE)`);
  const out: CheckArgs = { file: "", method: "GET", via: "fetch", placeholders: [], mcpHosts: [] };
  for (let i = 0; i < rest.length; i++) {
    const a = rest[i]!;
    if (a === "-h" || a === "--help") return undefined;
    if (!a.startsWith("--")) {
      if (out.file) throw new UsageError(`unexpected argument ${JSON.stringify(a)}: one policy file at a time`);
      out.file = a;
      continue;
    }
    const eq = a.indexOf("=");
    const flag = a.slice(2, eq < 0 ? undefined : eq);
    const value = eq < 0 ? rest[++i] : a.slice(eq + 1);
    if (value === undefined) throw new UsageError(`--${flag} needs a value`);
    const list = () => value.split(",").map((v) => v.trim()).filter(Boolean);
    switch (flag) {
      case "url":
        out.url = value;
        break;
      case "method":
        if (!/^[A-Za-z]+$/.test(value)) throw new UsageError(`--method ${JSON.stringify(value)} is not an HTTP method`);
        out.method = value.toUpperCase();
        break;
      case "via":
        if (!VIAS.includes(value as EgressVia)) throw new UsageError(`--via is one of ${VIAS.join(", ")}, not ${JSON.stringify(value)}`);
        out.via = value as EgressVia;
        break;
      case "placeholder":
        out.placeholders.push(...list().map((n) => n.replace(/^DEFT_SECRET_/, "")));
        break;
      case "session-mcp":
        out.mcpHosts.push(...list());
        break;
      default:
        throw new UsageError(`unknown option --${flag} (see deft policy --help)`);
    }
  }
  if (!out.file) throw new UsageError("deft policy check needs a policy file");
  return out;
}

/** Run `deft policy ...` (the arguments after `policy`); resolves to the exit code. */
export async function runPolicyCommand(host: Pick<CliHost, "readTextFile" | "stdout" | "stderr">, args: readonly string[]): Promise<number> {
  let a: CheckArgs | undefined;
  try {
    a = parseCheckArgs(args);
  } catch (e) {
    host.stderr(`deft: ${e instanceof Error ? e.message : String(e)}`);
    return 2;
  }
  if (!a) {
    host.stdout(POLICY_USAGE);
    return 0;
  }
  let text: string;
  try {
    text = await host.readTextFile(a.file);
  } catch (e) {
    host.stderr(`deft: cannot read policy ${a.file}: ${e instanceof Error ? e.message : String(e)}`);
    return 2;
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (e) {
    host.stderr(`deft: policy ${a.file} is not valid JSON: ${e instanceof Error ? e.message : String(e)}`);
    return 2;
  }
  let policy: CompiledPolicy;
  try {
    policy = parsePolicy(json);
  } catch (e) {
    if (!(e instanceof PolicyError)) throw e;
    host.stderr(`deft: policy ${a.file} is invalid (${e.issues.length} ${e.issues.length === 1 ? "problem" : "problems"}):`);
    for (const issue of e.issues) host.stderr(`  ${issue}`);
    return 2;
  }
  host.stdout(`policy ${a.file}: valid`);
  for (const line of summary(policy)) host.stdout(`  ${line}`);
  if (a.url === undefined) return 0;

  let url: URL;
  try {
    url = sampleUrl(a.url, a.via);
  } catch (e) {
    host.stderr(`deft: --url ${JSON.stringify(a.url)}: ${e instanceof Error ? e.message : String(e)}`);
    return 2;
  }
  const method = a.via === "connect" ? "CONNECT" : a.method;
  const decision = decide({ method, url, via: a.via, placeholders: a.placeholders }, policy, { sessionId: "policy-check", tier: "cli", mcpServerHosts: a.mcpHosts });
  host.stdout("");
  host.stdout(`${method} ${a.via === "connect" ? url.host : url.href} (via ${a.via}):`);
  for (const line of describeDecision(decision)) host.stdout(`  ${line}`);
  return 0;
}

/** A URL for the sample request; with --via connect a bare host:port is a tunnel's target. */
function sampleUrl(raw: string, via: EgressVia): URL {
  if (via === "connect" && !raw.includes("://")) {
    const a = parseAuthority(raw, 443);
    return new URL(`https://${a.kind === "ipv6" ? `[${a.host}]` : a.host}:${a.port}/`);
  }
  try {
    return new URL(raw);
  } catch {
    throw new Error("not a URL (write it whole: https://host/path)");
  }
}

const LIST_MAX = 6;

/** "a, b, c" with at most LIST_MAX items and "+N more". */
function listOf(items: readonly string[]): string {
  if (items.length <= LIST_MAX) return items.join(", ");
  return `${items.slice(0, LIST_MAX).join(", ")}, +${items.length - LIST_MAX} more`;
}

function plural(n: number, one: string, many = `${one}s`): string {
  return `${n} ${n === 1 ? one : many}`;
}

function secretSource(s: SecretRef): string {
  if ("env" in s) return `env ${s.env}`;
  if ("file" in s) return `file ${s.file}`;
  return `resolver ${s.resolver}${s.key ? ` key ${s.key}` : ""}`;
}

/** The one-screen summary: names and counts, never a secret value. */
function summary(compiled: CompiledPolicy): string[] {
  const p = compiled.policy;
  const lines: string[] = [];
  const row = (label: string, text: string) => lines.push(`${label.padEnd(12)} ${text}`);
  row("mode", p.mode === "shadow" ? "shadow (denials are audited as shadow-deny and let through)" : "enforce");
  const n = p.networking;
  if (n.type === "unrestricted") row("networking", "unrestricted (every host; deny rules still apply)");
  else {
    row("networking", "limited");
    row("  hosts", n.allowed_hosts.length ? `${n.allowed_hosts.length}: ${listOf(n.allowed_hosts)}` : "none");
    row("  packages", n.allow_package_managers ? `on (${PACKAGE_MANAGER_HOSTS.length} registry hosts: npm, PyPI, crates, Go, RubyGems, apt, Alpine)` : "off");
    row("  mcp", n.allow_mcp_servers ? "on (each session's MCP server hosts)" : "off");
  }
  const rules = (field: "allow" | "deny") =>
    p[field].length
      ? `${plural(p[field].length, "rule")}: ${p[field]
          .map((r, i) => `${compiled[field][i]!.name} (${listOf(r.hosts)}${r.methods ? `; ${r.methods.join(", ")}` : ""}${r.paths ? `; ${r.paths.join(", ")}` : ""})`)
          .join("; ")}`
      : "no rules";
  row("allow", rules("allow"));
  row("deny", rules("deny"));
  const services = Object.entries(p.services);
  row(
    "services",
    services.length
      ? `${services.length}: ${services.map(([name, s]) => `${name}.svc -> ${s.url}${s.methods || s.paths ? ` (${[s.methods?.join(", "), s.paths?.join(", ")].filter(Boolean).join("; ")})` : ""}`).join("; ")}`
      : "none",
  );
  row(
    "credentials",
    p.credentials.length
      ? `${p.credentials.length}: ${p.credentials.map((c) => `${c.name} (${listOf(c.hosts)}; in ${c.in.join(", ")}; ${c.require ? "required; " : ""}secret from ${secretSource(c.secret)})`).join("; ")}`
      : "none",
  );
  const l = p.limits;
  row("limits", `request body ${l.request_body_bytes} B, response body ${l.response_body_bytes} B, ${l.requests_per_minute || "unlimited"} requests/min, timeout ${l.timeout_ms} ms, ${l.max_redirects} redirects`);
  return lines;
}

function describeDecision(d: Decision): string[] {
  const lines: string[] = [];
  const row = (label: string, text: string) => lines.push(`${label.padEnd(12)} ${text}`);
  row("allowed", String(d.allowed));
  row("verdict", d.shadow ? `${d.verdict} (shadow mode: let through)` : d.verdict);
  row("rule", d.rule);
  row("reason", d.reason);
  row("target", d.target.href);
  if (d.service) row("service", `${d.service} (private addresses allowed)`);
  row("credentials", d.credentials.length ? d.credentials.join(", ") : "none");
  return lines;
}
