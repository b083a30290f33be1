// `deft` on Deno: deno run -A runtimes/deno/main.ts <command>
import { runCli } from "../../core/cli.ts";
import { denoRuntime } from "./runtime.ts";

const code = await runCli({
  runtime: denoRuntime,
  args: Deno.args,
  env: Deno.env.toObject(),
  readTextFile: (p) => Deno.readTextFile(p),
  importModule: (p) => import(new URL(p, `file://${Deno.cwd()}/`).href),
  stdout: (l) => console.log(l),
  stderr: (l) => console.error(l),
  onSignal(handler) {
    const int = () => handler("SIGINT");
    const term = () => handler("SIGTERM");
    Deno.addSignalListener("SIGINT", int);
    Deno.addSignalListener("SIGTERM", term);
    return () => {
      Deno.removeSignalListener("SIGINT", int);
      Deno.removeSignalListener("SIGTERM", term);
    };
  },
});
Deno.exit(code);
