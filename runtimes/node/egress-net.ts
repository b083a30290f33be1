// The egress gateway's network on Node (proxy/net.ts `EgressNet`): name resolution, one HTTP
// exchange with a pinned, already-checked address, and raw TCP connections for CONNECT tunnels.
// Nothing here looks a name up on the way to a connection: `request` and `connect` dial the
// address the gateway checked, and TLS still verifies the certificate against the request's name.
import dns from "node:dns";
import http from "node:http";
import https from "node:https";
import net from "node:net";
import tls from "node:tls";
import type { Conn, EgressNet, PinnedTarget } from "../../proxy/net.ts";
import { abortError, bodyStream } from "./http-fetch.ts";

/** Default time a name resolution may take before it fails. */
const LOOKUP_TIMEOUT_MS = 5_000;
/** Idle keep-alive sockets kept per pool (address + TLS name). */
const MAX_FREE_SOCKETS = 8;
/** Bytes a connection's readable side buffers before the socket is paused (backpressure). */
const READ_BUFFER_BYTES = 64 * 1024;
/** Bytes a connection's writable side lets Node buffer before a write waits for the socket. */
const WRITE_BUFFER_BYTES = 256 * 1024;
/** Request headers that describe this hop, not the request: Node's client sets its own. */
const HOP_BY_HOP_REQUEST_HEADERS = new Set(["connection", "keep-alive", "proxy-connection", "proxy-authorization", "te", "trailer", "transfer-encoding", "upgrade", "host"]);

/** Options for {@link createNodeEgressNet}. */
export interface NodeEgressNetOptions {
  /**
   * DNS servers to ask ("1.1.1.1", "127.0.0.1:5353", "[::1]:53"), through node:dns's resolver.
   * Without them, names go through the system resolver (`getaddrinfo`: /etc/hosts, nsswitch).
   */
  dnsServers?: string[];
  /** How long one name resolution may take (default 5 s). */
  lookupTimeoutMs?: number;
  /** Most sockets open at once per pool (address + TLS name); default unlimited. */
  agentMaxSockets?: number;
  /** Extra trusted CA certificates (PEM) for HTTPS upstreams, in place of Node's bundled roots. */
  ca?: string | string[];
  /**
   * For tests and lab networks only: maps a checked address to the one actually dialled, at
   * the socket level, after the gateway's checks (e.g. 203.0.113.10:443 → 127.0.0.1:PORT, so a
   * test can use "public" addresses served on loopback). The Host header, TLS SNI and the name
   * the certificate must match are unchanged. Never set it in production: it bypasses nothing
   * in the policy, but it makes the audit's address differ from the one connected to.
   */
  connectHook?: (address: string, port: number) => { address: string; port: number };
}

/** The Node `EgressNet`: every optional capability present, plus `close()` for its socket pools. */
export interface NodeEgressNet extends EgressNet {
  resolve(host: string, signal?: AbortSignal): Promise<string[]>;
  request(target: PinnedTarget, req: Request, signal: AbortSignal): Promise<Response>;
  connect(target: { address: string; port: number }, signal: AbortSignal): Promise<Conn>;
  /** Destroy the keep-alive pools (open exchanges are cut). */
  close(): void;
}

/**
 * A failure to resolve or reach an upstream. `code` is the system's (ENOTFOUND, ETIMEOUT,
 * ECONNREFUSED, ECONNRESET, ERR_TLS_CERT_ALTNAME_INVALID, ...) or EUPSTREAM when it had none;
 * the message names the host and address and says what happened in words.
 */
