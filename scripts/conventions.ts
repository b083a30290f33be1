// Project conventions as code, shared by `npm run lint` and test/layering.test.ts:
// - core/, tools/, isolates/ and proxy/ import no runtime-specific API;
// - file names are kebab-case; no default exports in our own modules.
import { readdirSync, readFileSync, statSync } from "node:fs";
import { join, relative } from "node:path";

export const NEUTRAL_FOLDERS = ["core", "tools", "isolates", "proxy"];
export const SOURCE_FOLDERS = [...NEUTRAL_FOLDERS, "runtimes", "test", "scripts"];

export function sourceFiles(dir: string, withTests = false): string[] {
  const out: string[] = [];
  let names: string[];
  try {
    names = readdirSync(dir);
  } catch {
    return out;
  }
  for (const name of names) {
    if (name === "node_modules") continue;
    const p = join(dir, name);
    if (statSync(p).isDirectory()) out.push(...sourceFiles(p, withTests));
    else if (/\.(ts|tsx|js|mjs)$/.test(name) && (withTests || !/\.test\.ts$/.test(name))) out.push(p);
  }
  return out;
}

export const FORBIDDEN: Array<[RegExp, string]> = [
  [/\bfrom\s+["'](node:|bun:|cloudflare:)[^"']*["']/, "imports a runtime module"],
  [/\bimport\s*\(\s*["'](node:|bun:|cloudflare:)/, "dynamically imports a runtime module"],
  [/\bfrom\s+["'](fs|path|os|child_process|net|http|https|crypto|worker_threads|url|util|stream)(\/[^"']*)?["']/, "imports a Node builtin without the node: prefix"],
  [/\bDeno\.[A-Za-z]/, "uses Deno.*"],
  [/\bBun\.[A-Za-z]/, "uses Bun.*"],
  [/\brequire\s*\(/, "uses require()"],
  [/\bprocess\.(env|argv|exit|on|cwd|stdout|stderr|pid|platform)\b/, "uses Node's process global"],
  [/\bBuffer\.(from|alloc|concat)/, "uses Node's Buffer"],
];

/** Strip comments so that prose about Deno.* or process.env does not count. */
export function stripComments(text: string): string {
  return text.replace(/\/\*[\s\S]*?\*\//g, "").replace(/(^|[^:"'`])\/\/.*$/gm, "$1");
}

/** Offending lines in the runtime-neutral folders; `checked` counts the files read. */
export function checkLayering(root: string): { offences: string[]; checked: number } {
  const offences: string[] = [];
  let checked = 0;
  for (const folder of NEUTRAL_FOLDERS) {
    for (const f of sourceFiles(join(root, folder))) {
      checked++;
      stripComments(readFileSync(f, "utf8"))
        .split("\n")
        .forEach((line, i) => {
          for (const [re, why] of FORBIDDEN) if (re.test(line)) offences.push(`${relative(root, f)}:${i + 1} ${why}: ${line.trim()}`);
        });
    }
  }
  return { offences, checked };
}

export function checkConventions(root: string): string[] {
  const problems: string[] = [];
  for (const folder of SOURCE_FOLDERS) {
    for (const f of sourceFiles(join(root, folder), true)) {
      const rel = relative(root, f);
      const base = rel.split("/").pop()!;
      if (!/^[a-z0-9]+(-[a-z0-9]+)*(\.[a-z0-9]+)*$/.test(base)) problems.push(`${rel}: file names are kebab-case`);
      if (/^\s*export\s+default\b/m.test(stripComments(readFileSync(f, "utf8")))) problems.push(`${rel}: no default exports`);
    }
  }
  return problems;
}
