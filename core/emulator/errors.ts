// The §1.1 error envelope as a throwable value.

export type ErrorType =
  | "invalid_request_error"
  | "authentication_error"
  | "billing_error"
  | "permission_error"
  | "not_found_error"
  | "rate_limit_error"
  | "timeout_error"
  | "api_error"
  | "overloaded_error"
  | "conflict_error";

/** An HTTP error the app turns into `{"type":"error","error":{...},"request_id":...}`. */
export class EmulatorHttpError extends Error {
  readonly status: number;
  readonly errorType: ErrorType;
  readonly details: Record<string, unknown> | undefined;
  readonly headers: Record<string, string>;

  constructor(
    status: number,
    errorType: ErrorType,
    message: string,
    details?: Record<string, unknown>,
    headers: Record<string, string> = {},
  ) {
    super(message);
    this.name = "EmulatorHttpError";
    this.status = status;
    this.errorType = errorType;
    this.details = details;
    this.headers = headers;
  }
}

export function badRequest(message: string, errorCode?: string): EmulatorHttpError {
  return new EmulatorHttpError(400, "invalid_request_error", message, errorCode ? { error_code: errorCode } : undefined);
}

export function notFound(message: string): EmulatorHttpError {
  return new EmulatorHttpError(404, "not_found_error", message);
}

export function forbidden(message: string): EmulatorHttpError {
  return new EmulatorHttpError(403, "permission_error", message);
}

export function unauthorized(message: string): EmulatorHttpError {
  return new EmulatorHttpError(401, "authentication_error", message);
}

/** The error type conventionally paired with an HTTP status. */
export function errorTypeForStatus(status: number): ErrorType {
  if (status === 400) return "invalid_request_error";
  if (status === 401) return "authentication_error";
  if (status === 403) return "permission_error";
  if (status === 404) return "not_found_error";
  if (status === 408) return "timeout_error";
  if (status === 409) return "conflict_error";
  if (status === 429) return "rate_limit_error";
  if (status === 529) return "overloaded_error";
  return "api_error";
}

export function errorBody(err: EmulatorHttpError, requestId: string): Record<string, unknown> {
  const error: Record<string, unknown> = { type: err.errorType, message: err.message };
  if (err.details) error["details"] = err.details;
  return { type: "error", error, request_id: requestId };
}
