/**
 * The `deft` command line, runtime-neutral: each runtime's entry point builds a {@link CliHost}
 * and calls {@link runCli}. Commands: dev, worker, emulator, tools, policy.
 */
import { customToolDeclaration, type Tool } from "./router/mod.ts";
import { BOOLEAN_FIELDS, ConfigError, describeOptions, FIELD_BY_FLAG, loadConfig, type Config } from "./config.ts";
import { createEmulator, parseScenario, type Scenario } from "./emulator/mod.ts";
import { createLogger, type Logger } from "./log.ts";
import type { CliHost } from "./runtime.ts";
import { transcriptHooks } from "./transcript.ts";
import { EnvironmentWorker, WorkerFatalError, type WorkerHooks } from "./worker/mod.ts";
import { demoCustomTools, demoScenario } from "./demo.ts";
import { createProvisioner, type Provisioner } from "./provision.ts";
import { runPolicyCommand } from "./policy/check-command.ts";
import { loadEgress } from "./egress.ts";
import { openWorkerState } from "./worker-state.ts";
import { pruneWorkspaceBlobs } from "./state/workspace-store.ts";
import type { Ledger } from "./session/ledger.ts";

export const VERSION = "0.1.0";

const USAGE = `deft ${VERSION}: the hands of Claude Managed Agents

Usage: deft <command> [options]

Commands:
  dev        Start the local emulator, a worker and a demo session; print a live transcript.
             Needs no API key. Exits 0 when the demo's checks all pass.
  worker     Serve a self-hosted environment: needs ANTHROPIC_ENVIRONMENT_ID and
             ANTHROPIC_ENVIRONMENT_KEY (ANTHROPIC_BASE_URL points it at any endpoint
             that speaks the contract). SIGINT/SIGTERM drain in-flight tools, then exit.
  emulator   Serve the local emulator of the Managed Agents API on --emulator-port.
  tools      List the tools this worker answers; --json prints the agent's \`tools\` array.
  sessions   The sessions this state store has seen, most recent first; sessions SESSION_ID:
             its work items and every tool it ran with timings. --json for JSON.
  prune      Maintenance: remove sessions not seen for --retention-days, then workspace
             chunks no session names (deleted on the second run an hour or more apart).
             Run it where no worker is saving, e.g. from cron on a host that serves none.
  audit      audit SESSION_ID: the egress audit records of one session (from --state-dir),
             one line each; --json prints them as JSON lines.
  policy     policy check FILE: validate an egress policy file and show what it allows;
             --url URL prints the decision for a sample request (deft policy --help).

Options (flag, environment variable, or a key of the --config JSON file; flags win):
  --config FILE        a JSON file of the options below (camelCase keys)
${describeOptions()}
  -h, --help           this help
  -v, --version        print the version`;

interface Parsed {
  command: string | undefined;
  flags: Partial<Record<keyof Config, string | boolean>>;
  configFile?: string;
  json: boolean;
  help: boolean;
  /** Positional arguments after the command (`deft audit SESSION`). */
  rest: string[];
  version: boolean;
}

/** Parse argv into a command and flags. Throws ConfigError on an unknown flag. */
export function parseArgs(args: string[]): Parsed {
  const out: Parsed = { command: undefined, flags: {}, json: false, help: false, version: false, rest: [] };
  for (let i = 0; i < args.length; i++) {
    const a = args[i]!;
    if (a === "-h" || a === "--help") out.help = true;
    else if (a === "-v" || a === "--version") out.version = true;
    else if (a === "--json") out.json = true;
    else if (a.startsWith("--")) {
      const eq = a.indexOf("=");
      const name = a.slice(2, eq < 0 ? undefined : eq);
      const inline = eq < 0 ? undefined : a.slice(eq + 1);
      if (name === "config") {
        out.configFile = inline ?? args[++i];
        if (!out.configFile) throw new ConfigError("--config needs a file name");
        continue;
      }
      const field = FIELD_BY_FLAG[name];
      if (!field) throw new ConfigError(`unknown option --${name} (see deft --help)`);
      if (BOOLEAN_FIELDS.has(field)) {
        out.flags[field] = inline === undefined ? true : inline === "true" || inline === "1";
        continue;
      }
      const value = inline ?? args[++i];
      if (value === undefined) throw new ConfigError(`--${name} needs a value`);
      out.flags[field] = value;
    } else if (!out.command) out.command = a;
    else if (out.command === "audit" || out.command === "sessions") out.rest.push(a);
    else throw new ConfigError(`unexpected argument ${JSON.stringify(a)} (see deft --help)`);
  }
  return out;
}

