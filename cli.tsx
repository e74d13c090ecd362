// Entry point of `lifeboat`: routes argv to the TUI, the daemon, the lab or a CLI subcommand.
// Each route is imported on demand so that one command never pays for loading the others.

/** `lifeboat proxy SUB` talks to the appliance's daemon; `lifeboat proxy [--stdio]` is the proxy service itself. */
const PROXY_CLIENT_COMMANDS = new Set(['add', 'list', 'test', 'remove', 'key'])
const CLIENT_COMMANDS = new Set(['pool', 'vm', 'sr', 'remote', 'job', 'run', 'logs', 'backup', 'restore', 'cr-seed', 'file-restore'])

/** `lifeboat --help`: every command in one line, made from the tables their parsers use. */
async function overview(): Promise<string> {
  const [{ TUI_COMMAND }, { DAEMON_COMMAND }, { LAB_COMMAND }, { LAB_SERVE_COMMAND }, { PROXY_COMMAND }, { COMMANDS, commandSpec }, { VHD_COMMANDS }, { groupUsage }] = await Promise.all([
    import('./source/tui/start.ts'), import('./source/daemon/index.ts'), import('./source/daemon/lab.ts'), import('./source/lab/cli.ts'), import('./source/proxy/index.ts'),
    import('./source/cli/index.ts'), import('./source/cli/vhd.ts'), import('./source/cli/command.ts'),
  ])
  const lines = (specs: Array<{ name: string; positionals?: string[]; summary: string }>) => groupUsage('', specs).split('\n').slice(0, -1).join('\n')
  const client = Object.entries(COMMANDS).flatMap(([command, group]) => Object.entries(group).map(([name, sub]) => commandSpec(command, name, sub)))
  return `usage: lifeboat [COMMAND] [options]

${lines([TUI_COMMAND])}

The daemon, the proxy service and the lab:
${lines([DAEMON_COMMAND, PROXY_COMMAND, LAB_COMMAND, LAB_SERVE_COMMAND])}

Talking to the daemon (every one takes --json and --socket PATH):
${lines(client)}

Offline disk tools (no daemon needed):
${lines(Object.values(VHD_COMMANDS))}

From this folder the command is 'npx lifeboat'. Run 'npx lifeboat COMMAND --help' for the options of a command,
'npx lifeboat --version' for the version.
`
}

const [command, ...rest] = process.argv.slice(2)

if (command !== undefined && CLIENT_COMMANDS.has(command)) {
  await (await import('./source/cli/index.ts')).main(command, rest)
} else {
  switch (command) {
    case 'daemon':
      await (await import('./source/daemon/index.ts')).main(rest)
      break
    case 'proxy':
      if (PROXY_CLIENT_COMMANDS.has(rest[0] ?? '')) await (await import('./source/cli/index.ts')).main(command, rest)
      else await (await import('./source/proxy/index.ts')).main(rest)
      break
    case 'vhd':
      await (await import('./source/cli/vhd.ts')).main(rest)
      break
    case 'lab':
      if (rest[0] === 'serve') await (await import('./source/lab/cli.ts')).main(rest)
      else await (await import('./source/daemon/lab.ts')).main(rest)
      break
    case 'help':
    case '--help':
    case '-h':
      process.stdout.write(await overview())
      break
    case '--version':
    case '-V': {
      const { readFile } = await import('node:fs/promises')
      const { version } = JSON.parse(await readFile(new URL('./package.json', import.meta.url), 'utf8')) as { version: string }
      process.stdout.write(`lifeboat ${version}\n`)
      break
    }
    default:
      if (command === undefined || command.startsWith('-')) {
        process.exit(await (await import('./source/tui/start.ts')).main(process.argv.slice(2)))
      }
      process.stderr.write(`lifeboat: unknown command '${command}'; 'npx lifeboat --help' lists them\n`)
      process.exit(2)
  }
}
