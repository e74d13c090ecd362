// `lifeboat [--socket PATH] [--readonly]`: the terminal UI's command line, before anything of Ink loads.
import { defaultSocketPath } from '../client/index.ts'
import { UsageError, helpText, parseCommandLine, synopsis, type CommandSpec } from '../util/args.ts'

export const TUI_COMMAND: CommandSpec = {
  name: '',
  summary: 'The terminal UI on the daemon.',
  notes: 'Jobs, lanes, logs, restore, remotes, pools, VMs and SRs; ? lists the keys of every screen.',
  options: {
    socket: { value: 'PATH', help: "the daemon's socket (default $LIFEBOAT_SOCKET, else lifeboat.sock in the data directory)" },
    readonly: { help: 'look without touching: every change is disabled' },
  },
}

export async function main(args: string[]): Promise<number> {
  let values: { socket?: string; readonly?: boolean }
  try {
    const parsed = parseCommandLine(TUI_COMMAND, args)
    if (parsed.help) {
      process.stdout.write(helpText(TUI_COMMAND))
      return 0
    }
    values = parsed.values as typeof values
  } catch (error) {
    if (!(error instanceof UsageError)) throw error
    process.stderr.write(`lifeboat: ${error.message}\nusage: ${synopsis(TUI_COMMAND)}\n`)
    return 2
  }
  // React's production build: the development one doubles every redraw.
  process.env.NODE_ENV ??= 'production'
  const { runTui } = await import('./main.tsx')
  return runTui({ socket: values.socket ?? defaultSocketPath(), readonly: values.readonly === true })
}
