// @ts-check
/**
 * The sidebar: the conversations, newest first (the server renders the first page, "Load
 * more" asks the API for the next), the one open marked, rename in place, delete after a
 * confirming <dialog>; on a phone it is a drawer that the menu button opens.
 */
import { RequestError } from "./request-error.js";

/**
 * @typedef {import("./api.js").ConversationsApi} ConversationsApi
 * @typedef {import("./api.js").ConversationSummary} ConversationSummary
 * @typedef {{
 *   api: ConversationsApi,
 *   pageUrl: (id: string) => string,
 *   currentId: () => string | null,
 *   onRenamed: (id: string, title: string) => void,
 *   onCurrentDeleted: () => void,
 *   announce: (message: string) => void,
 * }} SidebarOptions
 */

const PAGE = 30;

/** @param {string} id */
function byId(id) {
  const element = document.getElementById(id);
  if (!element) throw new Error(`#${id} is missing from the page`);
  return element;
}

export class Sidebar {
  /** @param {SidebarOptions} options */
  constructor(options) {
    this.options = options;
    this.root = byId("sidebar");
    this.list = byId("conversation-list");
    this.none = byId("no-conversations");
    this.loadMore = /** @type {HTMLButtonElement} */ (byId("load-more"));
    this.menuButton = byId("menu-button");
    this.backdrop = byId("drawer-backdrop");
    this.main = /** @type {HTMLElement} */ (document.querySelector(".main"));
    this.deleteDialog = /** @type {HTMLDialogElement} */ (byId("delete-dialog"));
    this.narrow = window.matchMedia("(max-width: 760px)");

    this.list.addEventListener("click", (event) => {
      const button = event.target instanceof Element ? event.target.closest("button[data-action]") : null;
      const item = button?.closest("li.conversation");
      if (!(button instanceof HTMLElement) || !(item instanceof HTMLElement)) return;
      if (button.dataset.action === "rename") this.rename(item);
      if (button.dataset.action === "delete") this.confirmDelete(item);
    });
    this.loadMore.addEventListener("click", () => this.more());
    this.menuButton.addEventListener("click", () => this.setDrawer(!this.isOpen()));
    this.backdrop.addEventListener("click", () => this.setDrawer(false));
    document.addEventListener("keydown", (event) => {
      if (event.key === "Escape" && this.isOpen() && !event.defaultPrevented) {
        event.preventDefault(); // this Escape closes the drawer, and stops no answer
        this.setDrawer(false);
      }
    });
    this.narrow.addEventListener("change", () => this.setDrawer(false));
  }

  isOpen() {
    return document.body.classList.contains("drawer-open");
  }

  /** @param {boolean} open the drawer, on a phone */
  setDrawer(open) {
    const wasOpen = this.isOpen();
    document.body.classList.toggle("drawer-open", open);
    this.menuButton.setAttribute("aria-expanded", String(open));
    this.backdrop.hidden = !open;
    this.main.inert = open; // the page behind a drawer takes no focus or clicks
    if (open) /** @type {HTMLElement | null} */ (this.root.querySelector("a[href], button"))?.focus();
    else if (wasOpen) this.menuButton.focus();
  }

  /** @param {string} id */
  item(id) {
    return /** @type {HTMLElement | null} */ (this.list.querySelector(`li[data-id="${CSS.escape(id)}"]`));
  }

  /**
   * Put a conversation at the top (it was just created or answered), marked open when it is.
   * @param {ConversationSummary} summary
   */
  upsert(summary) {
    const item = this.item(summary.id) ?? this.newItem();
    this.fill(item, summary);
    this.list.prepend(item);
    this.none.hidden = true;
  }

  /** @param {string} id the conversation just answered, now the newest */
  touch(id) {
    const item = this.item(id);
    if (item) this.list.prepend(item);
  }

  newItem() {
    const template = byId("conversation-item-template");
    const item = template instanceof HTMLTemplateElement ? template.content.firstElementChild?.cloneNode(true) : null;
    if (!(item instanceof HTMLElement)) throw new Error("#conversation-item-template is empty");
    return item;
  }

  /**
   * @param {HTMLElement} item
   * @param {ConversationSummary} summary
   */
  fill(item, summary) {
    item.dataset.id = summary.id;
    item.dataset.updatedAt = summary.updated_at;
    const link = /** @type {HTMLAnchorElement} */ (item.querySelector("a"));
    link.href = this.options.pageUrl(summary.id);
    link.toggleAttribute("aria-current", summary.id === this.options.currentId());
    if (link.hasAttribute("aria-current")) link.setAttribute("aria-current", "page");
    this.setTitle(item, summary.title);
  }

