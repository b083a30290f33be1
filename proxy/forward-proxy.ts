/**
 * The HTTP forward proxy for process and microVM sandboxes (runtime-neutral: Web streams only;
 * a runtime shim accepts TCP connections and hands each one to `handle` as a `Conn`).
 *
 * A sandbox is given `http://USER:PASS@host:port` as its proxy; the credential names its
 * session. Two kinds of request are served:
 *
 * - `CONNECT host:port`: a host-level decision by the gateway, then a raw tunnel. Once the tunnel
 *   is up nothing more is parsed from the client: every later byte (including bytes that arrived
 *   in the same packet as the CONNECT head) goes to the upstream verbatim, so a second CONNECT
 *   written into the tunnel reaches the allowed host as data and never this proxy as a request.
 * - Absolute-form plain HTTP (`GET http://host/path HTTP/1.1`): the whole request goes through
 *   `gateway.fetch` (decision, credentials, redaction, audit), bodies streamed both ways, several
 *   requests per client connection (keep-alive).
 *
 * Anything else is answered with a clear 4xx and the connection is closed: origin-form requests
 * (this is not a web server), malformed heads (400), heads over the cap (431), a missing or wrong
 * `Proxy-Authorization` (407). A client that does not finish a request head in time is cut off.
 */
import type { SessionContext } from "../core/policy/types.ts";
import type { Gateway } from "./gateway.ts";
import type { Conn } from "./net.ts";

/** Default cap on a request head (request line and headers), in bytes. */
export const MAX_HEAD_BYTES = 64 * 1024;
/** Default time a client has to send a complete request head, and to start the next one. */
export const HEAD_TIMEOUT_MS = 30_000;
/** After an error answer: how long, and how many bytes, to read and discard before closing, so the
 * client's unread request bytes do not turn our close into a reset that loses the answer. */
const LINGER_MS = 1_000;
const LINGER_BYTES = 256 * 1024;
/** Cap on a chunk-size line of a chunked request body. */
const MAX_CHUNK_LINE_BYTES = 4 * 1024;
/** HTTP token characters (RFC 9110 §5.6.2): method and header names. */
const TOKEN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;
/** Headers that describe one hop, never forwarded either way (RFC 9110 §7.6.1), plus the proxy's own. */
const HOP_BY_HOP = new Set(["connection", "keep-alive", "proxy-connection", "proxy-authorization", "proxy-authenticate", "te", "trailer", "transfer-encoding", "upgrade"]);
const REASON_PHRASES: Record<number, string> = {
  400: "Bad Request",
  403: "Forbidden",
  407: "Proxy Authentication Required",
  413: "Content Too Large",
  429: "Too Many Requests",
  431: "Request Header Fields Too Large",
  502: "Bad Gateway",
  505: "HTTP Version Not Supported",
};

const encoder = new TextEncoder();
const CRLF = encoder.encode("\r\n");
const LF = 0x0a;

/** What a sandbox puts in its proxy URL: `http://username:password@host:port`. */
export interface ProxyCredentials {
  username: string;
  password: string;
}

/** Proxy credentials, one set per registered session. */
export interface ProxySessions {
  /** New credentials for `session`; they stay valid until `unregister(session.sessionId)`. */
  register(session: SessionContext): ProxyCredentials;
  /** Revoke every credential of the session and end its open tunnels and requests. */
  unregister(sessionId: string): void;
  /** The session a `Proxy-Authorization` header value belongs to, or undefined. */
  authenticate(header: string | null): { session: SessionContext; signal: AbortSignal } | undefined;
}

/** Options for {@link createForwardProxy}. */
export interface ForwardProxyOptions {
  gateway: Gateway;
  /** Where credentials are registered; a new, empty registry when omitted. */
  sessions?: ProxySessions;
  /** Time a client has to send a complete request head, and to start the next (default 30 s). */
  headTimeoutMs?: number;
  /** Cap on a request head in bytes (default 64 KiB); over it the answer is 431. */
  maxHeadBytes?: number;
}

/** The forward proxy: register sessions, then hand it each client connection. */
export interface ForwardProxy {
  /** The credential registry (the one passed in, or the proxy's own). */
  sessions: ProxySessions;
  /** Serve one client connection until it ends; never rejects; closes the connection at the end. */
  handle(conn: Conn): Promise<void>;
}

