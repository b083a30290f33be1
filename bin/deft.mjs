#!/usr/bin/env node
// `deft` on Node: load the TypeScript sources through tsx's loader and run the CLI.
import { register } from "tsx/esm/api";

register();
const { main } = await import("../runtimes/node/cli.ts");
main().then(
  (code) => process.exit(code),
  (err) => {
    process.stderr.write(`deft: unexpected error: ${err instanceof Error ? (err.stack ?? err.message) : err}\n`);
    process.exit(1);
  },
);