export class EgressNetError extends Error {
  override name = "EgressNetError";
  constructor(
    readonly code: string,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

/** Build the Node network for the egress gateway. */
export function createNodeEgressNet(opts: NodeEgressNetOptions = {}): NodeEgressNet {
  const lookupTimeoutMs = opts.lookupTimeoutMs ?? LOOKUP_TIMEOUT_MS;
  const agentOptions = { keepAlive: true, maxFreeSockets: MAX_FREE_SOCKETS, scheduling: "lifo" as const, ...(opts.agentMaxSockets ? { maxSockets: opts.agentMaxSockets } : {}) };
  // One Agent per scheme; Node pools inside it by host:port (+ servername for TLS), which here is
  // the checked address plus the name, so a socket is only reused for the same address and name.
  const agents = {
    "http:": new http.Agent(agentOptions),
    "https:": new https.Agent({ ...agentOptions, ...(opts.ca ? { ca: opts.ca } : {}) }),
  };
  const dial = (address: string, port: number): { address: string; port: number } => (opts.connectHook ? opts.connectHook(address, port) : { address, port });

  async function resolve(host: string, signal?: AbortSignal): Promise<string[]> {
    signal?.throwIfAborted();
    const name = unbracket(host);
    if (net.isIP(name)) return [name];
    return opts.dnsServers ? resolveWithServers(name, opts.dnsServers, lookupTimeoutMs, signal) : resolveWithSystem(name, lookupTimeoutMs, signal);
  }

  function request(target: PinnedTarget, req: Request, signal: AbortSignal): Promise<Response> {
    signal.throwIfAborted();
    const address = unbracket(target.address);
    if (!net.isIP(address)) return Promise.reject(new EgressNetError("EINVAL", `refusing to dial ${target.address}: a pinned target must be an IP address`));
    const servername = unbracket(target.servername);
    const url = new URL(req.url);
    const to = dial(address, target.port);
    const label = `${servername} (${hostPort(to.address, to.port)})`;
    const isHttps = target.protocol === "https:";
    const headers = outgoingHeaders(req.headers, url);

    const options: https.RequestOptions = {
      host: to.address,
      port: to.port,
      method: req.method,
      path: url.pathname + url.search,
      headers,
      setHost: false,
      agent: agents[target.protocol],
    };
    if (isHttps) {
      // SNI carries the name (never an IP: RFC 6066); the certificate is checked against the name
      // whatever was dialled, so the pinned address (or a test's connectHook) changes nothing there.
      if (!net.isIP(servername)) options.servername = servername;
      options.checkServerIdentity = (_dialled, cert) => tls.checkServerIdentity(servername, cert);
    }

    return new Promise<Response>((resolvePromise, reject) => {
      const out = (isHttps ? https : http).request(options);
      let response: http.IncomingMessage | undefined;
      // Before the headers the exchange fails with the abort; after, the body stream does. An
      // abort once the body has arrived whole changes nothing, so the socket stays pooled.
      const onAbort = (): void => {
        if (response?.complete) return;
        (response ?? out).destroy(abortError(signal));
      };
      signal.addEventListener("abort", onAbort, { once: true });
      const stopListening = (): void => signal.removeEventListener("abort", onAbort);

      out.on("error", (e: NodeJS.ErrnoException) => {
        stopListening();
        reject(signal.aborted ? abortError(signal) : upstreamError(e, label));
      });
      out.on("response", (res) => {
        response = res;
        res.once("end", stopListening);
        res.once("close", stopListening);
        const status = res.statusCode ?? 0;
        if (status < 200 || status > 599) {
          res.destroy();
          reject(new EgressNetError("EUPSTREAM", `${label} answered with status ${status}, which is not a final HTTP status`));
          return;
        }
        const responseHeaders = new Headers();
        for (let i = 0; i < res.rawHeaders.length; i += 2) {
          try {
            responseHeaders.append(res.rawHeaders[i]!, res.rawHeaders[i + 1]!);
          } catch {
            // A header value the Fetch API cannot hold (Node's parser is more lenient): dropped.
          }
        }
        const nullBody = req.method === "HEAD" || status === 204 || status === 205 || status === 304;
        if (nullBody) res.resume();
        resolvePromise(new Response(nullBody ? null : bodyStream(res), { status, statusText: validStatusText(res.statusMessage), headers: responseHeaders }));
      });

      if (req.body) void sendBody(req.body, out);
      else out.end();
    });
  }

  function connect(target: { address: string; port: number }, signal: AbortSignal): Promise<Conn> {
    signal.throwIfAborted();
    const address = unbracket(target.address);
    if (!net.isIP(address)) return Promise.reject(new EgressNetError("EINVAL", `refusing to dial ${target.address}: a tunnel target must be an IP address`));
    const to = dial(address, target.port);
    const label = hostPort(to.address, to.port);
    return new Promise<Conn>((resolvePromise, reject) => {
      const socket = net.connect({ host: to.address, port: to.port, allowHalfOpen: true, noDelay: true });
      // The signal covers the connection's whole life, as fetch's does: an abort after the
      // connect tears the tunnel down too.
      const onAbort = (): void => {
        socket.destroy(abortError(signal));
      };
      signal.addEventListener("abort", onAbort, { once: true });
      socket.once("close", () => signal.removeEventListener("abort", onAbort));
      socket.once("error", (e: NodeJS.ErrnoException) => reject(signal.aborted ? abortError(signal) : upstreamError(e, label)));
      socket.once("connect", () => resolvePromise(socketConn(socket)));
    });
  }

  return {
    resolve,
    request,
    connect,
    close(): void {
      agents["http:"].destroy();
      agents["https:"].destroy();
    },
  };
}

/**
 * A connected socket as a `Conn`: the readable side pauses the socket while its reader is behind;
 * closing the writable side half-closes the socket (FIN), and the peer's FIN ends the readable
 * side. The socket must have been made with `allowHalfOpen: true` for one direction to outlive
 * the other. `close()` destroys the socket. Used for upstream tunnels and the forward proxy's
 * client connections.
 */
export function socketConn(socket: net.Socket): Conn {
  let readableDone = false;
  // Errors reach the streams through "close" (socket.errored); without a listener one would crash.
  socket.on("error", () => {});

  const readable = new ReadableStream<Uint8Array>(
    {
      start(controller) {
        socket.on("data", (chunk: Buffer) => {
          controller.enqueue(new Uint8Array(chunk.buffer, chunk.byteOffset, chunk.byteLength));
          if ((controller.desiredSize ?? 0) <= 0) socket.pause();
        });
        socket.once("end", () => {
          if (readableDone) return;
          readableDone = true;
          controller.close();
        });
        socket.once("close", () => {
          if (readableDone) return;
          readableDone = true;
          controller.error(socket.errored ?? new EgressNetError("ECONNRESET", "the connection was closed"));
        });
      },
      pull() {
        socket.resume();
      },
      cancel() {
        socket.destroy();
      },
    },
    { highWaterMark: READ_BUFFER_BYTES, size: (chunk) => chunk.byteLength },
  );

  const writable = new WritableStream<Uint8Array>({
    write(chunk) {
      if (socket.destroyed || socket.writableEnded) throw socket.errored ?? new EgressNetError("EPIPE", "the connection is closed for writing");
      // Wait for the socket only once it holds a fair amount: waiting at Node's own 16 KiB mark
      // would stall on nearly every 64 KiB chunk and halve a tunnel's throughput.
      socket.write(chunk);
      if (socket.writableLength <= WRITE_BUFFER_BYTES) return;
      return whenDrained(socket);
    },
    close() {
      return new Promise<void>((resolve, reject) => {
        if (socket.writableFinished) return resolve();
        const onFinish = (): void => {
          socket.off("close", onClose);
          resolve();
        };
        const onClose = (): void => {
          socket.off("finish", onFinish);
          if (socket.writableFinished) resolve();
          else reject(socket.errored ?? new EgressNetError("EPIPE", "the connection closed before its last bytes were sent"));
        };
        socket.once("finish", onFinish);
        socket.once("close", onClose);
        socket.end();
      });
    },
    abort() {
      socket.destroy();
    },
  });

  return {
    readable,
    writable,
    close(): void {
      socket.destroy();
    },
  };
}

/** Resolves when the socket can take more, or rejects when it closed first. */
function whenDrained(stream: net.Socket | http.ClientRequest): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    if (stream.destroyed) return reject(stream.errored ?? new EgressNetError("EPIPE", "the connection closed while sending"));
    const onDrain = (): void => {
      stream.off("close", onClose);
      resolve();
    };
    const onClose = (): void => {
      stream.off("drain", onDrain);
      reject(stream.errored ?? new EgressNetError("EPIPE", "the connection closed while sending"));
    };
    stream.once("drain", onDrain);
    stream.once("close", onClose);
  });
}

