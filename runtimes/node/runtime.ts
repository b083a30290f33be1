// The Node shim: serve over @hono/node-server, a file ledger.
import type { Runtime } from "../../core/runtime.ts";
import { FileLedger } from "./file-ledger.ts";
import { serveFetch } from "./serve.ts";

export const nodeRuntime: Runtime = {
  name: "node",
  serve: (handler, opts) => serveFetch(handler, opts),
  openLedger: (dir, opts) => new FileLedger(dir, opts),
};
