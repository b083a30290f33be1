// Sessions, their event logs, live subscribers, and the per-session report.
import type { Brain, BrainFactory, BrainHost } from "./brain.ts";
import type { ObserveEvent } from "./core.ts";
import { badRequest, notFound } from "./errors.ts";
import { resultText, type ParsedScenario } from "./scenario.ts";
import type { EventDraft, SessionEvent, SessionReport, ToolUseReport, UserMessageSender } from "./types.ts";
import { isObject, newId, nowStamp } from "./util.ts";

export interface Subscriber {
  send(ev: SessionEvent): void;
  close(): void;
}

export type SessionStatus = "idle" | "running" | "rescheduling" | "terminated";

interface SessionRecord {
  session: Record<string, unknown> & { id: string; environment_id: string; status: SessionStatus };
  events: SessionEvent[];
  subscribers: Set<Subscriber>;
  toolUses: Map<string, ToolUseReport>;
  userMessages: SessionReport["userMessages"];
  checksFailed: string[];
  scenarioDone: boolean;
  deleted: boolean;
  brain: Brain | null;
  brainQueue: SessionEvent[];
  brainRunning: boolean;
}

export interface SessionStoreHooks {
  /** A user.message reached a session with no live work item. */
  onUserMessageWithoutWork(sessionId: string, environmentId: string): void;
  hasLiveWork(sessionId: string): boolean;
  workIds(sessionId: string): string[];
  log(line: Record<string, unknown>): void;
  /** Timing probe, see EmulatorOptions.observe. */
  observe?(e: ObserveEvent): void;
}

export interface CreateSessionParams {
  environmentId: string;
  agent?: unknown;
  title?: string | null;
  metadata?: Record<string, string>;
  scenario?: ParsedScenario | null;
  brain?: BrainFactory | null;
}

const SENDABLE = new Set([
  "user.message",
  "user.interrupt",
  "user.tool_confirmation",
  "user.custom_tool_result",
  "user.tool_result",
  "user.define_outcome",
  "system.message",
]);

const STATUS_BY_EVENT: Record<string, SessionStatus> = {
  "session.status_running": "running",
  "session.status_idle": "idle",
  "session.status_rescheduled": "rescheduling",
  "session.status_terminated": "terminated",
};

export const TOOLSET_NAMES = ["bash", "read", "write", "edit", "glob", "grep"] as const;

function buildAgent(agentParam: unknown, scenario: ParsedScenario | null | undefined): Record<string, unknown> {
  let id = "agent_emulator";
  let version = 1;
  if (typeof agentParam === "string" && agentParam) id = agentParam;
  else if (isObject(agentParam)) {
    if (typeof agentParam["id"] === "string") id = agentParam["id"];
    if (typeof agentParam["version"] === "number") version = agentParam["version"];
  }
  const askNames = new Set<string>();
  for (const t of scenario?.turns ?? []) for (const s of t.steps) for (const c of s.calls) if (c.permission === "ask") askNames.add(c.name);
  return {
    id,
    type: "agent",
    version,
    name: scenario ? `emulator: ${scenario.name}` : "emulator agent",
    description: scenario?.description ?? null,
    system: null,
    model: { id: "claude-sonnet-4-5" },
    tools: [
      {
        type: "agent_toolset_20260401",
        default_config: { enabled: true, permission_policy: { type: "always_allow" } },
        configs: [...askNames].map((name) => ({ name, enabled: true, permission_policy: { type: "always_ask" } })),
      },
      ...(scenario?.custom_tools ?? []).map((t) => ({
        type: "custom",
        name: t.name,
        description: t.description,
        input_schema: t.input_schema,
      })),
    ],
    mcp_servers: [],
    skills: [],
    multiagent: null,
    execution_identity: { type: "service_account" },
  };
}

export class SessionStore {
  readonly #sessions = new Map<string, SessionRecord>();
  readonly #order: string[] = [];
  readonly #hooks: SessionStoreHooks;
  #closed = false;