  /**
   * @param {HTMLElement} item
   * @param {string} title
   */
  setTitle(item, title) {
    /** @type {HTMLElement} */ (item.querySelector("a")).textContent = title;
    item.querySelector('[data-action="rename"]')?.setAttribute("aria-label", `Rename “${title}”`);
    item.querySelector('[data-action="delete"]')?.setAttribute("aria-label", `Delete “${title}”`);
  }

  /** The next page of older conversations. */
  async more() {
    const before = this.loadMore.dataset.before;
    if (!before) return;
    this.loadMore.disabled = true;
    try {
      const cursor = { before, beforeId: this.loadMore.dataset.beforeId ?? "" };
      const page = await this.options.api.list(cursor, PAGE);
      for (const summary of page.conversations) {
        if (this.item(summary.id)) continue;
        const item = this.newItem();
        this.fill(item, summary);
        this.list.append(item);
      }
      this.loadMore.dataset.before = page.next_before ?? "";
      this.loadMore.dataset.beforeId = page.next_before_id ?? "";
      this.loadMore.hidden = !page.next_before;
    } catch (error) {
      this.options.announce(`Could not load more conversations: ${messageOf(error)}`);
    } finally {
      this.loadMore.disabled = false;
    }
  }

  /**
   * Rename in place: a text field over the title; Enter or leaving it saves, Escape cancels.
   * @param {HTMLElement} item
   */
  rename(item) {
    const link = /** @type {HTMLAnchorElement} */ (item.querySelector("a"));
    if (item.querySelector("input")) return;
    const before = link.textContent ?? "";
    const input = document.createElement("input");
    input.className = "rename-input";
    input.value = before;
    input.maxLength = 200;
    input.setAttribute("aria-label", "New title");
    link.hidden = true;
    link.after(input);
    input.focus();
    input.select();
    let done = false;
    /** @param {boolean} save */
    const end = async (save) => {
      if (done) return;
      done = true;
      const title = input.value.trim();
      input.remove();
      link.hidden = false;
      if (!save || !title || title === before) return link.focus();
      this.setTitle(item, title);
      link.focus();
      try {
        const saved = await this.options.api.update(item.dataset.id ?? "", { title });
        this.setTitle(item, saved.title);
        this.options.onRenamed(saved.id, saved.title);
        this.options.announce("Renamed");
      } catch (error) {
        this.setTitle(item, before);
        this.options.announce(`Not renamed: ${messageOf(error)}`);
      }
    };
    input.addEventListener("keydown", (event) => {
      if (event.key === "Enter") {
        event.preventDefault();
        end(true);
      } else if (event.key === "Escape") {
        event.preventDefault(); // this Escape cancels the rename, and closes or stops nothing else
        end(false);
      }
    });
    input.addEventListener("blur", () => end(true));
  }

  /**
   * Ask, with a real dialog, then delete.
   * @param {HTMLElement} item
   */
  confirmDelete(item) {
    const dialog = this.deleteDialog;
    byId("delete-title").textContent = item.querySelector("a")?.textContent ?? "";
    dialog.returnValue = "";
    dialog.addEventListener(
      "close",
      () => {
        if (dialog.returnValue === "delete") this.remove(item);
        else item.querySelector("button")?.focus();
      },
      { once: true },
    );
    dialog.showModal();
  }

  /** @param {HTMLElement} item */
  async remove(item) {
    const id = item.dataset.id ?? "";
    try {
      await this.options.api.remove(id);
    } catch (error) {
      this.options.announce(`Not deleted: ${messageOf(error)}`);
      return;
    }
    const next = item.nextElementSibling ?? item.previousElementSibling;
    item.remove();
    this.none.hidden = this.list.childElementCount > 0;
    if (id === this.options.currentId()) return this.options.onCurrentDeleted();
    this.options.announce("Conversation deleted");
    /** @type {HTMLElement | null} */ (next?.querySelector("a") ?? null)?.focus();
  }
}

/**
 * What to tell a person about a failed request.
 * @param {unknown} error
 */
export function messageOf(error) {
  return error instanceof RequestError ? error.message : "chatapp could not be reached. Check your connection.";
}
