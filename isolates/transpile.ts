/**
 * TypeScript snippets are transpiled on the host (never in the guest: a Deno `.ts` entry costs
 * +150 ms, and workerd cannot transpile). sucrase: pure JavaScript, so it runs on every runtime,
 * and it strips types without type-checking, in well under a millisecond for a snippet.
 */
import { transform } from "sucrase";

const OPEN = "async function __deft_snippet() {\n";
const CLOSE = "\n}";

/** A snippet is the body of an async function: top-level `await` and `return` are allowed. */
export function transpileSnippet(code: string): string {
  const out = transform(OPEN + code + CLOSE, { transforms: ["typescript"], disableESTransforms: true }).code;
  const start = out.indexOf("{") + 1;
  const end = out.lastIndexOf("}");
  return out.slice(start, end);
}
