// What every subcommand shares: argument parsing, the exit-code rules and how errors are printed.
import { parseArgs, type ParseArgsConfig } from 'node:util'
import { LifeboatError, describeError } from '../util/errors.ts'
import { terminalSafeLine } from '../util/terminal-text.ts'

export const EXIT_OK = 0
export const EXIT_FAILURE = 1
export const EXIT_USAGE = 2

/** A mistake in the command line itself: printed with the usage, exit code 2. */
export class UsageError extends LifeboatError {
  constructor(message: string) {
    super('USAGE', message)
  }
}

export function parseCommandArgs<T extends NonNullable<ParseArgsConfig['options']>>(args: string[], options: T) {
  try {
    return parseArgs({ args, options, allowPositionals: true, strict: true })
  } catch (error) {
    throw new UsageError((error as Error).message)
  }
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

/** How a failure reads on stderr: `lifeboat: CODE: sentence`, one line (a daemon's message may quote a VM name). */
export function errorLine(error: unknown): string {
  const { code, message } = describeError(error)
  return `lifeboat: ${code}: ${terminalSafeLine(message)}\n`
}

export function printJson(value: unknown): void {
  process.stdout.write(JSON.stringify(value, null, 2) + '\n')
}
