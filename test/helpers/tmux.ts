// A terminal program driven as a person would: tmux runs it, send-keys types, capture-pane reads the screen.
import assert from 'node:assert/strict'
import { spawnSync } from 'node:child_process'

const sleep = (ms: number) => new Promise(resolve => setTimeout(resolve, ms))

export async function until<T>(what: string, probe: () => Promise<T | undefined> | T | undefined, timeoutMs = 20_000): Promise<T> {
  const deadline = Date.now() + timeoutMs
  for (;;) {
    const value = await probe()
    if (value !== undefined) return value
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`)
    await sleep(100)
  }
}

export class Tmux {
  constructor(readonly session: string) {}
  start(command: string, columns = 80, rows = 24): void {
    const result = spawnSync('tmux', ['new-session', '-d', '-s', this.session, '-x', String(columns), '-y', String(rows), command], { encoding: 'utf8' })
    assert.equal(result.status, 0, result.stderr)
  }
  screen(): string {
    return spawnSync('tmux', ['capture-pane', '-p', '-t', this.session], { encoding: 'utf8' }).stdout
  }
  /** tmux key names (Enter, Escape, Down, Space…) or literal text with `-l`. */
  keys(...keys: string[]): void {
    spawnSync('tmux', ['send-keys', '-t', this.session, ...keys])
  }
  type(text: string): void {
    for (const char of text) spawnSync('tmux', ['send-keys', '-t', this.session, '-l', char])
  }
  async waitFor(text: string | RegExp, timeoutMs = 20_000): Promise<string> {
    let last = ''
    try {
      return await until(
        String(text),
        () => {
          last = this.screen()
          return (typeof text === 'string' ? last.includes(text) : text.test(last)) ? last : undefined
        },
        timeoutMs,
      )
    } catch {
      throw new Error(`timed out waiting for ${String(text)}; the terminal shows:\n${last}`)
    }
  }
  /** Sends keys, then waits for what they should bring. */
  async press(keys: string[], expect: string | RegExp): Promise<string> {
    this.keys(...keys)
    return this.waitFor(expect)
  }
  kill(): void {
    spawnSync('tmux', ['kill-session', '-t', this.session])
  }
}

