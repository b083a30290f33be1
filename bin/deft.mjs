#!/usr/bin/env -S node --max-semi-space-size=1
// `deft` on Node: load the TypeScript sources through tsx's loader and run the CLI. The V8 flags
// on the first line (and in package.json's scripts) are runtimes/node NODE_FLAGS; test/cli.test.ts
// keeps them in step.
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