/** A credential registry: random credentials per session, checked in constant time. */
export function createProxySessions(): ProxySessions {
  const byUsername = new Map<string, { password: string; session: SessionContext; revoke: AbortController }>();
  return {
    register(session) {
      const username = `deft-${randomHex(8)}`;
      const password = randomHex(24);
      byUsername.set(username, { password, session, revoke: new AbortController() });
      return { username, password };
    },
    unregister(sessionId) {
      for (const [username, entry] of byUsername) {
        if (entry.session.sessionId !== sessionId) continue;
        byUsername.delete(username);
        entry.revoke.abort(new Error(`session ${sessionId} ended`));
      }
    },
    authenticate(header) {
      const creds = parseBasic(header);
      if (!creds) return undefined;
      const entry = byUsername.get(creds.username);
      if (!entry || !constantTimeEqual(entry.password, creds.password)) return undefined;
      return { session: entry.session, signal: entry.revoke.signal };
    },
  };
}

/** Create the forward proxy over a gateway. */
export function createForwardProxy(opts: ForwardProxyOptions): ForwardProxy {
  const sessions = opts.sessions ?? createProxySessions();
  const settings: Settings = {
    gateway: opts.gateway,
    sessions,
    headTimeoutMs: opts.headTimeoutMs ?? HEAD_TIMEOUT_MS,
    maxHeadBytes: opts.maxHeadBytes ?? MAX_HEAD_BYTES,
  };
  return {
    sessions,
    handle: (conn) => new ClientConnection(conn, settings).serve(),
  };
}

interface Settings {
  gateway: Gateway;
  sessions: ProxySessions;
  headTimeoutMs: number;
  maxHeadBytes: number;
}

/** A parsed request head. */
interface RequestHead {
  method: string;
  target: string;
  /** "1.0" or "1.1". */
  version: string;
  headers: Headers;
}

/** The client broke the protocol (or lacks credentials): answered with `status` and the connection closed. */
class ProtocolError extends Error {
  override name = "ProtocolError";
  constructor(
    readonly status: number,
    message: string,
    /** Extra response headers (Proxy-Authenticate on a 407). */
    readonly headers: Array<[string, string]> = [],
  ) {
    super(message);
  }
}

/** After a request: read the next one, close the connection politely, or it is already torn down. */
type AfterRequest = "next" | "close" | "closed";

/** How a request body is delimited. */
type Framing = { kind: "none" } | { kind: "length"; length: number } | { kind: "chunked" };

/** One client connection, served request by request. */
class ClientConnection {
  private readonly input: ByteQueue;
  private readonly writer: WritableStreamDefaultWriter<Uint8Array>;
  /** Aborted when this connection is over: ends its tunnel and its requests upstream. */
  private readonly life = new AbortController();

  constructor(
    private readonly conn: Conn,
    private readonly settings: Settings,
  ) {
    this.input = new ByteQueue(conn.readable.getReader());
    this.writer = conn.writable.getWriter();
  }

  async serve(): Promise<void> {
    try {
      for (;;) {
        const head = await this.readHead();
        if (!head) return; // the client closed, or the head timed out
        const after = await this.serveRequest(head);
        if (after === "close") await this.closeGracefully();
        if (after !== "next") return;
      }
    } catch (e) {
      if (e instanceof ProtocolError) await this.refuse(e.status, e.message, e.headers).catch(() => {});
      // Anything else is the connection failing under us: nothing to answer.
    } finally {
      this.life.abort();
      this.conn.close();
    }
  }

  /** Serve one request. */
  private async serveRequest(head: RequestHead): Promise<AfterRequest> {
    if (head.method === "CONNECT") {
      const authority = parseAuthority(head.target);
      const auth = this.authenticate(head);
      const refused = await this.tunnel(authority, auth.session, auth.signal);
      return refused ? "close" : "closed";
    }
    const url = parseAbsoluteUrl(head.target);
    const framing = bodyFraming(head);
    const auth = this.authenticate(head);
    return (await this.forward(head, url, framing, auth.session, auth.signal)) ? "next" : "close";
  }

