// The HTTP surface: the Managed Agents subset a worker uses (spec §1-§6, §11)
// plus the emulator's own /_emulator/* controls.
import { Hono, type Context } from "hono";
import type { EmulatorCore, Principal } from "./core.ts";
import type { EmulatorControl } from "./types.ts";
import { EmulatorHttpError, badRequest, errorBody, errorTypeForStatus, notFound } from "./errors.ts";
import { paginate, parseLimit } from "./pagination.ts";
import { sseResponse } from "./sse.ts";
import type { EventDraft, SessionEvent } from "./types.ts";
import { isObject, newId, parseStamp } from "./util.ts";

const BETA = "managed-agents-2026-04-01";
const requestIds = new WeakMap<Request, string>();

async function jsonBody(c: Context, optional = false): Promise<Record<string, unknown>> {
  const text = await c.req.text();
  if (text.trim() === "") {
    if (optional) return {};
    throw badRequest("request body is required");
  }
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch {
    throw badRequest("request body is not valid JSON");
  }
  if (!isObject(v)) throw badRequest("request body must be a JSON object");
  return v;
}

function intParam(raw: string | undefined, name: string, min: number, max: number): number | undefined {
  if (raw === undefined || raw === "") return undefined;
  const n = Number(raw);
  if (!Number.isInteger(n) || n < min || n > max) throw badRequest(`${name} must be an integer between ${min} and ${max}`);
  return n;
}

/** Values of an array query param in either `k[]=a&k[]=b` or `k=a` form. */
function arrayParam(c: Context, name: string): string[] {
  return [...(c.req.queries(`${name}[]`) ?? []), ...(c.req.queries(name) ?? [])];
}