/** Stream a web request body into Node's request, with backpressure; an error destroys the request. */
async function sendBody(body: ReadableStream<Uint8Array>, out: http.ClientRequest): Promise<void> {
  const reader = body.getReader();
  // The exchange ended first (an abort, a reset, an early answer): stop reading the body.
  const onClose = (): void => void reader.cancel().catch(() => {});
  out.once("close", onClose);
  try {
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      if (!out.write(value)) await whenDrained(out);
    }
    if (!out.destroyed) out.end();
  } catch (e) {
    // The body failed (or the upstream went away while we sent it): the exchange is over.
    out.destroy(e instanceof Error ? e : new Error(String(e)));
    reader.cancel(e).catch(() => {});
  } finally {
    out.off("close", onClose);
  }
}

/** The request's headers for Node, minus those that describe this hop, with Host from the URL. */
function outgoingHeaders(source: Headers, url: URL): Record<string, string> {
  const headers: Record<string, string> = { host: url.host };
  // Headers the Connection header names are for this hop too (RFC 9110 §7.6.1).
  const nominated = new Set((source.get("connection") ?? "").split(",").map((t) => t.trim().toLowerCase()));
  source.forEach((value, name) => {
    if (HOP_BY_HOP_REQUEST_HEADERS.has(name) || nominated.has(name)) return;
    headers[name] = value;
  });
  return headers;
}