  /** The session the request's Proxy-Authorization names; a 407 otherwise. */
  private authenticate(head: RequestHead): { session: SessionContext; signal: AbortSignal } {
    const auth = this.settings.sessions.authenticate(head.headers.get("proxy-authorization"));
    if (auth) return auth;
    const reason = head.headers.has("proxy-authorization") ? "proxy credentials not recognised" : "proxy credentials required";
    throw new ProtocolError(407, reason, [["proxy-authenticate", 'Basic realm="deft"']]);
  }

  /** Read the next request head, within the head timeout. Undefined at the end of the input or on timeout. */
  private async readHead(): Promise<RequestHead | undefined> {
    const timer = setTimeout(() => void this.input.cancel(), this.settings.headTimeoutMs);
    try {
      const lines = await this.input.readHeadLines(this.settings.maxHeadBytes);
      return lines ? parseHead(lines) : undefined;
    } finally {
      clearTimeout(timer);
    }
  }

  /**
   * CONNECT: ask the gateway, then carry bytes both ways until both sides are done. True when
   * the gateway refused (the refusal has been written; the connection is still open).
   */
  private async tunnel(authority: string, session: SessionContext, sessionSignal: AbortSignal): Promise<boolean> {
    const signal = AbortSignal.any([this.life.signal, sessionSignal]);
    let result: Awaited<ReturnType<Gateway["tunnel"]>>;
    try {
      result = await this.settings.gateway.tunnel(authority, session, signal);
    } catch (e) {
      result = { ok: false, status: 502, reason: `tunnel failed: ${errorText(e)}` };
    }
    if (!result.ok) {
      await this.writeError(result.status, result.reason, [["x-deft-egress", "denied"]]);
      return true;
    }
    const { conn: upstream, done } = result;
    const stats: { bytesOut: number; bytesIn: number; error?: string } = { bytesOut: 0, bytesIn: 0 };
    const tearDown = (): void => {
      upstream.close();
      this.conn.close();
    };
    signal.addEventListener("abort", tearDown, { once: true });
    const upstreamWriter = upstream.writable.getWriter();
    const upstreamReader = upstream.readable.getReader();
    const fail = (e: unknown): void => {
      stats.error ??= errorText(e);
      tearDown();
    };
    try {
      await this.writer.write(encoder.encode("HTTP/1.1 200 Connection established\r\n\r\n"));
      // Client to upstream: what is already buffered after the CONNECT head first, then the rest;
      // none of it is parsed. The client's end becomes the upstream's end (half-close).
      const clientToUpstream = (async () => {
        for (let chunk = await this.input.next(); chunk; chunk = await this.input.next()) {
          stats.bytesOut += chunk.byteLength;
          await upstreamWriter.write(chunk);
        }
        await upstreamWriter.close();
      })().catch(fail);
      const upstreamToClient = (async () => {
        for (let r = await upstreamReader.read(); !r.done; r = await upstreamReader.read()) {
          stats.bytesIn += r.value.byteLength;
          await this.writer.write(r.value);
        }
        await this.writer.close();
      })().catch(fail);
      await Promise.all([clientToUpstream, upstreamToClient]);
    } catch (e) {
      fail(e);
    } finally {
      signal.removeEventListener("abort", tearDown);
      upstream.close();
      done(stats);
    }
    return false;
  }

  /** Plain HTTP: one request through gateway.fetch; true when the connection may carry another. */
  private async forward(head: RequestHead, url: URL, framing: Framing, session: SessionContext, sessionSignal: AbortSignal): Promise<boolean> {
    const signal = AbortSignal.any([this.life.signal, sessionSignal]);
    const bodyState = { complete: framing.kind === "none" };
    const body = framing.kind === "none" ? null : requestBody(this.input, framing, bodyState);
    if (body && head.headers.get("expect")?.toLowerCase() === "100-continue") {
      await this.writer.write(encoder.encode("HTTP/1.1 100 Continue\r\n\r\n"));
    }

    let request: Request;
    try {
      request = new Request(url, { method: head.method, headers: forwardedRequestHeaders(head.headers), body, signal, duplex: "half" } as RequestInit);
    } catch (e) {
      throw new ProtocolError(400, `cannot forward this request: ${errorText(e)}`);
    }
    let response: Response;
    try {
      response = await this.settings.gateway.fetch(request, session, "proxy");
    } catch (e) {
      response = new Response(`deft proxy: ${errorText(e)}\n`, { status: 502, headers: { "content-type": "text/plain; charset=utf-8" } });
    }

    // The next request starts where this one's body ends: unless the body has been read whole by
    // the time the answer starts (the gateway may answer without reading it, or while it streams),
    // the connection cannot carry another request, and the answer says so.
    const keepAlive = head.version === "1.1" && !connectionTokens(head.headers).has("close") && bodyState.complete;
    const wroteWhole = await this.writeResponse(head, response, keepAlive);
    return keepAlive && wroteWhole;
  }

