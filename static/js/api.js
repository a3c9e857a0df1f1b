// @ts-check
/**
 * The stored conversations' JSON endpoints of docs/api.md ("Conversations: stored on the
 * server"), as typed functions. Each rejects with RequestError when the server refuses,
 * and with a TypeError when it cannot be reached. No DOM here.
 */
import { RequestError, requestError } from "./request-error.js";

/**
 * @typedef {{ content: string, parent_id?: string | null }} MessageBody the body of `POST .../messages`
 * @typedef {{ prompt_tokens: number, completion_tokens: number, total_tokens: number, estimated: boolean }} StoredUsage
 * @typedef {"streaming" | "complete" | "stopped" | "interrupted" | "error"} MessageStatus
 * @typedef {{
 *   id: string,
 *   parent_id: string | null,
 *   role: "user" | "assistant",
 *   content: string,
 *   reasoning: string,
 *   status: MessageStatus,
 *   finish_reason: import("./sse-reader.js").FinishReason | null,
 *   error: { code: string, message: string } | null,
 *   model: string | null,
 *   usage: StoredUsage | null,
 *   stream_id?: string | null,
 *   alternatives: string[],
 * }} StoredMessage the fields of a message the page uses (`stream_id`: the stream writing it, while `streaming`)
 * @typedef {{ id: string, title: string, created_at: string, updated_at: string }} ConversationSummary
 * @typedef {{
 *   system_prompt: string | null,
 *   temperature: number | null,
 *   max_tokens: number | null,
 * }} AnswerSettings
 * @typedef {ConversationSummary & AnswerSettings & { model: string }} ConversationSettings
 * @typedef {ConversationSettings & { messages: StoredMessage[] }} Conversation
 * @typedef {Partial<AnswerSettings & { title: string, model: string, show: string }>} ConversationChanges
 */

/**
 * @param {string} method
 * @param {string} url
 * @param {object} [body]
 * @returns {Promise<unknown>} the parsed body; null for 204
 */
async function call(method, url, body) {
  /** @type {RequestInit} */
  const init = { method, headers: { Accept: "application/json" } };
  if (body !== undefined) {
    init.headers = { ...init.headers, "Content-Type": "application/json" };
    init.body = JSON.stringify(body);
  }
  const response = await fetch(url, init);
  if (!response.ok) throw await requestError(response);
  if (response.status === 204) return null;
  try {
    return await response.json();
  } catch {
    throw new RequestError(response.status, "http_error", "The server's answer could not be read. Try again.");
  }
}

/** The conversation endpoints under one base URL (`/api/conversations`). */
export class ConversationsApi {
  /** @param {string} baseUrl */
  constructor(baseUrl) {
    this.baseUrl = baseUrl;
  }

  /** @param {string} id */
  url(id) {
    return `${this.baseUrl}/${encodeURIComponent(id)}`;
  }

  /** @param {string} id the conversation's */
  messagesUrl(id) {
    return `${this.url(id)}/messages`;
  }

  /**
   * @param {string} id the conversation's
   * @param {string} messageId the answer to regenerate
   */
  regenerateUrl(id, messageId) {
    return `${this.messagesUrl(id)}/${encodeURIComponent(messageId)}/regenerate`;
  }

  /**
   * @param {ConversationChanges} fields
   * @returns {Promise<Conversation>}
   */
  async create(fields) {
    return /** @type {Conversation} */ (await call("POST", this.baseUrl, fields));
  }

  /**
   * @param {string} id
   * @returns {Promise<Conversation>}
   */
  async get(id) {
    return /** @type {Conversation} */ (await call("GET", this.url(id)));
  }

  /**
   * @param {string} id
   * @param {ConversationChanges} changes
   * @returns {Promise<Conversation>}
   */
  async update(id, changes) {
    return /** @type {Conversation} */ (await call("PATCH", this.url(id), changes));
  }

  /** @param {string} id */
  async remove(id) {
    await call("DELETE", this.url(id));
  }

  /**
   * @param {{ before: string, beforeId: string }} cursor the `updated_at` and id of the last one the page has
   * @param {number} limit
   * @returns {Promise<ConversationPage>}
   */
  async list(cursor, limit) {
    const query = new URLSearchParams({ before: cursor.before, before_id: cursor.beforeId, limit: String(limit) });
    return /** @type {ConversationPage} */ (await call("GET", `${this.baseUrl}?${query}`));
  }
}

/**
 * @typedef {{ conversations: ConversationSummary[], next_before: string | null, next_before_id: string | null }} ConversationPage
 */

/**
 * @param {string} url `GET /api/models`
 * @returns {Promise<{ models: string[], default: string }>}
 */
export async function listModels(url) {
  return /** @type {{ models: string[], default: string }} */ (await call("GET", url));
}
