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
