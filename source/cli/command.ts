// What every subcommand shares: argument parsing, the exit-code rules and how errors are printed.
import { describeError } from '../util/errors.ts'
import { UsageError, helpText, parseCommandLine, synopsis, type CommandSpec, type OptionValues } from '../util/args.ts'
import { terminalSafe, terminalSafeLine } from '../util/terminal-text.ts'

export const EXIT_OK = 0
export const EXIT_FAILURE = 1
export const EXIT_USAGE = 2
/** `job run --wait`: the run succeeded, but a health check of its backups did not pass (the backups exist, unverified). */
export const EXIT_UNVERIFIED = 3

export { UsageError }

/**
 * Runs one command: `--help` prints its help, a mistake in the command line its synopsis (exit 2), a failure
 * one line (exit 1); `body` gets the parsed values.
 */
export function runSpec(spec: CommandSpec, args: string[], body: (values: OptionValues, positionals: string[]) => Promise<number | void>): Promise<never> {
  return runCommand(`usage: ${synopsis(spec)}`, async () => {
    const { help, values, positionals } = parseCommandLine(spec, args)
    if (!help) return body(values, positionals)
    process.stdout.write(helpText(spec))
  })
}

/** One line per subcommand of a group: what `lifeboat job --help` prints. */
export function groupUsage(command: string, specs: CommandSpec[]): string {
  const words = (spec: CommandSpec) => [spec.name, ...(spec.positionals ?? [])].join(' ')
  const width = Math.max(...specs.map(spec => words(spec).length))
  return [...specs.map(spec => `  lifeboat ${words(spec).padEnd(width)}  ${spec.summary}`), `Run 'npx lifeboat ${command} SUBCOMMAND --help' for its options.`].join('\n')
}

/** `lifeboat job`, `lifeboat job --help` or `lifeboat job nope`: the group's usage, on stdout for help (exit 0), else on stderr (exit 2). */
export function runGroupHelp(command: string, name: string | undefined, specs: CommandSpec[]): Promise<never> {
  const usage = `usage:\n${groupUsage(command, specs)}`
  return runCommand(usage, async () => {
    if (name !== '--help' && name !== '-h' && name !== 'help') throw new UsageError(name === undefined || name === '' || name.startsWith('-') ? `'lifeboat ${command}' needs a subcommand first` : `unknown subcommand '${command} ${name}'`)
    process.stdout.write(usage + '\n')
  })
}

/** Runs a subcommand and turns its outcome into an exit code; errors are one line on stderr. */
export async function runCommand(usage: string, body: () => Promise<number | void>): Promise<never> {
  let code: number
  try {
    code = (await body()) ?? EXIT_OK
  } catch (error) {
    if (error instanceof UsageError) {
      process.stderr.write(`lifeboat: ${terminalSafeLine(error.message)}\n${usage}\n`)
      code = EXIT_USAGE
    } else {
      process.stderr.write(errorLine(error))
      code = EXIT_FAILURE
    }
  }
  // Let stdout drain (a pipe may still hold data) before exiting.
  await new Promise<void>(resolve => (process.stdout.writableLength === 0 ? resolve() : process.stdout.once('drain', () => resolve())))
  process.exit(code)
}

/** How a failure reads on stderr: `lifeboat: CODE: sentence` (a daemon's message may quote a VM name; JOB_INVALID lists one field a line). */
export function errorLine(error: unknown): string {
  const { code, message } = describeError(error)
  return `lifeboat: ${code}: ${terminalSafe(message)}\n`
}

export function printJson(value: unknown): void {
  process.stdout.write(JSON.stringify(value, null, 2) + '\n')
}
