/**
 * A readable live transcript of what the worker does, built on the worker's hooks.
 * Plain text lines; the caller decides where they go.
 */
import type { WorkerHooks } from "./worker/mod.ts";

const MAX_INPUT = 90;
const MAX_OUTPUT = 110;

function clip(s: string, n: number): string {
  const one = s.replace(/\s+/g, " ").trim();
  return one.length > n ? `${one.slice(0, n - 1)}…` : one;
}

function short(id: string): string {
  return id.length > 14 ? `${id.slice(0, 9)}…${id.slice(-4)}` : id;
}

function textOf(content: unknown): string {
  if (!Array.isArray(content)) return "";
  return content
    .map((b) => (b && typeof b === "object" && (b as { type?: string }).type === "text" ? String((b as { text?: unknown }).text ?? "") : `[${(b as { type?: string })?.type}]`))
    .join(" ");
}

/** Hooks that print one line per step of each session's life. */
export function transcriptHooks(print: (line: string) => void): WorkerHooks {
  const started = new Map<string, number>();
  return {
    sessionStarted({ sessionId, workId, label }) {
      started.set(sessionId, Date.now());
      print(`▶ ${short(sessionId)}  claimed work ${short(workId)}; tools run in: ${label ?? "the host process"}`);
    },
    event({ sessionId, event }) {
      const s = short(sessionId);
      switch (event.type) {
        case "user.message":
          print(`  ${s}  user: ${clip(textOf(event.content), MAX_OUTPUT)}`);
          break;
        case "agent.message":
          print(`  ${s}  agent: ${clip(textOf(event.content), MAX_OUTPUT)}`);
          break;
        case "agent.tool_use":
        case "agent.custom_tool_use": {
          const custom = event.type === "agent.custom_tool_use" ? " (custom)" : "";
          const perm = event.evaluated_permission && event.evaluated_permission !== "allow" ? ` [permission: ${event.evaluated_permission}]` : "";
          print(`  ${s}  → ${event.name}${custom} ${clip(JSON.stringify(event.input ?? {}), MAX_INPUT)}${perm}`);
          break;
        }
        case "user.tool_confirmation":
          print(`  ${s}  ✓ confirmation for ${short(String(event.tool_use_id))}: ${event.result}`);
          break;
        case "session.status_idle": {
          const reason = (event.stop_reason as { type?: string } | undefined)?.type ?? "end_turn";
          if (reason !== "requires_action") print(`  ${s}  (turn ended: ${reason})`);
          break;
        }
        case "session.status_terminated":
          print(`  ${s}  session terminated`);
          break;
      }
    },
    result({ sessionId, name, result, ms, replayed }) {
      const mark = result.is_error ? "✗" : "←";
      const again = replayed ? " (from the ledger, not re-run)" : "";
      print(`  ${short(sessionId)}  ${mark} ${name} ${ms.toFixed(1)} ms${again}: ${clip(textOf(result.content), MAX_OUTPUT)}`);
    },
    itemEnded({ workId, sessionId, runner, lease, stopped }) {
      const t0 = sessionId ? started.get(sessionId) : undefined;
      const took = t0 ? ` after ${((Date.now() - t0) / 1000).toFixed(1)} s` : "";
      const why = runner?.reason ?? lease?.reason ?? "done";
      print(`■ ${sessionId ? short(sessionId) : short(workId)}  released (${why})${took}; work item ${stopped ? "stopped" : "left to be reclaimed"}`);
    },
  };
}
