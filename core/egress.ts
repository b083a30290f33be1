/**
 * Egress, composed: the policy, the gateway over the runtime's network, the secret source and
 * the audit sink, built once per worker and shared by its sessions. Without a policy file the
 * policy is the empty one (limited networking, nothing allowed): every request a sandbox makes
 * is refused, and audited.
 */
import type { AuditSink } from "./audit/audit.ts";
import { MemoryAuditSink } from "./audit/audit.ts";
import { parsePolicy } from "./policy/parse.ts";
import type { CompiledPolicy } from "./policy/compile.ts";
import type { SessionContext } from "./policy/types.ts";
import type { OutboundHandler } from "./sandbox/sandbox.ts";
import { createGateway, type Gateway } from "../proxy/gateway.ts";
import { createSecretSource, type SecretSource } from "../proxy/credentials.ts";
import type { EgressNet } from "../proxy/net.ts";
import { ConfigError } from "./config.ts";
import type { Runtime } from "./runtime.ts";

export interface Egress {
  policy: CompiledPolicy;
  gateway: Gateway;
  audit: AuditSink;
  /** The outbound handler of one session's sandbox (a tool call's requests carry its id). */
  outbound(session: SessionContext): OutboundHandler;
}

export interface EgressOptions {
  /** Parsed JSON of the policy file; undefined: deny everything. */
  policy?: unknown;
  /** Names the policy in errors. */
  policyName?: string;
  net: EgressNet;
  audit?: AuditSink;
  secrets?: SecretSource;
  /** For the default secret source: environment variables and files. */
  env?: Record<string, string | undefined>;
  readTextFile?(path: string): Promise<string>;
}

export function createEgress(o: EgressOptions): Egress {
  let policy: CompiledPolicy;
  try {
    policy = parsePolicy(o.policy ?? {});
  } catch (e) {
    throw new ConfigError(`policy${o.policyName ? ` ${o.policyName}` : ""}: ${e instanceof Error ? e.message : String(e)}`);
  }
  const audit = o.audit ?? new MemoryAuditSink();
  const secrets =
    o.secrets ??
    createSecretSource({
      env: o.env ?? {},
      readTextFile: o.readTextFile ?? (async (p) => Promise.reject(new Error(`no file reader to read ${p}`))),
    });
  const gateway = createGateway({ policy, net: o.net, secrets, audit });
  return {
    policy,
    gateway,
    audit,
    outbound: (session) => (req) => gateway.fetch(req, session, "fetch"),
  };
}

/**
 * The worker's egress from its config: the policy file (`--policy`), the runtime's network, the
 * audit sink (the worker's state store; memory when none is given), secrets from the
 * environment and files.
 */
export async function loadEgress(
  host: { runtime: Runtime; env: Record<string, string | undefined>; readTextFile(path: string): Promise<string> },
  config: { policy?: string | undefined },
  audit?: AuditSink,
): Promise<Egress> {
  let policy: unknown;
  if (config.policy) {
    const text = await host.readTextFile(config.policy).catch((e) => {
      throw new ConfigError(`policy: cannot read ${config.policy}: ${e instanceof Error ? e.message : String(e)}`);
    });
    try {
      policy = JSON.parse(text);
    } catch (e) {
      throw new ConfigError(`policy ${config.policy}: not JSON: ${e instanceof Error ? e.message : String(e)}`);
    }
  }
  const net: EgressNet = host.runtime.egressNet?.() ?? refuseAllNet(host.runtime.name);
  return createEgress({
    policy,
    ...(config.policy ? { policyName: config.policy } : {}),
    net,
    ...(audit ? { audit } : {}),
    env: host.env,
    readTextFile: host.readTextFile,
  });
}

/** A network that refuses to connect: a runtime without one still decides and audits. */
function refuseAllNet(runtime: string): EgressNet {
  return {
    request: async () => {
      throw new Error(`the ${runtime} runtime gives the gateway no network`);
    },
  };
}
