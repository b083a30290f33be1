// Serve the emulator over real HTTP on Node.
import type { Emulator } from "../../core/emulator/mod.ts";
import type { Served } from "../../core/runtime.ts";
import { serveFetch } from "./serve.ts";

export interface ServeEmulatorOptions {
  /** 0 (default) = an ephemeral port. */
  port?: number;
  hostname?: string;
}

export type ServedEmulator = Served;

export function serveEmulator(emulator: Emulator, opts: ServeEmulatorOptions = {}): Promise<ServedEmulator> {
  return serveFetch(emulator.fetch, opts);
}
