// @ts-check
/**
 * The conversation on the page (#log): the messages of the branch on display, in order,
 * adopted from the server's HTML (answers then rendered as Markdown) or rendered from the
 * API's JSON, and the scrolling that follows a streaming answer until the reader scrolls up,
 * with a "jump to latest" button meanwhile.
 */
import { MessageView } from "./message-view.js";

/**
 * @typedef {import("./api.js").StoredMessage} StoredMessage
 * @typedef {import("./message-view.js").Markdown} Markdown
 */

/** Within this many pixels of the bottom, the view follows the stream. */
const STICKY_PX = 48;

export class ConversationView {
  /**
   * @param {{
   *   log: HTMLElement,
   *   empty: HTMLElement,
   *   scroller: HTMLElement,
   *   jump: HTMLButtonElement,
   *   markdown: Markdown,
   * }} parts the messages' parent, what an empty conversation shows, the element that scrolls,
   *   the "jump to latest" button, and the renderer for answers
   */
  constructor({ log, empty, scroller, jump, markdown }) {
    this.log = log;
    this.empty = empty;
    this.scroller = scroller;
    this.jump = jump;
    this.follow = true;
    this.keepFollowing = this.keepFollowing.bind(this);
    /** @type {import("./message-view.js").ViewOptions} */
    this.options = { onPaint: this.keepFollowing, markdown };
    /** @type {WeakMap<Element, MessageView>} */
    this.views = new WeakMap();
    for (const root of log.querySelectorAll("article.message")) {
      if (!(root instanceof HTMLElement)) continue;
      const view = new MessageView(root, this.options);
      view.upgrade();
      this.views.set(root, view);
    }
    scroller.addEventListener(
      "scroll",
      () => {
        this.follow = this.distanceToEnd() < STICKY_PX;
        this.showJump();
      },
      { passive: true },
    );
    jump.addEventListener("click", () => {
      const hadFocus = document.activeElement === jump;
      this.followFromHere();
      // The button goes away: a keyboard user stays in the conversation, not on the page's body.
      if (hadFocus) scroller.focus({ preventScroll: true });
    });
  }

  distanceToEnd() {
    return this.scroller.scrollHeight - this.scroller.scrollTop - this.scroller.clientHeight;
  }

  /** "Jump to latest" while the reader is away from the end of the conversation. */
  showJump() {
    this.jump.hidden = this.follow || this.distanceToEnd() < STICKY_PX;
  }

  /**
   * Scroll the conversation by most of a screen, as PageUp and PageDown do.
   * @param {-1 | 1} direction
   */
  page(direction) {
    this.scroller.scrollBy({ top: direction * this.scroller.clientHeight * 0.85 });
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
    const view = MessageView.create(role, this.options);
    if (role === "user") view.setText(text);
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
      const view = MessageView.create(m.role, this.options);
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
    this.showJump();
  }

  /** Follow the stream from now on (a message was just sent). */
  followFromHere() {
    this.follow = true;
    this.keepFollowing();
  }
}
