// Written by scripts/vendor (@highlightjs/cdn-assets ships no types): the API static/js uses.
export interface HighlightResult {
  value: string;
  language?: string;
  relevance: number;
}
export interface HLJSApi {
  highlight(code: string, options: { language: string; ignoreIllegals?: boolean }): HighlightResult;
  getLanguage(name: string): object | undefined;
  listLanguages(): string[];
}
declare const hljs: HLJSApi;
export default hljs;
