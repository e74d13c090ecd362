// The daemon: runs headless (systemd), keeps the state, fires schedules, runs jobs and serves the TUI and
// the CLI over a Unix socket. `main` is `lifeboat daemon [--data DIR] [--socket PATH]`.
import { defaultDataDir } from '../util/paths.ts'
import { runSpec, UsageError } from '../cli/command.ts'
import type { CommandSpec } from '../util/args.ts'
import { Daemon } from './daemon.ts'
import { untilStopped } from './stop-signals.ts'

export { Daemon, type DaemonOptions } from './daemon.ts'
export { untilStopped } from './stop-signals.ts'
export { Scheduler, systemClock, type Clock, type ScheduleEntry } from './scheduler.ts'

export const DAEMON_COMMAND: CommandSpec = {
  name: 'daemon',
  summary: 'The daemon: schedules, runs, state, run logs, and the socket.',
  notes: 'The TUI and the CLI talk to it; systemd runs it on an appliance (deploy/lifeboat.service).',
  options: {
    data: { value: 'DIR', help: 'state, run logs and secrets (default $LIFEBOAT_DATA, else the data/ folder of the installation)' },
    socket: { value: 'PATH', help: 'the Unix socket clients connect to (default DIR/lifeboat.sock)' },
    'keep-runs': { value: 'N', help: 'run logs kept per job, older ones deleted (default 100; remembered)' },
    'plan-runs': { value: 'on|off', help: "plan each scheduled run first and open its log with the plan (job plan's view; default on; remembered)" },
  },
}

export async function main(args: string[]): Promise<void> {
  await runSpec(DAEMON_COMMAND, args, async values => {
    const data = values.data as string | undefined
    const socket = values.socket as string | undefined
    const keepRuns = values['keep-runs'] === undefined ? undefined : Number(values['keep-runs'])
    if (keepRuns !== undefined && (!Number.isInteger(keepRuns) || keepRuns < 1)) throw new UsageError('--keep-runs must be a whole number ≥ 1')
    const planRuns = values['plan-runs'] as string | undefined
    if (planRuns !== undefined && planRuns !== 'on' && planRuns !== 'off') throw new UsageError('--plan-runs must be on or off')
    // The signal handlers go in before the daemon starts: a SIGTERM while it starts (systemd stopping it at once)
    // stops it cleanly once it has started, instead of killing it with its lock and half-open state.
    await untilStopped(Daemon.start({
      dataDir: data ?? defaultDataDir(),
      ...(socket !== undefined && { socketPath: socket }),
      ...(keepRuns !== undefined && { keepRunsPerJob: keepRuns }),
      ...(planRuns !== undefined && { planScheduledRuns: planRuns === 'on' }),
    }))
  })
}
