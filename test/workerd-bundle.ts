// Bundle TypeScript from this repo into one ES module for workerd (Miniflare): what a Workers
// deployment would ship, built the same way by every test that runs core/ or proxy/ code there.
import { build } from "esbuild";

export async function bundleForWorkerd(contents: string, resolveDir: string, sourcefile: string): Promise<string> {
  const out = await build({
    stdin: { contents, resolveDir, sourcefile, loader: "ts" },
    bundle: true,
    format: "esm",
    write: false,
    platform: "neutral",
    mainFields: ["module", "main"],
    logLevel: "silent",
  });
  return out.outputFiles[0]!.text;
}
