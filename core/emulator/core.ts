// Emulator state shared by the HTTP app and the in-process controls:
// environments, credentials, the work queue, sessions, faults, counters.
import { ScenarioBrain } from "./scenario-brain.ts";
import type { BrainFactory } from "./brain.ts";
import { badRequest, forbidden, notFound, unauthorized } from "./errors.ts";
import { MessagesBrain } from "./messages-brain.ts";
import { parseScenario, type ParsedScenario, type Scenario } from "./scenario.ts";
import { SessionStore } from "./session-store.ts";
import type { EmulatorStats, EventDraft, FaultRoute, Faults, UserMessageSender, WorkObject } from "./types.ts";
import { base64UrlEncode, isObject, newId, newSecret, nowStamp, sleep } from "./util.ts";
import { WorkQueue } from "./work-queue.ts";

export interface EmulatorOptions {
  /** Default "sk-ant-emu-admin"; accepted as Bearer or x-api-key. */
  apiKey?: string;
  /** Created at start; default one environment "env_emulator" with key "sk-ant-env-emulator". */
  environments?: Array<{ id?: string; name?: string; key?: string }>;
  /** Lease TTL: what heartbeat returns as ttl_seconds and enforces. Default 300. */
  leaseTtlSeconds?: number;
  /** SSE keepalive interval. Default 15000. */
  pingIntervalMs?: number;
  /** Default brain script for sessions created without one. */
  scenario?: Scenario;
  /** Named scenarios, as if passed to registerScenario. */
  scenarios?: Record<string, Scenario>;
  /** "messages" drives turns with the real Messages API (needs anthropicApiKey). Default "scenario". */
  brain?: "scenario" | "messages";
  anthropicApiKey?: string;
  /** Messages API endpoint for the "messages" brain (default: the SDK's). */
  anthropicBaseUrl?: string;
  /** Model for the "messages" brain. */
  model?: string;
  /** When set, put api_base_url in the secret payload. */
  publicBaseUrl?: string;
  log?: (line: Record<string, unknown>) => void;
  /**
   * Timing probe (benchmarks): called synchronously when an `agent.tool_use` has been written to
   * the session's live streams, and when a `user.tool_result` is received (before it is stored).
   * `at` is `performance.now()`.
   */
  observe?: (e: ObserveEvent) => void;
}

export interface ObserveEvent {
  sessionId: string;
  kind: "tool_use_written" | "result_received";
  toolUseId: string;
  /** performance.now() */
  at: number;
  /** Live streams the event was written to (tool_use_written only). */
  streams?: number;
}

export type Principal =
  | { kind: "api" }
  | { kind: "env"; envId: string }
  | { kind: "token"; workId: string; sessionId: string; envId: string };

export interface EnvironmentRecord {
  env: {
    id: string;
    type: "environment";
    name: string;
    description: string | null;
    config: Record<string, unknown>;
    metadata: Record<string, string>;
    scope: "organization" | "account";
    created_at: string;
    updated_at: string;
    archived_at: string | null;
  };
  key: string;
  deleted: boolean;
}

export interface CreateSessionArgs {
  environmentId: string;
  agent?: unknown;
  title?: string | null;
  metadata?: Record<string, string>;
  /** Parsed scenario; undefined = the emulator default; null = no brain script. */
  scenario?: ParsedScenario | null;
  initialEvents?: EventDraft[];
  initialSender?: UserMessageSender;
}

const DEFAULT_API_KEY = "sk-ant-emu-admin";
const DEFAULT_ENV = { id: "env_emulator", name: "emulator", key: "sk-ant-env-emulator" };

export class EmulatorCore {
  readonly apiKey: string;
  readonly pingIntervalMs: number;
  readonly leaseTtlSeconds: number;
  readonly publicBaseUrl: string | undefined;
  readonly queue: WorkQueue;
  readonly sessions: SessionStore;
  readonly envs = new Map<string, EnvironmentRecord>();
  readonly envKeys = new Map<string, string>();
  readonly tokens = new Map<string, { workId: string; sessionId: string; envId: string }>();
  readonly scenarios = new Map<string, ParsedScenario>();
  readonly defaultScenario: ParsedScenario | null;
  readonly brainKind: "scenario" | "messages";
  readonly anthropicApiKey: string | undefined;
  readonly model: string | undefined;
  readonly anthropicBaseUrl: string | undefined;
  readonly #log: (line: Record<string, unknown>) => void;
  faults: Faults = {};
  /** Sends still to fail under failSends.count. */
  failSendsLeft = 0;
  readonly requests: Record<string, number> = {};
  streamsOpen = 0;
  streamsOpened = 0;
  pollsInFlight = 0;
  pollsInFlightPeak = 0;
  sendsFailedByFault = 0;
  streamsDroppedByFault = 0;
  closed = false;
  /** Aborted on close(): ends long polls, open streams and waits. */
  readonly shutdown = new AbortController();