export function buildApp(core: EmulatorCore, control: EmulatorControl): Hono {
  const app = new Hono();
  const principals = new WeakMap<Request, Principal>();
  const who = (c: Context): Principal => principals.get(c.req.raw)!;

  app.onError((err, c) => {
    const requestId = requestIds.get(c.req.raw) ?? newId("req");
    const e =
      err instanceof EmulatorHttpError
        ? err
        : new EmulatorHttpError(500, "api_error", `internal emulator error: ${err instanceof Error ? err.message : String(err)}`);
    if (!(err instanceof EmulatorHttpError)) core.log({ msg: "internal error", error: String(err), stack: err instanceof Error ? err.stack : undefined });
    return new Response(JSON.stringify(errorBody(e, requestId)), {
      status: e.status,
      headers: { "content-type": "application/json", "request-id": requestId, ...e.headers },
    });
  });
  app.notFound((c) => {
    const requestId = requestIds.get(c.req.raw) ?? newId("req");
    const e = notFound(`no route for ${c.req.method} ${new URL(c.req.url).pathname}`);
    return new Response(JSON.stringify(errorBody(e, requestId)), {
      status: 404,
      headers: { "content-type": "application/json", "request-id": requestId },
    });
  });

  // request-id on every response; auth and beta header on API routes.
  app.use("*", async (c, next) => {
    const requestId = newId("req");
    requestIds.set(c.req.raw, requestId);
    await next();
    c.res.headers.set("request-id", requestId);
  });
  app.use("/v1/*", async (c, next) => {
    principals.set(c.req.raw, core.authenticate(c.req.raw));
    const path = new URL(c.req.url).pathname;
    if (path.startsWith("/v1/environments") || path.startsWith("/v1/sessions")) {
      const beta = c.req.header("anthropic-beta") ?? "";
      if (!beta.split(",").map((s) => s.trim()).includes(BETA)) {
        throw badRequest(`this endpoint requires the anthropic-beta header to include ${BETA}`);
      }
    }
    await next();
  });
  app.use("/_emulator/*", async (c, next) => {
    core.requireApi(core.authenticate(c.req.raw), "the emulator controls");
    await next();
  });

  // ===== environments (§11) =====

  app.post("/v1/environments", async (c) => {
    await core.enter("environments.create");
    core.requireApi(who(c), "creating an environment");
    const b = await jsonBody(c);
    if (typeof b["name"] !== "string" || !b["name"]) throw badRequest("name is required");
    const config = isObject(b["config"]) ? b["config"] : { type: "self_hosted" };
    if (config["type"] !== "self_hosted" && config["type"] !== "cloud") throw badRequest("config.type must be self_hosted or cloud");
    const rec = core.createEnvironment({
      name: b["name"],
      description: typeof b["description"] === "string" ? b["description"] : null,
      metadata: isObject(b["metadata"]) ? (b["metadata"] as Record<string, string>) : {},
      config,
    });
    return c.json(rec.env);
  });
  app.get("/v1/environments", async (c) => {
    await core.enter("environments.list");
    core.requireApi(who(c), "listing environments");
    const includeArchived = c.req.query("include_archived") === "true";
    const all = [...core.envs.values()].filter((r) => !r.deleted && (includeArchived || r.env.archived_at === null)).map((r) => r.env);
    const page = paginate(all, (e) => e.id, parseLimit(c.req.query("limit"), 20, 100), c.req.query("page"));
    return c.json({ data: page.data, next_page: page.next_page });
  });
  app.get("/v1/environments/:env", async (c) => {
    await core.enter("environments.retrieve");
    core.requireApi(who(c), "reading an environment");
    return c.json(core.environment(c.req.param("env")).env);
  });
  app.post("/v1/environments/:env", async (c) => {
    await core.enter("environments.update");
    core.requireApi(who(c), "updating an environment");
    const rec = core.environment(c.req.param("env"));
    if (rec.env.archived_at !== null) throw badRequest("environment is archived", "environment_archived");
    const b = await jsonBody(c, true);
    if (isObject(b["config"])) {
      if (b["config"]["type"] !== rec.env.config["type"]) throw badRequest("config.type cannot change", "invalid_config_type_change");
      rec.env.config = b["config"];
    }
    if (typeof b["name"] === "string") rec.env.name = b["name"];
    if (typeof b["description"] === "string" || b["description"] === null) rec.env.description = b["description"];
    if (isObject(b["metadata"])) {
      for (const [k, v] of Object.entries(b["metadata"])) {
        if (v === null) delete rec.env.metadata[k];
        else if (typeof v === "string") rec.env.metadata[k] = v;
      }
    }
    rec.env.updated_at = new Date().toISOString();
    return c.json(rec.env);
  });
  app.delete("/v1/environments/:env", async (c) => {
    await core.enter("environments.delete");
    core.requireApi(who(c), "deleting an environment");
    const rec = core.environment(c.req.param("env"));
    rec.deleted = true;
    return c.json({ id: rec.env.id, type: "environment_deleted" });
  });
  app.post("/v1/environments/:env/archive", async (c) => {
    await core.enter("environments.archive");
    core.requireApi(who(c), "archiving an environment");
    const rec = core.environment(c.req.param("env"));
    rec.env.archived_at ??= new Date().toISOString();
    return c.json(rec.env);
  });

  // ===== work queue (§2) — static paths before /:work =====

  app.get("/v1/environments/:env/work/poll", async (c) => {
    // In flight from arrival (an injected delay included) to the answer: polls a worker has open at once.
    core.pollsInFlight++;
    core.pollsInFlightPeak = Math.max(core.pollsInFlightPeak, core.pollsInFlight);
    try {
      await core.enter("poll");
      const envId = c.req.param("env");
      core.requireEnvKey(who(c), envId, "polling for work");
      core.environment(envId);
      const blockMs = intParam(c.req.query("block_ms"), "block_ms", 1, 999);
      const reclaim = intParam(c.req.query("reclaim_older_than_ms"), "reclaim_older_than_ms", 0, 86_400_000);
      const workerId = c.req.header("anthropic-worker-id");
      const signal = AbortSignal.any([c.req.raw.signal, core.shutdown.signal]);
      const work = await core.queue.poll(envId, {
        ...(blockMs !== undefined ? { blockMs } : {}),
        ...(reclaim !== undefined ? { reclaimOlderThanMs: reclaim } : {}),
        ...(workerId ? { workerId } : {}),
        signal,
      });
      return c.json(work);
    } finally {
      core.pollsInFlight--;
    }
  });
  app.get("/v1/environments/:env/work/stats", async (c) => {
    await core.enter("stats");
    const envId = c.req.param("env");
    const p = who(c);
    if (p.kind !== "api") core.requireEnvKey(p, envId, "work stats");
    core.environment(envId);
    return c.json(core.queue.stats(envId));
  });
  app.get("/v1/environments/:env/work", async (c) => {
    await core.enter("list");
    const envId = c.req.param("env");
    core.requireEnvKey(who(c), envId, "listing work");
    core.environment(envId);
    const page = paginate(core.queue.list(envId), (w) => w.id, parseLimit(c.req.query("limit"), 20, 1000), c.req.query("page"));
    return c.json({ data: page.data, next_page: page.next_page });
  });
  app.post("/v1/environments/:env/work/:work/ack", async (c) => {
    await core.enter("ack");
    const envId = c.req.param("env");
    const workId = c.req.param("work");
    core.requireItem(who(c), envId, workId, "ack");
    return c.json(core.queue.ack(envId, workId));
  });
  app.post("/v1/environments/:env/work/:work/heartbeat", async (c) => {
    await core.enter("heartbeat");
    const envId = c.req.param("env");
    const workId = c.req.param("work");
    core.requireItem(who(c), envId, workId, "heartbeat");
    const desired = intParam(c.req.query("desired_ttl_seconds"), "desired_ttl_seconds", 1, 86_400);
    return c.json(core.queue.heartbeat(envId, workId, c.req.query("expected_last_heartbeat"), desired));
  });
  app.post("/v1/environments/:env/work/:work/stop", async (c) => {
    await core.enter("stop");
    const envId = c.req.param("env");
    const workId = c.req.param("work");
    core.requireItem(who(c), envId, workId, "stop", true);
    const b = await jsonBody(c, true);
    if (b["force"] !== undefined && typeof b["force"] !== "boolean") throw badRequest("force must be a boolean");
    return c.json(core.queue.stop(envId, workId, b["force"] === true));
  });
  app.get("/v1/environments/:env/work/:work", async (c) => {
    await core.enter("retrieve");
    core.requireApi(who(c), "reading a work item");
    return c.json(core.queue.get(c.req.param("work"), c.req.param("env")));
  });
  app.post("/v1/environments/:env/work/:work", async (c) => {
    await core.enter("update");
    core.requireApi(who(c), "updating a work item");
    const b = await jsonBody(c);
    return c.json(core.queue.update(c.req.param("env"), c.req.param("work"), b["metadata"]));
  });

  // ===== sessions (§4/§5) =====

  app.post("/v1/sessions", async (c) => {
    await core.enter("sessions.create");
    core.requireApi(who(c), "creating a session");
    const b = await jsonBody(c);
    const envId = b["environment_id"];
    if (typeof envId !== "string" || !envId) throw badRequest("environment_id is required");
    if (b["agent"] === undefined) throw badRequest("agent is required");
    const metadata = b["metadata"] ?? {};
    if (!isObject(metadata) || Object.values(metadata).some((v) => typeof v !== "string")) {
      throw badRequest("metadata must map strings to strings", "invalid_metadata");
    }
    if (Object.keys(metadata).length > 16) throw badRequest("metadata holds at most 16 pairs", "invalid_metadata");
    const initial = b["initial_events"] ?? [];
    if (!Array.isArray(initial) || initial.length > 50) throw badRequest("initial_events must be an array of at most 50 events");
    for (const [i, ev] of initial.entries()) {
      if (!isObject(ev) || (ev["type"] !== "user.message" && ev["type"] !== "user.define_outcome")) {
        throw badRequest(`initial_events[${i}] must be a user.message or user.define_outcome`);
      }
      if (ev["type"] === "user.message" && (!Array.isArray(ev["content"]) || ev["content"].length === 0)) {
        throw badRequest(`initial_events[${i}].content must be a non-empty array`);
      }
    }
    const scenarioRef = b["scenario"] ?? (metadata as Record<string, string>)["deft_scenario"];
    const scenario = core.resolveScenario(scenarioRef as never);
    const session = core.createSession({
      environmentId: envId,
      agent: b["agent"],
      title: typeof b["title"] === "string" ? b["title"] : null,
      metadata: metadata as Record<string, string>,
      ...(scenario !== undefined ? { scenario } : {}),
      initialEvents: initial as EventDraft[],
      initialSender: "initial",
    });
    return c.json(session);
  });
  app.get("/v1/sessions", async (c) => {
    await core.enter("sessions.list");
    core.requireApi(who(c), "listing sessions");
    let all = core.sessions.list();
    if (c.req.query("include_archived") !== "true") all = all.filter((s) => s["archived_at"] === null);
    if (c.req.query("order") !== "asc") all.reverse();
    const page = paginate(all, (s) => String(s["id"]), parseLimit(c.req.query("limit"), 20, 1000), c.req.query("page"));
    return c.json(page);
  });
  app.get("/v1/sessions/:id", async (c) => {
    await core.enter("sessions.retrieve");
    const id = c.req.param("id");
    core.requireSession(who(c), id);
    return c.json(core.sessions.get(id));
  });
  app.post("/v1/sessions/:id", async (c) => {
    await core.enter("sessions.update");
    core.requireApi(who(c), "updating a session");
    return c.json(core.sessions.update(c.req.param("id"), await jsonBody(c, true)));
  });
  app.delete("/v1/sessions/:id", async (c) => {
    await core.enter("sessions.delete");
    core.requireApi(who(c), "deleting a session");
    return c.json(core.sessions.delete(c.req.param("id")));
  });
  app.post("/v1/sessions/:id/archive", async (c) => {
    await core.enter("sessions.archive");
    core.requireApi(who(c), "archiving a session");
    return c.json(core.sessions.archive(c.req.param("id")));
  });

  app.get("/v1/sessions/:id/events/stream", async (c) => {
    await core.enter("events.stream");
    const id = c.req.param("id");
    core.requireSession(who(c), id);
    if (!core.sessions.exists(id)) throw notFound(`session ${id} not found`);
    if (core.closed) throw new EmulatorHttpError(503, "overloaded_error", "emulator is shutting down");
    const drop = core.faults.dropStreamAfterEvents;
    return sseResponse({
      pingIntervalMs: core.pingIntervalMs,
      ...(drop !== undefined ? { dropAfterEvents: drop } : {}),
      signal: AbortSignal.any([c.req.raw.signal, core.shutdown.signal]),
      attach: (sink) => core.sessions.subscribe(id, sink),
      onOpen: () => {
        core.streamsOpen++;
        core.streamsOpened++;
      },
      onClose: (dropped) => {
        core.streamsOpen--;
        if (dropped) core.streamsDroppedByFault++;
      },
    });
  });
  app.get("/v1/sessions/:id/events", async (c) => {
    await core.enter("events.list");
    const id = c.req.param("id");
    core.requireSession(who(c), id);
    let events: SessionEvent[] = core.sessions.events(id);
    const types = arrayParam(c, "types");
    if (types.length > 0) events = events.filter((e) => types.includes(e.type));
    for (const op of ["gt", "gte", "lt", "lte"] as const) {
      const raw = c.req.query(`created_at[${op}]`);
      if (raw === undefined) continue;
      const t = parseStamp(raw);
      if (Number.isNaN(t)) throw badRequest(`created_at[${op}] must be an RFC 3339 timestamp`);
      events = events.filter((e) => {
        const v = parseStamp(e.processed_at);
        return op === "gt" ? v > t : op === "gte" ? v >= t : op === "lt" ? v < t : v <= t;
      });
    }
    const order = c.req.query("order") ?? "asc";
    if (order !== "asc" && order !== "desc") throw badRequest("order must be asc or desc");
    if (order === "desc") events.reverse();
    const page = paginate(events, (e) => e.id, parseLimit(c.req.query("limit"), 20, 1000), c.req.query("page"));
    return c.json({ data: page.data, next_page: page.next_page });
  });
  app.post("/v1/sessions/:id/events", async (c) => {
    await core.enter("events.send");
    const id = c.req.param("id");
    core.requireSession(who(c), id);
    const b = await jsonBody(c);
    const drafts = core.sessions.validateSend(id, b["events"]);
    const status = core.sendFault();
    if (status !== null) {
      throw new EmulatorHttpError(status, errorTypeForStatus(status), `injected fault: events.send answered ${status}`, undefined, {
        "x-should-retry": "true",
      });
    }
    const stored = drafts.map((d) => core.sessions.append(id, d, "api"));
    return c.json({ data: stored });
  });

  // ===== emulator controls =====

  app.post("/_emulator/sessions", async (c) => {
    const b = await jsonBody(c, true);
    const input: Parameters<EmulatorControl["createSession"]>[0] = {};
    if (b["scenario"] !== undefined) input.scenario = b["scenario"] as never;
    if (typeof b["environment_id"] === "string") input.environmentId = b["environment_id"];
    if (typeof b["title"] === "string") input.title = b["title"];
    return c.json(control.createSession(input));
  });
  app.post("/_emulator/scenarios/:name", async (c) => {
    control.registerScenario(c.req.param("name"), (await jsonBody(c)) as never);
    return c.json({ ok: true });
  });
  app.post("/_emulator/faults", async (c) => {
    control.setFaults((await jsonBody(c, true)) as never);
    return c.json({ ok: true });
  });
  app.delete("/_emulator/faults", (c) => {
    control.clearFaults();
    return c.json({ ok: true });
  });
  app.post("/_emulator/work/:work/steal", (c) => {
    control.stealLease(c.req.param("work"));
    return c.json({ ok: true });
  });
  app.post("/_emulator/work/:work/stop", async (c) => {
    const b = await jsonBody(c, true);
    return c.json(control.stopWork(c.req.param("work"), b["force"] === true));
  });
  app.post("/_emulator/sessions/:id/messages", async (c) => {
    const b = await jsonBody(c);
    if (typeof b["text"] !== "string") throw badRequest("text is required");
    return c.json(control.sendUserMessage(c.req.param("id"), b["text"]));
  });
  app.get("/_emulator/sessions/:id/report", async (c) => {
    const id = c.req.param("id");
    const waitMs = intParam(c.req.query("wait_done_ms"), "wait_done_ms", 1, 600_000);
    if (waitMs !== undefined) {
      return c.json(await control.waitFor(id, (r) => r.scenarioDone, waitMs).catch(() => control.report(id)));
    }
    return c.json(control.report(id));
  });
  app.get("/_emulator/environments/:env/key", (c) => c.json({ key: core.environment(c.req.param("env")).key }));
  app.get("/_emulator/stats", (c) => c.json(control.stats()));

  return app;
}
