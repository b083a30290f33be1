// Public types of the emulator.
import type { Scenario } from "./scenario.ts";

export type WorkState = "queued" | "starting" | "active" | "stopping" | "stopped";

/** §2.6 Work object. */
export interface WorkObject {
  id: string;
  type: "work";
  environment_id: string;
  data: { type: "session"; id: string } | { type?: "healthcheck"; id: string };
  state: WorkState;
  created_at: string;
  acknowledged_at: string | null;
  started_at: string | null;
  latest_heartbeat_at: string | null;
  stop_requested_at: string | null;
  stopped_at: string | null;
  metadata: Record<string, string>;
  secret: string | null;
}

/** A stored session event: always `id`, `type`, `processed_at`. */
export interface SessionEvent {
  id: string;
  type: string;
  processed_at: string;
  [key: string]: unknown;
}

/** An event before the store gives it an id and `processed_at`. */
export type EventDraft = { type: string } & Record<string, unknown>;

export type FaultRoute =
  | "poll"
  | "ack"
  | "heartbeat"
  | "stop"
  | "events.send"
  | "events.list"
  | "events.stream"
  | "sessions.retrieve";

export interface Faults {
  /** Close each SSE stream after N event messages (not pings); applies to streams opened after set. */
  dropStreamAfterEvents?: number;
  /** POST .../events answers `status` for the next `count` sends, or with probability `rate` (0..1). */
  failSends?: { status: number; count?: number; rate?: number };
  /** Extra latency before handling a route. */
  delayMs?: Partial<Record<FaultRoute, number>>;
}

export type UserMessageSender = "initial" | "brain" | "api" | "control";

export interface ToolUseReport {
  id: string;
  name: string;
  kind: "tool_use" | "custom_tool_use";
  /** How many result events were posted for it. */
  results: number;
  /** From the first result. */
  is_error?: boolean;
  /** From the first result. */
  content?: unknown;
  /** `evaluated_permission` of an `agent.tool_use`. */
  permission?: "allow" | "ask" | "deny";
  /** False for a call that must get no result (denied at emission or by confirmation). */
  expectsResult: boolean;
  /** Verdict of a `user.tool_confirmation`, when one arrived. */
  confirmation?: "allow" | "deny";
}

export interface SessionReport {
  sessionId: string;
  scenarioDone: boolean;
  checksFailed: string[];
  toolUses: ToolUseReport[];
  status: "idle" | "running" | "rescheduling" | "terminated" | "deleted";
  /** Every `user.message`, with who sent it. */
  userMessages: Array<{ id: string; sentBy: UserMessageSender; text: string }>;
  /** Work items created for this session, oldest first. */
  workIds: string[];
  eventCount: number;
}

export interface EmulatorStats {
  /** Requests by route name (e.g. "poll", "events.stream"). */
  requests: Record<string, number>;
  streamsOpen: number;
  streamsOpened: number;
  /** The most polls held open at once (all environments). */
  pollsInFlightPeak: number;
  deliveries: number;
  leaseLapses: number;
  sendsFailedByFault: number;
  streamsDroppedByFault: number;
}

export interface CreateSessionInput {
  /** A scenario object or the name of a registered scenario. */
  scenario?: Scenario | string;
  environmentId?: string;
  title?: string;
  metadata?: Record<string, string>;
}

export interface EmulatorControl {
  createSession(input?: CreateSessionInput): Record<string, unknown>;
  registerScenario(name: string, scenario: Scenario): void;
  setFaults(faults: Faults): void;
  clearFaults(): void;
  /** End every open event stream of the session now; returns how many were open. */
  dropStreams(sessionId: string): number;
  /** Simulate another worker taking the lease: the stored last_heartbeat changes. */
  stealLease(workId: string): void;
  /** Operator stop (graceful unless `force`). Returns the Work object. */
  stopWork(workId: string, force?: boolean): WorkObject;
  /** Enqueue a healthcheck work item (data `{type:"healthcheck", id}`). */
  enqueueHealthcheck(environmentId?: string): WorkObject;
  /** Store any event as-is (no validation): malformed and unknown events for fault tests. */
  appendEvent(sessionId: string, event: EventDraft): SessionEvent;
  /** A `user.message` sent as the session's user would. Returns the stored event. */
  sendUserMessage(sessionId: string, text: string): SessionEvent;
  report(sessionId: string): SessionReport;
  waitFor(sessionId: string, predicate: (r: SessionReport) => boolean, timeoutMs?: number): Promise<SessionReport>;
  stats(): EmulatorStats;
  /** The stored Work object (secret null). */
  getWork(workId: string): WorkObject;
  /** Stored events of a session, oldest first. */
  events(sessionId: string): SessionEvent[];
}
