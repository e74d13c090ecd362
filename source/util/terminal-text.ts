// Text from outside (XAPI names, remote listings, job files) on its way to a terminal: control characters
// (ESC sequences, bells, carriage returns) would let a VM name repaint the screen or retitle the pane.

// C0 controls but tab and newline, DEL, and the C1 range (0x80–0x9f: CSI/OSC in 8-bit terminals).
const CONTROL = /[\u0000-\u0008\u000b-\u001f\u007f-\u009f]/g

/**
 * `text` with every control character replaced by U+FFFD, so that nothing is silently hidden either; a NUL
 * becomes `\0`, as XO's SMB URLs are written (one sits before the sub-folder). Tabs and newlines stay.
 */
export function terminalSafe(text: string): string {
  return text.replace(CONTROL, char => (char === '\0' ? '\\0' : '\ufffd'))
}

/** The same for one line (a table cell, a title): newlines and tabs too become visible replacements. */
export function terminalSafeLine(text: string): string {
  return terminalSafe(text).replace(/[\t\n]/g, ' ')
}
