// @ts-check
/**
 * An incremental parser for `text/event-stream`, following the WHATWG HTML standard,
 * section 9.2.6 "Interpreting an event stream". No DOM, no I/O: feed it text as it
 * arrives (already decoded by one `TextDecoder` in stream mode), in chunks of any size,
 * and it calls `onEvent` once per complete event.
 *
 * After Azure/fetch-event-source and rexxars/eventsource-parser: a small closure with
 * `feed` and `reset`.
 *
 * @typedef {{ event: string, data: string, id: string }} ServerSentEvent
 * @typedef {{
 *   onEvent: (event: ServerSentEvent) => void,
 *   onComment?: (comment: string) => void,
 *   onRetry?: (milliseconds: number) => void,
 * }} ParserCallbacks
 * @typedef {{ feed: (chunk: string) => void, reset: () => void }} Parser
 */

/**
 * @param {ParserCallbacks} callbacks
 * @returns {Parser}
 */
export function createParser({ onEvent, onComment, onRetry }) {
  /** Text received but not yet ended by a line break. */
  let pending = "";
  /** The previous chunk ended in CR: an LF at the start of the next one belongs to it. */
  let skipLeadingLf = false;
  let atStreamStart = true;
  let eventType = "";
  let data = "";
  let hasData = false;
  let lastEventId = "";

  /** @param {string} chunk */
  function feed(chunk) {
    if (atStreamStart && chunk.length > 0) {
      // "One leading U+FEFF BYTE ORDER MARK character must be ignored if any are present."
      if (chunk.charCodeAt(0) === 0xfeff) chunk = chunk.slice(1);
      atStreamStart = false;
    }
    if (skipLeadingLf && chunk.length > 0) {
      if (chunk.charCodeAt(0) === 0x0a) chunk = chunk.slice(1);
      skipLeadingLf = false;
    }
    const text = pending + chunk;
    let lineStart = 0;
    // `pending` holds no line break, so scanning starts where the new text does.
    for (let i = pending.length; i < text.length; i++) {
      const code = text.charCodeAt(i);
      if (code !== 0x0d && code !== 0x0a) continue;
      // Lines end in CRLF, a lone LF, or a lone CR.
      processLine(text.slice(lineStart, i));
      if (code === 0x0d) {
        if (i + 1 === text.length) skipLeadingLf = true;
        else if (text.charCodeAt(i + 1) === 0x0a) i++;
      }
      lineStart = i + 1;
    }
    pending = text.slice(lineStart);
  }

  /** @param {string} line */
  function processLine(line) {
    if (line === "") {
      dispatch();
      return;
    }
    if (line.charCodeAt(0) === 0x3a /* ":" */) {
      onComment?.(line.slice(line.charCodeAt(1) === 0x20 ? 2 : 1));
      return;
    }
    const colon = line.indexOf(":");
    const field = colon === -1 ? line : line.slice(0, colon);
    let value = colon === -1 ? "" : line.slice(colon + 1);
    // "If value starts with a U+0020 SPACE character, remove it from value."
    if (value.charCodeAt(0) === 0x20) value = value.slice(1);
    switch (field) {
      case "event":
        eventType = value;
        break;
      case "data":
        data += hasData ? "\n" + value : value;
        hasData = true;
        break;
      case "id":
        // "If the field value does not contain U+0000 NULL, set the last event ID buffer."
        if (!value.includes("\0")) lastEventId = value;
        break;
      case "retry":
        if (/^[0-9]+$/.test(value)) onRetry?.(Number(value));
        break;
      default:
      // "Otherwise: the field is ignored."
    }
  }

  function dispatch() {
    // "If the data buffer is an empty string, set the data buffer and the event type
    // buffer to the empty string and return." An event with no data is not dispatched.
    if (hasData) onEvent({ event: eventType || "message", data, id: lastEventId });
    eventType = "";
    data = "";
    hasData = false;
  }

  function reset() {
    pending = "";
    skipLeadingLf = false;
    atStreamStart = true;
    eventType = "";
    data = "";
    hasData = false;
    lastEventId = "";
  }

  return { feed, reset };
}
