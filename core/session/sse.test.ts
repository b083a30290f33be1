import { describe, expect, it } from "vitest";
import { readSessionEvents, SseDecoder, StreamErrorEvent } from "./sse.ts";

const enc = new TextEncoder();
function decodeAll(chunks: Array<string | Uint8Array>) {
  const d = new SseDecoder();
  const out = chunks.flatMap((c) => d.push(typeof c === "string" ? enc.encode(c) : c));
  return [...out, ...d.end()];
}

describe("SseDecoder (contract §4.1)", () => {
  it("splits messages on blank lines with LF, CRLF and CR line ends", () => {
    expect(decodeAll(["event: a\ndata: 1\n\nevent: b\r\ndata: 2\r\n\r\nevent: c\rdata: 3\r\r"])).toEqual([
      { event: "a", data: "1" },
      { event: "b", data: "2" },
      { event: "c", data: "3" },
    ]);
  });

  it("handles a CRLF split across chunks, and a multi-byte character split across chunks", () => {
    const bytes = enc.encode("event: é\r\ndata: ü\r\n\r\n");
    const parts = [bytes.slice(0, 8), bytes.slice(8, 9), bytes.slice(9, 16), bytes.slice(16)];
    expect(decodeAll(parts)).toEqual([{ event: "é", data: "ü" }]);
    expect(decodeAll(["event: x\r", "\ndata: y\r", "\n\r", "\n"])).toEqual([{ event: "x", data: "y" }]);
  });

  it("drops a leading BOM, skips comments, joins data lines, strips one space only", () => {
    expect(decodeAll(["\ufeff: hello\nevent: m\ndata:  two spaces\ndata:x\nid: 7\nretry: 5\n\n"])).toEqual([{ event: "m", data: " two spaces\nx" }]);
  });

  it("drops a message not ended by a blank line at the end of the stream", () => {
    expect(decodeAll(["event: a\ndata: 1\n\nevent: b\ndata: 2\n"])).toEqual([{ event: "a", data: "1" }]);
  });
});

function body(text: string): ReadableStream<Uint8Array> {
  return new ReadableStream({
    start(c) {
      c.enqueue(enc.encode(text));
      c.close();
    },
  });
}

describe("readSessionEvents", () => {
  it("yields JSON events, skipping pings, nameless messages and empty data", async () => {
    const got: unknown[] = [];
    await readSessionEvents(body('event: ping\ndata: {"type":"ping"}\n\ndata: {"lost":1}\n\nevent: x\ndata:\n\nevent: agent.tool_use\ndata: {"id":"1"}\n\n'), (e) => got.push(e));
    expect(got).toEqual([{ id: "1" }]);
  });

  it("throws on an error event, with its body", async () => {
    const err = await readSessionEvents(body('event: error\ndata: {"type":"error","error":{"type":"overloaded_error"}}\n\n'), () => {}).catch((e) => e);
    expect(err).toBeInstanceOf(StreamErrorEvent);
    expect((err as StreamErrorEvent).body).toMatchObject({ error: { type: "overloaded_error" } });
  });
});
