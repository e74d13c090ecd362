// Renders the TUI into a fake terminal of a given size and drives it by keys, for frame assertions.
import { EventEmitter } from 'node:events'
import { render as inkRender } from 'ink'
import stringWidth from 'string-width'
import { App } from '../../source/tui/app.tsx'
import type { FakeClient } from './fake-client.ts'

class FakeStdout extends EventEmitter {
  frames: string[] = []
  constructor(
    public columns: number,
    public rows: number,
  ) {
    super()
  }
  write = (frame: string) => {
    this.frames.push(frame)
    return true
  }
  lastFrame = () => this.frames[this.frames.length - 1] ?? ''
}

class FakeStdin extends EventEmitter {
  isTTY = true
  data: string | null = null
  write(data: string) {
    this.data = data
    this.emit('readable')
    this.emit('data', data)
  }
  setEncoding() {}
  setRawMode() {}
  resume() {}
  pause() {}
  ref() {}
  unref() {}
  read = () => {
    const { data } = this
    this.data = null
    return data
  }
}

export const KEYS = {
  up: '\u001B[A',
  down: '\u001B[B',
  right: '\u001B[C',
  left: '\u001B[D',
  enter: '\r',
  esc: '\u001B',
  tab: '\t',
  shiftTab: '\u001B[Z',
  backspace: '\u007F',
  pageDown: '\u001B[6~',
  pageUp: '\u001B[5~',
} as const

export const tick = (ms = 20) => new Promise(resolve => setTimeout(resolve, ms))

/** Waits for the key's effect: a first new frame (up to 100 ms), then nothing new for a moment (at most 500 ms). */
async function settle(stdout: FakeStdout, before: number): Promise<void> {
  const firstFrame = Date.now() + 100
  while (stdout.frames.length === before && Date.now() < firstFrame) await tick(5)
  const deadline = Date.now() + 500
  let seen = -1
  while (seen !== stdout.frames.length && Date.now() < deadline) {
    seen = stdout.frames.length
    await tick(15)
  }
}

export interface Terminal {
  frame: () => string
  /** Types keys one by one, letting Ink and React settle after each. */
  press: (...keys: string[]) => Promise<void>
  type: (text: string) => Promise<void>
  /** Waits until the frame contains the text (or fails after 2 s, showing the frame). */
  waitFor: (text: string | RegExp) => Promise<string>
  unmount: () => void
  stdout: FakeStdout
  /** Sends input without waiting (benchmarks time what follows). */
  write: (data: string) => void
}

export async function renderApp(client: FakeClient, options: { columns?: number; rows?: number; readonly?: boolean; onQuit?: () => void; lab?: boolean } = {}): Promise<Terminal> {
  const stdout = new FakeStdout(options.columns ?? 80, options.rows ?? 24)
  const stdin = new FakeStdin()
  const instance = inkRender(<App client={client} readonly={options.readonly ?? false} columns={stdout.columns} rows={stdout.rows} socket="/run/lifeboat/test.sock" {...(options.onQuit !== undefined && { onQuit: options.onQuit })} lab={options.lab === true} />, {
    stdout: stdout as unknown as NodeJS.WriteStream,
    stdin: stdin as unknown as NodeJS.ReadStream,
    debug: true,
    exitOnCtrlC: false,
    patchConsole: false,
  })
  const terminal: Terminal = {
    frame: () => stdout.lastFrame(),
    press: async (...keys) => {
      if (keys.length === 0) await settle(stdout, -1)
      for (const key of keys) {
        const before = stdout.frames.length
        stdin.write(key)
        await settle(stdout, before)
      }
    },
    type: async text => {
      for (const char of text) {
        const before = stdout.frames.length
        stdin.write(char)
        await settle(stdout, before)
      }
    },
    waitFor: async text => {
      const deadline = Date.now() + 10_000 // generous: under a loaded CI a frame can take seconds; a passing wait returns at once
      for (;;) {
        const frame = stdout.lastFrame()
        if (typeof text === 'string' ? frame.includes(text) : text.test(frame)) return frame
        if (Date.now() > deadline) throw new Error(`Timed out waiting for ${String(text)}; the screen shows:\n${frame}`)
        await tick(10)
      }
    },
    unmount: () => instance.unmount(),
    stdout,
    write: data => stdin.write(data),
  }
  await tick()
  return terminal
}

/** Opens a screen through the command palette (`:pools` + enter). */
export async function goTo(t: Terminal, screen: string): Promise<void> {
  await t.press(':')
  await t.type(screen)
  await t.press(KEYS.enter)
}

/** The frame fits the terminal: no more lines than rows-1 (Ink clears the screen otherwise), none wider than columns. */
export function frameFits(frame: string, columns: number, rows: number): string | undefined {
  const lines = frame.split('\n')
  if (lines.length > rows - 1) return `${lines.length} lines for a ${rows}-row terminal`
  const wide = lines.find(line => stringWidth(line) > columns)
  return wide === undefined ? undefined : `a line is ${stringWidth(wide)} columns wide: ${wide}`
}
