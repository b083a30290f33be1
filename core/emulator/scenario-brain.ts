// The scripted brain: plays a Scenario turn by turn, checking each result.
import { textBlocks, type Brain, type BrainHost } from "./brain.ts";
import { checkExpect, resultText, type ParsedScenario, type ScenarioCall } from "./scenario.ts";
import type { SessionEvent } from "./types.ts";

interface ActiveTurn {
  turn: number;
  step: number;
  /** Calls of the current step still waiting for a result (or a deny verdict). */
  pending: Map<string, ScenarioCall>;
}

export class ScenarioBrain implements Brain {
  readonly #host: BrainHost;
  readonly #scenario: ParsedScenario;
  #nextTurn = 0;
  #active: ActiveTurn | null = null;
  /** Every call ever emitted, by event id (for result checks and late duplicates). */
  readonly #calls = new Map<string, ScenarioCall>();
  #closed = false;

  constructor(host: BrainHost, scenario: ParsedScenario) {
    this.#host = host;
    this.#scenario = scenario;
  }

  close(): void {
    this.#closed = true;
  }

  onEvent(ev: SessionEvent): void {
    if (this.#closed) return;
    switch (ev.type) {
      case "user.message":
        return this.#onUserMessage();
      case "user.tool_result":
        return this.#onResult(String(ev["tool_use_id"]), ev);
      case "user.custom_tool_result":
        return this.#onResult(String(ev["custom_tool_use_id"]), ev);
      case "user.tool_confirmation":
        return this.#onConfirmation(String(ev["tool_use_id"]), String(ev["result"]));
      default:
        return;
    }
  }

  #onUserMessage(): void {
    if (this.#active) {
      // A message mid-turn: the script does not branch on it.
      this.#host.log({ msg: "scenario: user.message during a turn ignored", session_id: this.#host.sessionId });
      return;
    }
    const turns = this.#scenario.turns;
    if (this.#nextTurn >= turns.length) {
      this.#host.emit({ type: "session.status_running" });
      this.#host.emit({ type: "agent.message", content: textBlocks("(the scenario has no more turns)") });
      this.#host.emit({ type: "session.status_idle", stop_reason: { type: "end_turn" }, stop_details: null });
      return;
    }
    this.#active = { turn: this.#nextTurn++, step: 0, pending: new Map() };
    this.#host.emit({ type: "session.status_running" });
    this.#runStep();
  }

  /** Emit the current step; loop past steps that need no answer. */
  #runStep(): void {
    const a = this.#active;
    if (!a) return;
    const turn = this.#scenario.turns[a.turn]!;
    while (a.step < turn.steps.length) {
      const step = turn.steps[a.step]!;
      if (step.say) this.#host.emit({ type: "agent.message", content: textBlocks(step.say) });
      const confirmations: Array<{ id: string; verdict: "allow" | "deny" }> = [];
      for (const call of step.calls) {
        const ev = call.custom
          ? this.#host.emit({ type: "agent.custom_tool_use", name: call.name, input: call.input })
          : this.#host.emit({
              type: "agent.tool_use",
              name: call.name,
              input: call.input,
              evaluated_permission: call.permission,
              ...(call.permission === "allow" ? { evaluation: { type: "always_allow" } } : {}),
              ...(call.permission === "ask" ? { evaluation: { type: "always_ask" } } : {}),
            });
        this.#calls.set(ev.id, call);
        if (call.permission !== "deny") a.pending.set(ev.id, call);
        if (call.auto_confirm) confirmations.push({ id: ev.id, verdict: call.auto_confirm });
      }
      if (a.pending.size > 0) {
        this.#idleRequiringAction();
        for (const c of confirmations) {
          this.#host.emit({ type: "user.tool_confirmation", tool_use_id: c.id, result: c.verdict });
        }
        return;
      }
      a.step++;
    }
    this.#finishTurn();
  }

  #idleRequiringAction(): void {
    const a = this.#active;
    if (!a) return;
    this.#host.emit({
      type: "session.status_idle",
      stop_reason: { type: "requires_action", event_ids: [...a.pending.keys()] },
      stop_details: null,
    });
  }

  #onResult(id: string, ev: SessionEvent): void {
    const call = this.#calls.get(id);
    const a = this.#active;
    if (!call || !a || !a.pending.has(id)) return; // duplicate or late: counted by the store
    a.pending.delete(id);
    const why = checkExpect(call, ev["is_error"] === true, ev["content"]);
    if (why) this.#host.checkFailed(`${call.name} (${id}): ${why}`);
    this.#host.log({ msg: "scenario: result", session_id: this.#host.sessionId, call: call.name, ok: !why, text: resultText(ev["content"]).slice(0, 120) });
    this.#afterAnswer();
  }

  #onConfirmation(id: string, verdict: string): void {
    const a = this.#active;
    if (!a || !a.pending.has(id)) return;
    if (verdict !== "allow") {
      // Denied by the user: no result will come; the step goes on without it.
      a.pending.delete(id);
      this.#afterAnswer();
    }
  }

  #afterAnswer(): void {
    const a = this.#active;
    if (!a) return;
    if (a.pending.size > 0) {
      // Partly resolved: idle again listing what is still outstanding.
      this.#idleRequiringAction();
      return;
    }
    a.step++;
    this.#host.emit({ type: "session.status_running" });
    this.#runStep();
  }

  #finishTurn(): void {
    const a = this.#active;
    if (!a) return;
    const turn = this.#scenario.turns[a.turn]!;
    this.#active = null;
    this.#host.emit({ type: "agent.message", content: textBlocks(turn.final) });
    this.#host.emit({ type: "session.status_idle", stop_reason: { type: "end_turn" }, stop_details: null });
    const next = this.#scenario.turns[this.#nextTurn];
    if (next) {
      if (!next.await_user) this.#host.sendUserMessage(next.user);
      return;
    }
    this.#host.markDone();
    if (this.#scenario.end === "terminate") this.#host.emit({ type: "session.status_terminated" });
  }
}
