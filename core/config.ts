/**
 * Deft's configuration: one zod schema, filled from (lowest to highest) defaults, a JSON file,
 * the environment, and command-line flags. A wrong value fails at start with the field's path
 * and what was expected.
 */
import { z } from "zod";

const int = (min: number) => z.coerce.number().int().min(min);

export const ConfigSchema = z.strictObject({
  /** Self-hosted environment to serve (`deft worker`). */
  environmentId: z.string().min(1).optional().describe("ANTHROPIC_ENVIRONMENT_ID: the self-hosted environment to poll"),
  environmentKey: z.string().min(1).optional().describe("ANTHROPIC_ENVIRONMENT_KEY: the environment key (never logged, never given to a sandbox)"),
  baseURL: z.url().optional().describe("ANTHROPIC_BASE_URL: API base URL (default https://api.anthropic.com)"),
  workerId: z.string().min(1).optional().describe("DEFT_WORKER_ID: sent as Anthropic-Worker-ID (default deft-<uuid>)"),
  maxSessions: int(1).default(64).describe("DEFT_MAX_SESSIONS: work items served at once"),
  maxIdleMs: int(0).default(60_000).describe("DEFT_MAX_IDLE_MS: release a session this long after its turn ends (0: never)"),
  toolTimeoutMs: int(1).default(120_000).describe("DEFT_TOOL_TIMEOUT_MS: per-tool timeout"),
  drainTimeoutMs: int(0).default(30_000).describe("DEFT_DRAIN_TIMEOUT_MS: on shutdown, how long in-flight tools may finish"),
  stateDir: z.string().min(1).default(".deft").describe("DEFT_STATE_DIR: where the idempotency ledger is kept"),
  ledgerFsync: z.boolean().default(false).describe("DEFT_LEDGER_FSYNC: fsync each ledger write (survives power loss, not only a crash)"),
  ledger: z.enum(["file", "store"]).default("file").describe("DEFT_LEDGER: where the idempotency ledger lives: file (JSON lines under --state-dir, microseconds a write, this machine) or store (the state store, shared by every worker that shares it)"),
  persistWorkspace: z.boolean().default(true).describe("DEFT_PERSIST_WORKSPACE: snapshot each session's workspace into the state store when its work item ends, and restore it when the session is claimed again"),
  retentionDays: z.coerce.number().min(0).default(30).describe("DEFT_RETENTION_DAYS: drop a session's records, audit, ledger and workspace this long after it was last seen (0: keep forever)"),
  sandbox: z
    .enum(["auto", "none"])
    .or(z.string().regex(/^[a-z]+(-[a-z]+)*$/))
    .default("auto")
    .describe("DEFT_SANDBOX: where tools and `execute` run: auto (the isolate tier of this runtime), none (workspace tools only, no execute), or a tier name the runtime offers"),
  isolateMemoryMib: int(16).default(128).describe("DEFT_ISOLATE_MEMORY_MIB: memory limit of each isolate (V8 heap or cgroup)"),
  isolatePool: int(0).default(2).describe("DEFT_ISOLATE_POOL: isolates started ahead of need (each is used once, never shared between sessions)"),
  executeOutputBytes: int(1024).default(100 * 1024).describe("DEFT_EXECUTE_OUTPUT_BYTES: console output plus result kept per execute call; past it the snippet is stopped"),
  policy: z.string().min(1).optional().describe("DEFT_POLICY: egress policy file (JSON; README \"Egress policy\"); default: deny every request a sandbox makes"),
  customTools: z.string().min(1).optional().describe("DEFT_CUSTOM_TOOLS: a module whose exported defineTool() values answer custom tool calls"),
  logLevel: z.enum(["debug", "info", "warn", "error"]).default("info").describe("DEFT_LOG_LEVEL"),
  logFormat: z.enum(["json", "pretty"]).default("json").describe("DEFT_LOG_FORMAT: json lines, or a readable transcript"),
  emulatorPort: int(0).default(4010).describe("DEFT_EMULATOR_PORT: port of `deft emulator` (0: any free port)"),
  emulatorHost: z.string().min(1).default("127.0.0.1").describe("DEFT_EMULATOR_HOST: address `deft emulator` binds"),
  scenario: z.string().min(1).optional().describe("DEFT_SCENARIO: scenario file for `deft dev` and `deft emulator` (default: the built-in demo)"),
});
export type Config = z.output<typeof ConfigSchema>;
export type ConfigInput = z.input<typeof ConfigSchema>;