  /**
   * Write the gateway's response as HTTP/1.1: its own length when it has one, chunked otherwise
   * (read to the close for an HTTP/1.0 client). True when it was written whole and delimited, so
   * the connection can carry another request.
   */
  private async writeResponse(head: RequestHead, response: Response, keepAlive: boolean): Promise<boolean> {
    const status = response.status;
    const noBody = head.method === "HEAD" || status === 204 || status === 304 || status < 200;
    const declared = response.headers.get("content-length");
    const length = declared !== null && /^\d+$/.test(declared) ? Number(declared) : undefined;
    const framing: "none" | "length" | "chunked" | "close" = noBody ? "none" : length !== undefined ? "length" : head.version === "1.1" ? "chunked" : "close";
    const persistent = keepAlive && framing !== "close";

    const lines = [`HTTP/1.1 ${status} ${oneLine(response.statusText) || REASON_PHRASES[status] || ""}`];
    const nominated = connectionTokens(response.headers);
    response.headers.forEach((value, name) => {
      if (HOP_BY_HOP.has(name) || nominated.has(name)) return;
      if (name === "content-length" && (framing === "chunked" || framing === "close" || status === 204)) return;
      lines.push(`${name}: ${value}`);
    });
    if (framing === "chunked") lines.push("transfer-encoding: chunked");
    if (!persistent) lines.push("connection: close");
    await this.writer.write(encoder.encode(lines.join("\r\n") + "\r\n\r\n"));

    if (framing === "none" || !response.body) {
      await response.body?.cancel();
      if (framing === "chunked") await this.writer.write(encoder.encode("0\r\n\r\n"));
      return framing !== "length" || length === 0 ? persistent : false;
    }
    const reader = response.body.getReader();
    let written = 0;
    try {
      for (let r = await reader.read(); !r.done; r = await reader.read()) {
        let chunk = r.value;
        if (chunk.byteLength === 0) continue;
        if (framing === "length") {
          // Never more than declared: extra bytes would be read as the start of the next response.
          if (written + chunk.byteLength > length!) {
            chunk = chunk.subarray(0, length! - written);
            await this.writer.write(chunk);
            await reader.cancel();
            return false;
          }
          await this.writer.write(chunk);
        } else if (framing === "chunked") {
          await this.writer.write(encoder.encode(chunk.byteLength.toString(16) + "\r\n"));
          await this.writer.write(chunk);
          await this.writer.write(CRLF);
        } else {
          await this.writer.write(chunk);
        }
        written += chunk.byteLength;
      }
    } catch {
      // The upstream body failed, or the client went away: a short (or unterminated) body, then a close.
      reader.cancel().catch(() => {});
      return false;
    }
    if (framing === "chunked") await this.writer.write(encoder.encode("0\r\n\r\n"));
    if (framing === "length" && written !== length) return false;
    return persistent;
  }

  /** Answer with an error and close the connection. */
  private async refuse(status: number, reason: string, extra: Array<[string, string]> = []): Promise<void> {
    await this.writeError(status, reason, extra);
    await this.closeGracefully();
  }

  /** An error answer, the reason as text, announcing the close that follows. */
  private async writeError(status: number, reason: string, extra: Array<[string, string]>): Promise<void> {
    const body = encoder.encode(`deft proxy: ${reason}\n`);
    const lines = [`HTTP/1.1 ${status} ${REASON_PHRASES[status] ?? ""}`, "content-type: text/plain; charset=utf-8", `content-length: ${body.byteLength}`, "connection: close"];
    for (const [name, value] of extra) lines.push(`${name}: ${oneLine(value)}`);
    await this.writer.write(encoder.encode(lines.join("\r\n") + "\r\n\r\n"));
    await this.writer.write(body);
  }

