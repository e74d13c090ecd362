// The frame every screen lives in: navigation stack, one key router, size, status line, confirmations,
// and the daemon connection (with a generation that bumps when everything must be fetched again).
import { createContext, useCallback, useContext, useEffect, useRef, useState } from 'react'
import type { Key } from 'ink'
import type { TuiClient } from './client.ts'
import { errorText } from './client.ts'
import type { MethodName, StateKind, TuiMethods } from './contract.ts'
import type { Focus, ScreenKey } from './keys.ts'

export type Route =
  | { screen: 'jobs' }
  | { screen: 'job'; id: string; label: string }
  | { screen: 'plan'; id: string; label: string }
  | { screen: 'wizard'; id?: string; label: string }
  | { screen: 'lanes' }
  | { screen: 'runs'; jobId?: string }
  | { screen: 'run'; runId: string; follow?: boolean }
  | { screen: 'seed'; id: string; label: string }
  | { screen: 'restore' }
  | { screen: 'files'; remote: string; backupId: string; label: string }
  | { screen: 'remotes' }
  | { screen: 'pools' }
  | { screen: 'vms'; pool?: { id: string; name: string } }
  | { screen: 'srs'; pool?: { id: string; name: string } }

export type KeyHelp = ScreenKey

/** What the mounted screen tells the router: its keys (for footer and help) and its key handler. */
export interface ScreenKeys {
  keys: KeyHelp[]
  /** Returns true when the key was used; esc not used goes back. */
  onKey: (input: string, key: Key) => boolean
  /** A text field has the keyboard: global letters (q ? :) are typed into it instead. */
  capturing?: boolean
}

export interface ConfirmRequest {
  message: string
  /** The text the administrator must type (a job name) instead of answering y/n. */
  typed?: string
  onYes: () => void
  onNo?: () => void
}

export interface Notice {
  text: string
  kind: 'info' | 'error'
}

export interface Shell {
  client: TuiClient
  readonly: boolean
  /** Bumps when the daemon came back or asked for a resync: every screen refetches. */
  generation: number
  columns: number
  /** Rows the screen body may use. */
  bodyHeight: number
  navigate: (route: Route) => void
  back: () => void
  notify: (text: string, kind?: Notice['kind']) => void
  confirm: (request: ConfirmRequest) => void
  /** Shows a text whole (wrapped) over the screen until a key is pressed: for lines too long to read in a row. */
  showDetail: (title: string, text: string) => void
  /** False (and says why) when changes are disabled: for screens that open a form before changing anything. */
  canChange: (label: string) => boolean
  /** Runs a change on the daemon, unless read-only; reports the outcome on the status line ("label: done.", or `said` of the result). */
  mutate: <T>(label: string, action: () => Promise<T>, said?: (result: T) => string) => Promise<T | undefined>
  register: (keys: ScreenKeys) => void
  /** The keys shown in the footer and the help overlay, and whether a text field has the keyboard. */
  showKeys: (shown: { keys: KeyHelp[]; focus: Focus }) => void
}

export const ShellContext = createContext<Shell | undefined>(undefined)
/** False for the screens below the top of the stack: kept mounted (cursor, filter) but deaf to keys. */
export const ActiveScreen = createContext(true)

export function useShell(): Shell {
  const shell = useContext(ShellContext)
  if (shell === undefined) throw new Error('useShell outside the Lifeboat shell')
  return shell
}

/** Declares the screen's keys; the router calls the latest handler. */
export function useScreenKeys(keys: ScreenKeys): void {
  const shell = useShell()
  const active = useContext(ActiveScreen)
  if (active) shell.register(keys)
  const focus: Focus = keys.capturing === true ? 'text' : 'list'
  const signature = `${focus}\u0001${keys.keys.map(k => `${k.key}\u0000${k.label}\u0000${k.more === true}`).join('\u0001')}`
  const { showKeys } = shell
  useEffect(() => {
    if (active) showKeys({ keys: keys.keys, focus })
  }, [showKeys, signature, active]) // eslint-disable-line react-hooks/exhaustive-deps
}

export interface RpcState<T> {
  data: T | undefined
  error: string | undefined
  loading: boolean
  reload: () => void
}

/**
 * One daemon call's result, fetched on mount, when its params change, when the daemon comes back, and
 * when the daemon says one of `refreshOn` changed (state.changed).
 */
export function useRpc<M extends MethodName>(method: M, params: TuiMethods[M]['params'] | undefined, refreshOn: StateKind[] = []): RpcState<TuiMethods[M]['result']> {
  const { client, generation } = useShell()
  const [state, setState] = useState<{ data?: TuiMethods[M]['result']; error?: string; loading: boolean }>({ loading: params !== undefined })
  const [tick, setTick] = useState(0)
  const key = params === undefined ? undefined : JSON.stringify(params)
  const refreshKinds = refreshOn.join(',')

  useEffect(() => {
    if (key === undefined) return
    let current = true
    setState(previous => ({ ...previous, loading: true }))
    client.call(method, JSON.parse(key) as TuiMethods[M]['params']).then(
      data => current && setState({ data, loading: false }),
      (error: unknown) => current && setState(previous => ({ data: previous.data, error: errorText(error), loading: false })),
    )
    return () => {
      current = false
    }
  }, [client, method, key, generation, tick])

  useEffect(() => {
    if (refreshKinds === '') return
    const kinds = refreshKinds.split(',')
    return client.on('state.changed', ({ kind }) => {
      if (kinds.includes(kind)) setTick(t => t + 1)
    })
  }, [client, refreshKinds])

  const reload = useCallback(() => setTick(t => t + 1), [])
  return { data: state.data, error: state.error, loading: state.loading, reload }
}

/** The time now, redrawn every second while `ticking` (a run in progress: its elapsed time moves). */
export function useNow(ticking: boolean): number {
  const [, setTick] = useState(0)
  useEffect(() => {
    if (!ticking) return
    const timer = setInterval(() => setTick(t => t + 1), 1000)
    return () => clearInterval(timer)
  }, [ticking])
  return Date.now()
}

/** Calls `fn` at most once per `ms`, the last call winning (progress events arrive far faster than a screen redraws). */
export function useThrottled(fn: () => void, ms: number): () => void {
  const latest = useRef(fn)
  latest.current = fn
  const timer = useRef<NodeJS.Timeout | undefined>(undefined)
  useEffect(() => () => clearTimeout(timer.current), [])
  return useCallback(() => {
    if (timer.current !== undefined) return
    timer.current = setTimeout(() => {
      timer.current = undefined
      latest.current()
    }, ms)
  }, [ms])
}

/** What the status line says once a run was asked for: it started, it is not done. */
export const runStarted = (label: string) => (result: { runId: string }) => `${label}: started (run ${result.runId}); :logs shows it.`
/** A cancel takes effect at the run's next step, not at once. */
export const cancelAsked = () => 'Cancel asked: the run stops at its next step and is recorded as cancelled.'
