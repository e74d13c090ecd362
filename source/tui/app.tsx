// The Lifeboat TUI: header with breadcrumbs, the current screen, a status line and a footer of keys;
// one key router for everything; overlays for help, the `:` palette and confirmations.
import { useCallback, useEffect, useMemo, useRef, useState } from 'react'
import { Box, Text, useApp, useInput, type Key } from 'ink'
import type { ConnectionState, TuiClient } from './client.ts'
import { errorText } from './client.ts'
import { ActiveScreen, ShellContext, type ConfirmRequest, type KeyHelp, type Notice, type Route, type ScreenKeys, type Shell } from './shell.tsx'
import { editText } from './components/input.tsx'
import { fit } from './format.ts'
import { tone } from './theme.ts'
import { Screen, routeLabel } from './screens/index.tsx'

export interface AppProps {
  client: TuiClient
  readonly: boolean
  columns: number
  rows: number
  socket: string
  onQuit?: () => void
}

export const PALETTE: Record<string, Route> = {
  jobs: { screen: 'jobs' },
  runs: { screen: 'runs' },
  logs: { screen: 'runs' },
  lanes: { screen: 'lanes' },
  restore: { screen: 'restore' },
  remotes: { screen: 'remotes' },
  pools: { screen: 'pools' },
  vms: { screen: 'vms' },
  srs: { screen: 'srs' },
}

const GLOBAL_KEYS: KeyHelp[] = [
  { key: '?', label: 'help' },
  { key: ':', label: 'go to (jobs runs lanes restore remotes pools vms srs)' },
  { key: 'esc', label: 'back' },
  { key: 'q', label: 'quit (runs go on in the daemon)' },
]

type Overlay = { kind: 'help' } | { kind: 'palette'; text: string } | { kind: 'confirm'; request: ConfirmRequest; text: string }