  /**
   * End our side (everything written is delivered), then read and discard what the client still
   * sends, briefly: closing with its bytes unread would reset the connection and could lose the
   * answer on the client's side.
   */
  private async closeGracefully(): Promise<void> {
    try {
      await this.writer.close();
    } catch {
      return; // already gone
    }
    const timer = setTimeout(() => void this.input.cancel(), LINGER_MS);
    try {
      let seen = 0;
      for (let chunk = await this.input.next(); chunk && seen < LINGER_BYTES; chunk = await this.input.next()) seen += chunk.byteLength;
    } catch {
      // The client reset: nothing more to wait for.
    } finally {
      clearTimeout(timer);
    }
  }
}

/**
 * The client's bytes, read on demand: whole chunks as they arrive, or parts of them; what is not
 * consumed stays for the next read (the body after a head, the next pipelined request, the
 * tunnel's first bytes). No copies except when a head line spans chunks.
 */
class ByteQueue {
  private readonly pending: Uint8Array[] = [];
  private ended = false;

  constructor(private readonly reader: ReadableStreamDefaultReader<Uint8Array>) {}

  /** The next bytes (at most `max`), or null at the end of the input. */
  async next(max = Number.POSITIVE_INFINITY): Promise<Uint8Array | null> {
    let chunk = this.pending.shift();
    while (!chunk || chunk.byteLength === 0) {
      if (this.ended) return null;
      const r = await this.reader.read();
      if (r.done) {
        this.ended = true;
        return null;
      }
      chunk = r.value;
    }
    if (chunk.byteLength > max) {
      this.pending.unshift(chunk.subarray(max));
      chunk = chunk.subarray(0, max);
    }
    return chunk;
  }

  /** Put bytes back in front. */
  unread(bytes: Uint8Array): void {
    if (bytes.byteLength > 0) this.pending.unshift(bytes);
  }

  /** End the input now: a pending or later read sees the end. */
  async cancel(): Promise<void> {
    this.ended = true;
    this.pending.length = 0;
    await this.reader.cancel().catch(() => {});
  }

  /**
   * One line without its line ending (LF or CRLF), as Latin-1 text; null at the end of the input
   * before any byte of it. Throws a ProtocolError when it is longer than `max` bytes.
   */
  async readLine(max: number, tooLong: ProtocolError): Promise<string | null> {
    const parts: Uint8Array[] = [];
    let size = 0;
    for (;;) {
      const chunk = await this.next();
      if (!chunk) {
        if (size === 0) return null;
        throw new ProtocolError(400, "the connection ended in the middle of a line");
      }
      const lf = chunk.indexOf(LF);
      const part = lf < 0 ? chunk : chunk.subarray(0, lf);
      size += part.byteLength;
      if (size > max) throw tooLong;
      parts.push(part);
      if (lf >= 0) {
        this.unread(chunk.subarray(lf + 1));
        let line = latin1(parts);
        if (line.endsWith("\r")) line = line.slice(0, -1);
        if (line.includes("\r")) throw new ProtocolError(400, "a bare carriage return in the request head");
        return line;
      }
    }
  }

  /**
   * The lines of the next request head up to its empty line; empty lines before it are skipped
   * (RFC 9112 §2.2). Null at the end of the input between requests. The whole head, line endings
   * included, may be at most `max` bytes: over it, a 431.
   */
  async readHeadLines(max: number): Promise<string[] | null> {
    const tooLarge = new ProtocolError(431, `the request head is over ${max} bytes`);
    const lines: string[] = [];
    let size = 0;
    for (;;) {
      const line = await this.readLine(max - size, tooLarge);
      if (line === null) {
        if (lines.length === 0) return null;
        throw new ProtocolError(400, "the connection ended in the middle of the request head");
      }
      size += line.length + 2;
      if (size > max) throw tooLarge;
      if (line !== "") lines.push(line);
      else if (lines.length > 0) return lines;
    }
  }
}

