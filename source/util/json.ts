// JSON text from a person (a job file): where a syntax error is, without quoting the text. V8's messages
// quote the start of the input, which could be any file (`--file /etc/shadow`).

/** Parses `text`, or throws a SyntaxError that says only where the text stops being JSON (line and column, 1-based). */
export function parseJson(text: string): unknown {
  try {
    return JSON.parse(text)
  } catch (error) {
    if (!(error instanceof SyntaxError)) throw error
    const { line, column } = lineAndColumn(text, errorOffset(text, error.message))
    throw new SyntaxError(`line ${line}, column ${column}`)
  }
}

function errorOffset(text: string, message: string): number {
  const position = /at position (\d+)/.exec(message)
  if (position !== null) return Number(position[1])
  if (message.startsWith('Unexpected end')) return text.length
  // "Unexpected token …" has no position: find the shortest prefix that is no longer the start of a JSON text.
  let low = 1
  let high = text.length
  while (low < high) {
    const middle = Math.floor((low + high) / 2)
    if (brokenBeforeEnd(text.slice(0, middle))) high = middle
    else low = middle + 1
  }
  return low - 1
}

/** Whether `prefix` fails before its end (as opposed to being complete, or cut short). */
function brokenBeforeEnd(prefix: string): boolean {
  try {
    JSON.parse(prefix)
    return false
  } catch (error) {
    const message = (error as Error).message
    if (message.startsWith('Unexpected end')) return false
    const position = /at position (\d+)/.exec(message)
    return position === null || Number(position[1]) < prefix.length
  }
}

function lineAndColumn(text: string, offset: number): { line: number; column: number } {
  const before = text.slice(0, offset)
  const lines = before.split('\n')
  return { line: lines.length, column: lines.at(-1)!.length + 1 }
}
