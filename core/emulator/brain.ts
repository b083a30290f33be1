// The brain seam: whatever writes `agent.*`/`session.*` events into a session.
import type { EventDraft, SessionEvent } from "./types.ts";

/** What a brain may do to its session. */
export interface BrainHost {
  readonly sessionId: string;
  /** Store an event (id and processed_at are assigned) and publish it. */
  emit(draft: EventDraft): SessionEvent;
  /** Send the next turn's `user.message` (recorded as sent by the brain). */
  sendUserMessage(text: string): SessionEvent;
  /** The script ran to its end. */
  markDone(): void;
  /** Record a failed expectation (shows in report().checksFailed). */
  checkFailed(why: string): void;
  log(line: Record<string, unknown>): void;
}

/** A brain reacts to every stored event of its session, one at a time, in order. */
export interface Brain {
  onEvent(ev: SessionEvent): void | Promise<void>;
  close?(): void;
}

export type BrainFactory = (host: BrainHost) => Brain;

/** Text content blocks for an agent.message. */
export function textBlocks(text: string): Array<{ type: "text"; text: string }> {
  return [{ type: "text", text }];
}