/** A web stream over the request body as the client frames it; `state.complete` once read whole. */
function requestBody(input: ByteQueue, framing: Exclude<Framing, { kind: "none" }>, state: { complete: boolean }): ReadableStream<Uint8Array> {
  const ended = (): Error => new Error("the client closed the connection before the request body was complete");
  if (framing.kind === "length") {
    let left = framing.length;
    return new ReadableStream<Uint8Array>(
      {
        async pull(controller) {
          const chunk = await input.next(left);
          if (!chunk) throw ended();
          left -= chunk.byteLength;
          controller.enqueue(chunk);
          if (left === 0) {
            state.complete = true;
            controller.close();
          }
        },
      },
      { highWaterMark: 0 },
    );
  }
  // Chunked: size line, data, CRLF, ... a zero size, trailers (discarded), an empty line.
  let chunkLeft = 0;
  const malformed = (what: string): ProtocolError => new ProtocolError(400, `malformed chunked request body: ${what}`);
  const lineTooLong = malformed("a line is too long");
  const expectLineEnd = async (): Promise<void> => {
    const line = await input.readLine(MAX_CHUNK_LINE_BYTES, lineTooLong);
    if (line === null) throw ended();
    if (line !== "") throw malformed("data longer than its chunk size");
  };
  return new ReadableStream<Uint8Array>(
    {
      async pull(controller) {
        if (chunkLeft === 0) {
          const line = await input.readLine(MAX_CHUNK_LINE_BYTES, lineTooLong);
          if (line === null) throw ended();
          const m = /^([0-9a-fA-F]{1,8})[ \t]*(;.*)?$/.exec(line);
          if (!m) throw malformed(`bad chunk size line ${JSON.stringify(line.slice(0, 40))}`);
          chunkLeft = parseInt(m[1]!, 16);
          if (chunkLeft === 0) {
            let trailerBytes = 0;
            for (;;) {
              const trailer = await input.readLine(MAX_CHUNK_LINE_BYTES, lineTooLong);
              if (trailer === null) throw ended();
              if (trailer === "") break;
              trailerBytes += trailer.length;
              if (trailerBytes > MAX_HEAD_BYTES) throw malformed("trailers too large");
            }
            state.complete = true;
            controller.close();
            return;
          }
        }
        const data = await input.next(chunkLeft);
        if (!data) throw ended();
        chunkLeft -= data.byteLength;
        if (chunkLeft === 0) await expectLineEnd();
        controller.enqueue(data);
      },
    },
    { highWaterMark: 0 },
  );
}

/** Parse a request line and header lines; throws a ProtocolError(400) on anything malformed. */
function parseHead(lines: string[]): RequestHead {
  const requestLine = /^(\S+) (\S+) HTTP\/(\d\.\d)$/.exec(lines[0]!);
  if (!requestLine || !TOKEN.test(requestLine[1]!)) throw new ProtocolError(400, "malformed request line");
  const [, method, target, version] = requestLine as unknown as [string, string, string, string];
  if (version !== "1.1" && version !== "1.0") throw new ProtocolError(505, `HTTP/${version} is not supported`);
  const headers = new Headers();
  for (const line of lines.slice(1)) {
    if (line.startsWith(" ") || line.startsWith("\t")) throw new ProtocolError(400, "folded header lines are not accepted");
    const colon = line.indexOf(":");
    const name = colon > 0 ? line.slice(0, colon) : "";
    if (!TOKEN.test(name)) throw new ProtocolError(400, `malformed header line ${JSON.stringify(line.slice(0, 40))}`);
    try {
      headers.append(name, line.slice(colon + 1).trim());
    } catch {
      throw new ProtocolError(400, `header ${name} has a value that is not allowed`);
    }
  }
  return { method, target, version, headers };
}

