// @ts-check
/**
 * The chat page: the composer, and one streaming answer at a time into the stored
 * conversation. A new chat is created on the server with its first message, and the
 * address becomes its own (`/c/<id>`). Each answer streams from one of the conversation
 * endpoints of docs/api.md: a message sent, an answer regenerated (or retried), a message
 * edited and sent again; the server keeps the earlier versions, and the page only shows
 * the branch on display. An answer that ended early (stopped, cut off) is shown as the
 * server stored it, which is what the model is told next time.
 *
 * Text from the model only ever reaches the page as text, and is painted at most once per
 * animation frame (message-view.js).
 */
import { ConversationsApi, listModels } from "./api.js";
import { Answers } from "./answers.js";
import { ConversationView } from "./conversation-view.js";
import { editInPlace } from "./editor.js";
import { ConversationSettings } from "./settings.js";
import { Sidebar, messageOf } from "./sidebar.js";

/**
 * @typedef {import("./chat-stream.js").MessageBody} MessageBody
 * @typedef {import("./message-view.js").MessageView} MessageView
 * @typedef {import("./api.js").ConversationSettings} StoredSettings
 * @typedef {{
 *   chatUrl: string,
 *   conversationsUrl: string,
 *   modelsUrl: string,
 *   newChatUrl: string,
 *   conversationPageUrl: string,
 *   conversation: StoredSettings | null,
 * }} PageConfig what the server renders into #chatapp-config
 */

document.documentElement.classList.add("js");
const config = /** @type {PageConfig} */ (JSON.parse(byId("chatapp-config").textContent || "{}"));
const api = new ConversationsApi(config.conversationsUrl);
/** The stored conversation shown; null on a new chat until its first message is sent. */
let conversationId = config.conversation?.id ?? null;

const view = new ConversationView(byId("log"), byId("empty"), byId("scroller"));
const composer = /** @type {HTMLFormElement} */ (byId("composer"));
const prompt = /** @type {HTMLTextAreaElement} */ (byId("prompt"));
const sendButton = /** @type {HTMLButtonElement} */ (byId("send"));
const status = byId("status");
const problem = byId("problem");
const heading = byId("conversation-title");

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

const answers = new Answers({
  api,
  chatUrl: config.chatUrl,
  currentId: () => conversationId,
  onBusy(busy) {
    sendButton.dataset.mode = busy ? "stop" : "send";
    sendButton.textContent = busy ? "Stop" : "Send";
    sendButton.setAttribute("aria-label", busy ? "Stop generating" : "Send message");
    view.setBusy(busy);
    if (busy) {
      showProblem(null);
      view.followFromHere();
    }
  },
  onAnswered: showInSidebar,
  announce,
});

/** On touch screens Enter makes a new line and the button sends, as in messaging apps. */
const touchInput = window.matchMedia("(pointer: coarse)");

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

/** @param {unknown} error or null to take the notice away */
function showProblem(error) {
  problem.hidden = error === null;
  problem.textContent = error === null ? "" : messageOf(error);
  if (error !== null) announce(problem.textContent);
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
  const text = prompt.value;
  if (!text.trim() || answers.active) return;
  const stored = view.messages().filter((m) => m.id).at(-1);
  const user = view.add("user", text);
  const answer = view.add("assistant", "");
  prompt.value = "";
  fitPrompt();
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
      user.setState("failed");
      user.setMeta("Not sent");
      answer.setState("error");
      answer.showError(messageOf(error));
      if (!prompt.value) {
        prompt.value = text;
        fitPrompt();
      }
      announce(`Not sent: ${messageOf(error)}`);
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
      showProblem(error);
    },
  });
}

/** @param {MessageView} old your message, to edit and send again as a new version beside it */
function edit(old) {
  const id = conversationId;
  if (answers.active || !id || !old.id) return;
  editInPlace(old, (text) => {
    if (answers.active) return false;
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
        showProblem(error);
      },
    });
    return true;
  });
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
    for (const m of view.messages()) if (m.state === "streaming") answers.watch(m, { progressive: true });
  } catch (error) {
    showProblem(error);
  }
}

/** @param {MessageView} message */
async function copy(message) {
  try {
    await navigator.clipboard.writeText(message.content);
  } catch {
    announce("Could not copy: the browser did not allow it");
    return;
  }
  const copied = /** @type {HTMLElement} */ (message.root.querySelector(".copied"));
  copied.hidden = false;
  setTimeout(() => (copied.hidden = true), 2000);
}

function fitPrompt() {
  prompt.style.height = "auto";
  prompt.style.height = `${Math.min(prompt.scrollHeight, 240)}px`;
}

composer.addEventListener("submit", (event) => {
  event.preventDefault();
  if (answers.active) answers.stop();
  else send();
});

prompt.addEventListener("keydown", (event) => {
  // keyCode 229: some browsers report IME keystrokes this way without isComposing.
  if (event.key !== "Enter" || event.shiftKey || event.isComposing || event.keyCode === 229) return;
  if (touchInput.matches) return;
  event.preventDefault();
  if (!answers.active) send();
});

prompt.addEventListener("input", fitPrompt);

// Escape stops the answer from anywhere on the page, unless it closes a dialog or an editor.
document.addEventListener("keydown", (event) => {
  if (event.key !== "Escape" || !answers.active || event.defaultPrevented) return;
  if (!document.querySelector("dialog[open]")) answers.stop();
});

// Leaving the page ends its answer, as closing the connection would, with the stop request too.
window.addEventListener("pagehide", () => answers.stop());

view.log.addEventListener("click", (event) => {
  const button = event.target instanceof Element ? event.target.closest("button[data-action]") : null;
  const message = button ? view.viewOf(button) : null;
  if (!(button instanceof HTMLButtonElement) || !message) return;
  const action = button.dataset.action;
  if (action === "copy") copy(message);
  else if (answers.active) announce("Wait for the answer to finish, or stop it first");
  else if (action === "regenerate") regenerate(message);
  else if (action === "edit") edit(message);
  else if (action === "previous" || action === "next") showVersion(message, action === "previous" ? -1 : 1);
});

if (touchInput.matches) byId("hint").textContent = "Tap Send to send.";
for (const message of view.messages()) if (message.state === "streaming") answers.watch(message, { progressive: true });
settings.loadModels();
view.keepFollowing();
prompt.focus();
