import { describe, expect, it } from "vitest";
import { decodeWorkSecret, encodeWorkSecret, parseEvent } from "./mod.ts";

describe("work secret", () => {
  it("decodes base64url JSON with or without padding", () => {
    const s = encodeWorkSecret({ sessions_token: "sk-ant-req-abc", api_base_url: "https://x.example" });
    expect(s).not.toMatch(/[=+/]/);
    expect(decodeWorkSecret(s)).toEqual({ sessions_token: "sk-ant-req-abc", api_base_url: "https://x.example" });
    const padded = btoa(JSON.stringify({ sessions_token: "t?>" })).replace(/\+/g, "-").replace(/\//g, "_");
    expect(decodeWorkSecret(padded)?.sessions_token).toBe("t?>");
  });

  it("treats anything malformed as no token, never throws", () => {
    for (const bad of [null, undefined, "", "!!!", btoa("not json"), btoa("[1]"), btoa('{"sessions_token":""}'), btoa('{"sessions_token":5}'), btoa("\xff\xfe")]) {
      expect(decodeWorkSecret(bad as string)).toBeUndefined();
    }
  });
});

describe("events", () => {
  it("parses the known types and keeps extra fields", () => {
    const r = parseEvent({ type: "agent.tool_use", id: "sevt_1", name: "read", input: { file_path: "a" }, future_field: 1 });
    expect(r).toMatchObject({ ok: true, known: true, event: { name: "read", future_field: 1 } });
  });

  it("checks the catalogued types the worker does not act on, and lets good ones through", () => {
    expect(parseEvent({ type: "agent.message", id: "m1", content: [{ type: "text", text: "hi" }] })).toMatchObject({ ok: true, known: false });
    expect(parseEvent({ type: "agent.mcp_tool_use", id: "m2", name: "x", mcp_server_name: "s", input: {} })).toMatchObject({ ok: true });
    expect(parseEvent({ type: "session.thread_created", id: "m3" })).toMatchObject({ ok: false, id: "m3", issue: expect.stringContaining("session_thread_id") });
    expect(parseEvent({ type: "user.message", id: "m4", content: "not blocks" })).toMatchObject({ ok: false, id: "m4" });
  });

  it("tolerates unknown types", () => {
    expect(parseEvent({ type: "agent.hologram", id: "x", shimmer: true })).toMatchObject({ ok: true, known: false });
  });

  it("reports a malformed required field with the event id and the field", () => {
    expect(parseEvent({ type: "agent.tool_use", id: "sevt_2", name: 3, input: {} })).toEqual({ ok: false, id: "sevt_2", type: "agent.tool_use", issue: expect.stringContaining("name") });
    expect(parseEvent({ type: "user.tool_result", id: "sevt_3" })).toMatchObject({ ok: false, id: "sevt_3", issue: expect.stringContaining("tool_use_id") });
    expect(parseEvent("nope")).toMatchObject({ ok: false });
    expect(parseEvent({ id: "x" })).toMatchObject({ ok: false, id: "x" });
  });
});
