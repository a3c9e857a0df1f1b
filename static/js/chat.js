// @ts-check
/**
 * The chat page: the composer, the conversation, and one streaming answer at a time.
 *
 * Text from the model only ever reaches the page as text (Text nodes, textContent),
 * never as HTML. Tokens are buffered and painted at most once per animation frame, so
 * a very fast stream costs one layout per frame rather than one per token. The
 * conversation sent with each message is `history`, which includes partial answers
 * that were stopped or cut off, exactly as the person saw them.
 */
import { RequestError, streamChat } from "./chat-stream.js";

/** @typedef {import("./chat-stream.js").ChatMessage} ChatMessage */

const config = JSON.parse(byId("chatapp-config").textContent || "{}");
const scroller = byId("scroller");
const log = byId("log");
const empty = byId("empty");
const composer = /** @type {HTMLFormElement} */ (byId("composer"));
const prompt = /** @type {HTMLTextAreaElement} */ (byId("prompt"));
const sendButton = /** @type {HTMLButtonElement} */ (byId("send"));
const status = byId("status");
const modelName = byId("model-name");
const hint = byId("hint");

/** On touch screens Enter makes a new line and the button sends, as in messaging apps. */
const touchInput = window.matchMedia("(pointer: coarse)");
/** Within this many pixels of the bottom, the view follows the stream. */
const STICKY_PX = 48;

/** @type {ChatMessage[]} */
const history = [];
/** @type {Turn | null} */
let active = null;
let followStream = true;

/** @param {string} id */
function byId(id) {
  const element = document.getElementById(id);
  if (!element) throw new Error(`#${id} is missing from the page`);
  return element;
}

/** One rendered message: its text grows in place, painted once per animation frame. */
class MessageView {
  /**
   * @param {"user" | "assistant"} role
   * @param {string} text
   */
  constructor(role, text) {
    this.root = document.createElement("article");
    this.root.className = `message ${role}`;
    this.root.setAttribute("aria-label", role === "user" ? "You said" : "Assistant");
    this.bubble = document.createElement("div");
    this.bubble.className = "bubble";
    this.text = document.createElement("div");
    this.text.className = "message-text";
    this.textNode = document.createTextNode(text);
    this.text.append(this.textNode);
    this.meta = document.createElement("p");
    this.meta.className = "meta";
    this.bubble.append(this.text);
    this.root.append(this.bubble, this.meta);
    /** @type {HTMLDetailsElement | null} */
    this.thinking = null;
    /** @type {Text | null} */
    this.thinkingNode = null;
    this.pendingText = "";
    this.pendingReasoning = "";
    this.frame = 0;
  }

  /** @param {string} state "streaming" | "complete" | "stopped" | "interrupted" | "error" | "failed" */
  setState(state) {
    this.root.dataset.state = state;
    this.root.setAttribute("aria-busy", String(state === "streaming"));
  }

  /** @param {string} text */
  appendText(text) {
    this.pendingText += text;
    this.schedulePaint();
  }

  /** @param {string} text */
  appendReasoning(text) {
    this.pendingReasoning += text;
    this.schedulePaint();
  }

  schedulePaint() {
    if (!this.frame) this.frame = requestAnimationFrame(() => this.paint());
  }

  /** Put buffered text on the page now (also called when the stream ends). */
  paint() {
    if (this.frame) cancelAnimationFrame(this.frame);
    this.frame = 0;
    if (this.pendingReasoning) {
      this.thinkingSection().appendData(this.pendingReasoning);
      this.pendingReasoning = "";
    }
    if (this.pendingText) {
      this.textNode.appendData(this.pendingText);
      this.pendingText = "";
    }
    keepFollowing();
  }

  /** The collapsed "Thinking" section above the answer, made on the first reasoning event. */
  thinkingSection() {
    if (!this.thinkingNode) {
      this.thinking = document.createElement("details");
      this.thinking.className = "thinking";
      const summary = document.createElement("summary");
      summary.textContent = "Thinking";
      const body = document.createElement("div");
      body.className = "thinking-text";
      this.thinkingNode = document.createTextNode("");
      body.append(this.thinkingNode);
      this.thinking.append(summary, body);
      this.bubble.prepend(this.thinking);
    }
    return this.thinkingNode;
  }

  /** @param {string} message */
  showError(message) {
    const notice = document.createElement("p");
    notice.className = "notice error";
    notice.textContent = message;
    this.bubble.append(notice);
  }

  /** @param {string} label */
  setMeta(label) {
    this.meta.textContent = label;
  }
}

/**
 * One exchange in progress.
 * @typedef {{
 *   view: MessageView,
 *   controller: AbortController,
 *   streamId: string,
 *   text: string,
 *   started: boolean,
 *   finished: boolean,
 *   stopped: boolean,
 *   usage: string,
 * }} Turn
 */

/** @param {MessageView} view */
function addMessage(view) {
  empty.hidden = true;
  log.append(view.root);
  keepFollowing();
  return view;
}

function keepFollowing() {
  if (followStream) scroller.scrollTop = scroller.scrollHeight;
}

/** @param {string} message */
function announce(message) {
  status.textContent = message;
}

/** @param {boolean} streaming */
function setStreaming(streaming) {
  sendButton.dataset.mode = streaming ? "stop" : "send";
  sendButton.textContent = streaming ? "Stop" : "Send";
  sendButton.setAttribute("aria-label", streaming ? "Stop generating" : "Send message");
}

