// Every error Palisade reports to a client or an operator is created here, with
// its HTTP status and a message in APISIX's shape, so a code can be searched
// for and its wording is the same wherever it is raised.

export class PalisadeError extends Error {
  readonly code: string;
  readonly status: number;
  /** Extra JSON fields for the response body (APISIX puts some errors in `description`). */
  readonly extra: Readonly<Record<string, unknown>> | undefined;

  constructor(code: string, status: number, message: string, extra?: Record<string, unknown>) {
    super(message);
    this.name = 'PalisadeError';
    this.code = code;
    this.status = status;
    this.extra = extra;
  }

  /** The JSON body APISIX sends for this error. */
  body(): Record<string, unknown> {
    return { error_msg: this.message, ...this.extra };
  }
}

function factory(code: string, status: number) {
  return (message: string, extra?: Record<string, unknown>) => new PalisadeError(code, status, message, extra);
}

// Data plane
export const PAL_ERR_BAD_REQUEST = factory('PAL_ERR_BAD_REQUEST', 400);
export const PAL_ERR_HEAD_TOO_LARGE = factory('PAL_ERR_HEAD_TOO_LARGE', 431);
export const PAL_ERR_URI_TOO_LONG = factory('PAL_ERR_URI_TOO_LONG', 414);
export const PAL_ERR_BODY_TOO_LARGE = factory('PAL_ERR_BODY_TOO_LARGE', 413);
export const PAL_ERR_HEAD_TIMEOUT = factory('PAL_ERR_HEAD_TIMEOUT', 408);
export const PAL_ERR_VERSION = factory('PAL_ERR_VERSION', 505);
export const PAL_ERR_ROUTE_NOT_FOUND = factory('PAL_ERR_ROUTE_NOT_FOUND', 404);
export const PAL_ERR_BAD_GATEWAY = factory('PAL_ERR_BAD_GATEWAY', 502);
export const PAL_ERR_GATEWAY_TIMEOUT = factory('PAL_ERR_GATEWAY_TIMEOUT', 504);
export const PAL_ERR_SERVICE_UNAVAILABLE = factory('PAL_ERR_SERVICE_UNAVAILABLE', 503);

// Admin API
export const PAL_ERR_ADMIN_BAD_CONFIG = factory('PAL_ERR_ADMIN_BAD_CONFIG', 400);
export const PAL_ERR_ADMIN_UNAUTHORIZED = factory('PAL_ERR_ADMIN_UNAUTHORIZED', 401);
export const PAL_ERR_ADMIN_NOT_FOUND = factory('PAL_ERR_ADMIN_NOT_FOUND', 404);
export const PAL_ERR_ADMIN_METHOD = factory('PAL_ERR_ADMIN_METHOD', 405);
export const PAL_ERR_ADMIN_CONFLICT = factory('PAL_ERR_ADMIN_CONFLICT', 503);
export const PAL_ERR_ADMIN_TOO_LARGE = factory('PAL_ERR_ADMIN_TOO_LARGE', 413);
/** The config store refused or could not take a write (etcd unreachable, disk full); reads still answer. */
export const PAL_ERR_ADMIN_STORE_UNAVAILABLE = factory('PAL_ERR_ADMIN_STORE_UNAVAILABLE', 503);

// Configuration files and start-up
export const PAL_ERR_CONFIG = factory('PAL_ERR_CONFIG', 500);

/** An error's message, or the thrown value as text, for a log line. */
export function errorText(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