/** Run the CLI; resolves to the process exit code. */
export async function runCli(host: CliHost): Promise<number> {
  // `deft policy ...` has its own arguments (core/policy/check-command.ts).
  if (host.args[0] === "policy") return runPolicyCommand(host, host.args.slice(1));
  let parsed: Parsed;
  let config: Config;
  try {
    parsed = parseArgs(host.args);
    if (parsed.version) {
      host.stdout(`deft ${VERSION} (${host.runtime.name})`);
      return 0;
    }
    if (parsed.help || !parsed.command) {
      host.stdout(USAGE);
      return parsed.command || parsed.help ? 0 : 2;
    }
    let file: unknown;
    if (parsed.configFile) {
      const text = await host.readTextFile(parsed.configFile).catch((e) => {
        throw new ConfigError(`cannot read --config ${parsed.configFile}: ${e instanceof Error ? e.message : e}`);
      });
      try {
        file = JSON.parse(text);
      } catch (e) {
        throw new ConfigError(`--config ${parsed.configFile} is not valid JSON: ${(e as Error).message}`);
      }
    }
    config = loadConfig({ file, fileName: parsed.configFile, env: host.env, flags: parsed.flags });
  } catch (err) {
    if (err instanceof ConfigError) {
      host.stderr(`deft: ${err.message}`);
      return 2;
    }
    throw err;
  }
  try {
    switch (parsed.command) {
      case "dev":
        return await cmdDev(host, config);
      case "worker":
        return await cmdWorker(host, config);
      case "emulator":
        return await cmdEmulator(host, config);
      case "tools":
        return await cmdTools(host, config, parsed.json);
      case "audit":
        return await cmdAudit(host, config, parsed.rest, parsed.json);
      case "sessions":
        return await cmdSessions(host, config, parsed.rest, parsed.json);
      case "prune":
        return await cmdPrune(host, config);
      default:
        host.stderr(`deft: unknown command ${JSON.stringify(parsed.command)} (see deft --help)`);
        return 2;
    }
  } catch (err) {
    if (err instanceof ConfigError || err instanceof WorkerFatalError) {
      host.stderr(`deft: ${err.message}`);
      return err instanceof ConfigError ? 2 : 1;
    }
    throw err;
  }
}

function makeLogger(host: CliHost, config: Config, pretty = config.logFormat === "pretty"): Logger {
  return createLogger({
    level: config.logLevel,
    write: pretty
      ? (line) => {
          const r = JSON.parse(line) as Record<string, unknown>;
          const { time: _t, level, msg, ...rest } = r;
          const extra = Object.keys(rest).length ? ` ${JSON.stringify(rest)}` : "";
          host.stderr(`  [${level}] ${msg}${extra}`);
        }
      : (line) => host.stderr(line),
  });
}

async function loadCustomTools(host: CliHost, config: Config): Promise<Tool[]> {
  if (!config.customTools) return [];
  let mod: Record<string, unknown>;
  try {
    mod = await host.importModule(config.customTools);
  } catch (e) {
    throw new ConfigError(`customTools: cannot import ${config.customTools}: ${e instanceof Error ? e.message : e}`);
  }
  const tools = Object.values(mod).flatMap((v) => (Array.isArray(v) ? v : [v])).filter(isTool);
  if (!tools.length) throw new ConfigError(`customTools: ${config.customTools} exports no defineTool() values`);
  return tools;
}

function isTool(v: unknown): v is Tool {
  return !!v && typeof v === "object" && typeof (v as Tool).name === "string" && typeof (v as Tool).run === "function" && typeof (v as Tool).inputSchema === "function";
}

