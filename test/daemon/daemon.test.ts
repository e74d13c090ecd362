// The daemon in-process on a fake clock, against the tiny lab: schedules start runs, a schedule never starts
// a second run of a job still running (it logs it), old run logs are pruned, and the state survives a restart.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { mkdir, readdir, stat, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { startLab } from '../../source/lab/index.ts'
import { Daemon } from '../../source/daemon/index.ts'
import { DaemonState } from '../../source/daemon/state.ts'
import type { Clock } from '../../source/daemon/scheduler.ts'
import { DaemonClient } from '../../source/client/index.ts'
import { tempDir } from '../helpers/tools.ts'
import { waitUntil } from './helpers.ts'

/** Time moves only when the test says; timers whose time has come fire. */
class ManualClock implements Clock {
  #timers = new Map<number, { at: number; fire: () => void }>()
  #next = 1
  constructor(public time: number) {}
  now = () => this.time
  setTimer = (fire: () => void, ms: number) => {
    this.#timers.set(this.#next, { at: this.time + ms, fire })
    return this.#next++
  }
  clearTimer = (handle: unknown) => void this.#timers.delete(handle as number)
  advance(ms: number): void {
    this.time += ms
    for (const [handle, timer] of [...this.#timers].sort((a, b) => a[1].at - b[1].at)) {
      if (timer.at > this.time) continue
      this.#timers.delete(handle)
      timer.fire()
    }
  }
}

test('scheduled runs on a fake clock: one at a time per job, skips logged, logs pruned, state kept across restarts', async () => {
  const dir = await tempDir('lifeboat-daemon-inproc-')
  const lab = await startLab({ dataDir: join(dir.path, 'lab'), fixture: 'tiny' })
  const clock = new ManualClock(Date.parse('2026-03-29T00:30:00Z'))
  const lines: string[] = []
  const dataDir = join(dir.path, 'daemon')
  let daemon = await Daemon.start({ dataDir, clock, log: line => lines.push(line), keepRunsPerJob: 2 })
  let client = await DaemonClient.connect(daemon.socketPath)
  try {
    const pool = lab.pools[0]!
    await client.call('pool.add', { url: pool.url, username: pool.username, password: pool.password })
    await mkdir(join(dir.path, 'remote'))
    await client.call('remote.add', { name: 'local', url: `file://${join(dir.path, 'remote')}` })
    const vm = (await client.call('vm.list')).find(v => v.name === 'tiny-running')!
    // Every 30 minutes, Paris time, across the night the clocks go forward.
    const info = await client.call('job.create', { job: { name: 'half-hourly', mode: 'full', vms: { uuids: [vm.uuid] }, remotes: ['local'], schedules: [{ name: 'often', cron: '*/30 * * * *', timezone: 'Europe/Paris', retention: { backups: 2 } }] } })
    assert.equal(info.nextRun, Date.parse('2026-03-29T01:00:00Z'))

    lab.control.setKnobs({ exportPerStreamMiBs: 2 })
    clock.advance(30 * 60_000)
    const first = await waitUntil('the scheduled run', async () => daemon.runs.runningRunOf(info.job.id!))
    clock.advance(30 * 60_000)
    assert.equal(daemon.runs.runningRunOf(info.job.id!), first, 'no second run while the first goes')
    assert.ok(lines.some(line => /half-hourly.*skipped: run .* is still going/.test(line)), lines.join('\n'))
    lab.control.setKnobs({ exportPerStreamMiBs: null })
    await waitUntil('the first run to end', async () => (daemon.runs.runningRunOf(info.job.id!) === undefined ? true : undefined))

    for (let i = 0; i < 3; i++) {
      clock.advance(30 * 60_000)
      const runId = await waitUntil('a scheduled run', async () => daemon.runs.runningRunOf(info.job.id!))
      await waitUntil('its end', async () => (daemon.runs.runningRunOf(info.job.id!) === undefined ? runId : undefined))
    }
    // A job is free from its run's end on, before that run's index entry is written and the older ones pruned.
    await waitUntil('the index to settle', async () => (daemon.runs.list({ status: 'pending' }).length === 0 && daemon.runs.list({ jobId: info.job.id! }).length <= 2 ? true : undefined))
    const runs = await client.call('run.list', { jobId: info.job.id! })
    assert.equal(runs.length, 2, 'only the last 2 runs are kept')
    assert.ok(runs.every(run => run.status === 'success'), JSON.stringify(runs))
    // A scheduled run opens its log with the plan made just before it (the daemon's default).
    const { tree } = await client.call('run.get', { runId: runs[0]!.runId })
    assert.match(tree.infos?.[0]?.message ?? '', /^planned: 1 VM, .* expected, about .*; no problem foreseen$/, JSON.stringify(tree.infos))
    assert.equal((tree.infos![0]!.data as { plan: { vms: Array<{ uuid: string }> } }).plan.vms[0]!.uuid, vm.uuid)
    // The index says a run ended before the pruning of the one it pushes out has deleted that one's log.
    const kept = runs.map(run => `${run.runId}.json`).sort().join(' ')
    await waitUntil('the pruned logs to go', async () => ((await readdir(join(dataDir, 'runs'))).filter(name => name.endsWith('.json')).sort().join(' ') === kept ? true : undefined))
  } finally {
    client.close()
    await daemon.stop()
  }

  // The state is kept: jobs, remotes, pools (password apart, 0600) and the run index.
  const state = await DaemonState.open(dataDir)
  assert.equal(state.data.jobs.length, 1)
  assert.equal(state.data.remotes[0]!.name, 'local')
  assert.equal(state.poolPassword(lab.pools[0]!.poolUuid), lab.pools[0]!.password)
  assert.equal((await stat(join(dataDir, 'secrets.json'))).mode & 0o777, 0o600)
  daemon = await Daemon.start({ dataDir, clock, log: line => lines.push(line) })
  client = await DaemonClient.connect(daemon.socketPath)
  try {
    await waitUntil('the pool to reconnect', async () => ((await client.call('pool.list'))[0]?.status === 'connected' ? true : undefined))
    const [job] = await client.call('job.list')
    assert.equal(job!.job.name, 'half-hourly')
    assert.equal(job!.lastRun?.status, 'success')
  } finally {
    client.close()
    await daemon.stop()
    await lab.stop()
  }

  // A state file that is not JSON is refused with a sentence, never silently replaced.
  await writeFile(join(dataDir, 'state.json'), '{ not json')
  await assert.rejects(DaemonState.open(dataDir), { code: 'STATE_CORRUPT' })
  await dir.cleanup()
})
