const ESCAPES: Record<string, string> = {
  '&': '&amp;',
  '<': '&lt;',
  '>': '&gt;',
  '"': '&quot;',
  "'": '&#39;',
  '`': '&#96;',
  '=': '&#61;',
};

/**
 * Escapes text for an HTML text node or a quoted attribute value: the pages the
 * module and the emulator render. (Here, below both, so neither imports the other.)
 */
export function escapeHtml(value: string): string {
  return value.replace(/[&<>"'`=]/g, (c) => ESCAPES[c] ?? c);
}