  constructor(opts: EmulatorOptions) {
    this.apiKey = opts.apiKey ?? DEFAULT_API_KEY;
    this.pingIntervalMs = opts.pingIntervalMs ?? 15_000;
    this.leaseTtlSeconds = opts.leaseTtlSeconds ?? 300;
    this.publicBaseUrl = opts.publicBaseUrl;
    this.brainKind = opts.brain ?? "scenario";
    this.anthropicApiKey = opts.anthropicApiKey;
    this.model = opts.model;
    this.anthropicBaseUrl = opts.anthropicBaseUrl;
    if (this.brainKind === "messages" && !this.anthropicApiKey) {
      throw new Error('createEmulator: brain "messages" needs anthropicApiKey');
    }
    const userLog = opts.log;
    this.#log = (line) => {
      if (userLog) userLog({ time: new Date().toISOString(), component: "emulator", ...line });
    };
    this.defaultScenario = opts.scenario ? parseScenario(opts.scenario) : null;
    for (const [name, s] of Object.entries(opts.scenarios ?? {})) this.scenarios.set(name, parseScenario(s));
    this.queue = new WorkQueue(this.leaseTtlSeconds, {
      issueSecret: (work) => this.#issueSecret(work),
      log: this.#log,
    });
    this.sessions = new SessionStore({
      hasLiveWork: (sid) => this.queue.hasLiveWork(sid),
      workIds: (sid) => this.queue.idsForSession(sid),
      onUserMessageWithoutWork: (sid, envId) => {
        if (this.envs.get(envId)?.deleted === false) this.queue.enqueue(envId, { type: "session", id: sid });
      },
      log: this.#log,
      ...(opts.observe ? { observe: opts.observe } : {}),
    });
    const envs = opts.environments ?? [DEFAULT_ENV];
    for (const e of envs) this.createEnvironment({ id: e.id, name: e.name, key: e.key });
  }

  log(line: Record<string, unknown>): void {
    this.#log(line);
  }

  // ----- credentials -----

  #issueSecret(work: WorkObject): string {
    const token = newSecret("sk-ant-req-");
    this.tokens.set(token, { workId: work.id, sessionId: work.data.id, envId: work.environment_id });
    const payload: Record<string, string> = { sessions_token: token };
    if (this.publicBaseUrl) payload["api_base_url"] = this.publicBaseUrl;
    return base64UrlEncode(new TextEncoder().encode(JSON.stringify(payload)));
  }

  /** Classify the request's credential; 401 when missing or unknown. */
  authenticate(req: Request): Principal {
    const auth = req.headers.get("authorization");
    let token: string | null = null;
    if (auth) {
      const m = /^Bearer\s+(.+)$/i.exec(auth.trim());
      token = m ? m[1]!.trim() : null;
    }
    token ??= req.headers.get("x-api-key")?.trim() || null;
    if (!token) throw unauthorized("missing credentials: send Authorization: Bearer <key> or x-api-key");
    if (token === this.apiKey) return { kind: "api" };
    const envId = this.envKeys.get(token);
    if (envId !== undefined && this.envs.get(envId)?.deleted === false) return { kind: "env", envId };
    const scope = this.tokens.get(token);
    if (scope) return { kind: "token", ...scope };
    throw unauthorized("invalid credentials");
  }

  // ----- environments -----

  createEnvironment(p: {
    id?: string | undefined;
    name?: string | undefined;
    key?: string | undefined;
    description?: string | null;
    metadata?: Record<string, string>;
    config?: Record<string, unknown>;
  }): EnvironmentRecord {
    const id = p.id ?? newId("env");
    if (this.envs.has(id)) throw badRequest(`environment ${id} already exists`);
    const now = nowStamp();
    const rec: EnvironmentRecord = {
      env: {
        id,
        type: "environment",
        name: p.name ?? id,
        description: p.description ?? null,
        config: p.config ?? { type: "self_hosted" },
        metadata: { ...(p.metadata ?? {}) },
        scope: "organization",
        created_at: now,
        updated_at: now,
        archived_at: null,
      },
      key: p.key ?? newSecret("sk-ant-env-"),
      deleted: false,
    };
    this.envs.set(id, rec);
    this.envKeys.set(rec.key, id);
    return rec;
  }

  environment(id: string): EnvironmentRecord {
    const rec = this.envs.get(id);
    if (!rec || rec.deleted) throw notFound(`environment ${id} not found`);
    return rec;
  }

  // ----- authorisation helpers (spec §1 acceptance table) -----

  requireApi(p: Principal, what: string): void {
    if (p.kind !== "api") throw forbidden(`${what} requires an API key`);
  }

  /** The environment key of `envId`, only. */
  requireEnvKey(p: Principal, envId: string, what: string): void {
    if (p.kind !== "env") throw forbidden(`${what} requires the environment key`);
    if (p.envId !== envId) throw forbidden(`this environment key does not belong to ${envId}`);
  }

  /** A per-item credential for `workId`: its sessions token, or the environment key. */
  requireItem(p: Principal, envId: string, workId: string, what: string, allowApi = false): void {
    if (p.kind === "api" && allowApi) return;
    if (p.kind === "env" && p.envId === envId) return;
    if (p.kind === "token" && p.workId === workId && p.envId === envId) return;
    if (p.kind === "token") throw forbidden(`this sessions token is not scoped to work item ${workId}`);
    if (p.kind === "env") throw forbidden(`this environment key does not belong to ${envId}`);
    throw forbidden(`${what} requires the environment key or the work item's sessions token`);
  }

  /** API key, a sessions token of that session, or the key of the session's environment. */
  requireSession(p: Principal, sessionId: string): void {
    if (p.kind === "api") return;
    if (p.kind === "token") {
      if (p.sessionId !== sessionId) throw forbidden(`this sessions token is not scoped to session ${sessionId}`);
      return;
    }
    const envId = this.sessions.environmentOf(sessionId);
    if (envId !== undefined && p.envId !== envId) throw forbidden(`this environment key does not belong to the session's environment`);
  }

  // ----- scenarios and sessions -----

  resolveScenario(s: Scenario | string | undefined | null): ParsedScenario | null | undefined {
    if (s === undefined || s === null) return undefined;
    if (typeof s === "string") {
      const found = this.scenarios.get(s);
      if (!found) throw badRequest(`unknown scenario ${JSON.stringify(s)}`);
      return found;
    }
    if (!isObject(s)) throw badRequest("scenario must be a name or a scenario object");
    try {
      return parseScenario(s);
    } catch (e) {
      throw badRequest(String(e instanceof Error ? e.message : e));
    }
  }

  #brainFor(scenario: ParsedScenario | null): BrainFactory | null {
    if (this.brainKind === "messages" && !scenario) {
      const apiKey = this.anthropicApiKey!;
      const model = this.model;
      const baseURL = this.anthropicBaseUrl;
      return (host) => new MessagesBrain(host, { apiKey, ...(model ? { model } : {}), ...(baseURL ? { baseURL } : {}) });
    }
    if (!scenario) return null;
    return (host) => new ScenarioBrain(host, scenario);
  }

  createSession(a: CreateSessionArgs): Record<string, unknown> {
    const env = this.environment(a.environmentId);
    if (env.env.archived_at !== null) throw badRequest(`environment ${a.environmentId} is archived`, "environment_archived");
    const scenario = a.scenario === undefined ? this.defaultScenario : a.scenario;
    const session = this.sessions.create({
      environmentId: a.environmentId,
      agent: a.agent,
      title: a.title ?? null,
      metadata: a.metadata ?? {},
      scenario,
      brain: this.#brainFor(scenario),
    });
    const id = String(session["id"]);
    // One work item per session activation, enqueued at creation.
    this.queue.enqueue(a.environmentId, { type: "session", id });
    for (const ev of a.initialEvents ?? []) this.sessions.append(id, ev, a.initialSender ?? "initial");
    this.log({ msg: "session created", session_id: id, environment_id: a.environmentId, scenario: scenario?.name ?? null });
    return this.sessions.get(id);
  }

  // ----- faults and counters -----

  setFaults(f: Faults): void {
    this.faults = structuredClone(f);
    this.failSendsLeft = f.failSends?.count ?? 0;
  }

  /** Count a request and apply its configured delay. */
  async enter(route: string): Promise<void> {
    this.requests[route] = (this.requests[route] ?? 0) + 1;
    const ms = this.faults.delayMs?.[route as FaultRoute];
    // No shutdown signal here: a listener per delayed request on one shared signal adds up.
    if (ms && ms > 0) await sleep(ms);
  }

  /** Whether this send should fail by fault; returns the status or null. */
  sendFault(): number | null {
    const f = this.faults.failSends;
    if (!f) return null;
    if (this.failSendsLeft > 0) {
      this.failSendsLeft--;
      this.sendsFailedByFault++;
      return f.status;
    }
    if (f.rate !== undefined && f.rate > 0 && Math.random() < f.rate) {
      this.sendsFailedByFault++;
      return f.status;
    }
    return null;
  }

  stats(): EmulatorStats {
    return {
      requests: { ...this.requests },
      streamsOpen: this.streamsOpen,
      streamsOpened: this.streamsOpened,
      pollsInFlightPeak: this.pollsInFlightPeak,
      deliveries: this.queue.deliveries,
      leaseLapses: this.queue.leaseLapses,
      sendsFailedByFault: this.sendsFailedByFault,
      streamsDroppedByFault: this.streamsDroppedByFault,
    };
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.shutdown.abort();
    this.queue.close();
    this.sessions.close();
  }
}
