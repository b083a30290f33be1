/**
 * Path patterns, compiled once to one RegExp per list.
 *
 *   "/repos"        exactly /repos (a single trailing slash is tolerated: /repos/)
 *   "/repos/*"      one non-empty segment under /repos: /repos/a, not /repos/a/b nor /repos/
 *   "/repos/*.json" `*` inside a segment matches any characters but "/"
 *   "*" segments may also sit in the middle of a pattern, as in "/orgs/<*>/repos" (no brackets)
 *   "/repos/**"     /repos itself and anything below it, at any depth (/repos, /repos/, /repos/a/b)
 * `**` is allowed only as the last segment. Matching is case-sensitive, like URL paths. Write
 * patterns decoded (a space as a space, not %20).
 *
 * The request path is matched after one percent-decode (so `/rep%6fs` is `/repos`). A path
 * whose meaning a server might read differently from this engine cannot be matched safely, and
 * is refused whenever a rule with paths would decide (see `pathProblem`): an encoded `/` or `\`,
 * a dot segment (`.` or `..`) after decoding, an empty segment (`//`), a NUL, a `/`, `\`, `.` or
 * NUL encoded twice (`%252e`: a server that decodes twice would see a dot), or percent-encoding
 * that does not decode. Literal `..` segments never reach here: the URL parser resolves them.
 */
import { PolicyError } from "./policy-error.ts";

/** A compiled list of path patterns. */
export interface PathMatcher {
  /** The patterns as written. */
  readonly patterns: readonly string[];
  /** Does any pattern match this decoded path? */
  matches(decodedPath: string): boolean;
}

function escapeRegExp(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
}

/** The regular expression source (without anchors) of one pattern. Throws a PolicyError when invalid. */
export function pathPatternSource(pattern: string): string {
  if (!pattern.startsWith("/")) throw new PolicyError(`invalid path pattern ${JSON.stringify(pattern)}: it must start with /`);
  const segments = pattern.slice(1).split("/");
  let source = "";
  for (let i = 0; i < segments.length; i++) {
    const seg = segments[i]!;
    const last = i === segments.length - 1;
    if (seg === "**") {
      if (!last) throw new PolicyError(`invalid path pattern ${JSON.stringify(pattern)}: "**" is allowed only as the last segment`);
      // The prefix itself (with or without a trailing slash) or anything below it.
      return `${source}(?:/.*)?`;
    }
    if (seg.includes("**")) throw new PolicyError(`invalid path pattern ${JSON.stringify(pattern)}: "**" must be a whole segment`);
    if (seg === "*") source += "/[^/]+";
    else source += `/${seg.split("*").map(escapeRegExp).join("[^/]*")}`;
  }
  // An exact path tolerates one trailing slash; "/" stays "/".
  return pattern === "/" ? "/" : `${source}/?`;
}

/** Compile a list of path patterns into one matcher. Throws a PolicyError on an invalid pattern. */
export function compilePaths(patterns: readonly string[]): PathMatcher {
  const re = new RegExp(`^(?:${patterns.map(pathPatternSource).join("|")})$`);
  return { patterns, matches: (decodedPath) => re.test(decodedPath) };
}

/** A path that can be matched (`decoded`), or why it cannot be matched safely. */
export type PathCheck = { ok: true; decoded: string } | { ok: false; problem: string };

/**
 * Decode a URL pathname once for matching, or say why it cannot be matched safely (the reason
 * names the kind of problem, never the path itself, which may carry a token).
 */
export function pathProblem(pathname: string): PathCheck {
  if (/%2f|%5c/i.test(pathname)) return { ok: false, problem: "the path has an encoded / or \\ (%2F, %5C)" };
  if (/%00/.test(pathname)) return { ok: false, problem: "the path has an encoded NUL (%00)" };
  let decoded: string;
  try {
    decoded = decodeURIComponent(pathname);
  } catch {
    return { ok: false, problem: "the path's percent-encoding does not decode" };
  }
  if (decoded.includes("\\")) return { ok: false, problem: "the path has a backslash" };
  // A server that decodes twice would see these as separators, dots or NUL.
  if (/%(2f|5c|2e|00)/i.test(decoded)) return { ok: false, problem: "the path has a double-encoded /, \\, . or NUL" };
  const segments = decoded.split("/").slice(1);
  for (let i = 0; i < segments.length; i++) {
    const s = segments[i]!;
    if (s === "." || s === "..") return { ok: false, problem: "the path has a dot segment (. or ..) after decoding" };
    if (s === "" && i < segments.length - 1) return { ok: false, problem: "the path has an empty segment (//)" };
  }
  return { ok: true, decoded };
}
