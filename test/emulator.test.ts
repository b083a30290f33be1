// The Managed Agents emulator over real HTTP on 127.0.0.1 (no mocks), including
// the official SDK's own EnvironmentWorker as an independent client.
import Anthropic from "@anthropic-ai/sdk";
import { mkdtemp, readFile, readdir, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import type { Scenario } from "../core/emulator/mod.ts";
import {
  API_KEY,
  ENV_ID,
  ENV_KEY,
  call,
  claim,
  decodeSecret,
  openStream,
  readSse,
  sleep,
  startEmulator,
  type Harness,
} from "./emulator-helpers.ts";

const root = join(import.meta.dirname, "..");
const loadScenario = async (name: string): Promise<Scenario> =>
  JSON.parse(await readFile(join(root, "scenarios", `${name}.json`), "utf8"));

/** One turn, one write call, no expectations: enough for a tool_use to answer. */
const oneCall: Scenario = {
  name: "one-call",
  turns: [{ user: "go", steps: [{ calls: [{ name: "write", input: { file_path: "a.txt", content: "x" } }] }], final: "ok" }],
};
/** One turn with no calls. */
const chat: Scenario = { name: "chat", turns: [{ user: "hello", final: "hi" }] };

let h: Harness | undefined;
afterEach(async () => {
  await h?.close();
  h = undefined;
});

describe("core/emulator is runtime-neutral", () => {
  it("imports no node:*, Deno.* or Bun.*", async () => {
    const dir = join(root, "core", "emulator");
    for (const f of await readdir(dir)) {
      if (!f.endsWith(".ts")) continue;
      // Code only: comments may name the runtimes.
      const code = (await readFile(join(dir, f), "utf8")).replace(/\/\*[\s\S]*?\*\/|\/\/.*$/gm, "");
      expect(code, f).not.toMatch(/from\s+["']node:|import\(["']node:|require\(|\bDeno\.|\bBun\.|\bprocess\./);
    }
  });
});

describe("scenarios", () => {
  it("every scenarios/*.json validates; bad ones fail with the field path", async () => {
    const { parseScenario } = await import("../core/emulator/mod.ts");
    const files = (await readdir(join(root, "scenarios"))).filter((f) => f.endsWith(".json"));
    expect(files).toEqual(expect.arrayContaining(["demo.json", "confirm.json", "sdk-proof.json"]));
    for (const f of files) parseScenario(await loadScenario(f.slice(0, -5)));
    expect(() => parseScenario({ name: "x", turns: [{ user: "u", steps: [{ calls: [{ name: "nope", custom: true }] }] }] })).toThrow(
      /turns\.0\.steps\.0\.calls\.0: custom call "nope" is not declared/,
    );
    expect(() => parseScenario({ name: "x", turns: [] })).toThrow(/turns/);
  });
});

describe("auth and headers (spec §1)", () => {
  it("applies the acceptance table", async () => {
    h = await startEmulator({ environments: [{ id: ENV_ID, key: ENV_KEY }, { id: "env_other", key: "sk-ant-env-other" }] });
    const u = h.url;

    const none = await call(u, "GET", "/v1/environments");
    expect(none.status).toBe(401);
    expect(none.body.type).toBe("error");
    expect(none.body.error.type).toBe("authentication_error");
    expect(none.headers.get("request-id")).toBeTruthy();
    expect(none.body.request_id).toBe(none.headers.get("request-id"));
    expect((await call(u, "GET", "/v1/environments", { token: "sk-ant-nope" })).status).toBe(401);

    // API key as Bearer and as x-api-key.
    expect((await call(u, "GET", "/v1/environments", { token: API_KEY })).status).toBe(200);
    const xkey = await call(u, "GET", "/v1/environments", { headers: { "x-api-key": API_KEY } });
    expect(xkey.status).toBe(200);
    expect(xkey.body.data.map((e: any) => e.id)).toEqual([ENV_ID, "env_other"]);
    // Beta header required.
    const nobeta = await call(u, "GET", "/v1/environments", { token: API_KEY, beta: false });
    expect(nobeta.status).toBe(400);
    expect(nobeta.body.error.type).toBe("invalid_request_error");

    // Environment key: not for admin routes; list only for its own environment.
    expect((await call(u, "GET", "/v1/environments", { token: ENV_KEY })).status).toBe(403);
    expect((await call(u, "GET", `/v1/environments/${ENV_ID}/work`, { token: ENV_KEY })).status).toBe(200);
    const listApi = await call(u, "GET", `/v1/environments/${ENV_ID}/work`, { token: API_KEY });
    expect(listApi.status).toBe(403);
    expect(listApi.body.error.type).toBe("permission_error");
    expect((await call(u, "GET", `/v1/environments/env_other/work/poll`, { token: ENV_KEY })).status).toBe(403);

    // Sessions token: per item only.
    const s1 = h.emu.control.createSession({ scenario: chat });
    const s2 = h.emu.control.createSession({ scenario: chat });
    const { work, token } = await claim(u);
    expect(work.data.id).toBe(s1["id"]);
    expect(token).toMatch(/^sk-ant-req-/);
    expect((await call(u, "GET", `/v1/sessions/${s1["id"]}`, { token })).status).toBe(200);
    expect((await call(u, "GET", `/v1/sessions/${s2["id"]}`, { token })).status).toBe(403);
    expect((await call(u, "GET", `/v1/sessions/${s1["id"]}/events`, { token })).status).toBe(200);
    expect((await call(u, "GET", `/v1/environments/${ENV_ID}/work/${work.id}`, { token })).status).toBe(403);
    expect((await call(u, "GET", `/v1/environments/${ENV_ID}/work/${work.id}`, { token: ENV_KEY })).status).toBe(403);
    const retrieved = await call(u, "GET", `/v1/environments/${ENV_ID}/work/${work.id}`, { token: API_KEY });
    expect(retrieved.status).toBe(200);
    expect(retrieved.body.secret).toBeNull();
    expect((await call(u, "POST", "/v1/sessions", { token, body: { agent: "a", environment_id: ENV_ID } })).status).toBe(403);
    const upd = await call(u, "POST", `/v1/environments/${ENV_ID}/work/${work.id}`, { token: API_KEY, body: { metadata: { a: "1" } } });
    expect(upd.body.metadata).toEqual({ a: "1" });
    const bad = await call(u, "POST", `/v1/environments/${ENV_ID}/work/${work.id}`, { token: API_KEY, body: { metadata: { a: 1 } } });
    expect(bad.body.error.details.error_code).toBe("invalid_metadata");
    // Unknown ids are 404 with the envelope.
    const missing = await call(u, "GET", "/v1/sessions/sesn_missing", { token: API_KEY });
    expect(missing.status).toBe(404);
    expect(missing.body.error.type).toBe("not_found_error");
  });

  it("serves environments CRUD shaped like §11", async () => {
    h = await startEmulator();
    const created = await call(h.url, "POST", "/v1/environments", { token: API_KEY, body: { name: "mine", config: { type: "self_hosted" } } });
    expect(created.status).toBe(200);
    expect(created.body).toMatchObject({ type: "environment", name: "mine", config: { type: "self_hosted" }, archived_at: null });
    const id = created.body.id;
    expect((await call(h.url, "POST", `/v1/environments/${id}`, { token: API_KEY, body: { config: { type: "cloud" } } })).body.error.details.error_code).toBe(
      "invalid_config_type_change",
    );
    expect((await call(h.url, "POST", `/v1/environments/${id}/archive`, { token: API_KEY })).body.archived_at).toBeTruthy();
    expect((await call(h.url, "DELETE", `/v1/environments/${id}`, { token: API_KEY })).body).toEqual({ id, type: "environment_deleted" });
    expect((await call(h.url, "GET", `/v1/environments/${id}`, { token: API_KEY })).status).toBe(404);
  });
});

describe("work queue (spec §2/§3)", () => {
  it("long-polls, answers null, and hands out a base64url secret", async () => {
    h = await startEmulator({ publicBaseUrl: "http://emu.example" });
    const empty = await call(h.url, "GET", `/v1/environments/${ENV_ID}/work/poll?block_ms=300`, { token: ENV_KEY });
    expect(empty.status).toBe(200);
    expect(empty.body).toBeNull();
    expect(empty.ms).toBeGreaterThanOrEqual(280);
    const immediate = await call(h.url, "GET", `/v1/environments/${ENV_ID}/work/poll`, { token: ENV_KEY });
    expect(immediate.body).toBeNull();
    expect(immediate.ms).toBeLessThan(200);
    expect((await call(h.url, "GET", `/v1/environments/${ENV_ID}/work/poll?block_ms=1000`, { token: ENV_KEY })).status).toBe(400);

    const pending = call(h.url, "GET", `/v1/environments/${ENV_ID}/work/poll?block_ms=999`, {
      token: ENV_KEY,
      headers: { "Anthropic-Worker-ID": "w-1" },
    });
    await sleep(100);
    const s = h.emu.control.createSession({ scenario: chat });
    const got = await pending;
    expect(got.ms).toBeLessThan(800);
    expect(got.body).toMatchObject({ type: "work", environment_id: ENV_ID, data: { type: "session", id: s["id"] }, state: "queued" });
    expect(got.body.secret).toMatch(/^[A-Za-z0-9_-]+$/);
    const payload = decodeSecret(got.body.secret);
    expect(payload.sessions_token).toMatch(/^sk-ant-req-/);
    expect(payload.api_base_url).toBe("http://emu.example");
    const stats = await call(h.url, "GET", `/v1/environments/${ENV_ID}/work/stats`, { token: ENV_KEY });
    expect(stats.body).toMatchObject({ type: "work_queue_stats", depth: 0, pending: 1, workers_polling: 1 });
  });

  it("re-delivers unacked items after reclaim_older_than_ms, never acked ones", async () => {
    h = await startEmulator();
    h.emu.control.createSession({ scenario: chat });
    const first = await claim(h.url, ENV_ID, ENV_KEY, 1);
    expect((await call(h.url, "GET", `/v1/environments/${ENV_ID}/work/poll`, { token: ENV_KEY })).body).toBeNull();
    await sleep(150);
    const again = await call(h.url, "GET", `/v1/environments/${ENV_ID}/work/poll?reclaim_older_than_ms=100`, { token: ENV_KEY });
    expect(again.body.id).toBe(first.work.id);
    const second = decodeSecret(again.body.secret).sessions_token;
    expect(second).not.toBe(first.token);
    const ack = await call(h.url, "POST", `/v1/environments/${ENV_ID}/work/${first.work.id}/ack`, { token: ENV_KEY });
    expect(ack.body).toMatchObject({ state: "starting" });
    expect(ack.body.acknowledged_at).toBeTruthy();
    await sleep(20);
    expect((await call(h.url, "GET", `/v1/environments/${ENV_ID}/work/poll?reclaim_older_than_ms=0`, { token: ENV_KEY })).body).toBeNull();
  });

  it("heartbeat CAS, 412 details, graceful and forced stop, 409", async () => {
    h = await startEmulator();
    h.emu.control.createSession({ scenario: chat });
    const { work, token } = await claim(h.url);
    const base = `/v1/environments/${ENV_ID}/work/${work.id}`;
    await call(h.url, "POST", `${base}/ack`, { token });
    const b1 = await call(h.url, "POST", `${base}/heartbeat?expected_last_heartbeat=NO_HEARTBEAT`, { token });
    expect(b1.status).toBe(200);
    expect(b1.body).toMatchObject({ type: "work_heartbeat", lease_extended: true, state: "active", ttl_seconds: 300 });
    expect(b1.body.last_heartbeat).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d+Z$/);
    expect(h.emu.control.getWork(work.id).started_at).toBeTruthy();

    const dup = await call(h.url, "POST", `${base}/heartbeat?expected_last_heartbeat=NO_HEARTBEAT`, { token });
    expect(dup.status).toBe(412);
    expect(dup.body.error.details).toEqual({
      error_code: "heartbeat_precondition_failed",
      current_state: { last_heartbeat: b1.body.last_heartbeat, lease_extended: false, state: "active", ttl_seconds: 300 },
    });
    const b2 = await call(h.url, "POST", `${base}/heartbeat?expected_last_heartbeat=${encodeURIComponent(b1.body.last_heartbeat)}`, { token });
    expect(b2.status).toBe(200);
    expect(b2.body.last_heartbeat).not.toBe(b1.body.last_heartbeat);
    expect(b2.body.last_heartbeat > b1.body.last_heartbeat).toBe(true);

    h.emu.control.stealLease(work.id);
    const stolen = await call(h.url, "POST", `${base}/heartbeat?expected_last_heartbeat=${encodeURIComponent(b2.body.last_heartbeat)}`, { token });
    expect(stolen.status).toBe(412);
    expect(stolen.body.error.details.current_state.last_heartbeat).not.toBe(b2.body.last_heartbeat);

    // Operator graceful stop (API key) -> stopping; the beat reports it without CAS.
    const stopping = await call(h.url, "POST", `${base}/stop`, { token: API_KEY, body: {} });
    expect(stopping.body).toMatchObject({ state: "stopping" });
    expect(stopping.body.stop_requested_at).toBeTruthy();
    const told = await call(h.url, "POST", `${base}/heartbeat?expected_last_heartbeat=whatever`, { token });
    expect(told.status).toBe(200);
    expect(told.body).toMatchObject({ state: "stopping", lease_extended: false });
    // The worker force-stops with its sessions token.
    const stopped = await call(h.url, "POST", `${base}/stop`, { token, body: { force: true } });
    expect(stopped.body).toMatchObject({ state: "stopped" });
    expect(stopped.body.stopped_at).toBeTruthy();
    const again = await call(h.url, "POST", `${base}/stop`, { token, body: { force: true } });
    expect(again.status).toBe(409);
    expect(again.headers.get("x-should-retry")).toBe("false");
    expect((await call(h.url, "POST", `${base}/heartbeat?expected_last_heartbeat=x`, { token })).body.state).toBe("stopped");
  });

  it("requeues a lapsed lease; the old holder then gets 412", async () => {
    h = await startEmulator({ leaseTtlSeconds: 1 });
    h.emu.control.createSession({ scenario: chat });
    const old = await claim(h.url);
    const base = `/v1/environments/${ENV_ID}/work/${old.work.id}`;
    await call(h.url, "POST", `${base}/ack`, { token: ENV_KEY });
    const beat = await call(h.url, "POST", `${base}/heartbeat?expected_last_heartbeat=NO_HEARTBEAT`, { token: old.token });
    expect(beat.body.ttl_seconds).toBe(1);
    await sleep(1_250);
    expect(h.emu.control.getWork(old.work.id).state).toBe("queued");
    const lapsedBeat = await call(h.url, "POST", `${base}/heartbeat?expected_last_heartbeat=${encodeURIComponent(beat.body.last_heartbeat)}`, {
      token: old.token,
    });
    expect(lapsedBeat.status).toBe(412);
    const fresh = await claim(h.url);
    expect(fresh.work.id).toBe(old.work.id);
    expect(fresh.token).not.toBe(old.token);
    await call(h.url, "POST", `${base}/ack`, { token: fresh.token });
    const mine = await call(h.url, "POST", `${base}/heartbeat?expected_last_heartbeat=NO_HEARTBEAT`, { token: fresh.token });
    expect(mine.status).toBe(200);
    const stale = await call(h.url, "POST", `${base}/heartbeat?expected_last_heartbeat=${encodeURIComponent(beat.body.last_heartbeat)}`, {
      token: old.token,
    });
    expect(stale.status).toBe(412);
    expect(stale.body.error.details.current_state.state).toBe("active");
    expect(h.emu.control.stats().leaseLapses).toBe(1);
  });
});

describe("sessions and events (spec §4-§6)", () => {
  it("streams SSE the official SDK can parse, only events after connect, with pings", async () => {
    h = await startEmulator({ pingIntervalMs: 100 });
    const s = h.emu.control.createSession({ scenario: chat });
    const sid = String(s["id"]);
    const { token } = await claim(h.url);
    const client = new Anthropic({ baseURL: h.url, apiKey: null, authToken: token, logLevel: "off" });
    const stream = await client.beta.sessions.events.stream(sid);
    const t = setTimeout(() => h!.emu.control.sendUserMessage(sid, "again"), 50);
    const types: string[] = [];
    for await (const ev of stream) {
      types.push(ev.type);
      if (ev.type === "session.status_idle") break;
    }
    clearTimeout(t);
    expect(types).toEqual(["user.message", "session.status_running", "agent.message", "session.status_idle"]);

    // Raw framing: a comment, then `event: <type>\ndata: <json>\n\n` messages and pings.
    const ac = new AbortController();
    const res = await openStream(h.url, sid, token, ac.signal);
    expect(res.headers.get("content-type")).toMatch(/^text\/event-stream/);
    const reader = res.body!.getReader();
    let raw = "";
    const dec = new TextDecoder();
    const until = Date.now() + 2_000;
    setTimeout(() => h!.emu.control.sendUserMessage(sid, "raw"), 150);
    while (Date.now() < until && !(raw.includes("event: ping") && raw.includes("event: session.status_idle"))) {
      const { value, done } = await reader.read();
      if (done) break;
      raw += dec.decode(value, { stream: true });
    }
    ac.abort();
    expect(raw.startsWith(":")).toBe(true);
    const frames = raw.split("\n\n").filter((f) => f && !f.startsWith(":"));
    for (const f of frames) expect(f).toMatch(/^event: [a-z_.]+\ndata: \{.*\}$/);
    const msg = frames.find((f) => f.startsWith("event: user.message"))!;
    const ev = JSON.parse(msg.split("\ndata: ")[1]!);
    expect(ev.id).toMatch(/^sevt_/);
    expect(ev.processed_at).toBeTruthy();
    await sleep(50);
    expect(h.emu.control.stats().streamsOpen).toBe(0);
  });

  it("lists events with cursor pages, order and types[]", async () => {
    h = await startEmulator();
    const sid = String(h.emu.control.createSession({ scenario: chat })["id"]);
    for (let i = 0; i < 3; i++) h.emu.control.sendUserMessage(sid, `m${i}`);
    await sleep(20);
    const all = h.emu.control.events(sid);
    expect(all.length).toBe(16); // 4 per turn
    const seen: string[] = [];
    let page: string | null = null;
    let pages = 0;
    do {
      const q: string = `limit=5${page ? `&page=${page}` : ""}`;
      const r = await call(h.url, "GET", `/v1/sessions/${sid}/events?${q}`, { token: API_KEY });
      seen.push(...r.body.data.map((e: any) => e.id));
      page = r.body.next_page;
      pages++;
    } while (page);
    expect(pages).toBe(4);
    expect(seen).toEqual(all.map((e) => e.id));
    const desc = await call(h.url, "GET", `/v1/sessions/${sid}/events?order=desc&limit=1000`, { token: API_KEY });
    expect(desc.body.data.map((e: any) => e.id)).toEqual(all.map((e) => e.id).reverse());
    const typed = await call(h.url, "GET", `/v1/sessions/${sid}/events?types[]=user.message&types[]=agent.message`, { token: API_KEY });
    expect(typed.body.data.every((e: any) => e.type === "user.message" || e.type === "agent.message")).toBe(true);
    expect(typed.body.data.length).toBe(8);
    expect((await call(h.url, "GET", `/v1/sessions/${sid}/events?limit=1001`, { token: API_KEY })).status).toBe(400);
    // The SDK's auto-pagination walks them all too.
    const client = new Anthropic({ baseURL: h.url, apiKey: API_KEY, logLevel: "off" });
    const ids: string[] = [];
    for await (const e of client.beta.sessions.events.list(sid, { limit: 3 })) ids.push(e.id);
    expect(ids).toEqual(all.map((e) => e.id));
  });

  it("validates sends and counts duplicate results", async () => {
    h = await startEmulator();
    const sid = String(h.emu.control.createSession({ scenario: oneCall })["id"]);
    const { token } = await claim(h.url);
    const use = h.emu.control.events(sid).find((e) => e.type === "agent.tool_use")!;
    const send = (events: unknown[]) => call(h!.url, "POST", `/v1/sessions/${sid}/events`, { token, body: { events } });
    const bad = [
      [{ type: "user.tool_result", tool_use_id: "sevt_unknown", content: [{ type: "text", text: "x" }] }],
      [{ type: "user.custom_tool_result", custom_tool_use_id: use.id, content: [{ type: "text", text: "x" }] }],
      [{ type: "user.tool_result", tool_use_id: use.id, is_error: true }],
      [{ type: "user.tool_result", tool_use_id: use.id, is_error: true, content: [] }],
      [{ type: "user.tool_result", tool_use_id: use.id, is_error: true, content: [{ type: "image", source: { type: "url", url: "x" } }] }],
      [{ type: "user.tool_confirmation", tool_use_id: "sevt_unknown", result: "allow" }],
      [{ type: "agent.message", content: [] }],
      [],
    ];
    for (const events of bad) {
      const r = await send(events);
      expect(r.status, JSON.stringify(events)).toBe(400);
      expect(r.body.error.type).toBe("invalid_request_error");
    }
    const ok = await send([{ type: "user.tool_result", tool_use_id: use.id, content: [{ type: "text", text: "wrote 1 bytes to a.txt" }] }]);
    expect(ok.status).toBe(200);
    expect(ok.body.data[0]).toMatchObject({ type: "user.tool_result", tool_use_id: use.id });
    expect(ok.body.data[0].id).toMatch(/^sevt_/);
    expect(ok.body.data[0].processed_at).toBeTruthy();
    const dup = await send([{ type: "user.tool_result", tool_use_id: use.id, content: [{ type: "text", text: "again" }] }]);
    expect(dup.status).toBe(200);
    const report = await h.emu.control.waitFor(sid, (r) => r.scenarioDone, 2_000);
    expect(report.toolUses).toHaveLength(1);
    expect(report.toolUses[0]).toMatchObject({ name: "write", kind: "tool_use", results: 2, is_error: false });
    expect(report.checksFailed).toEqual([]);
  });

  it("drives a scenario by hand: custom tool, ask permission, terminate", async () => {
    h = await startEmulator();
    h.emu.control.registerScenario("confirm", await loadScenario("confirm"));
    const created = await call(h.url, "POST", "/v1/sessions", {
      token: API_KEY,
      body: {
        agent: "agent_shop",
        environment_id: ENV_ID,
        title: "by hand",
        metadata: { deft_scenario: "confirm" },
        initial_events: [{ type: "user.message", content: [{ type: "text", text: "Where is order 7?" }] }],
      },
    });
    expect(created.status).toBe(200);
    const session = created.body;
    const sid = session.id;
    expect(session).toMatchObject({ type: "session", environment_id: ENV_ID, status: expect.any(String), title: "by hand", archived_at: null });
    expect(session.agent.tools[0]).toMatchObject({ type: "agent_toolset_20260401", default_config: { enabled: true } });
    expect(session.agent.tools[1]).toMatchObject({ type: "custom", name: "lookup_order" });

    const { work, token } = await claim(h.url);
    const wbase = `/v1/environments/${ENV_ID}/work/${work.id}`;
    expect((await call(h.url, "POST", `${wbase}/ack`, { token: ENV_KEY })).body.state).toBe("starting");
    expect((await call(h.url, "POST", `${wbase}/heartbeat?expected_last_heartbeat=NO_HEARTBEAT`, { token })).body.state).toBe("active");
    expect((await call(h.url, "GET", `/v1/sessions/${sid}`, { token })).body.id).toBe(sid);

    // Stream first, then history (the reference order).
    const ac = new AbortController();
    const res = await openStream(h.url, sid, token, ac.signal);
    const history = (await call(h.url, "GET", `/v1/sessions/${sid}/events?limit=1000`, { token })).body.data;
    const custom = history.find((e: any) => e.type === "agent.custom_tool_use");
    expect(custom).toMatchObject({ name: "lookup_order", input: { id: 7 } });
    const idle = history.findLast((e: any) => e.type === "session.status_idle");
    expect(idle.stop_reason).toEqual({ type: "requires_action", event_ids: [custom.id] });
    await call(h.url, "POST", `/v1/sessions/${sid}/events`, {
      token,
      body: { events: [{ type: "user.custom_tool_result", custom_tool_use_id: custom.id, content: [{ type: "text", text: "order 7: shipped" }] }] },
    });
    let terminated = false;
    for await (const m of readSse(res)) {
      if (m.event === "ping") continue;
      const ev = JSON.parse(m.data);
      expect(m.event).toBe(ev.type);
      if (ev.type === "agent.tool_use") {
        expect(ev).toMatchObject({ name: "bash", evaluated_permission: "ask" });
        // The user approves (API key), then the worker posts the result.
        const conf = await call(h.url, "POST", `/v1/sessions/${sid}/events`, {
          token: API_KEY,
          body: { events: [{ type: "user.tool_confirmation", tool_use_id: ev.id, result: "allow" }] },
        });
        expect(conf.status).toBe(200);
        await call(h.url, "POST", `/v1/sessions/${sid}/events`, {
          token,
          body: { events: [{ type: "user.tool_result", tool_use_id: ev.id, content: [{ type: "text", text: "confirmed" }] }] },
        });
      }
      if (ev.type === "session.status_terminated") {
        terminated = true;
        break;
      }
    }
    ac.abort();
    expect(terminated).toBe(true);
    const report = h.emu.control.report(sid);
    expect(report.scenarioDone).toBe(true);
    expect(report.checksFailed).toEqual([]);
    expect(report.status).toBe("terminated");
    expect(report.toolUses.map((t) => [t.name, t.kind, t.results, t.confirmation])).toEqual([
      ["lookup_order", "custom_tool_use", 1, undefined],
      ["bash", "tool_use", 1, "allow"],
    ]);
    expect((await call(h.url, "POST", `${wbase}/stop`, { token, body: { force: true } })).body.state).toBe("stopped");
    // New input to a session without live work enqueues a new item... but a terminated session takes none.
    const late = await call(h.url, "POST", `/v1/sessions/${sid}/events`, {
      token: API_KEY,
      body: { events: [{ type: "user.message", content: [{ type: "text", text: "more?" }] }] },
    });
    expect(late.status).toBe(400);
  });

  it("enqueues new work for input to a dormant session; archive and delete emit their events", async () => {
    h = await startEmulator();
    const sid = String(h.emu.control.createSession({ scenario: chat })["id"]);
    const { work, token } = await claim(h.url);
    await call(h.url, "POST", `/v1/environments/${ENV_ID}/work/${work.id}/stop`, { token: API_KEY, body: { force: true } });
    h.emu.control.sendUserMessage(sid, "wake up");
    const next = await claim(h.url);
    expect(next.work.id).not.toBe(work.id);
    expect(h.emu.control.report(sid).workIds).toEqual([work.id, next.work.id]);
    expect(h.emu.control.report(sid).userMessages.map((m) => m.sentBy)).toEqual(["initial", "control"]);
    expect(token).not.toBe(next.token);

    const archived = await call(h.url, "POST", `/v1/sessions/${sid}/archive`, { token: API_KEY });
    expect(archived.body).toMatchObject({ status: "terminated" });
    expect(h.emu.control.events(sid).at(-1)!.type).toBe("session.status_terminated");
    const sid2 = String(h.emu.control.createSession({ scenario: chat })["id"]);
    const ac = new AbortController();
    const res = await openStream(h.url, sid2, API_KEY, ac.signal);
    const del = await call(h.url, "DELETE", `/v1/sessions/${sid2}`, { token: API_KEY });
    expect(del.body).toEqual({ id: sid2, type: "session_deleted" });
    const got: string[] = [];
    for await (const m of readSse(res)) got.push(m.event!);
    expect(got).toEqual(["session.deleted"]);
    expect((await call(h.url, "GET", `/v1/sessions/${sid2}`, { token: API_KEY })).status).toBe(404);
  });
});

describe("fault switches", () => {
  it("drops streams, fails sends, delays routes (in-process and over HTTP)", async () => {
    h = await startEmulator();
    const sid = String(h.emu.control.createSession({ scenario: chat })["id"]);

    h.emu.control.setFaults({ dropStreamAfterEvents: 2 });
    const res = await openStream(h.url, sid, API_KEY);
    h.emu.control.sendUserMessage(sid, "one"); // 4 events follow; the stream ends after 2
    const got: string[] = [];
    for await (const m of readSse(res)) got.push(m.event!);
    expect(got).toEqual(["user.message", "session.status_running"]);
    expect(h.emu.control.stats().streamsDroppedByFault).toBe(1);

    // Over HTTP: fail the next send with 503, then succeed.
    expect((await call(h.url, "POST", "/_emulator/faults", { token: API_KEY, body: { failSends: { status: 503, count: 1 } } })).status).toBe(200);
    const msg = { events: [{ type: "user.message", content: [{ type: "text", text: "two" }] }] };
    const failed = await call(h.url, "POST", `/v1/sessions/${sid}/events`, { token: API_KEY, body: msg });
    expect(failed.status).toBe(503);
    expect(failed.headers.get("x-should-retry")).toBe("true");
    expect(failed.body.error.type).toBe("api_error");
    expect((await call(h.url, "POST", `/v1/sessions/${sid}/events`, { token: API_KEY, body: msg })).status).toBe(200);
    h.emu.control.setFaults({ failSends: { status: 529, rate: 1 } });
    const overloaded = await call(h.url, "POST", `/v1/sessions/${sid}/events`, { token: API_KEY, body: msg });
    expect(overloaded.status).toBe(529);
    expect(overloaded.body.error.type).toBe("overloaded_error");
    expect((await call(h.url, "DELETE", "/_emulator/faults", { token: API_KEY })).status).toBe(200);
    expect((await call(h.url, "POST", `/v1/sessions/${sid}/events`, { token: API_KEY, body: msg })).status).toBe(200);

    h.emu.control.setFaults({ delayMs: { "events.list": 300, poll: 200 } });
    expect((await call(h.url, "GET", `/v1/sessions/${sid}/events`, { token: API_KEY })).ms).toBeGreaterThanOrEqual(280);
    expect((await call(h.url, "GET", `/v1/environments/${ENV_ID}/work/poll`, { token: ENV_KEY })).ms).toBeGreaterThanOrEqual(180);
    h.emu.control.clearFaults();
    expect((await call(h.url, "GET", `/v1/sessions/${sid}/events`, { token: API_KEY })).ms).toBeLessThan(200);
    expect(h.emu.control.stats().requests["events.send"]).toBe(4);
    // The controls refuse anything but the API key.
    expect((await call(h.url, "GET", "/_emulator/stats", { token: ENV_KEY })).status).toBe(403);
  });
});

describe("the official SDK's EnvironmentWorker against the emulator", () => {
  it("runs scenarios/sdk-proof.json to the end, every call answered exactly once", async () => {
    // sdk-proof.json is demo.json without glob: the SDK's glob tool uses fs.glob
    // (Node >= 22) and this repository runs on Node 20.
    h = await startEmulator();
    const workdir = await mkdtemp(join(tmpdir(), "deft-emu-sdk-"));
    const sid = String(h.emu.control.createSession({ scenario: await loadScenario("sdk-proof") })["id"]);
    const client = new Anthropic({ baseURL: h.url, apiKey: API_KEY, logLevel: "warn" });
    const ac = new AbortController();
    const worker = client.beta.environments.work.worker({
      environmentId: ENV_ID,
      environmentKey: ENV_KEY,
      workdir,
      maxIdleMs: 500,
      signal: ac.signal,
    });
    const run = worker.run().catch((e: unknown) => e);
    try {
      const report = await h.emu.control.waitFor(sid, (r) => r.scenarioDone, 15_000);
      expect(report.checksFailed).toEqual([]);
      expect(report.toolUses.length).toBe(7);
      for (const t of report.toolUses) expect(t.results, t.name).toBe(1);
      expect(report.userMessages.map((m) => m.sentBy)).toEqual(["initial", "brain"]);
      // The worker force-stops its item once the session terminates.
      const workId = report.workIds[0]!;
      const until = Date.now() + 5_000;
      while (h.emu.control.getWork(workId).state !== "stopped" && Date.now() < until) await sleep(50);
      expect(h.emu.control.getWork(workId).state).toBe("stopped");
      expect(await readFile(join(workdir, "src", "app.js"), "utf8")).toContain("hello, world");
      const stats = h.emu.control.stats();
      expect(stats.requests["heartbeat"]).toBeGreaterThanOrEqual(1);
      expect(stats.requests["events.stream"]).toBeGreaterThanOrEqual(1);
    } finally {
      ac.abort();
      await run;
      await rm(workdir, { recursive: true, force: true });
    }
  });
});
