// @ts-check
/**
 * The conversation on the page (#log): the messages of the branch on display, in order,
 * adopted from the server's HTML or rendered from the API's JSON, and the scrolling that
 * follows a streaming answer until the reader scrolls up.
 */
import { MessageView } from "./message-view.js";

/** @typedef {import("./api.js").StoredMessage} StoredMessage */

/** Within this many pixels of the bottom, the view follows the stream. */
const STICKY_PX = 48;

export class ConversationView {
  /**
   * @param {HTMLElement} log the messages' parent
   * @param {HTMLElement} empty what an empty conversation shows
   * @param {HTMLElement} scroller the element that scrolls
   */
  constructor(log, empty, scroller) {
    this.log = log;
    this.empty = empty;
    this.scroller = scroller;
    this.follow = true;
    /** @type {WeakMap<Element, MessageView>} */
    this.views = new WeakMap();
    this.keepFollowing = this.keepFollowing.bind(this);
    for (const root of log.querySelectorAll("article.message")) {
      if (root instanceof HTMLElement) this.views.set(root, new MessageView(root, this.keepFollowing));
    }
    scroller.addEventListener(
      "scroll",
      () => {
        this.follow = scroller.scrollHeight - scroller.scrollTop - scroller.clientHeight < STICKY_PX;
      },
      { passive: true },
    );
  }

  /** @returns {MessageView[]} the messages shown, oldest first */
  messages() {
    return [...this.log.querySelectorAll(":scope > article.message")].flatMap((root) => {
      const view = this.views.get(root);
      return view ? [view] : [];
    });
  }

  /**
   * The message an element (a button in it) belongs to.
   * @param {Element} element
   */
  viewOf(element) {
    const root = element.closest("article.message");
    return root ? (this.views.get(root) ?? null) : null;
  }

  /**
   * A new message at the end.
   * @param {"user" | "assistant"} role
   * @param {string} text
   */
  add(role, text) {
    const view = MessageView.create(role, this.keepFollowing);
    view.textNode.data = text;
    view.setMeta("");
    if (role === "user") view.setState("complete");
    this.views.set(view.root, view);
    this.empty.hidden = true;
    this.log.append(view.root);
    this.keepFollowing();
    return view;
  }

  /**
   * Show these stored messages instead of what is shown.
   * @param {StoredMessage[]} messages
   */
  render(messages) {
    const views = messages.map((m) => {
      const view = MessageView.create(m.role, this.keepFollowing);
      this.views.set(view.root, view);
      view.fill(m);
      return view;
    });
    this.log.replaceChildren(this.empty, ...views.map((view) => view.root));
    this.empty.hidden = views.length > 0;
    this.keepFollowing();
  }

  /**
   * Take `view` and every message after it off the page; `restore` puts them back.
   * @param {MessageView} view
   * @returns {Element[]}
   */
  cut(view) {
    const removed = [];
    for (let node = /** @type {Element | null} */ (view.root); node; ) {
      const next = node.nextElementSibling;
      node.remove();
      removed.push(node);
      node = next;
    }
    return removed;
  }

  /**
   * Put messages that `cut` took back at the end, in place of what was added since.
   * @param {Element[]} removed
   * @param {MessageView[]} added
   */
  restore(removed, added) {
    for (const view of added) view.root.remove();
    this.log.append(...removed);
    this.empty.hidden = this.messages().length > 0;
  }

  /** @param {boolean} busy an answer streams: the controls of other messages wait */
  setBusy(busy) {
    this.log.toggleAttribute("data-busy", busy);
  }

  /** Scroll to the end when the reader is there already. */
  keepFollowing() {
    if (this.follow) this.scroller.scrollTop = this.scroller.scrollHeight;
  }

  /** Follow the stream from now on (a message was just sent). */
  followFromHere() {
    this.follow = true;
    this.keepFollowing();
  }
}
