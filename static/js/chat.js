// @ts-check
/**
 * The chat page: the composer, and one streaming answer at a time into the stored
 * conversation. A new chat is created on the server with its first message, and the
 * address becomes its own (`/c/<id>`). Each answer streams from one of the conversation
 * endpoints of docs/api.md: a message sent, an answer regenerated (or retried), a message
 * edited and sent again; the server keeps the earlier versions, and the page only shows
 * the branch on display. The server writes each answer to its end whatever happens to the
 * page's connection: a lost connection reattaches, a page loaded mid-answer (a reload, another
 * tab) follows it to its end, and only Stop stops it. An answer that ended early (stopped, cut
 * off) is shown as the server stored it, which is what the model is told next time.
 *
 * Answers are Markdown, rendered by markdown.js (sanitised, at most once per animation frame
 * while they stream); your own messages are shown as the plain text you typed.
 */
import { ConversationsApi, listModels } from "./api.js";
import { Answers } from "./answers.js";
import { Composer } from "./composer.js";
import { ConversationView } from "./conversation-view.js";
import { editInPlace } from "./editor.js";
import { installCopyButtons, renderMarkdown, StreamingMarkdown } from "./markdown.js";
import { describeProblem, ProblemLine } from "./problems.js";
import { ConversationSettings } from "./settings.js";
import { installShortcuts } from "./shortcuts.js";
import { Sidebar } from "./sidebar.js";

/**
 * @typedef {import("./api.js").MessageBody} MessageBody
 * @typedef {import("./message-view.js").MessageView} MessageView
 * @typedef {import("./api.js").ConversationSettings} StoredSettings
 * @typedef {{
 *   chatUrl: string,
 *   conversationsUrl: string,
 *   modelsUrl: string,
 *   newChatUrl: string,
 *   conversationPageUrl: string,
 *   streamsUrl: string,
 *   heartbeatS: number,
 *   conversation: StoredSettings | null,
 *   maxMessageChars: number,
 * }} PageConfig what the server renders into #chatapp-config (`heartbeatS`: CHATAPP_HEARTBEAT_S)
 */

document.documentElement.classList.add("js");
const config = /** @type {PageConfig} */ (JSON.parse(byId("chatapp-config").textContent || "{}"));
const api = new ConversationsApi(config.conversationsUrl);
/** The stored conversation shown; null on a new chat until its first message is sent. */
let conversationId = config.conversation?.id ?? null;

const view = new ConversationView({
  log: byId("log"),
  empty: byId("empty"),
  scroller: byId("scroller"),
  jump: /** @type {HTMLButtonElement} */ (byId("jump")),
  markdown: { renderMarkdown, StreamingMarkdown },
});
const status = byId("status");
/** The problem shown is that the message is over the limit: it goes once the text fits. */
let tooLong = false;
const heading = byId("conversation-title");
const problem = new ProblemLine(
  byId("problem"),
  byId("problem-text"),
  /** @type {HTMLButtonElement} */ (byId("problem-retry")),
);
const composer = new Composer({
  form: /** @type {HTMLFormElement} */ (byId("composer")),
  field: /** @type {HTMLTextAreaElement} */ (byId("prompt")),
  button: /** @type {HTMLButtonElement} */ (byId("send")),
  counter: byId("counter"),
  maxChars: config.maxMessageChars,
  onSend: send,
  onStop: () => answers.stop(),
  onInput: () => tooLong && !composer.over && showProblem(null),
  announce,
});

/** @param {string} id */
const pageUrl = (id) => config.conversationPageUrl + encodeURIComponent(id);

const sidebar = new Sidebar({
  api,
  pageUrl,
  currentId: () => conversationId,
  onRenamed: (id, title) => id === conversationId && showTitle(title),
  onCurrentDeleted: () => location.assign(config.newChatUrl),
  announce,
});
const settings = new ConversationSettings({
  api,
  listModels: () => listModels(config.modelsUrl),
  currentId: () => conversationId,
  saved: {
    system_prompt: config.conversation?.system_prompt ?? null,
    temperature: config.conversation?.temperature ?? null,
    max_tokens: config.conversation?.max_tokens ?? null,
  },
  announce,
});

/** The problem shown is that Stop failed: it goes when the answer ends. */
let stopFailed = false;
const answers = new Answers({
  api,
  chatUrl: config.chatUrl,
  streamsUrl: config.streamsUrl,
  // No bytes, not even a heartbeat, for two of the server's heartbeat intervals: the connection is dead.
  stallMs: 2 * (config.heartbeatS || 15) * 1000,
  network: window,
  currentId: () => conversationId,
  onBusy(busy) {
    composer.setBusy(busy);
    view.setBusy(busy);
    if (busy) {
      showProblem(null);
      view.followFromHere();
    } else if (stopFailed) {
      showProblem(null);
    }
  },
  onAnswered: showInSidebar,
  onUnseen: showAsStored,
  onStopFailed(error) {
    const { text, waitS } = describeProblem(error);
    // Retry stops again; so do the Stop button and Esc, since the answer goes on.
    problem.say(`Could not stop the answer. ${text}`, () => answers.stop(), waitS);
    stopFailed = true;
  },
  announce,
});