/** Node's status message if the Fetch API accepts it as a reason phrase, else "". */
function validStatusText(text: string | undefined): string {
  return text && /^[\t\x20-\x7e\x80-\xff]*$/.test(text) ? text : "";
}

/** Names of TLS failures worth saying in words; anything else with a TLS code keeps Node's message. */
const TLS_CODES = new Set([
  "ERR_TLS_CERT_ALTNAME_INVALID",
  "DEPTH_ZERO_SELF_SIGNED_CERT",
  "SELF_SIGNED_CERT_IN_CHAIN",
  "UNABLE_TO_VERIFY_LEAF_SIGNATURE",
  "UNABLE_TO_GET_ISSUER_CERT_LOCALLY",
  "CERT_HAS_EXPIRED",
  "CERT_NOT_YET_VALID",
  "ERR_SSL_WRONG_VERSION_NUMBER",
  "EPROTO",
]);

/** A Node error from reaching `label` as an EgressNetError whose message says what happened. */
function upstreamError(e: NodeJS.ErrnoException, label: string): EgressNetError {
  const code = e.code ?? "EUPSTREAM";
  let what: string;
  if (code === "ECONNREFUSED") what = `connection refused by ${label}`;
  else if (code === "ECONNRESET") what = `connection reset by ${label}`;
  else if (code === "ETIMEDOUT") what = `connection to ${label} timed out`;
  else if (code === "EHOSTUNREACH" || code === "ENETUNREACH") what = `${label} is unreachable`;
  else if (TLS_CODES.has(code) || code.startsWith("ERR_SSL_") || code.startsWith("ERR_TLS_")) what = `TLS with ${label} failed: ${e.message}`;
  else if (code.startsWith("HPE_")) what = `${label} sent an invalid HTTP response: ${e.message}`;
  else what = `exchange with ${label} failed: ${e.message}`;
  return new EgressNetError(code, what, { cause: e });
}