export function App({ client, readonly, columns, rows, socket, onQuit }: AppProps) {
  const { exit } = useApp()
  const [stack, setStack] = useState<Route[]>([{ screen: 'jobs' }])
  const [overlay, setOverlayState] = useState<Overlay | undefined>()
  // Keys are routed by what the administrator last saw asked, even before React has redrawn it.
  const overlayRef = useRef<Overlay | undefined>(undefined)
  const setOverlay = useCallback((next: Overlay | undefined | ((current: Overlay | undefined) => Overlay | undefined)) => {
    overlayRef.current = typeof next === 'function' ? next(overlayRef.current) : next
    setOverlayState(overlayRef.current)
  }, [])
  const [notice, setNotice] = useState<Notice | undefined>()
  const [connection, setConnection] = useState<ConnectionState>(client.connection)
  const [generation, setGeneration] = useState(0)
  const screenKeys = useRef<ScreenKeys>({ keys: [], onKey: () => false })
  const [footer, setFooter] = useState<KeyHelp[]>([])

  useEffect(() => {
    let wasDown = false
    const offConnection = client.onConnection(state => {
      setConnection(state)
      if (state.status === 'down') wasDown = true
      if (state.status === 'connected' && wasDown) {
        wasDown = false
        setGeneration(g => g + 1)
      }
    })
    const offResync = client.on('resync', () => setGeneration(g => g + 1))
    return () => {
      offConnection()
      offResync()
    }
  }, [client])

  useEffect(() => {
    if (connection.status !== 'connected') return
    client.call('subscribe', { topics: ['state'] }).catch(() => {})
  }, [client, connection.status, generation])

  const quit = useCallback(() => {
    onQuit?.()
    exit()
  }, [exit, onQuit])

  const bodyHeight = Math.max(3, rows - 4)
  const shell = useMemo<Shell>(() => {
    const notify = (text: string, kind: Notice['kind'] = 'info') => setNotice({ text, kind })
    const canChange = (label: string) => {
      if (readonly) notify(`Read-only: ${label} is disabled (started with --readonly).`, 'error')
      return !readonly
    }
    return {
      client,
      readonly,
      generation,
      columns,
      bodyHeight,
      navigate: route => setStack(s => [...s, route]),
      back: () => setStack(s => (s.length > 1 ? s.slice(0, -1) : s)),
      notify,
      confirm: request => setOverlay({ kind: 'confirm', request, text: '' }),
      canChange,
      mutate: async (label, action) => {
        if (!canChange(label)) return undefined
        try {
          const result = await action()
          notify(`${label}: done.`)
          return result
        } catch (error) {
          notify(`${label} failed: ${errorText(error)}`, 'error')
          return undefined
        }
      },
      register: keys => {
        screenKeys.current = keys
      },
      showKeys: setFooter,
    }
  }, [client, readonly, generation, columns, bodyHeight, setOverlay])

  // Keys go through one queue: the first at once, each next one a few ms later, once React has drawn the
  // previous one's effect (a setImmediate is too early), so that a burst (fast typing over SSH, tmux, a
  // paste) meets the screen it led to.
  const route = useRef<(input: string, key: Key) => void>(() => {})
  const queue = useRef<Array<[string, Key]>>([])
  const draining = useRef(false)
  const enqueue = useCallback((input: string, key: Key) => {
    queue.current.push([input, key])
    if (draining.current) return
    draining.current = true
    const next = () => {
      const item = queue.current.shift()
      if (item === undefined) {
        draining.current = false
        return
      }
      route.current(...item)
      setTimeout(next, 5)
    }
    next()
  }, [])
  useInput(
    useCallback(
      (input: string, key: Key) => {
        // A chunk of printable keys ("s\r") arrives as one input: split it into keys.
        if (input.length > 1 && !key.ctrl && !key.meta && /^[\x20-\x7e\r\t\x7f]+$/.test(input)) {
          for (const char of input) enqueue(char === '\r' || char === '\t' || char === '\x7f' ? '' : char, { ...key, return: char === '\r', tab: char === '\t', backspace: char === '\x7f', shift: /[A-Z]/.test(char) })
          return
        }
        enqueue(input, key)
      },
      [enqueue],
    ),
  )
  route.current = (input: string, key: Key) => {
    const overlay = overlayRef.current
    if (overlay !== undefined) return overlayKey(overlay, input, key)
    const screen = screenKeys.current
    if (connection.status === 'connected' && screen.capturing === true) {
      screen.onKey(input, key)
      return
    }
    if (input === 'q' || (key.ctrl && input === 'c')) return quit()
    if (input === '?') return setOverlay({ kind: 'help' })
    if (input === ':') return setOverlay({ kind: 'palette', text: '' })
    if (connection.status === 'connected' && screen.onKey(input, key)) return
    if (key.escape) {
      setNotice(undefined)
      setStack(s => (s.length > 1 ? s.slice(0, -1) : s))
    }
  }

  function overlayKey(current: Overlay, input: string, key: Key): void {
    if (current.kind === 'help' || key.escape) return setOverlay(undefined)
    // Keys can arrive faster than renders: edits go through updaters, never through this render's text.
    const edit = () => setOverlay(o => (o === undefined || o.kind === 'help' ? o : { ...o, text: editText(o.text, input, key) ?? o.text }))
    if (current.kind === 'palette') {
      if (!key.return) return edit()
      const name = current.text.trim()
      const match = Object.keys(PALETTE).find(command => command.startsWith(name) && name !== '')
      setOverlay(undefined)
      if (name === 'q' || name === 'quit') return quit()
      if (match === undefined) return setNotice({ text: `No screen "${name}"; try ${Object.keys(PALETTE).join(', ')}.`, kind: 'error' })
      setNotice(undefined)
      setStack([PALETTE[match]!])
      return
    }
    const { request } = current
    if (request.typed === undefined) {
      if (input === 'y' || input === 'Y') {
        setOverlay(undefined)
        request.onYes()
      } else if (input === 'n' || input === 'N') setOverlay(undefined)
      return
    }
    if (!key.return) return edit()
    if (current.text === request.typed) {
      setOverlay(undefined)
      request.onYes()
    } else setNotice({ text: `Type "${request.typed}" exactly to confirm, or esc to keep it.`, kind: 'error' })
  }

  const crumbs = ['Lifeboat', ...stack.map(routeLabel)].join(' ▸ ')
  const status = connection.status === 'connected' ? (readonly ? 'read-only' : '● connected') : connection.status === 'connecting' ? '… connecting' : '✖ daemon down'
  const footerKeys = [...footer.filter(k => k.more !== true).slice(0, 5), { key: '?', label: 'help' }, { key: 'q', label: 'quit' }]

  return (
    <ShellContext.Provider value={shell}>
      <Box flexDirection="column" width={columns} height={rows - 1}>
        <Text wrap="truncate" bold>
          {fit(crumbs, columns - status.length - 1)} <Text color={tone(connection.status === 'connected' ? 'green' : 'red')}>{status}</Text>
        </Text>
        <Box height={bodyHeight} flexDirection="column" overflow="hidden">
          {connection.status !== 'connected' ? <DaemonDown connection={connection} socket={socket} /> : null}
          {connection.status === 'connected' && overlay?.kind === 'help' ? <Help keys={[...footer, ...GLOBAL_KEYS]} readonly={readonly} height={bodyHeight} /> : null}
          {/* Hidden, not unmounted, under overlays and outages: a half-filled wizard survives them. */}
          {stack.map((entry, depth) => {
            const top = depth === stack.length - 1
            return (
              <Box key={`${depth}:${entry.screen}`} display={top && connection.status === 'connected' && overlay?.kind !== 'help' ? 'flex' : 'none'} flexDirection="column">
                <ActiveScreen.Provider value={top}>
                  <Screen route={entry} />
                </ActiveScreen.Provider>
              </Box>
            )
          })}
        </Box>
        <StatusLine overlay={overlay} notice={notice} columns={columns} />
        <Text wrap="truncate" dimColor>
          {footerKeys.map(k => `${k.key} ${k.label}`).join('  ')}
        </Text>
      </Box>
    </ShellContext.Provider>
  )
}

