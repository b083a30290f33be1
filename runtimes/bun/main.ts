// `deft` on Bun: bun runtimes/bun/main.ts <command>
import { runCli } from "../../core/cli.ts";
import { onProcessSignal } from "../node/signals.ts";
import { bunRuntime } from "./runtime.ts";

const code = await runCli({
  runtime: bunRuntime,
  args: Bun.argv.slice(2),
  env: process.env,
  readTextFile: (p) => Bun.file(p).text(),
  importModule: (p) => import(Bun.pathToFileURL(p).href),
  stdout: (l) => console.log(l),
  stderr: (l) => console.error(l),
  onSignal: onProcessSignal,
});
process.exit(code);