function startWorker(host: CliHost, config: Config, provisioner: Provisioner, log: Logger, ledger: Ledger, hooks?: WorkerHooks, overrides: { baseURL?: string; environmentId?: string; environmentKey?: string } = {}) {
  const environmentId = overrides.environmentId ?? config.environmentId;
  const environmentKey = overrides.environmentKey ?? config.environmentKey;
  const missing = [!environmentId && "ANTHROPIC_ENVIRONMENT_ID", !environmentKey && "ANTHROPIC_ENVIRONMENT_KEY"].filter(Boolean);
  if (missing.length) {
    throw new ConfigError(`deft worker needs ${missing.join(" and ")} (the self-hosted environment's id and key; create them in the Claude Console)`);
  }
  return new EnvironmentWorker({
    environmentId: environmentId!,
    environmentKey: environmentKey!,
    baseURL: overrides.baseURL ?? config.baseURL,
    workerId: config.workerId,
    maxSessions: config.maxSessions,
    maxIdleMs: config.maxIdleMs,
    toolTimeoutMs: config.toolTimeoutMs,
    drainTimeoutMs: config.drainTimeoutMs,
    ...(host.runtime.fetch ? { fetch: host.runtime.fetch } : {}),
    ledger,
    log,
    hooks,
    provision: ({ sessionId, mcpServerHosts, log }) => provisioner.provision({ sessionId, mcpServerHosts, log }),
  });
}

async function cmdWorker(host: CliHost, config: Config): Promise<number> {
  const log = makeLogger(host, config);
  const custom = await loadCustomTools(host, config);
  const hooks = config.logFormat === "pretty" ? transcriptHooks(host.stderr) : undefined;
  const state = await openWorkerState(host.runtime, config, log);
  try {
    const egress = await loadEgress(host, config, state.audit);
    log.info("egress policy loaded", { policy: config.policy ?? "(none: every request refused)", mode: egress.policy.policy.mode });
    const provisioner = createProvisioner(host.runtime, config, custom, { egress, ...(config.persistWorkspace ? { state: state.stores } : {}) });
    const workerId = config.workerId ?? `deft-${crypto.randomUUID()}`;
    const worker = startWorker(host, { ...config, workerId }, provisioner, log, state.ledger, state.recordingHooks(workerId, log, hooks));
    const off = host.onSignal((sig) => {
      log.info("signal received; shutting down", { signal: sig });
      void worker.shutdown();
    });
    try {
      await worker.run();
      return 0;
    } finally {
      off();
      await provisioner.close();
    }
  } finally {
    await state.close();
  }
}

async function loadScenario(host: CliHost, config: Config, custom: boolean): Promise<Scenario> {
  if (!config.scenario) return demoScenario({ custom });
  const text = await host.readTextFile(config.scenario).catch((e) => {
    throw new ConfigError(`scenario: cannot read ${config.scenario}: ${e instanceof Error ? e.message : e}`);
  });
  try {
    return parseScenario(JSON.parse(text));
  } catch (e) {
    throw new ConfigError(`scenario ${config.scenario}: ${e instanceof Error ? e.message : e}`);
  }
}

async function cmdEmulator(host: CliHost, config: Config): Promise<number> {
  const scenario = await loadScenario(host, config, false);
  // With an API key the brain is the real Messages API; a --scenario still wins for its sessions.
  const apiKey = host.env.ANTHROPIC_API_KEY;
  const emulator = createEmulator(apiKey ? { brain: "messages", anthropicApiKey: apiKey, ...(config.scenario ? { scenario } : {}) } : { scenario });
  const served = await host.runtime.serve(emulator.fetch, { port: config.emulatorPort, hostname: config.emulatorHost });
  const env = emulator.environments[0]!;
  host.stdout(`Deft emulator listening on ${served.url} (brain: ${apiKey ? "Messages API" : `scenario "${scenario.name}"`})`);
  host.stdout(`  serve it: ANTHROPIC_BASE_URL=${served.url} ANTHROPIC_ENVIRONMENT_ID=${env.id} ANTHROPIC_ENVIRONMENT_KEY=${env.key} node bin/deft.mjs worker`);
  host.stdout(`  create a session: POST ${served.url}/_emulator/sessions (or POST /v1/sessions with the API key sk-ant-emu-admin)`);
  await new Promise<void>((resolve) => {
    const off = host.onSignal(() => {
      off();
      resolve();
    });
  });
  emulator.close();
  await served.close();
  return 0;
}

