// Entry point of `lifeboat`: routes argv to the TUI, the daemon, the lab or a CLI subcommand.
// Each route is imported on demand so that one command never pays for loading the others.

const USAGE = `usage: lifeboat <command> [options]

Offline disk tools (no daemon needed):
  lifeboat vhd info FILE [--json]     footer, header and block table of a VHD file
  lifeboat vhd check FILE [--json]    validate a VHD file and its whole parent chain
  lifeboat vhd raw FILE > disk.raw    write the raw content of a VHD chain to stdout

The lab (an XAPI simulator to try and test Lifeboat without a hypervisor):
  lifeboat lab serve [--port N] [--data DIR] [--fixture default|tiny] [--json]

Run 'lifeboat <command> --help' for the options of a command.`

const [command, ...rest] = process.argv.slice(2)

switch (command) {
  case 'vhd':
    await (await import('./source/cli/vhd.ts')).main(rest)
    break
  case 'lab':
    await (await import('./source/lab/cli.ts')).main(rest)
    break
  case undefined:
  case 'help':
  case '--help':
  case '-h':
    process.stdout.write(USAGE + '\n')
    break
  default:
    process.stderr.write(`lifeboat: unknown command '${command}'\n${USAGE}\n`)
    process.exit(2)
}