async function send() {
  const text = prompt.value;
  if (!text.trim() || active) return;
  const userView = addMessage(new MessageView("user", text));
  const view = addMessage(new MessageView("assistant", ""));
  view.setState("streaming");
  /** @type {Turn} */
  const turn = {
    view,
    controller: new AbortController(),
    streamId: "",
    text: "",
    started: false,
    finished: false,
    stopped: false,
    usage: "",
  };
  active = turn;
  history.push({ role: "user", content: text });
  prompt.value = "";
  fitPrompt();
  followStream = true;
  setStreaming(true);
  announce("Generating…");

  try {
    const outcome = await streamChat(config.chatUrl, { messages: [...history] }, turn.controller.signal, {
      onStart(start) {
        turn.started = true;
        turn.streamId = start.stream_id;
        view.root.dataset.streamId = start.stream_id;
        modelName.textContent = start.model;
      },
      onReasoning: (delta) => view.appendReasoning(delta),
      onToken(delta) {
        turn.text += delta;
        view.appendText(delta);
      },
      onUsage(usage) {
        turn.usage = `${usage.completion_tokens} tokens`;
        view.meta.title = `${usage.prompt_tokens} prompt + ${usage.completion_tokens} completion tokens`;
      },
      onError: (error) => view.showError(error.message),
      onDone: (reason) => finish(turn, reason),
    });
    if (outcome === "interrupted") finish(turn, "interrupted");
  } catch (error) {
    if (turn.stopped) {
      finish(turn, "cancelled");
    } else if (!turn.started) {
      notSent(turn, userView, text, error);
    } else {
      finish(turn, "interrupted");
    }
  } finally {
    active = null;
    setStreaming(false);
  }
}

const OUTCOMES = /** @type {Record<string, { state: string, label: string, spoken: string }>} */ ({
  stop: { state: "complete", label: "", spoken: "Response complete" },
  length: { state: "complete", label: "Cut off at the length limit", spoken: "Response complete" },
  cancelled: { state: "stopped", label: "Stopped", spoken: "Stopped" },
  error: { state: "error", label: "Failed", spoken: "The answer failed" },
  interrupted: { state: "interrupted", label: "Interrupted: the connection was lost", spoken: "Connection lost" },
});

/**
 * @param {Turn} turn
 * @param {string} reason a `done` finish_reason, or "interrupted"
 */
function finish(turn, reason) {
  if (turn.finished) return;
  turn.finished = true;
  const outcome = OUTCOMES[reason] || OUTCOMES.stop;
  turn.view.paint();
  turn.view.setState(outcome.state);
  turn.view.setMeta([outcome.label, turn.usage].filter(Boolean).join(" · "));
  // What the person saw is what the model is told it said, partial answers included.
  if (turn.text) history.push({ role: "assistant", content: turn.text });
  announce(outcome.spoken);
}

/**
 * The request failed before any answer: say why, and give the text back to edit or resend.
 * @param {Turn} turn
 * @param {MessageView} userView
 * @param {string} text
 * @param {unknown} error
 */
function notSent(turn, userView, text, error) {
  turn.finished = true;
  history.pop();
  userView.setState("failed");
  userView.setMeta("Not sent");
  const message =
    error instanceof RequestError ? error.message : "Could not reach chatapp. Check your connection and try again.";
  turn.view.setState("error");
  turn.view.showError(message);
  if (!prompt.value) {
    prompt.value = text;
    fitPrompt();
  }
  announce(`Not sent: ${message}`);
}

function stop() {
  if (!active) return;
  active.stopped = true;
  if (active.streamId) {
    // Besides the abort: a proxy may keep the upstream connection open after the browser
    // closes its own, and then only this request tells the server to stop the model.
    // keepalive lets it outlive the page; a 404 (already finished) is no error.
    fetch(`${config.chatUrl}/${encodeURIComponent(active.streamId)}/stop`, {
      method: "POST",
      keepalive: true,
      headers: { "Content-Type": "application/json" },
      body: "{}",
    }).catch(() => {});
  }
  active.controller.abort();
}

function newChat() {
  stop();
  history.length = 0;
  log.replaceChildren(empty);
  empty.hidden = false;
  announce("New chat");
  prompt.focus();
}

function fitPrompt() {
  prompt.style.height = "auto";
  prompt.style.height = `${Math.min(prompt.scrollHeight, 240)}px`;
}

composer.addEventListener("submit", (event) => {
  event.preventDefault();
  if (active) stop();
  else send();
});

prompt.addEventListener("keydown", (event) => {
  if (event.key === "Escape" && active) {
    stop();
    return;
  }
  // keyCode 229: some browsers report IME keystrokes this way without isComposing.
  if (event.key !== "Enter" || event.shiftKey || event.isComposing || event.keyCode === 229) return;
  if (touchInput.matches) return;
  event.preventDefault();
  if (!active) send();
});

prompt.addEventListener("input", fitPrompt);

scroller.addEventListener(
  "scroll",
  () => {
    followStream = scroller.scrollHeight - scroller.scrollTop - scroller.clientHeight < STICKY_PX;
  },
  { passive: true },
);

byId("new-chat").addEventListener("click", newChat);

if (touchInput.matches) hint.textContent = "Tap Send to send.";
prompt.focus();