/** Environment variable for each field. */
export const ENV_VARS: Record<keyof Config, string> = {
  environmentId: "ANTHROPIC_ENVIRONMENT_ID",
  environmentKey: "ANTHROPIC_ENVIRONMENT_KEY",
  baseURL: "ANTHROPIC_BASE_URL",
  workerId: "DEFT_WORKER_ID",
  maxSessions: "DEFT_MAX_SESSIONS",
  maxIdleMs: "DEFT_MAX_IDLE_MS",
  toolTimeoutMs: "DEFT_TOOL_TIMEOUT_MS",
  drainTimeoutMs: "DEFT_DRAIN_TIMEOUT_MS",
  stateDir: "DEFT_STATE_DIR",
  ledgerFsync: "DEFT_LEDGER_FSYNC",
  ledger: "DEFT_LEDGER",
  persistWorkspace: "DEFT_PERSIST_WORKSPACE",
  retentionDays: "DEFT_RETENTION_DAYS",
  sandbox: "DEFT_SANDBOX",
  isolateMemoryMib: "DEFT_ISOLATE_MEMORY_MIB",
  isolatePool: "DEFT_ISOLATE_POOL",
  executeOutputBytes: "DEFT_EXECUTE_OUTPUT_BYTES",
  policy: "DEFT_POLICY",
  customTools: "DEFT_CUSTOM_TOOLS",
  logLevel: "DEFT_LOG_LEVEL",
  logFormat: "DEFT_LOG_FORMAT",
  emulatorPort: "DEFT_EMULATOR_PORT",
  emulatorHost: "DEFT_EMULATOR_HOST",
  scenario: "DEFT_SCENARIO",
};

/** Fields that are on/off: a bare `--flag` sets them, `--flag=false` clears them, env "1"/"true". */
export const BOOLEAN_FIELDS: ReadonlySet<keyof Config> = new Set(["ledgerFsync", "persistWorkspace"]);

/** Flag name for each field: `--max-sessions`, `--environment-id`, ... */
export function flagName(field: string): string {
  return field.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`).replace(/^base-u-r-l$/, "base-url");
}
export const FIELD_BY_FLAG: Record<string, keyof Config> = Object.fromEntries(
  (Object.keys(ENV_VARS) as Array<keyof Config>).map((k) => [flagName(k), k]),
);

export class ConfigError extends Error {
  override name = "ConfigError";
  readonly code = "invalid_config";
}

export interface ConfigSources {
  /** Parsed JSON of the config file, if any. */
  file?: unknown;
  fileName?: string;
  env?: Record<string, string | undefined>;
  flags?: Partial<Record<keyof Config, string | boolean>>;
}

/** Merge the sources and validate. Throws {@link ConfigError} naming every bad field. */
export function loadConfig(src: ConfigSources): Config {
  const merged: Record<string, unknown> = {};
  if (src.file !== undefined) {
    if (typeof src.file !== "object" || src.file === null || Array.isArray(src.file)) {
      throw new ConfigError(`${src.fileName ?? "config file"}: expected a JSON object`);
    }
    Object.assign(merged, src.file);
  }
  for (const [field, name] of Object.entries(ENV_VARS)) {
    const v = src.env?.[name];
    if (v !== undefined && v !== "") merged[field] = BOOLEAN_FIELDS.has(field as keyof Config) ? v === "1" || v === "true" : v;
  }
  for (const [field, v] of Object.entries(src.flags ?? {})) if (v !== undefined) merged[field] = v;
  const parsed = ConfigSchema.safeParse(merged);
  if (!parsed.success) {
    const lines = parsed.error.issues.map((i) => {
      const field = i.path.join(".") || "(config)";
      const env = ENV_VARS[i.path[0] as keyof Config];
      const where = env ? ` (--${flagName(String(i.path[0]))} or ${env})` : "";
      return `  ${field}${where}: ${i.message}`;
    });
    throw new ConfigError(`invalid configuration:\n${lines.join("\n")}`);
  }
  return parsed.data;
}

/** One line per option, for `--help`. */
export function describeOptions(): string {
  const shape = ConfigSchema.shape as Record<string, z.ZodType>;
  return Object.entries(shape)
    .map(([k, s]) => {
      const def = (s as unknown as { _zod?: { def?: { defaultValue?: unknown } } })._zod?.def?.defaultValue;
      const d = def !== undefined ? ` (default ${JSON.stringify(def)})` : "";
      return `  --${flagName(k).padEnd(18)} ${s.description ?? ""}${d}`;
    })
    .join("\n");
}
