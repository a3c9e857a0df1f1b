// @ts-check
/**
 * A request the server refused: its JSON error body (docs/api.md, "Errors") as an Error with the
 * status, the stable error code and what Retry-After said. Every module that calls the server
 * rejects with it; no DOM here.
 */

/** The server refused the request before streaming (a 4xx/5xx JSON error body). */
export class RequestError extends Error {
  /**
   * @param {number} status
   * @param {string} code
   * @param {string} message
   * @param {number | null} [retryAfterS] what the answer's Retry-After said, in seconds
   */
  constructor(status, code, message, retryAfterS = null) {
    super(message);
    this.name = "RequestError";
    /** @readonly */
    this.status = status;
    /** @readonly a stable error code of docs/api.md, or "http_error" when the body had none */
    this.code = code;
    /** @readonly seconds to wait before trying again, when the server said; else null */
    this.retryAfterS = retryAfterS;
  }
}

/**
 * The RequestError a refused request's JSON error body describes.
 *
 * @param {Response} response
 * @returns {Promise<RequestError>}
 */
export async function requestError(response) {
  const retryAfterS = retryAfter(response.headers.get("Retry-After"));
  try {
    const { error } = /** @type {{ error: { code: string, message: string } }} */ (await response.json());
    return new RequestError(response.status, error.code, error.message, retryAfterS);
  } catch {
    const message = `The server answered ${response.status}. Try again.`;
    return new RequestError(response.status, "http_error", message, retryAfterS);
  }
}

/**
 * Retry-After in seconds: it is either a number of seconds or an HTTP date (RFC 9110, 10.2.3).
 * @param {string | null} value
 * @returns {number | null}
 */
function retryAfter(value) {
  if (value === null || value.trim() === "") return null;
  const seconds = /^\s*\d+\s*$/.test(value) ? Number(value) : (Date.parse(value) - Date.now()) / 1000;
  return Number.isFinite(seconds) ? Math.max(0, Math.ceil(seconds)) : null;
}
