// @ts-check
/**
 * A conversation's settings: the model picker (the names of `GET /api/models`) and the
 * settings dialog (system prompt, temperature, max_tokens). Each change is saved on the
 * conversation with PATCH; on a new chat, before the conversation exists, they are kept
 * here and sent when it is created.
 */
import { messageOf } from "./sidebar.js";

/**
 * @typedef {import("./api.js").ConversationsApi} ConversationsApi
 * @typedef {import("./api.js").AnswerSettings} AnswerSettings
 * @typedef {import("./api.js").ConversationChanges} ConversationChanges
 * @typedef {{
 *   api: ConversationsApi,
 *   listModels: () => Promise<{ models: string[], default: string }>,
 *   currentId: () => string | null,
 *   saved: AnswerSettings,
 *   announce: (message: string) => void,
 * }} SettingsOptions
 */

/** @param {string} id */
function byId(id) {
  const element = document.getElementById(id);
  if (!element) throw new Error(`#${id} is missing from the page`);
  return element;
}

export class ConversationSettings {
  /** @param {SettingsOptions} options */
  constructor(options) {
    this.options = options;
    /** What the conversation has, or what a new one will be created with. */
    this.saved = { ...options.saved };
    this.select = /** @type {HTMLSelectElement} */ (byId("model-select"));
    this.model = this.select.value;
    this.dialog = /** @type {HTMLDialogElement} */ (byId("settings-dialog"));
    this.form = /** @type {HTMLFormElement} */ (byId("settings-form"));
    this.systemPrompt = /** @type {HTMLTextAreaElement} */ (byId("system-prompt"));
    this.temperature = /** @type {HTMLInputElement} */ (byId("temperature"));
    this.maxTokens = /** @type {HTMLInputElement} */ (byId("max-tokens"));
    this.error = byId("settings-error");

    this.select.addEventListener("change", () => this.pickModel(this.select.value));
    byId("settings-button").addEventListener("click", () => this.open());
    byId("settings-cancel").addEventListener("click", () => this.dialog.close());
    this.form.addEventListener("submit", (event) => {
      event.preventDefault();
      this.save();
    });
  }

  /** Fill the picker with the models the server offers (the conversation's stays chosen). */
  async loadModels() {
    let names;
    try {
      names = (await this.options.listModels()).models;
    } catch {
      return; // the picker keeps the conversation's model; choosing another waits for a reload
    }
    const choices = [...new Set([this.model, ...names])];
    this.select.replaceChildren(...choices.map((name) => new Option(name, name, false, name === this.model)));
  }

  /** @param {string} model */
  async pickModel(model) {
    const previous = this.model;
    this.model = model;
    const id = this.options.currentId();
    if (!id) return this.options.announce(`New answers will come from ${model}`);
    try {
      await this.options.api.update(id, { model });
      this.options.announce(`New answers will come from ${model}`);
    } catch (error) {
      this.model = this.select.value = previous;
      this.options.announce(`Model not changed: ${messageOf(error)}`);
    }
  }

  /** What a new conversation is created with: the choices made before it existed. */
  forNewConversation() {
    /** @type {ConversationChanges} */
    const fields = { model: this.model };
    if (this.saved.system_prompt !== null) fields.system_prompt = this.saved.system_prompt;
    if (this.saved.temperature !== null) fields.temperature = this.saved.temperature;
    if (this.saved.max_tokens !== null) fields.max_tokens = this.saved.max_tokens;
    return fields;
  }

  open() {
    this.systemPrompt.value = this.saved.system_prompt ?? "";
    this.temperature.value = this.saved.temperature === null ? "" : String(this.saved.temperature);
    this.maxTokens.value = this.saved.max_tokens === null ? "" : String(this.saved.max_tokens);
    this.error.hidden = true;
    this.dialog.showModal();
  }

  async save() {
    if (!this.form.reportValidity()) return;
    /** @type {AnswerSettings} */
    const changes = {
      system_prompt: this.systemPrompt.value.trim() ? this.systemPrompt.value : null,
      temperature: this.temperature.value === "" ? null : Number(this.temperature.value),
      max_tokens: this.maxTokens.value === "" ? null : Number(this.maxTokens.value),
    };
    const id = this.options.currentId();
    if (id) {
      try {
        const saved = await this.options.api.update(id, changes);
        changes.system_prompt = saved.system_prompt;
        changes.temperature = saved.temperature;
        changes.max_tokens = saved.max_tokens;
      } catch (error) {
        this.error.textContent = messageOf(error);
        this.error.hidden = false;
        return;
      }
    }
    this.saved = changes;
    this.dialog.close();
    this.options.announce("Settings saved");
  }
}