/** @param {string} id */
function byId(id) {
  const element = document.getElementById(id);
  if (!element) throw new Error(`#${id} is missing from the page`);
  return element;
}

/** @param {string} message */
function announce(message) {
  status.textContent = message;
}

/**
 * Say once, in plain words, why a request did not go through (null: the problem is over).
 * @param {unknown} error
 * @param {(() => void) | null} [again] sends it again, offered where that can help
 */
function showProblem(error, again = null) {
  tooLong = false;
  stopFailed = false;
  if (error === null) problem.clear();
  else problem.show(error, again);
}

/** @param {string} title */
function showTitle(title) {
  heading.textContent = title;
  document.title = `${title} · chatapp`;
}

/** The conversation to send into: created with the first message, with the choices made so far. */
async function conversation() {
  if (conversationId) return conversationId;
  const created = await api.create(settings.forNewConversation());
  conversationId = created.id;
  history.replaceState(null, "", pageUrl(created.id));
  return created.id;
}

async function send() {
  const text = composer.value;
  if (!text.trim() || answers.active) return;
  if (composer.over) {
    const limit = composer.maxChars.toLocaleString("en");
    const over = composer.over.toLocaleString("en");
    problem.say(`This message is ${over} characters over the limit of ${limit}. Shorten it to send it.`);
    tooLong = true;
    return;
  }
  const stored = view.messages().filter((m) => m.id).at(-1);
  const user = view.add("user", text);
  const answer = view.add("assistant", "");
  composer.value = "";
  /** @type {MessageBody} */
  const body = { content: text };
  // After the answer this page shows, even if another tab has since shown another branch.
  if (!stored) body.parent_id = null;
  else if (stored.role === "assistant") body.parent_id = stored.id;
  await answers.run(async () => api.messagesUrl(await conversation()), body, answer, {
    user,
    userParent: stored?.id ?? null,
    userAlternatives: [],
    answerAlternatives: [],
    notSent(error) {
      // Nothing was stored: the message goes back into the field, and the page says why, once.
      view.restore([], [user, answer]);
      if (!composer.value) composer.value = text;
      showProblem(error, send);
    },
  });
}

/** @param {MessageView} old the answer to replace; it stays on the server as a version */
function regenerate(old) {
  const id = conversationId;
  if (answers.active || !id || !old.id) return;
  const removed = view.cut(old);
  const answer = view.add("assistant", "");
  answers.run(async () => api.regenerateUrl(id, old.id), {}, answer, {
    user: null,
    userParent: null,
    userAlternatives: [],
    answerAlternatives: old.alternatives,
    notSent(error) {
      view.restore(removed, [answer]);
      showProblem(error, () => regenerate(old));
    },
  });
}

/** @param {MessageView} old your message, to edit and send again as a new version beside it */
function edit(old) {
  const id = conversationId;
  if (answers.active || !id || !old.id) return;
  editInPlace(old, (text) => {
    if (answers.active) return false;
    resend(old, text);
    return true;
  });
}

/**
 * @param {MessageView} old your message
 * @param {string} text its new version, sent after the message `old` follows
 */
function resend(old, text) {
  const id = conversationId;
  if (answers.active || !id) return;
  const removed = view.cut(old);
  const user = view.add("user", text);
  const answer = view.add("assistant", "");
  answers.run(async () => api.messagesUrl(id), { content: text, parent_id: old.parentId }, answer, {
    user,
    userParent: old.parentId,
    userAlternatives: old.alternatives,
    answerAlternatives: [],
    notSent(error) {
      view.restore(removed, [user, answer]);
      showProblem(error, () => resend(old, text));
    },
  });
}

/** Show the conversation's branch as the server stored it (after a connection that ended before
 * the stream said what it stored), and follow the answers still being written. */
async function showAsStored() {
  const id = conversationId;
  if (!id) return;
  try {
    const stored = await api.get(id);
    view.render(stored.messages);
    sidebar.upsert(stored);
    followStreaming();
  } catch {
    // What was shown stays; the next page load shows what was stored.
  }
}

/** Follow the answers shown that the server is still writing: each completes in place. */
function followStreaming() {
  for (const m of view.messages()) if (m.state === "streaming") answers.follow(m);
}

