/**
 * The fetch-level gateway (work in progress: the interface the forward proxy and the Workers
 * outbound entrypoint build on).
 */
import type { SessionContext } from "../core/policy/types.ts";
import type { Conn } from "./net.ts";

/** A refused request: the status and one-line reason the sandbox sees (`x-deft-egress: denied`). */
export interface Refusal {
  ok: false;
  status: number;
  reason: string;
}

export interface Tunnel {
  ok: true;
  /** The upstream connection, to the checked address. */
  conn: Conn;
  /** Call once when the tunnel ends: completes its audit record. */
  done(stats: { bytesOut: number; bytesIn: number; error?: string }): void;
}

export interface Gateway {
  /**
   * Decide, inject credentials, check addresses, send, redact, audit: one request as the
   * sandbox made it. A refusal is a 403 (policy), 429 (rate), 413 (size) or 502 (address or
   * upstream) response with `x-deft-egress: denied` and the reason as text; never a throw.
   */
  fetch(req: Request, session: SessionContext, via?: "fetch" | "proxy" | "workers"): Promise<Response>;
  /** A CONNECT tunnel to `host:port`: host-level decision and address check, then a raw connection. */
  tunnel(authority: string, session: SessionContext, signal: AbortSignal): Promise<Tunnel | Refusal>;
}
