// The hostile suite's host side (Node): a "forbidden" server that counts every request and raw
// socket, a control server that reports those counts and whether the marker file exists, and the
// canaries (a host file and an env var). Two servers, so a guest that could reach the forbidden
// one still could not reset its counts.
import { existsSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import http from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { HostileEnv, Probe } from "./cases.ts";

export interface HostileHost {
  env: HostileEnv;
  probe: Probe;
  /** Env vars to hand a child process that runs the suite in another runtime. */
  childEnv: Record<string, string>;
  reset(): void;
  close(): Promise<void>;
}

export const HOSTILE_ENV_VAR = "DEFT_HOSTILE_CANARY";

export async function startHostileHost(): Promise<HostileHost> {
  const dir = mkdtempSync(join(tmpdir(), "deft-hostile-"));
  const canary = `canary-${crypto.randomUUID()}`;
  const hostFile = join(dir, "host-secret.txt");
  writeFileSync(hostFile, canary);
  process.env[HOSTILE_ENV_VAR] = canary;
  const markerPath = join(dir, "marker");
  let requests = 0;
  let sockets = 0;
  const forbidden = http.createServer((_req, res) => {
    requests++;
    res.end(`forbidden content ${canary}`);
  });
  forbidden.on("connection", () => sockets++);
  const listen = (s: http.Server) => new Promise<number>((r) => s.listen(0, "127.0.0.1", () => r((s.address() as AddressInfo).port)));
  const fport = await listen(forbidden);
  const hits = () => ({ requests, sockets });
  const control = http.createServer((req, res) => {
    if (req.url === "/hits") return res.end(JSON.stringify(hits()));
    if (req.url === "/marker") return res.end(JSON.stringify(existsSync(markerPath)));
    if (req.url === "/reset") {
      requests = 0;
      sockets = 0;
      rmSync(markerPath, { force: true });
      return res.end("{}");
    }
    res.statusCode = 404;
    res.end();
  });
  const cport = await listen(control);
  const env: HostileEnv = {
    control: `http://127.0.0.1:${cport}`,
    forbiddenUrl: `http://127.0.0.1:${fport}/secret`,
    forbiddenHost: "127.0.0.1",
    forbiddenPort: fport,
    hostFile,
    envName: HOSTILE_ENV_VAR,
    canary,
    markerPath,
  };
  return {
    env,
    probe: httpProbe(env.control),
    childEnv: { [HOSTILE_ENV_VAR]: canary, DEFT_HOSTILE_ENV: JSON.stringify(env) },
    reset() {
      requests = 0;
      sockets = 0;
      rmSync(markerPath, { force: true });
    },
    async close() {
      forbidden.closeAllConnections();
      control.closeAllConnections();
      await Promise.all([new Promise((r) => forbidden.close(r)), new Promise((r) => control.close(r))]);
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** The probe over HTTP: what a suite running in another runtime's process uses. */
export function httpProbe(control: string): Probe {
  return {
    reset: async () => void (await (await fetch(`${control}/reset`)).text()),
    hits: async () => (await fetch(`${control}/hits`)).json() as Promise<{ requests: number; sockets: number }>,
    markerExists: async () => (await fetch(`${control}/marker`)).json() as Promise<boolean>,
  };
}