/** How the request body is delimited; throws a ProtocolError on ambiguous or unsupported framing. */
function bodyFraming(head: RequestHead): Framing {
  const transferEncoding = head.headers.get("transfer-encoding");
  const contentLength = head.headers.get("content-length");
  // Both, or several different lengths, is how requests get smuggled past a proxy: refused.
  if (transferEncoding !== null && contentLength !== null) throw new ProtocolError(400, "both Transfer-Encoding and Content-Length");
  let framing: Framing = { kind: "none" };
  if (transferEncoding !== null) {
    if (transferEncoding.trim().toLowerCase() !== "chunked") throw new ProtocolError(400, `unsupported Transfer-Encoding ${JSON.stringify(transferEncoding)}`);
    framing = { kind: "chunked" };
  } else if (contentLength !== null) {
    if (!/^\d{1,15}$/.test(contentLength)) throw new ProtocolError(400, `bad Content-Length ${JSON.stringify(contentLength)}`);
    const length = Number(contentLength);
    if (length > 0) framing = { kind: "length", length };
  }
  if (framing.kind !== "none" && (head.method === "GET" || head.method === "HEAD")) throw new ProtocolError(400, `a ${head.method} request with a body cannot be forwarded`);
  return framing;
}

/** The absolute-form target of a plain HTTP proxy request; anything else is a 400. */
function parseAbsoluteUrl(target: string): URL {
  if (!/^http:\/\//i.test(target)) {
    throw new ProtocolError(400, target.startsWith("/") || target === "*" ? "this is a proxy: send absolute-form requests (GET http://host/path) or CONNECT host:port" : `only http:// URLs can be requested through the proxy (use CONNECT for TLS), not ${JSON.stringify(target.slice(0, 60))}`);
  }
  let url: URL;
  try {
    url = new URL(target);
  } catch {
    throw new ProtocolError(400, `bad URL ${JSON.stringify(target.slice(0, 60))}`);
  }
  if (!url.hostname) throw new ProtocolError(400, "the URL has no host");
  return url;
}

/** Check a CONNECT target (`host:port`, `[v6]:port`); returns it unchanged or throws a 400. */
function parseAuthority(target: string): string {
  const m = /^(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9._-]+):(\d{1,5})$/.exec(target);
  const port = m ? Number(m[2]) : 0;
  if (!m || port < 1 || port > 65535) throw new ProtocolError(400, `CONNECT needs host:port, not ${JSON.stringify(target.slice(0, 60))}`);
  return target;
}

/** The headers sent on to the gateway: the request's own, minus this hop's and the proxy's. */
function forwardedRequestHeaders(incoming: Headers): Headers {
  const out = new Headers();
  const nominated = connectionTokens(incoming);
  incoming.forEach((value, name) => {
    if (HOP_BY_HOP.has(name) || nominated.has(name) || name === "host" || name === "expect") return;
    out.append(name, value);
  });
  return out;
}

/** The lower-cased tokens of a Connection header. */
function connectionTokens(headers: Headers): Set<string> {
  const value = headers.get("connection");
  return new Set(value ? value.split(",").map((t) => t.trim().toLowerCase()) : []);
}

/** `Basic base64(user:pass)` → the pair, or undefined. */
function parseBasic(header: string | null): ProxyCredentials | undefined {
  const m = header ? /^Basic +([A-Za-z0-9+/]+=*) *$/i.exec(header) : null;
  if (!m) return undefined;
  let decoded: string;
  try {
    decoded = atob(m[1]!);
  } catch {
    return undefined;
  }
  const colon = decoded.indexOf(":");
  if (colon < 0) return undefined;
  return { username: decoded.slice(0, colon), password: decoded.slice(colon + 1) };
}

/** Compare two strings without an early exit on the first differing character (lengths are not secret). */
function constantTimeEqual(a: string, b: string): boolean {
  if (a.length !== b.length) return false;
  let diff = 0;
  for (let i = 0; i < a.length; i++) diff |= a.charCodeAt(i) ^ b.charCodeAt(i);
  return diff === 0;
}

/** `bytes` random bytes from Web Crypto, as hex. */
function randomHex(bytes: number): string {
  const buf = crypto.getRandomValues(new Uint8Array(bytes));
  return Array.from(buf, (b) => b.toString(16).padStart(2, "0")).join("");
}

/** Bytes as Latin-1 text (each byte one character), as HTTP heads are read. */
function latin1(parts: Uint8Array[]): string {
  let out = "";
  for (const part of parts) for (let i = 0; i < part.byteLength; i += 4096) out += String.fromCharCode(...part.subarray(i, i + 4096));
  return out;
}

/** A value safe on one header or status line. */
function oneLine(text: string): string {
  return text.replace(/[\r\n]+/g, " ");
}

function errorText(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}