/** @param {string} id the conversation just answered: the newest, at the top of the sidebar */
async function showInSidebar(id) {
  if (sidebar.item(id)) return sidebar.touch(id);
  try {
    const stored = await api.get(id);
    sidebar.upsert(stored);
    showTitle(stored.title);
  } catch {
    // The sidebar catches up on the next page load.
  }
}

/**
 * @param {MessageView} message
 * @param {-1 | 1} step to the previous or the next version
 */
async function showVersion(message, step) {
  const id = conversationId;
  const target = message.alternatives[message.alternatives.indexOf(message.id) + step];
  if (answers.active || !id || !target) return;
  try {
    const stored = await api.update(id, { show: target });
    view.render(stored.messages);
    showProblem(null);
    const shown = view.messages().find((m) => m.id === target);
    const position = shown ? `${shown.alternatives.indexOf(target) + 1} of ${shown.alternatives.length}` : "";
    announce(`Version ${position}`);
    // Keep the keyboard where it was: on the same arrow, or the other one at the end of the row.
    const same = `.versions [data-action="${step < 0 ? "previous" : "next"}"]:not([disabled])`;
    const button = shown?.root.querySelector(same) ?? shown?.root.querySelector(".versions button:not([disabled])");
    if (button instanceof HTMLElement) button.focus();
    followStreaming();
  } catch (error) {
    showProblem(error);
  }
}

/**
 * @param {string} text
 * @returns {Promise<boolean>} whether the browser let the page write to the clipboard
 */
async function toClipboard(text) {
  try {
    await navigator.clipboard.writeText(text);
    return true;
  } catch {
    announce("Could not copy: the browser did not allow it");
    return false;
  }
}

/** @param {MessageView} message */
async function copy(message) {
  if (!(await toClipboard(message.copyText))) return;
  const copied = /** @type {HTMLElement} */ (message.root.querySelector(".copied"));
  copied.hidden = false;
  setTimeout(() => (copied.hidden = true), 2000);
}

function copyLastAnswer() {
  const last = view
    .messages()
    .filter((m) => m.role === "assistant" && m.state !== "streaming")
    .at(-1);
  if (!last) return announce("No answer to copy yet");
  copy(last).then(() => announce("Copied the last answer"));
}

function copyLastCode() {
  const codes = view.log.querySelectorAll(".message.assistant:not([data-state=streaming]) .md-code-block pre > code");
  const last = codes[codes.length - 1];
  if (!last) return announce("No code to copy yet");
  toClipboard((last.textContent ?? "").replace(/\n$/, "")).then((ok) => ok && announce("Copied the last code block"));
}

installShortcuts(
  {
    stop() {
      if (!answers.active) return false;
      answers.stop();
      return true;
    },
    focusInput: () => composer.focus(),
    copyLastAnswer,
    copyLastCode,
    newChat: () => location.assign(config.newChatUrl),
  },
  /** @type {HTMLDialogElement} */ (byId("shortcuts-dialog")),
  byId("shortcuts-button"),
);

// PageUp and PageDown in the message field scroll the conversation, unless the field scrolls its own text.
composer.field.addEventListener("keydown", (event) => {
  if ((event.key !== "PageUp" && event.key !== "PageDown") || event.ctrlKey || event.altKey || event.metaKey) return;
  if (event.shiftKey || !composer.fits) return;
  event.preventDefault();
  view.page(event.key === "PageUp" ? -1 : 1);
});

// Leaving the page does not stop its answer: the server finishes and stores it, and the page
// reattaches when it is shown again (a reload, or the back button bringing it from the cache).
let detached = false;
window.addEventListener("pagehide", () => (detached = answers.detach() || detached));
window.addEventListener("pageshow", (event) => event.persisted && detached && location.reload());

view.log.addEventListener("click", (event) => {
  const target = event.target instanceof Element ? event.target : null;
  const starter = target?.closest("button.starter");
  if (starter instanceof HTMLButtonElement) {
    composer.value = starter.dataset.prompt ?? starter.textContent ?? "";
    send();
    return;
  }
  const button = target?.closest("button[data-action]");
  const message = button ? view.viewOf(button) : null;
  if (!(button instanceof HTMLButtonElement) || !message) return;
  const action = button.dataset.action;
  if (action === "copy") copy(message);
  else if (answers.active) announce("Wait for the answer to finish, or stop it first");
  else if (action === "regenerate") regenerate(message);
  else if (action === "edit") edit(message);
  else if (action === "previous" || action === "next") showVersion(message, action === "previous" ? -1 : 1);
});

installCopyButtons(view.log);
followStreaming();
settings.loadModels();
view.keepFollowing();
// On a touch screen focus would open the keyboard over half of the conversation: wait for a tap.
if (!composer.touch.matches) composer.focus();
