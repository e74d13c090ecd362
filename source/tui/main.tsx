// `lifeboat` with no arguments: the terminal UI, a client of the daemon. Takes the terminal over
// (alternate screen) and gives it back untouched; without a terminal it points to the CLI instead.
import { render } from 'ink'
import { useEffect, useState } from 'react'
import { App } from './app.tsx'
import { connectTui, type TuiClient } from './client.ts'

export const NO_TTY_MESSAGE = `lifeboat: the terminal UI needs an interactive terminal (stdin and stdout are not a TTY).
For scripts, cron and pipes use the subcommands, e.g.:
  npx lifeboat job list --json      npx lifeboat job run NAME --wait
  npx lifeboat run list             npx lifeboat logs RUNID --follow
  npx lifeboat remote list          npx lifeboat restore --remote R --backup ID --sr SR
Run 'npx lifeboat --help' for the full list.
`

const ENTER_ALTERNATE_SCREEN = '\u001B[?1049h\u001B[H'
const LEAVE_ALTERNATE_SCREEN = '\u001B[?1049l'

/** Runs the TUI until the administrator quits; the exit code (2: no terminal). */
export async function runTui(options: { socket: string; readonly: boolean; lab?: boolean }): Promise<number> {
  if (process.stdin.isTTY !== true || process.stdout.isTTY !== true) {
    process.stderr.write(NO_TTY_MESSAGE)
    return 2
  }
  const client = connectTui(options.socket)
  process.stdout.write(ENTER_ALTERNATE_SCREEN)
  const restore = () => process.stdout.write(LEAVE_ALTERNATE_SCREEN)
  process.once('exit', restore)
  try {
    const instance = render(<SizedApp client={client} readonly={options.readonly} socket={options.socket} lab={options.lab === true} />, { exitOnCtrlC: false, patchConsole: true, maxFps: 15 })
    await instance.waitUntilExit()
    return 0
  } finally {
    client.close()
    process.off('exit', restore)
    restore()
  }
}

/** The app at the terminal's size, redrawn whole when the window is resized. */
function SizedApp({ client, readonly, socket, lab }: { client: TuiClient; readonly: boolean; socket: string; lab: boolean }) {
  const read = () => ({ columns: process.stdout.columns || 80, rows: process.stdout.rows || 24 })
  const [size, setSize] = useState(read)
  useEffect(() => {
    const onResize = () => {
      process.stdout.write('\u001B[2J\u001B[H')
      setSize(read())
    }
    process.stdout.on('resize', onResize)
    return () => {
      process.stdout.off('resize', onResize)
    }
  }, [])
  return <App client={client} readonly={readonly} columns={size.columns} rows={size.rows} socket={socket} lab={lab} />
}
