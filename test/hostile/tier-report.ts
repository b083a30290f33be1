// Shared by the per-tier hostile tests: compare a tier's results with what it declares it does
// not stop, and write the tier's results for the README table (scripts/hostile-table.ts).
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { expect } from "vitest";
import type { HostileResult } from "./cases.ts";

export interface TierDeclaration {
  tier: string;
  /** Case id → why this tier does not stop it. Every other case must be stopped. */
  notStopped: Record<string, string>;
}

export const RESULTS_DIR = join(import.meta.dirname, "results");

/** One expectation per case, so a failure names the case and shows what the snippet got. */
export function expectDeclared(results: HostileResult[], decl: TierDeclaration): void {
  for (const r of results) {
    const expected = !(r.id in decl.notStopped);
    expect({ case: r.id, stopped: r.stopped, detail: r.detail }).toEqual({ case: r.id, stopped: expected, detail: r.detail });
  }
}

export function writeTierResults(results: HostileResult[], decl: TierDeclaration): void {
  const rows = results.map((r) => ({ id: r.id, label: r.label, stopped: r.stopped, ...(r.stopped ? {} : { why: decl.notStopped[r.id] ?? "" }) }));
  writeFileSync(join(RESULTS_DIR, `${decl.tier}.json`), JSON.stringify({ tier: decl.tier, results: rows }, null, 2) + "\n");
}
