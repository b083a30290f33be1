// `deft` on Node: build the host and run the runtime-neutral CLI.
import { readFile } from "node:fs/promises";
import { resolve } from "node:path";
import { pathToFileURL } from "node:url";
import { runCli } from "../../core/cli.ts";
import { onProcessSignal } from "./signals.ts";
import type { Runtime } from "../../core/runtime.ts";
import { nodeRuntime } from "./runtime.ts";

export async function main(runtime: Runtime = nodeRuntime, argv = process.argv.slice(2)): Promise<number> {
  return runCli({
    runtime,
    args: argv,
    env: process.env,
    readTextFile: (p) => readFile(p, "utf8"),
    importModule: (p) => import(pathToFileURL(resolve(p)).href),
    stdout: (l) => process.stdout.write(l + "\n"),
    stderr: (l) => process.stderr.write(l + "\n"),
    onSignal: onProcessSignal,
  });
}

const isMain = import.meta.url === pathToFileURL(process.argv[1] ?? "").href;
if (isMain) {
  main().then(
    (code) => process.exit(code),
    (err) => {
      process.stderr.write(`deft: unexpected error: ${err instanceof Error ? (err.stack ?? err.message) : err}\n`);
      process.exit(1);
    },
  );
}
