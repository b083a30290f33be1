/**
 * Structured logging: one JSON object a line, with session and work ids as fields.
 * Secrets are redacted at the logger: every registered secret string is replaced wherever it
 * appears, and fields whose name says they hold a credential are masked whatever their value.
 */
export type LogLevel = "debug" | "info" | "warn" | "error";
export type LogFields = Record<string, unknown>;

export interface Logger {
  debug(msg: string, fields?: LogFields): void;
  info(msg: string, fields?: LogFields): void;
  warn(msg: string, fields?: LogFields): void;
  error(msg: string, fields?: LogFields): void;
  /** A logger that adds `fields` to every line. */
  child(fields: LogFields): Logger;
}

const LEVELS: Record<LogLevel, number> = { debug: 10, info: 20, warn: 30, error: 40 };
const SECRET_FIELD = /(secret|token|authorization|api[_-]?key|password|credential)/i;
const REDACTED = "[redacted]";

/** Secrets known to the process (environment key, sessions tokens). Shared by all loggers. */
export class SecretRegistry {
  #secrets = new Set<string>();
  add(secret: string | undefined | null): void {
    // Very short values would redact ordinary words; real keys and tokens are long.
    if (secret && secret.length >= 8) this.#secrets.add(secret);
  }
  delete(secret: string | undefined | null): void {
    if (secret) this.#secrets.delete(secret);
  }
  redact(text: string): string {
    let out = text;
    for (const s of this.#secrets) if (out.includes(s)) out = out.split(s).join(REDACTED);
    // Anything shaped like an Anthropic credential is masked even if nobody registered it.
    return out.replace(/sk-ant-[A-Za-z0-9_-]{6,}/g, REDACTED);
  }
}

export const globalSecrets = new SecretRegistry();

function scrub(value: unknown, secrets: SecretRegistry, depth: number): unknown {
  if (typeof value === "string") return secrets.redact(value);
  if (value instanceof Error) return { name: value.name, message: secrets.redact(value.message) };
  if (depth > 6 || value === null || typeof value !== "object") return value;
  if (Array.isArray(value)) return value.map((v) => scrub(v, secrets, depth + 1));
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(value)) {
    out[k] = SECRET_FIELD.test(k) && v != null && v !== "" ? REDACTED : scrub(v, secrets, depth + 1);
  }
  return out;
}

export interface LoggerOptions {
  level?: LogLevel;
  /** Where a formatted line goes. Default: console.error (stdout stays free for program output). */
  write?: (line: string, level: LogLevel) => void;
  secrets?: SecretRegistry;
  fields?: LogFields;
  /** Also hand each redacted record to this observer (e.g. the live transcript). */
  observe?: (record: LogFields) => void;
}

export function createLogger(opts: LoggerOptions = {}): Logger {
  const min = LEVELS[opts.level ?? "info"];
  const secrets = opts.secrets ?? globalSecrets;
  const write = opts.write ?? ((line: string) => console.error(line));
  const make = (bound: LogFields): Logger => {
    const emit = (level: LogLevel, msg: string, fields?: LogFields) => {
      if (LEVELS[level] < min && !opts.observe) return;
      const record = scrub({ time: new Date().toISOString(), level, msg, ...bound, ...fields }, secrets, 0) as LogFields;
      opts.observe?.(record);
      if (LEVELS[level] >= min) write(JSON.stringify(record), level);
    };
    return {
      debug: (m, f) => emit("debug", m, f),
      info: (m, f) => emit("info", m, f),
      warn: (m, f) => emit("warn", m, f),
      error: (m, f) => emit("error", m, f),
      child: (f) => make({ ...bound, ...f }),
    };
  };
  return make(opts.fields ?? {});
}

/** A logger that drops everything (tests, benchmarks). */
export const silentLogger: Logger = {
  debug() {},
  info() {},
  warn() {},
  error() {},
  child() {
    return silentLogger;
  },
};
