// The daemon: runs headless (systemd), keeps the state, fires schedules, runs jobs and serves the TUI and
// the CLI over a Unix socket. `main` is `lifeboat daemon [--data DIR] [--socket PATH]`.
import { defaultDataDir } from '../util/paths.ts'
import { parseCommandArgs, runCommand, UsageError } from '../cli/command.ts'
import { Daemon } from './daemon.ts'

export { Daemon, type DaemonOptions } from './daemon.ts'
export { nextFireTime } from './cron.ts'
export { Scheduler, systemClock, type Clock, type ScheduleEntry } from './scheduler.ts'

const USAGE = `usage: lifeboat daemon [--data DIR] [--socket PATH] [--keep-runs N]
  --data DIR      state, run logs and secrets (default $LIFEBOAT_DATA, else the data/ folder of the installation)
  --socket PATH   the Unix socket clients connect to (default DIR/lifeboat.sock)
  --keep-runs N   run logs kept per job, older ones deleted (default 100; remembered)`

export async function main(args: string[]): Promise<void> {
  await runCommand(USAGE, async () => {
    const { values, positionals } = parseCommandArgs(args, { data: { type: 'string' }, socket: { type: 'string' }, 'keep-runs': { type: 'string' }, help: { type: 'boolean', short: 'h' } })
    if (values.help === true) {
      process.stdout.write(USAGE + '\n')
      return
    }
    if (positionals.length > 0) throw new UsageError(`unexpected argument '${positionals[0]}'`)
    const keepRuns = values['keep-runs'] === undefined ? undefined : Number(values['keep-runs'])
    if (keepRuns !== undefined && (!Number.isInteger(keepRuns) || keepRuns < 1)) throw new UsageError('--keep-runs must be a whole number ≥ 1')
    const daemon = await Daemon.start({ dataDir: values.data ?? defaultDataDir(), ...(values.socket !== undefined && { socketPath: values.socket }), ...(keepRuns !== undefined && { keepRunsPerJob: keepRuns }) })
    await untilStopped(daemon)
  })
}

/** Resolves once SIGTERM or SIGINT has stopped the daemon cleanly (runs cancelled and logged). */
export function untilStopped(daemon: Daemon): Promise<void> {
  return new Promise(resolve => {
    const stop = (signal: NodeJS.Signals) => {
      daemon.log(`${signal} received: stopping`)
      void daemon.stop(`the daemon was stopped (${signal})`).then(resolve, error => {
        daemon.log(`stop failed: ${(error as Error).message}`)
        resolve()
      })
    }
    process.once('SIGTERM', stop)
    process.once('SIGINT', stop)
  })
}
