// core/, tools/, isolates/ and proxy/ are runtime-neutral: they import no runtime-specific API
// (node:*, bun:*, cloudflare:*, Deno.*, Bun.*, require). Runtime code lives in runtimes/*.
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { checkConventions, checkLayering, FORBIDDEN, stripComments } from "../scripts/conventions.ts";

const ROOT = join(import.meta.dirname, "..");

describe("layering and conventions", () => {
  it("runtime-neutral folders import no runtime-specific API", () => {
    const { offences, checked } = checkLayering(ROOT);
    expect(checked).toBeGreaterThan(10);
    expect(offences).toEqual([]);
  });

  it("the check itself catches each kind of offence", () => {
    const samples = ['import { readFile } from "node:fs";', 'import x from "bun:sqlite";', 'import { env } from "cloudflare:workers";', 'import fs from "fs";', "Deno.readTextFile('x')", "Bun.serve({})", "const x = require('y')", "process.env.HOME"];
    for (const s of samples) expect(FORBIDDEN.some(([re]) => re.test(stripComments(s))), s).toBe(true);
    expect(FORBIDDEN.some(([re]) => re.test(stripComments("// Deno.serve is not used here")))).toBe(false);
  });

  it("file names are kebab-case and modules have no default export", () => {
    expect(checkConventions(ROOT)).toEqual([]);
  });
});
