/**
 * What a runtime shim hands the core (dependency injection, never a global the core reaches
 * for). Each of runtimes/node, runtimes/deno, runtimes/bun implements it; later issues add the
 * isolate host, stores and blobs here.
 */
import type { IsolateHost } from "../isolates/protocol.ts";
import type { Ledger } from "./session/ledger.ts";
import type { EgressNet } from "../proxy/net.ts";
import type { BlobStore, Store } from "./state/store.ts";

/** The durable state a worker keeps: a Store and a BlobStore, opened together. */
export interface StateStores {
  store: Store;
  blobs: BlobStore;
  close(): Promise<void>;
}

export type FetchHandler = (req: Request) => Response | Promise<Response>;

export interface Served {
  /** e.g. http://127.0.0.1:4010 */
  url: string;
  close(): Promise<void>;
}

export interface Runtime {
  name: "node" | "deno" | "bun" | "workers";
  /** Serve a fetch handler over HTTP. */
  serve(handler: FetchHandler, opts: { port: number; hostname: string }): Promise<Served>;
  /** A durable idempotency ledger under `dir` (written before each acknowledgement). */
  openLedger(dir: string, opts: { fsync: boolean }): Ledger;
  /**
   * The HTTP client for API calls, when the runtime has a better one than its global `fetch`
   * (Node: one on node:http that holds half the memory per open event stream). Absent: global fetch.
   */
  fetch?: typeof fetch;
  /**
   * An isolate tier this runtime hosts, by name, or "auto" for its default (Node and Deno: a Deno
   * subprocess per isolate; Bun: a bun subprocess in bubblewrap, else a Worker for trusted code).
   * Undefined when it offers no tier of that name. Called once per worker.
   */
  isolates?(tier: string): IsolateHost | undefined;
  /** The tier names `isolates()` accepts besides "auto". */
  isolateTiers?: readonly string[];
  /**
   * The network the egress gateway uses: resolve a name once, connect to the checked address.
   * Absent: the gateway refuses every request (nothing can be checked).
   */
  egressNet?(): EgressNet;
  /**
   * The runtime's local state store under `dir` (Node and Bun: Deno KV through @deno/kv or
   * SQLite; Deno: Deno KV). Absent: state is kept in memory and lost with the process.
   */
  openState?(dir: string): Promise<StateStores>;
}

/** What the command line needs beyond the runtime: arguments, environment, files, output, signals. */
export interface CliHost {
  runtime: Runtime;
  args: string[];
  env: Record<string, string | undefined>;
  readTextFile(path: string): Promise<string>;
  /** Import a user module (custom tools), resolved against the working directory. */
  importModule(path: string): Promise<Record<string, unknown>>;
  stdout(line: string): void;
  stderr(line: string): void;
  /** Call `handler` on SIGINT/SIGTERM; returns an unsubscribe. */
  onSignal(handler: (signal: string) => void): () => void;
}
