// The emulator's "messages" brain drives a session from the Messages API. The hosted API cannot
// be reached here, so a small stand-in on loopback answers /v1/messages: first a tool_use, then,
// given the tool_result, a final text. Deft's worker runs the tool in between.
import { Hono } from "hono";
import { afterEach, describe, expect, it } from "vitest";
import { serveFetch } from "../runtimes/node/serve.ts";
import { startEmulator, type Harness } from "./emulator-helpers.ts";
import { startWorker, type WorkerHarness } from "./worker-helpers.ts";

let h: Harness | undefined;
let w: WorkerHarness | undefined;
let fake: { close(): Promise<void> } | undefined;
afterEach(async () => {
  await w?.stop();
  await h?.close();
  await fake?.close();
  h = w = fake = undefined;
});

describe("emulator brain: the Messages API", () => {
  it("turns the model's tool_use into agent.tool_use and feeds the worker's result back", async () => {
    const seen: Array<{ auth: string | null; body: { messages: Array<{ role: string; content: unknown }>; tools: Array<{ name: string }> } }> = [];
    const app = new Hono().post("/v1/messages", async (c) => {
      const body = await c.req.json();
      seen.push({ auth: c.req.header("x-api-key") ?? c.req.header("authorization")?.replace(/^Bearer /, "") ?? null, body });
      const last = body.messages.at(-1);
      const toolResult = Array.isArray(last.content) ? last.content.find((b: { type: string }) => b.type === "tool_result") : undefined;
      const message = (content: unknown[], stop: string) => ({ id: `msg_${seen.length}`, type: "message", role: "assistant", model: body.model, content, stop_reason: stop, stop_sequence: null, usage: { input_tokens: 1, output_tokens: 1 } });
      if (!toolResult) return c.json(message([{ type: "text", text: "Writing it." }, { type: "tool_use", id: "toolu_1", name: "write", input: { file_path: "hello.txt", content: "hi" } }], "tool_use"));
      return c.json(message([{ type: "text", text: `The tool said: ${toolResult.content}` }], "end_turn"));
    });
    const served = await serveFetch(app.fetch);
    fake = served;
    h = await startEmulator({ brain: "messages", anthropicApiKey: "sk-ant-test-messages-key", anthropicBaseUrl: served.url });
    w = startWorker(h);
    const sid = String(h.emu.control.createSession({ title: "model-driven" }).id);
    h.emu.control.sendUserMessage(sid, "write hi to hello.txt");
    const report = await h.emu.control.waitFor(sid, (r) => r.scenarioDone, 15_000);
    expect(report.toolUses).toHaveLength(1);
    expect(report.toolUses[0]).toMatchObject({ name: "write", results: 1, is_error: false });
    expect(seen).toHaveLength(2);
    expect(seen[0]!.auth).toBe("sk-ant-test-messages-key");
    expect(seen[0]!.body.tools.map((t) => t.name)).toEqual(expect.arrayContaining(["bash", "read", "write", "edit", "glob", "grep"]));
    expect(JSON.stringify(seen[1]!.body.messages.at(-1))).toContain("wrote 2 bytes to hello.txt");
    const final = h.emu.control.events(sid).filter((e) => e.type === "agent.message").at(-1);
    expect(JSON.stringify(final)).toContain("The tool said: wrote 2 bytes to hello.txt");
  });
});
