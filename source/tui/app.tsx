// The Lifeboat TUI: header with breadcrumbs, the current screen, a status line and a footer of keys;
// one key router for everything; overlays for help, the `:` palette and confirmations.
import { useCallback, useEffect, useMemo, useRef, useState } from 'react'
import { Box, Text, useApp, useInput, useStdin, type Key } from 'ink'
import type { ConnectionState, TuiClient } from './client.ts'
import { errorText, safeClient } from './client.ts'
import { ActiveScreen, ShellContext, type ConfirmRequest, type KeyHelp, type Notice, type Route, type ScreenKeys, type Shell } from './shell.tsx'
import { F1, F1_SEQUENCE, GLOBAL_KEYS, globalAction, isTyped, keyNames, type Focus } from './keys.ts'
import { Caret, editText } from './components/input.tsx'
import { fit, textWidth, wrapText } from './format.ts'
import { tone } from './theme.ts'
import { Screen, routeLabel } from './screens/index.tsx'

export interface AppProps {
  client: TuiClient
  readonly: boolean
  columns: number
  rows: number
  socket: string
  onQuit?: () => void
  /** `lifeboat lab`: quitting stops the daemon too, so runs in progress are cancelled (and the administrator asked first). */
  lab?: boolean
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

type Overlay = { kind: 'help' } | { kind: 'detail'; title: string; text: string } | { kind: 'palette'; text: string } | { kind: 'confirm'; request: ConfirmRequest; text: string }

export function App({ client: daemon, readonly, columns, rows, socket, onQuit, lab = false }: AppProps) {
  const client = useMemo(() => safeClient(daemon), [daemon])
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
  const [footer, setFooter] = useState<{ keys: KeyHelp[]; focus: Focus }>({ keys: [], focus: 'list' })

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

  const leave = useCallback(() => {
    onQuit?.()
    exit()
  }, [exit, onQuit])
  // The lab's daemon stops with the TUI: say so, and ask first when runs would be cancelled.
  const quitAsked = useRef(false)
  const quit = () => {
    if (!lab || quitAsked.current || connection.status !== 'connected') return leave()
    quitAsked.current = true
    client.call('run.list', { status: 'pending' }).then(
      runs => {
        const running = runs.filter(run => run.status === 'pending')
        if (running.length === 0) return leave()
        const names = running.map(run => run.jobName ?? run.runId).join(', ')
        setOverlay({
          kind: 'confirm',
          request: { message: `Quitting stops the lab's daemon and cancels ${running.length} run${running.length === 1 ? '' : 's'} in progress (${names}). Quit?`, onYes: leave, onNo: () => (quitAsked.current = false) },
          text: '',
        })
      },
      () => leave(),
    )
  }

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
      showDetail: (title, text) => setOverlay({ kind: 'detail', title, text }),
      canChange,
      mutate: async (label, action, said) => {
        if (!canChange(label)) return undefined
        try {
          const result = await action()
          notify(said === undefined ? `${label}: done.` : said(result))
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
  // F1 has no name in Ink's key parsing: it is recognised from the raw input, ahead of useInput's handler.
  const { internal_eventEmitter: rawInput } = useStdin()
  const f1Pressed = useRef(false)
  useEffect(() => {
    const onRaw = (data: string) => {
      if (F1_SEQUENCE.test(String(data))) f1Pressed.current = true
    }
    rawInput?.on('input', onRaw)
    return () => {
      rawInput?.off('input', onRaw)
    }
  }, [rawInput])
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
        if (f1Pressed.current) {
          f1Pressed.current = false
          return enqueue(F1, key)
        }
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
    const screen = screenKeys.current
    const typing = overlay === undefined ? connection.status === 'connected' && screen.capturing === true : overlay.kind === 'palette' || (overlay.kind === 'confirm' && overlay.request.typed !== undefined)
    const focus: Focus = typing ? 'text' : 'list'
    const action = globalAction(input, key, focus, 'before')
    // Ctrl-C works from everywhere; a second one while the lab asks whether to quit quits.
    if (action === 'quit' && key.ctrl) return overlay?.kind === 'confirm' && quitAsked.current ? leave() : quit()
    if (action === 'help' && overlay?.kind !== 'help') return setOverlay({ kind: 'help' })
    if (overlay !== undefined) return overlayKey(overlay, input, key)
    if (action === 'quit') return quit()
    if (action === 'palette') return setOverlay({ kind: 'palette', text: '' })
    if (connection.status === 'connected' && screen.onKey(input, key)) return
    if (globalAction(input, key, focus, 'after') === 'back') {
      setNotice(undefined)
      setStack(s => (s.length > 1 ? s.slice(0, -1) : s))
    }
  }

  function overlayKey(current: Overlay, input: string, key: Key): void {
    if (current.kind === 'help' || current.kind === 'detail') return setOverlay(undefined)
    if (key.escape) {
      if (current.kind === 'confirm') current.request.onNo?.()
      return setOverlay(undefined)
    }
    // Keys can arrive faster than renders: edits go through updaters, never through this render's text.
    const edit = () => setOverlay(o => (o === undefined || o.kind === 'help' || o.kind === 'detail' ? o : { ...o, text: editText(o.text, input, key) ?? o.text }))
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
      } else if (input === 'n' || input === 'N') {
        setOverlay(undefined)
        request.onNo?.()
      }
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
  const quitLabel = lab ? 'quit (stops the lab: its runs are cancelled)' : 'quit (runs go on in the daemon)'
  // Help and quit always show: the screen's keys give way when the line is too short for all.
  const globalFooter = [
    { key: keyNames('help', footer.focus)[0]!, label: 'help' },
    { key: keyNames('quit', footer.focus)[0]!, label: lab ? 'quit lab' : 'quit' },
  ]
  const screenFooter = footer.keys.filter(k => k.more !== true && !(footer.focus === 'text' && isTyped(k.key))).slice(0, 5)
  const footerText = (keys: KeyHelp[]) => keys.map(k => `${k.key} ${k.label}`).join('  ')
  while (screenFooter.length > 0 && textWidth(footerText([...screenFooter, ...globalFooter])) > columns) screenFooter.pop()
  const footerKeys = [...screenFooter, ...globalFooter]
  const helpKeys: KeyHelp[] = [...footer.keys, ...GLOBAL_KEYS.map(g => ({ key: g.bindings.map(b => b.name).join(' '), label: g.action === 'quit' ? quitLabel : g.label }))]

  return (
    <ShellContext.Provider value={shell}>
      <Box flexDirection="column" width={columns} height={rows - 1}>
        <Text wrap="truncate" bold>
          {fit(crumbs, columns - status.length - 1)} <Text color={tone(connection.status === 'connected' ? 'green' : 'red')}>{status}</Text>
        </Text>
        <Box height={bodyHeight} flexDirection="column" overflow="hidden">
          {connection.status !== 'connected' ? <DaemonDown connection={connection} socket={socket} /> : null}
          {overlay?.kind === 'confirm' ? <ConfirmBox request={overlay.request} width={columns} /> : null}
          {connection.status === 'connected' && overlay?.kind === 'help' ? <Help keys={helpKeys} readonly={readonly} height={bodyHeight} notice={notice} width={columns} /> : null}
          {connection.status === 'connected' && overlay?.kind === 'detail' ? <Detail title={overlay.title} text={overlay.text} width={columns} height={bodyHeight} /> : null}
          {/* Hidden, not unmounted, under overlays and outages: a half-filled wizard survives them. */}
          {stack.map((entry, depth) => {
            const top = depth === stack.length - 1
            return (
              <Box key={`${depth}:${entry.screen}`} display={top && connection.status === 'connected' && (overlay === undefined || overlay.kind === 'palette') ? 'flex' : 'none'} flexDirection="column">
                <ActiveScreen.Provider value={top}>
                  <Screen route={entry} />
                </ActiveScreen.Provider>
              </Box>
            )
          })}
        </Box>
        <StatusLine overlay={overlay} notice={notice} columns={columns} helpKey={keyNames('help', footer.focus)[0]!} />
        <Text wrap="truncate" dimColor>
          {footerText(footerKeys)}
        </Text>
      </Box>
    </ShellContext.Provider>
  )
}

function StatusLine({ overlay, notice, columns, helpKey }: { overlay: Overlay | undefined; notice: Notice | undefined; columns: number; helpKey: string }) {
  if (overlay?.kind === 'palette') {
    const matches = Object.keys(PALETTE).filter(c => overlay.text !== '' && c.startsWith(overlay.text.trim()))
    return (
      <Text wrap="truncate">
        :{overlay.text}
        <Caret />
        <Text dimColor> {matches.join(' ')}</Text>
      </Text>
    )
  }
  if (overlay?.kind === 'confirm') {
    const { request } = overlay
    return (
      <Text wrap="truncate" color={tone('yellow')}>
        {request.typed === undefined ? 'y: yes · n or esc: no [y/n]' : `Type "${request.typed}" to confirm (esc: no): ${overlay.text}`}
        {request.typed === undefined ? null : <Caret />}
      </Text>
    )
  }
  if (notice === undefined) return <Text> </Text>
  const line = (notice.kind === 'error' ? '✖ ' : '✔ ') + notice.text
  // Too long for the line: the help overlay shows it whole.
  const more = ` (${helpKey}: read all)`
  return (
    <Text wrap="truncate" color={tone(notice.kind === 'error' ? 'red' : 'green')}>
      {textWidth(line) <= columns ? line : fit(line, columns - more.length) + more}
    </Text>
  )
}

function Detail({ title, text, width, height }: { title: string; text: string; width: number; height: number }) {
  const lines = wrapText(text, width)
  return (
    <Box flexDirection="column">
      <Text bold wrap="truncate">
        {title} — any key closes
      </Text>
      {lines.slice(0, height - 1).map((line, i) => (
        <Text key={i}>{line}</Text>
      ))}
    </Box>
  )
}

/** The question, whole, above the screen (the status line below says how to answer). */
function ConfirmBox({ request, width }: { request: ConfirmRequest; width: number }) {
  return (
    <Box flexDirection="column">
      {wrapText(`${request.message}${request.typed === undefined ? ' [y/n]' : ''}`, width).map((line, i) => (
        <Text key={i} bold color={tone('yellow')}>
          {line}
        </Text>
      ))}
      <Text dimColor>{'─'.repeat(width)}</Text>
    </Box>
  )
}

function Help({ keys, readonly, height, notice, width }: { keys: KeyHelp[]; readonly: boolean; height: number; notice: Notice | undefined; width: number }) {
  const unique = keys.filter((k, i) => keys.findIndex(o => o.key === k.key) === i)
  const message = notice === undefined ? [] : wrapText(`Last message: ${notice.text}`, width)
  const perColumn = Math.max(1, height - 3 - message.length)
  const columns: KeyHelp[][] = []
  for (let i = 0; i < unique.length; i += perColumn) columns.push(unique.slice(i, i + perColumn))
  return (
    <Box flexDirection="column">
      {message.map((line, i) => (
        <Text key={i} color={tone(notice?.kind === 'error' ? 'red' : undefined)}>
          {line}
        </Text>
      ))}
      <Text bold wrap="truncate">
        Keys here{readonly ? ' (read-only: changes are disabled)' : ''} — any key closes
      </Text>
      <Text dimColor wrap="truncate">
        In a text field letters are typed: {keyNames('help', 'text').join(' or ')} for help, esc leaves the field.
      </Text>
      <Box>
        {columns.map((column, i) => (
          <Box key={i} flexDirection="column" marginRight={2}>
            {column.map(k => (
              <Text key={k.key} wrap="truncate">
                <Text bold>{k.key.padEnd(Math.max(9, k.key.length + 1))}</Text>
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