/** Every A and AAAA record of `name`, asked of the given DNS servers. */
async function resolveWithServers(name: string, servers: string[], timeoutMs: number, signal?: AbortSignal): Promise<string[]> {
  const resolver = new dns.promises.Resolver({ timeout: timeoutMs, tries: 1 });
  resolver.setServers(servers);
  // One deadline for both queries; an abort or the deadline cancels whatever is outstanding.
  let timedOut = false;
  const timer = setTimeout(() => {
    timedOut = true;
    resolver.cancel();
  }, timeoutMs);
  const onAbort = (): void => resolver.cancel();
  signal?.addEventListener("abort", onAbort, { once: true });
  try {
    const [v4, v6] = await Promise.allSettled([resolver.resolve4(name), resolver.resolve6(name)]);
    signal?.throwIfAborted();
    const addresses = [...(v4.status === "fulfilled" ? v4.value : []), ...(v6.status === "fulfilled" ? v6.value : [])];
    if (addresses.length > 0) return [...new Set(addresses)];
    const codes = [v4, v6].map((r) => (r.status === "rejected" ? ((r.reason as NodeJS.ErrnoException).code ?? "") : "ENODATA"));
    if (timedOut || codes.includes("ETIMEOUT")) throw new EgressNetError("ETIMEOUT", `resolving ${name} timed out after ${timeoutMs} ms`);
    if (codes.includes("ENOTFOUND")) throw new EgressNetError("ENOTFOUND", `${name} does not exist (NXDOMAIN)`);
    if (codes.every((c) => c === "ENODATA")) throw new EgressNetError("ENODATA", `${name} has no A or AAAA record`);
    const failed = [v4, v6].find((r) => r.status === "rejected") as PromiseRejectedResult;
    const reason = failed.reason as NodeJS.ErrnoException;
    throw new EgressNetError(reason.code ?? "EDNS", `resolving ${name} failed: ${reason.message}`, { cause: reason });
  } finally {
    clearTimeout(timer);
    signal?.removeEventListener("abort", onAbort);
  }
}

/** Every address the system resolver gives for `name` (getaddrinfo cannot be cancelled: raced). */
async function resolveWithSystem(name: string, timeoutMs: number, signal?: AbortSignal): Promise<string[]> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  let onAbort: (() => void) | undefined;
  const deadline = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new EgressNetError("ETIMEOUT", `resolving ${name} timed out after ${timeoutMs} ms`)), timeoutMs);
    onAbort = () => reject(abortError(signal!));
    signal?.addEventListener("abort", onAbort, { once: true });
  });
  try {
    const found = await Promise.race([dns.promises.lookup(name, { all: true, verbatim: true }), deadline]);
    if (found.length === 0) throw new EgressNetError("ENODATA", `${name} has no address`);
    return [...new Set(found.map((a) => a.address))];
  } catch (e) {
    if (e instanceof EgressNetError || (e as Error).name === "AbortError" || signal?.aborted) throw e;
    const err = e as NodeJS.ErrnoException;
    if (err.code === "ENOTFOUND") throw new EgressNetError("ENOTFOUND", `${name} does not exist`, { cause: err });
    if (err.code === "EAI_AGAIN") throw new EgressNetError("ETIMEOUT", `resolving ${name} failed for now (no answer from DNS)`, { cause: err });
    throw new EgressNetError(err.code ?? "EDNS", `resolving ${name} failed: ${err.message}`, { cause: err });
  } finally {
    clearTimeout(timer);
    if (onAbort) signal?.removeEventListener("abort", onAbort);
  }
}

/** "[::1]" → "::1"; anything else unchanged. */
function unbracket(host: string): string {
  return host.startsWith("[") && host.endsWith("]") ? host.slice(1, -1) : host;
}

/** "1.2.3.4:80" or "[::1]:80". */
function hostPort(address: string, port: number): string {
  return net.isIPv6(address) ? `[${address}]:${port}` : `${address}:${port}`;
}
