/**
 * The network the gateway uses, supplied by the runtime shim (proxy/ itself imports no runtime
 * API). The gateway resolves a name once, checks every address, then connects to the checked
 * address: `request` and `connect` take an address, never a name, so no second lookup can
 * rebind the host between the check and the connection.
 */

/** An upstream to reach at a checked address. */
export interface PinnedTarget {
  /** The checked IP address (v4 dotted, or v6 without brackets). */
  address: string;
  port: number;
  protocol: "http:" | "https:";
  /** The request's host name: the Host header, TLS SNI and the name the certificate must match. */
  servername: string;
}

/** A byte stream both ways (a TCP connection, a CONNECT tunnel). */
export interface Conn {
  readable: ReadableStream<Uint8Array>;
  writable: WritableStream<Uint8Array>;
  /** Tear the connection down now (both directions). */
  close(): void;
}

export interface EgressNet {
  /**
   * Every A and AAAA address of `host` (a name, never a literal). Rejects when the name does
   * not resolve. Undefined on platforms that cannot resolve names (Workers): the gateway then
   * checks literals only and relies on the platform's own guarantee (see proxy/README.md).
   */
  resolve?(host: string, signal?: AbortSignal): Promise<string[]>;
  /**
   * One HTTP exchange with the target, redirects not followed, the body streamed both ways.
   * `req.url` carries the path and query; its host is the servername.
   */
  request(target: PinnedTarget, req: Request, signal: AbortSignal): Promise<Response>;
  /** A raw TCP connection to a checked address (CONNECT tunnels). */
  connect?(target: { address: string; port: number }, signal: AbortSignal): Promise<Conn>;
}
