import Anthropic from "@anthropic-ai/sdk";
import { afterEach, describe, expect, it } from "vitest";
import { serveFetch } from "../../runtimes/node/serve.ts";
import { ResultPostError, ResultPoster } from "./result-poster.ts";

let close: (() => Promise<void>) | undefined;
afterEach(async () => {
  await close?.();
  close = undefined;
});

const event = { type: "user.tool_result" as const, tool_use_id: "sevt_1", content: [{ type: "text" as const, text: "ok" }], is_error: false };

describe("ResultPoster", () => {
  it("sends what the SDK would (URL, auth, version, beta), times out a hung post, and maps errors", async () => {
    const seen: Array<{ url: string; headers: Record<string, string>; body: unknown }> = [];
    let n = 0;
    const served = await serveFetch(async (req) => {
      n++;
      seen.push({ url: new URL(req.url).pathname, headers: Object.fromEntries(req.headers), body: await req.json() });
      if (n === 1) return new Promise<Response>(() => {}); // never answers
      if (n === 3) return new Response(JSON.stringify({ type: "error", error: { type: "invalid_request_error", message: "bad" } }), { status: 400, headers: { "x-should-retry": "false" } });
      return Response.json({ data: [] });
    });
    close = served.close;
    const client = new Anthropic({ baseURL: served.url, authToken: "sk-ant-req-test-token", apiKey: null });
    const poster = new ResultPoster(client, "sesn_1", {}, 300);
    const never = new AbortController().signal;
    await expect(poster.post([event], never)).rejects.toThrow(/timed out after 300ms/);
    await poster.post([event], never);
    const err = await poster.post([event], never).catch((e) => e);
    expect(err).toBeInstanceOf(ResultPostError);
    expect(err).toMatchObject({ status: 400, shouldRetry: false });
    expect(seen[1]).toMatchObject({
      url: "/v1/sessions/sesn_1/events",
      headers: { authorization: "Bearer sk-ant-req-test-token", "anthropic-beta": "managed-agents-2026-04-01", "content-type": "application/json" },
      body: { events: [event] },
    });
    expect(seen[1]!.headers["anthropic-version"]).toMatch(/^\d{4}-\d{2}-\d{2}$/);
  });
});