  constructor(hooks: SessionStoreHooks) {
    this.#hooks = hooks;
  }

  #rec(id: string): SessionRecord {
    const r = this.#sessions.get(id);
    if (!r || r.deleted) throw notFound(`session ${id} not found`);
    return r;
  }

  exists(id: string): boolean {
    const r = this.#sessions.get(id);
    return !!r && !r.deleted;
  }

  environmentOf(id: string): string | undefined {
    return this.#sessions.get(id)?.session.environment_id;
  }

  create(p: CreateSessionParams): Record<string, unknown> {
    const now = nowStamp();
    const id = newId("sesn");
    const rec: SessionRecord = {
      session: {
        id,
        type: "session",
        environment_id: p.environmentId,
        status: "idle",
        agent: buildAgent(p.agent, p.scenario),
        resources: [],
        vault_ids: [],
        metadata: { ...(p.metadata ?? {}) },
        title: p.title ?? null,
        budget: null,
        usage: {},
        stats: {},
        outcome_evaluations: [],
        archived_at: null,
        created_at: now,
        updated_at: now,
      },
      events: [],
      subscribers: new Set(),
      toolUses: new Map(),
      userMessages: [],
      checksFailed: [],
      scenarioDone: false,
      deleted: false,
      brain: null,
      brainQueue: [],
      brainRunning: false,
    };
    this.#sessions.set(id, rec);
    this.#order.push(id);
    if (p.brain) rec.brain = p.brain(this.#host(rec));
    return this.get(id);
  }

  #host(rec: SessionRecord): BrainHost {
    return {
      sessionId: rec.session.id,
      emit: (draft) => this.append(rec.session.id, draft, "brain"),
      sendUserMessage: (text) =>
        this.append(rec.session.id, { type: "user.message", content: [{ type: "text", text }] }, "brain"),
      markDone: () => {
        rec.scenarioDone = true;
      },
      checkFailed: (why) => {
        rec.checksFailed.push(why);
        this.#hooks.log({ msg: "scenario check failed", session_id: rec.session.id, why });
      },
      log: (line) => this.#hooks.log(line),
    };
  }

  get(id: string): Record<string, unknown> {
    const r = this.#rec(id);
    return structuredClone(r.session);
  }

  list(): Array<Record<string, unknown>> {
    return this.#order.filter((id) => this.exists(id)).map((id) => this.get(id));
  }

  update(id: string, body: Record<string, unknown>): Record<string, unknown> {
    const r = this.#rec(id);
    if (typeof body["title"] === "string" || body["title"] === null) r.session["title"] = body["title"];
    if (isObject(body["metadata"])) {
      const m = { ...(r.session["metadata"] as Record<string, string>) };
      for (const [k, v] of Object.entries(body["metadata"])) {
        if (v === null) delete m[k];
        else if (typeof v === "string") m[k] = v;
        else throw badRequest(`metadata.${k} must be a string or null`);
      }
      r.session["metadata"] = m;
    }
    r.session["updated_at"] = nowStamp();
    return this.get(id);
  }

  archive(id: string): Record<string, unknown> {
    const r = this.#rec(id);
    if (r.session["archived_at"] === null) {
      r.session["archived_at"] = nowStamp();
      if (r.session.status !== "terminated") this.append(id, { type: "session.status_terminated" }, "api");
      r.session.status = "terminated";
    }
    return this.get(id);
  }

  delete(id: string): Record<string, unknown> {
    const r = this.#rec(id);
    this.append(id, { type: "session.deleted" }, "api");
    r.deleted = true;
    r.brain?.close?.();
    for (const s of [...r.subscribers]) s.close();
    r.subscribers.clear();
    return { id, type: "session_deleted" };
  }

  // ----- events -----

  /**
   * Validate a batch of client-sent event params (all or nothing) against the
   * session; throws 400 on the first bad one.
   */
  validateSend(id: string, events: unknown): Array<EventDraft> {
    const r = this.#rec(id);
    if (!Array.isArray(events) || events.length === 0) throw badRequest("events must be a non-empty array");
    if (events.length > 50) throw badRequest("at most 50 events per request");
    const out: EventDraft[] = [];
    events.forEach((raw, i) => {
      const where = `events[${i}]`;
      if (!isObject(raw) || typeof raw["type"] !== "string") throw badRequest(`${where}: type is required`);
      const type = raw["type"];
      if (!SENDABLE.has(type)) throw badRequest(`${where}: event type ${JSON.stringify(type)} cannot be sent`);
      const draft: EventDraft = { ...raw, type };
      delete draft["id"];
      delete draft["processed_at"];
      switch (type) {
        case "user.message":
          if (r.session.status === "terminated") throw badRequest(`${where}: session is terminated`);
          if (!Array.isArray(raw["content"]) || raw["content"].length === 0) {
            throw badRequest(`${where}.content must be a non-empty array of content blocks`);
          }
          break;
        case "user.tool_result":
          this.#checkResult(r, raw, where, "tool_use_id", "agent.tool_use");
          break;
        case "user.custom_tool_result":
          this.#checkResult(r, raw, where, "custom_tool_use_id", "agent.custom_tool_use");
          break;
        case "user.tool_confirmation": {
          const tid = raw["tool_use_id"];
          if (typeof tid !== "string" || r.toolUses.get(tid)?.kind !== "tool_use") {
            throw badRequest(`${where}.tool_use_id does not name an agent.tool_use event of this session`);
          }
          if (raw["result"] !== "allow" && raw["result"] !== "deny") throw badRequest(`${where}.result must be "allow" or "deny"`);
          break;
        }
        case "system.message":
          if (!Array.isArray(raw["content"])) throw badRequest(`${where}.content must be an array`);
          break;
        default:
          break;
      }
      out.push(draft);
    });
    return out;
  }

  #checkResult(r: SessionRecord, raw: Record<string, unknown>, where: string, idField: string, useType: string): void {
    const tid = raw[idField];
    const kind = useType === "agent.tool_use" ? "tool_use" : "custom_tool_use";
    if (typeof tid !== "string" || r.toolUses.get(tid)?.kind !== kind) {
      throw badRequest(`${where}.${idField} does not name an ${useType} event of this session`);
    }
    const content = raw["content"];
    if (content !== undefined && !Array.isArray(content)) throw badRequest(`${where}.content must be an array of content blocks`);
    if (raw["is_error"] !== undefined && typeof raw["is_error"] !== "boolean") throw badRequest(`${where}.is_error must be a boolean`);
    if (raw["is_error"] === true) {
      const ok =
        Array.isArray(content) &&
        content.length > 0 &&
        content.every((b) => isObject(b) && b["type"] === "text" && typeof b["text"] === "string") &&
        resultText(content).length > 0;
      if (!ok) throw badRequest(`${where}: an is_error result must have non-empty, text-only content`);
    }
  }

  /** Store an event, update state, publish it to live streams, hand it to the brain. */
  append(id: string, draft: EventDraft, sender: UserMessageSender = "api"): SessionEvent {
    const r = this.#rec(id);
    const observe = this.#hooks.observe;
    if (observe && draft.type === "user.tool_result") {
      observe({ sessionId: id, kind: "result_received", toolUseId: String(draft["tool_use_id"]), at: performance.now() });
    }
    const ev: SessionEvent = { ...draft, id: newId("sevt"), type: draft.type, processed_at: nowStamp() };
    r.events.push(ev);
    this.#track(r, ev, sender);
    for (const s of [...r.subscribers]) s.send(ev);
    if (observe && ev.type === "agent.tool_use") {
      observe({ sessionId: id, kind: "tool_use_written", toolUseId: ev.id, at: performance.now(), streams: r.subscribers.size });
    }
    if (r.brain && !this.#closed) {
      r.brainQueue.push(ev);
      this.#drainBrain(r);
    }
    if (ev.type === "user.message" && !this.#hooks.hasLiveWork(id)) {
      this.#hooks.onUserMessageWithoutWork(id, r.session.environment_id);
    }
    return ev;
  }

  #track(r: SessionRecord, ev: SessionEvent, sender: UserMessageSender): void {
    const status = STATUS_BY_EVENT[ev.type];
    if (status) {
      r.session.status = status;
      r.session["updated_at"] = ev.processed_at;
    }
    switch (ev.type) {
      case "user.message":
        r.userMessages.push({ id: ev.id, sentBy: sender, text: resultText(ev["content"]) });
        break;
      case "agent.tool_use":
      case "agent.custom_tool_use": {
        const perm = ev["evaluated_permission"];
        const entry: ToolUseReport = {
          id: ev.id,
          name: String(ev["name"]),
          kind: ev.type === "agent.tool_use" ? "tool_use" : "custom_tool_use",
          results: 0,
          expectsResult: perm !== "deny",
        };
        if (perm === "allow" || perm === "ask" || perm === "deny") entry.permission = perm;
        r.toolUses.set(ev.id, entry);
        break;
      }
      case "user.tool_result":
      case "user.custom_tool_result": {
        const tid = String(ev.type === "user.tool_result" ? ev["tool_use_id"] : ev["custom_tool_use_id"]);
        const entry = r.toolUses.get(tid);
        if (!entry) break;
        entry.results++;
        if (entry.results === 1) {
          entry.is_error = ev["is_error"] === true;
          entry.content = ev["content"];
        }
        if (!entry.expectsResult && entry.results === 1) {
          r.checksFailed.push(`${entry.name} (${tid}): a result was posted for a denied call`);
        }
        break;
      }
      case "user.tool_confirmation": {
        const entry = r.toolUses.get(String(ev["tool_use_id"]));
        if (!entry) break;
        const verdict = ev["result"] === "allow" ? "allow" : "deny";
        entry.confirmation = verdict;
        if (verdict === "deny") entry.expectsResult = false;
        break;
      }
      default:
        break;
    }
  }

  #drainBrain(r: SessionRecord): void {
    if (r.brainRunning) return;
    r.brainRunning = true;
    void (async () => {
      try {
        while (r.brainQueue.length > 0 && !this.#closed && !r.deleted) {
          const ev = r.brainQueue.shift()!;
          try {
            await r.brain?.onEvent(ev);
          } catch (e) {
            this.#hooks.log({ msg: "brain failed", session_id: r.session.id, error: String(e) });
            r.checksFailed.push(`brain error: ${String(e)}`);
          }
        }
      } finally {
        r.brainRunning = false;
      }
    })();
  }

  events(id: string): SessionEvent[] {
    return this.#rec(id).events.map((e) => structuredClone(e));
  }

  subscribe(id: string, sub: Subscriber): () => void {
    const r = this.#rec(id);
    r.subscribers.add(sub);
    return () => {
      r.subscribers.delete(sub);
    };
  }

  /** End every open stream of the session (a fault for tests); returns how many were open. */
  dropStreams(id: string): number {
    const subs = [...this.#rec(id).subscribers];
    for (const sub of subs) sub.close();
    return subs.length;
  }

  report(id: string): SessionReport {
    const r = this.#sessions.get(id);
    if (!r) throw notFound(`session ${id} not found`);
    return {
      sessionId: id,
      scenarioDone: r.scenarioDone,
      checksFailed: [...r.checksFailed],
      toolUses: [...r.toolUses.values()].map((t) => ({ ...t })),
      status: r.deleted ? "deleted" : r.session.status,
      userMessages: r.userMessages.map((m) => ({ ...m })),
      workIds: this.#hooks.workIds(id),
      eventCount: r.events.length,
    };
  }

  close(): void {
    this.#closed = true;
    for (const r of this.#sessions.values()) {
      r.brain?.close?.();
      for (const s of [...r.subscribers]) s.close();
      r.subscribers.clear();
    }
  }
}