async function cmdDev(host: CliHost, config: Config): Promise<number> {
  const scenario = await loadScenario(host, config, true);
  let label = "";
  const custom = [...demoCustomTools(host.runtime.name, () => label), ...(await loadCustomTools(host, config))];
  const emulator = createEmulator({ scenario });
  const served = await host.runtime.serve(emulator.fetch, { port: 0, hostname: "127.0.0.1" });
  const env = emulator.environments[0]!;
  const print = host.stdout;
  print(`deft dev on ${host.runtime.name}: emulator at ${served.url}, environment ${env.id}`);
  const state = await openWorkerState(host.runtime, config);
  const provisioner = createProvisioner(host.runtime, config, custom, { egress: await loadEgress(host, config, state.audit), ...(config.persistWorkspace ? { state: state.stores } : {}) });
  label = provisioner.label;
  print(`scenario "${scenario.name}"; tools run in: ${provisioner.label}`);
  print("");
  // The transcript is the output here; logs only for warnings.
  const log = makeLogger(host, { ...config, logLevel: config.logLevel === "info" ? "warn" : config.logLevel }, true);
  const workerId = config.workerId ?? `deft-${crypto.randomUUID()}`;
  const worker = startWorker(host, { ...config, workerId, maxIdleMs: Math.min(config.maxIdleMs, 2_000) }, provisioner, log, state.ledger, state.recordingHooks(workerId, log, transcriptHooks(print)), {
    baseURL: served.url,
    environmentId: env.id,
    environmentKey: env.key,
  });
  const running = worker.run();
  const off = host.onSignal(() => void worker.shutdown(2_000));
  try {
    const sessionId = String(emulator.control.createSession({ scenario }).id);
    const report = await Promise.race([
      emulator.control.waitFor(sessionId, (r) => r.scenarioDone, 120_000),
      running.then(() => {
        throw new Error("the worker stopped before the demo finished");
      }),
    ]);
    // Let the worker notice the end and release the item before shutting down.
    await emulator.control.waitFor(sessionId, (r) => r.status === "terminated", 10_000).catch(() => {});
    await worker.shutdown(5_000);
    const calls = report.toolUses.length;
    const once = report.toolUses.filter((t) => t.results === 1).length;
    print("");
    if (report.checksFailed.length) {
      print(`demo finished with ${report.checksFailed.length} failed check(s):`);
      for (const c of report.checksFailed) print(`  - ${c}`);
      return 1;
    }
    print(`demo passed: ${calls} tool calls, ${once} answered exactly once, every check held.`);
    return once === calls ? 0 : 1;
  } finally {
    off();
    await worker.shutdown(1_000);
    await provisioner.close();
    await state.close();
    emulator.close();
    await served.close();
  }
}

async function cmdTools(host: CliHost, config: Config, json: boolean): Promise<number> {
  const custom = await loadCustomTools(host, config);
  const provisioner = createProvisioner(host.runtime, config, custom, { warm: false, egress: await loadEgress(host, config) });
  const { router } = await provisioner.provision({ sessionId: "tools" });
  await provisioner.close();
  if (json) {
    const tools = [{ type: "agent_toolset_20260401" }, ...router.customTools.map(customToolDeclaration)];
    host.stdout(JSON.stringify(tools, null, 2));
    return 0;
  }
  host.stdout("Builtin (answer agent.tool_use):");
  for (const t of router.builtinTools) host.stdout(`  ${t.name.padEnd(10)} ${t.description}`);
  host.stdout(router.customTools.length ? "Custom (answer agent.custom_tool_use; declare them on the agent):" : "Custom: none (set --custom-tools MODULE)");
  for (const t of router.customTools) host.stdout(`  ${t.name.padEnd(10)} ${t.description}`);
  return 0;
}

