// Entry point of `lifeboat`: routes argv to the TUI, the daemon, the lab or a CLI subcommand.
// Each route is imported on demand so that one command never pays for loading the others.

const USAGE = `usage: lifeboat [--socket PATH] [--readonly]      the terminal UI (talks to the daemon)
       lifeboat <command> [options]

The daemon and the lab:
  lifeboat daemon [--data DIR] [--socket PATH]       run the daemon (systemd runs it on an appliance)
  lifeboat lab [--data DIR]                          the lab pool + a daemon with a local remote, ready to back up
  lifeboat lab serve [--port N] [--data DIR] [--fixture default|tiny|pair] [--json]   the XAPI simulator alone

Talking to the daemon (all take --json and --socket PATH):
  lifeboat pool add URL --user U (--password-env VAR | --password-file F) · pool list · pool remove ID
  lifeboat vm list [--pool P] · sr list [--pool P]
  lifeboat remote add NAME URL · remote list · remote test NAME · remote remove NAME
  lifeboat job create (--file job.json | flags) · job list · job show J · job run J [--schedule S] [--wait] · job enable|disable J · job delete J
  lifeboat run list [--job J] [--status S] [--limit N] · run show RUNID · run cancel RUNID
  lifeboat logs [RUNID] [--follow]
  lifeboat backup list --remote R [--vm UUID]
  lifeboat restore --remote R --backup ID --sr SR [--name N] [--start] [--wait]

Offline disk tools (no daemon needed):
  lifeboat vhd info FILE [--json]     footer, header and block table of a VHD file
  lifeboat vhd check FILE [--json]    validate a VHD file and its whole parent chain
  lifeboat vhd raw FILE > disk.raw    write the raw content of a VHD chain to stdout

Run 'lifeboat <command> --help' for the options of a command.`

const CLIENT_COMMANDS = new Set(['pool', 'vm', 'sr', 'remote', 'job', 'run', 'logs', 'backup', 'restore'])

const [command, ...rest] = process.argv.slice(2)

if (command !== undefined && CLIENT_COMMANDS.has(command)) {
  await (await import('./source/cli/index.ts')).main(command, rest)
} else {
  switch (command) {
    case 'daemon':
      await (await import('./source/daemon/index.ts')).main(rest)
      break
    case 'vhd':
      await (await import('./source/cli/vhd.ts')).main(rest)
      break
    case 'lab':
      if (rest[0] === 'serve') await (await import('./source/lab/cli.ts')).main(rest)
      else await (await import('./source/daemon/lab.ts')).main(rest)
      break
    case undefined:
    case '--socket':
    case '--readonly':
      process.exit(await (await import('./source/tui/start.ts')).main(process.argv.slice(2)))
      break
    case 'help':
    case '--help':
    case '-h':
      process.stdout.write(USAGE + '\n')
      break
    default:
      process.stderr.write(`lifeboat: unknown command '${command}'\n${USAGE}\n`)
      process.exit(2)
  }
}