function StatusLine({ overlay, notice, columns }: { overlay: Overlay | undefined; notice: Notice | undefined; columns: number }) {
  if (overlay?.kind === 'palette') {
    const matches = Object.keys(PALETTE).filter(c => overlay.text !== '' && c.startsWith(overlay.text.trim()))
    return (
      <Text wrap="truncate">
        :{overlay.text}
        <Text inverse> </Text>
        <Text dimColor> {matches.join(' ')}</Text>
      </Text>
    )
  }
  if (overlay?.kind === 'confirm') {
    const { request } = overlay
    return (
      <Text wrap="truncate" color={tone('yellow')}>
        {request.typed === undefined ? `${request.message} [y/n]` : `${request.message} Type "${request.typed}": ${overlay.text}`}
        {request.typed === undefined ? null : <Text inverse> </Text>}
      </Text>
    )
  }
  if (notice === undefined) return <Text> </Text>
  return (
    <Text wrap="truncate" color={tone(notice.kind === 'error' ? 'red' : 'green')}>
      {fit((notice.kind === 'error' ? '✖ ' : '✔ ') + notice.text, columns)}
    </Text>
  )
}

function Help({ keys, readonly, height }: { keys: KeyHelp[]; readonly: boolean; height: number }) {
  const unique = keys.filter((k, i) => keys.findIndex(o => o.key === k.key) === i)
  const perColumn = Math.max(1, height - 2)
  const columns: KeyHelp[][] = []
  for (let i = 0; i < unique.length; i += perColumn) columns.push(unique.slice(i, i + perColumn))
  return (
    <Box flexDirection="column">
      <Text bold>Keys here{readonly ? ' (read-only: changes are disabled)' : ''} — any key closes</Text>
      <Box>
        {columns.map((column, i) => (
          <Box key={i} flexDirection="column" marginRight={2}>
            {column.map(k => (
              <Text key={k.key} wrap="truncate">
                <Text bold>{k.key.padEnd(9)}</Text>
                {k.label}
              </Text>
            ))}
          </Box>
        ))}
      </Box>
    </Box>
  )
}

function DaemonDown({ connection, socket }: { connection: ConnectionState; socket: string }) {
  return (
    <Box flexDirection="column" paddingX={1}>
      <Text bold color={tone(connection.status === 'down' ? 'red' : 'yellow')}>
        {connection.status === 'down' ? '✖ The Lifeboat daemon is not running.' : '… Connecting to the Lifeboat daemon.'}
      </Text>
      <Text> </Text>
      <Text wrap="truncate">Socket: {socket}</Text>
      {connection.status === 'down' ? <Text wrap="wrap">{connection.reason}</Text> : null}
      <Text> </Text>
      <Text>Start it with one of:</Text>
      <Text>  systemctl start lifeboat</Text>
      <Text>  npx lifeboat daemon{' '}</Text>
      <Text>  npx lifeboat lab            (a simulated pool to try Lifeboat)</Text>
      <Text> </Text>
      <Text dimColor>This screen reconnects by itself when the daemon is back. Runs are never affected by the TUI.</Text>
    </Box>
  )
}
