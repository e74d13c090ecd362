// The keys that work on every screen, in one table: the router dispatches from it and the footer and the
// help overlay read their text from it, so what a key is said to do and what it does cannot disagree.
import type { Key } from 'ink'

/** What has the keyboard: a list (letters are commands) or a text field (letters are typed). */
export type Focus = 'list' | 'text'

export type GlobalAction = 'help' | 'palette' | 'quit' | 'back'

interface Binding {
  /** As the footer and help show it. */
  name: string
  /** Where the binding works: a text field takes printable keys, so only control keys work there. */
  in: readonly Focus[]
  matches: (input: string, key: Key) => boolean
}

export interface GlobalKey {
  action: GlobalAction
  label: string
  bindings: readonly Binding[]
  /** Offered to the screen first (esc closes a filter or a form before it goes back). */
  screenFirst?: boolean
}

const plain = (key: Key) => !key.ctrl && !key.meta
const BOTH: readonly Focus[] = ['list', 'text']

/** F1 reaches the router as its raw escape sequence (Ink gives it no name): xterm, linux console, vt100. */
export const F1_SEQUENCE = /^\u001B(OP|\[11~|\[\[A)$/
export const F1 = 'F1'

export const GLOBAL_KEYS: readonly GlobalKey[] = [
  {
    action: 'help',
    label: 'help',
    bindings: [
      { name: '?', in: ['list'], matches: (input, key) => input === '?' && plain(key) },
      { name: F1, in: BOTH, matches: input => input === F1 },
      { name: 'ctrl-g', in: BOTH, matches: (input, key) => key.ctrl && input === 'g' },
    ],
  },
  { action: 'palette', label: 'go to (jobs runs lanes restore remotes pools vms srs)', bindings: [{ name: ':', in: ['list'], matches: (input, key) => input === ':' && plain(key) }] },
  {
    action: 'quit',
    label: 'quit',
    bindings: [
      { name: 'q', in: ['list'], matches: (input, key) => input === 'q' && plain(key) },
      { name: 'ctrl-c', in: BOTH, matches: (input, key) => key.ctrl && input === 'c' },
    ],
  },
  { action: 'back', label: 'back', screenFirst: true, bindings: [{ name: 'esc', in: BOTH, matches: (_input, key) => key.escape }] },
]

/** The global action a key asks for where the focus is, if any: before the screen sees it, or after it left it. */
export function globalAction(input: string, key: Key, focus: Focus, stage: 'before' | 'after'): GlobalAction | undefined {
  return GLOBAL_KEYS.find(g => (g.screenFirst === true) === (stage === 'after') && g.bindings.some(b => b.in.includes(focus) && b.matches(input, key)))?.action
}

/** The names of an action's keys that work where the focus is ("? F1 ctrl-g"); the footer shows the first. */
export function keyNames(action: GlobalAction, focus: Focus): string[] {
  return GLOBAL_KEYS.find(g => g.action === action)!.bindings.filter(b => b.in.includes(focus)).map(b => b.name)
}

/** A screen's key that a text field would take as typing (a letter, `/`, space). */
export function isTyped(keyName: string): boolean {
  return keyName === 'space' || [...keyName].length === 1
}

/** A screen's own key, as the footer and the help overlay show it. */
export interface ScreenKey {
  key: string
  label: string
  /** Hidden from the footer (still in the help overlay). */
  more?: boolean
}

/** Whether a key press is this screen key ('enter', 'space' or the letter). */
export function pressed(binding: ScreenKey, input: string, key: Key): boolean {
  if (binding.key === 'enter') return key.return
  if (binding.key === 'space') return input === ' '
  return input === binding.key && plain(key)
}

/** The job screen's keys: its handler dispatches from this table, the footer and `?` read it. */
export const JOB_KEYS = {
  open: { key: 'enter', label: 'open run' },
  run: { key: 'r', label: 'run now' },
  edit: { key: 'e', label: 'edit' },
  plan: { key: 'p', label: 'plan next run', more: true },
  cancel: { key: 'c', label: 'cancel run' },
  seed: { key: 's', label: 'cr-seed' },
  enable: { key: 'space', label: 'enable/disable', more: true },
} as const satisfies Record<string, ScreenKey>
