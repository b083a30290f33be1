// core/, tools/, isolates/ and proxy/ are runtime-neutral: they import no runtime-specific API
// (node:*, bun:*, cloudflare:*, Deno.*, Bun.*, require). Runtime code lives in runtimes/*.
import { readdirSync, readFileSync, statSync } from "node:fs";
import { join, relative } from "node:path";
import { describe, expect, it } from "vitest";

const ROOT = join(import.meta.dirname, "..");
const NEUTRAL = ["core", "tools", "isolates", "proxy"];

function files(dir: string): string[] {
  const out: string[] = [];
  for (const name of readdirSync(dir)) {
    const p = join(dir, name);
    if (statSync(p).isDirectory()) out.push(...files(p));
    else if (/\.(ts|tsx|js|mjs)$/.test(name) && !/\.test\.ts$/.test(name)) out.push(p);
  }
  return out;
}

const FORBIDDEN: Array<[RegExp, string]> = [
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
function code(text: string): string {
  return text.replace(/\/\*[\s\S]*?\*\//g, "").replace(/(^|[^:"'`])\/\/.*$/gm, "$1");
}

describe("layering", () => {
  it("runtime-neutral folders import no runtime-specific API", () => {
    const offences: string[] = [];
    let checked = 0;
    for (const folder of NEUTRAL) {
      let list: string[] = [];
      try {
        list = files(join(ROOT, folder));
      } catch {
        continue;
      }
      for (const f of list) {
        checked++;
        const lines = code(readFileSync(f, "utf8")).split("\n");
        lines.forEach((line, i) => {
          for (const [re, why] of FORBIDDEN) if (re.test(line)) offences.push(`${relative(ROOT, f)}:${i + 1} ${why}: ${line.trim()}`);
        });
      }
    }
    expect(checked).toBeGreaterThan(10);
    expect(offences).toEqual([]);
  });

  it("the check itself catches each kind of offence", () => {
    const samples = ['import { readFile } from "node:fs";', 'import x from "bun:sqlite";', 'import { env } from "cloudflare:workers";', 'import fs from "fs";', "Deno.readTextFile('x')", "Bun.serve({})", "const x = require('y')", "process.env.HOME"];
    for (const s of samples) expect(FORBIDDEN.some(([re]) => re.test(code(s))), s).toBe(true);
    expect(FORBIDDEN.some(([re]) => re.test(code("// Deno.serve is not used here")))).toBe(false);
  });
});