async function cmdAudit(host: CliHost, config: Config, rest: string[], json: boolean): Promise<number> {
  const sessionId = rest[0];
  if (!sessionId || rest.length > 1) {
    host.stderr("deft: usage: deft audit SESSION_ID [--json] [--state-dir DIR]");
    return 2;
  }
  const state = await openWorkerState(host.runtime, { ...config, retentionDays: 0 });
  const records = await state.audit.query({ sessionId }).finally(() => state.close());
  for (const r of records) {
    if (json) host.stdout(JSON.stringify(r));
    else
      host.stdout(
        `${r.time} ${r.decision.padEnd(11)} ${r.method} ${r.via === "connect" ? `${r.host}:${r.port}` : `${r.host}${r.port === 80 || r.port === 443 ? "" : `:${r.port}`}${r.path}`}` +
          ` rule=${r.rule}${r.status ? ` status=${r.status}` : ""} out=${r.bytesOut} in=${r.bytesIn} ${r.durationMs}ms` +
          `${r.toolUseId ? ` tool=${r.toolUseId}` : ""}${r.credentials.length ? ` credentials=${r.credentials.join(",")}` : ""}${r.redactions ? ` redacted=${r.redactions}` : ""}` +
          `${r.decision !== "allow" ? ` reason=${JSON.stringify(r.reason)}` : ""}${r.error ? ` error=${JSON.stringify(r.error)}` : ""}`,
      );
  }
  if (!records.length) host.stderr(`deft: no audit records for ${sessionId} in the state store under ${config.stateDir}/state`);
  return 0;
}

async function cmdSessions(host: CliHost, config: Config, rest: string[], json: boolean): Promise<number> {
  if (rest.length > 1) {
    host.stderr("deft: usage: deft sessions [SESSION_ID] [--json] [--state-dir DIR]");
    return 2;
  }
  const state = await openWorkerState(host.runtime, { ...config, retentionDays: 0 });
  try {
    const id = rest[0];
    if (!id) {
      const all = await state.records.sessions();
      if (json) host.stdout(JSON.stringify(all, null, 2));
      else for (const s of all) {
        const last = s.workItems.at(-1);
        host.stdout(`${s.sessionId}  last seen ${s.lastSeen}  work items ${s.workItems.length}${last?.end ? `  last: ${last.end}` : ""}`);
      }
      if (!all.length) host.stderr(`deft: no sessions in the state store under ${config.stateDir}/state`);
      return 0;
    }
    const summary = await state.records.summary(id);
    if (!summary) {
      host.stderr(`deft: no records of ${id} in the state store under ${config.stateDir}/state`);
      return 1;
    }
    const tools = await state.records.tools(id);
    const audit = await state.audit.query({ sessionId: id });
    const head = await state.stores.store.get(["workspace", id]);
    if (json) {
      host.stdout(JSON.stringify({ ...summary, tools, egressRequests: audit.length, workspace: head?.value ?? null }, null, 2));
      return 0;
    }
    host.stdout(`${summary.sessionId}: first seen ${summary.firstSeen}, last seen ${summary.lastSeen}`);
    for (const w of summary.workItems) host.stdout(`  work ${w.workId} on ${w.workerId}: ${w.claimedAt} → ${w.endedAt ?? "(open)"}${w.end ? ` ${w.end}` : ""}`);
    host.stdout(`  ${tools.length} tool call(s):`);
    for (const t of tools) host.stdout(`    ${t.at} ${t.name}${t.kind === "custom" ? " (custom)" : ""} ${t.ms} ms${t.isError ? " error" : ""}${t.replayed ? " replayed" : ""}  ${t.toolUseId}`);
    host.stdout(`  ${audit.length} egress request(s) (deft audit ${id})`);
    if (head) host.stdout(`  workspace snapshot: ${JSON.stringify(head.value)}`);
    return 0;
  } finally {
    await state.close();
  }
}

async function cmdPrune(host: CliHost, config: Config): Promise<number> {
  const state = await openWorkerState(host.runtime, { ...config, retentionDays: 0 });
  try {
    const sessions = config.retentionDays ? await state.records.prune(config.retentionDays * 86_400_000) : [];
    host.stdout(`sessions removed (not seen for ${config.retentionDays} days): ${sessions.length}`);
    const r = await pruneWorkspaceBlobs({ store: state.stores.store, blobs: state.stores.blobs });
    host.stdout(
      `workspace blobs: ${r.heads} heads name ${r.referenced}; ${r.unreferenced} named by none: deleted ${r.deletedChunks} chunks and ${r.deletedManifests} manifests, ${r.waiting} wait for the next run`,
    );
    return 0;
  } finally {
    await state.close();
  }
}
