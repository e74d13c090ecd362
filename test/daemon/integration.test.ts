// The daemon as a real process on a temporary data directory, driven only through the CLI (and the socket),
// backing up the tiny lab pool onto a local remote: the whole life of a job, cancel, kill -9, SIGTERM.
import { test, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { mkdir, readFile, rm, writeFile, stat } from 'node:fs/promises'
import { join } from 'node:path'
import { once } from 'node:events'
import { startLab, type Lab } from '../../source/lab/index.ts'
import { DaemonClient } from '../../source/client/index.ts'
import { TEMPORARY_SNAPSHOT_NAME } from '../../source/xapi/index.ts'
import { tempDir } from '../helpers/tools.ts'
import { cli, cliJson, startDaemon, waitUntil, type DaemonProcess } from './helpers.ts'

let dir: { path: string; cleanup: () => Promise<void> }
let lab: Lab
let daemon: DaemonProcess
let dataDir: string
let vmUuid: string
let srUuid: string
const runIds: string[] = []

// Slow enough that a run outlasts the CLI processes a test starts against it (a few seconds each on a loaded machine).
/**
 * Exports at 0.5 MiB/s; with a pause, the next export also stops that long once `afterMiB` went through, so that a
 * step of the test (a CLI process starting, a cancel) happens while the run is still running however loaded the machine is.
 */
const slowExports = (pause?: { afterMiB: number; ms: number }) => {
  lab.control.setKnobs({ exportPerStreamMiBs: 0.5 })
  if (pause !== undefined) lab.control.addFault({ match: { endpoint: '/export_raw_vdi/' }, times: 1, action: { type: 'stall', ms: pause.ms, afterBytes: pause.afterMiB * 1024 * 1024 } })
}
const fastExports = () => lab.control.setKnobs({ exportPerStreamMiBs: undefined })

before(async () => {
  dir = await tempDir('lifeboat-daemon-')
  dataDir = join(dir.path, 'daemon')
  lab = await startLab({ dataDir: join(dir.path, 'lab'), fixture: 'tiny' })
  daemon = await startDaemon(dataDir)
})

after(async () => {
  if (daemon.child.exitCode === null) {
    daemon.child.kill('SIGTERM')
    await daemon.exited
  }
  await lab.stop()
  await dir.cleanup()
})

test('state and socket are private to the daemon’s user', async () => {
  assert.equal((await stat(daemon.socket)).mode & 0o777, 0o600)
  assert.equal((await stat(join(dataDir, 'state.json'))).mode & 0o777, 0o600)
})

test('a daemon that is not running is reported with how to start it', async () => {
  const result = await cli(join(dir.path, 'nothing.sock'), ['pool', 'list'])
  assert.equal(result.code, 1)
  assert.match(result.stderr, /DAEMON_NOT_RUNNING: .*lifeboat daemon.*systemctl/)
  assert.equal(result.stdout, '')
})

test('usage errors exit 2', async () => {
  const result = await cli(daemon.socket, ['job', 'frobnicate'])
  assert.equal(result.code, 2)
  assert.match(result.stderr, /unknown subcommand/)
  const missing = await cli(daemon.socket, ['pool', 'add', lab.pools[0]!.url, '--user', 'root'])
  assert.equal(missing.code, 2)
})

test('pool add (password from a file, never echoed), pool list, vm list, sr list', async () => {
  const pool = lab.pools[0]!
  const passwordFile = join(dir.path, 'password')
  await writeFile(passwordFile, `${pool.password}\n`, { mode: 0o600 })
  const wrong = await cli(daemon.socket, ['pool', 'add', pool.url, '--user', pool.username, '--password-env', 'WRONG_PASSWORD'], { WRONG_PASSWORD: 'nope' })
  assert.equal(wrong.code, 1)
  assert.match(wrong.stderr, /^lifeboat: [A-Z_]+: /)
  const added = await cliJson(daemon.socket, ['pool', 'add', pool.url, '--user', pool.username, '--password-file', passwordFile])
  assert.equal(added.id, pool.poolUuid)
  assert.equal(added.status, 'connected')
  const pools = await cliJson(daemon.socket, ['pool', 'list'])
  assert.equal(pools.length, 1)
  assert.ok(!JSON.stringify(pools).includes(pool.password), 'the password is never sent back')
  const state = await import('node:fs/promises').then(fs => fs.readFile(join(dataDir, 'state.json'), 'utf8'))
  assert.ok(!state.includes(`"${pool.password}"`), 'the password is not in state.json')
  assert.equal((await stat(join(dataDir, 'secrets.json'))).mode & 0o777, 0o600)
  const vms = await cliJson(daemon.socket, ['vm', 'list'])
  const running = vms.find((vm: { name: string }) => vm.name === 'tiny-running')
  assert.ok(running, 'the lab VM is listed')
  assert.ok(running.disks.length > 0, 'the running job reports at least one disk')
  vmUuid = running.uuid
  const srs = await cliJson(daemon.socket, ['sr', 'list', '--pool', pool.poolUuid])
  srUuid = srs[0].uuid
  const human = await cli(daemon.socket, ['vm', 'list'])
  assert.match(human.stdout.split('\n')[0]!, /^UUID\s+NAME\s+POOL\s+POWER/)
})

test('remote add, list, test (probe written, read, deleted), remove', async () => {
  const remoteDir = join(dir.path, 'remote')
  await mkdir(remoteDir)
  const remote = await cliJson(daemon.socket, ['remote', 'add', 'local', `file://${remoteDir}`])
  assert.equal(remote.status, 'ok')
  const probe = await cliJson(daemon.socket, ['remote', 'test', 'local'])
  assert.equal(probe.ok, true)
  assert.equal(probe.bytes, 64 * 1024 * 1024)
  assert.ok(probe.writeMiBps > 0 && probe.readMiBps > 0, 'the remote probe measures a write and a read rate above 0')
  const list = await cliJson(daemon.socket, ['remote', 'list'])
  assert.deepEqual(list.map((r: { name: string }) => r.name), ['local'])
  assert.ok(list[0].space.free > 0, 'the remote reports free space')
  const missing = await cli(daemon.socket, ['remote', 'test', 'nope'])
  assert.equal(missing.code, 1)
  assert.match(missing.stderr, /REMOTE_NOT_FOUND/)
  await cliJson(daemon.socket, ['remote', 'add', 'spare', `file://${remoteDir}`])
  await cliJson(daemon.socket, ['remote', 'remove', 'spare'])
  assert.equal((await cliJson(daemon.socket, ['remote', 'list'])).length, 1)
})

test('job create from a file, list, show; a bad job file is refused with one line per field', async () => {
  const jobFile = join(dir.path, 'job.json')
  const job = { name: 'nightly', mode: 'delta', vms: { uuids: [vmUuid] }, remotes: ['local'], schedules: [
      { name: 'daily', cron: '0 3 * * *', timezone: 'Europe/Paris', retention: { backups: 5 } },
      // Runs by hand that must take a while (the VM does not change, so a delta would be empty).
      { name: 'full', cron: '0 4 * * 0', timezone: 'UTC', enabled: false, retention: { backups: 5 }, settings: { forceFull: true } },
    ] }
  await writeFile(jobFile, JSON.stringify(job))
  const created = await cliJson(daemon.socket, ['job', 'create', '--file', jobFile])
  assert.ok(created.job.id, 'the created job has an id')
  assert.ok(created.job.schedules[0].id, 'the created job schedule has an id')
  assert.ok(created.nextRun > Date.now(), 'the next run of the new job is in the future')
  const shown = await cliJson(daemon.socket, ['job', 'show', 'nightly'])
  assert.equal(shown.name, 'nightly')
  assert.equal((await cliJson(daemon.socket, ['job', 'list'])).length, 1)
  const disabled = await cliJson(daemon.socket, ['job', 'disable', 'nightly'])
  assert.equal(disabled.enabled, false)
  assert.equal(disabled.nextRun, undefined)
  const enabled = await cliJson(daemon.socket, ['job', 'enable', 'nightly'])
  assert.equal(enabled.nextRun, created.nextRun)
  await writeFile(jobFile, JSON.stringify({ ...job, name: 'bad', mode: 'weekly' }))
  const bad = await cli(daemon.socket, ['job', 'create', '--file', jobFile])
  assert.equal(bad.code, 1)
  assert.match(bad.stderr, /JOB_INVALID/)
  assert.match(bad.stderr, /mode/)
})

test('job run --wait backs up the VM; logs shows the tree; backup list shows the restore point', async () => {
  const result = await cliJson(daemon.socket, ['job', 'run', 'nightly', '--wait'])
  assert.equal(result.status, 'success', JSON.stringify(result.tree))
  runIds.push(result.runId)
  const logs = await cli(daemon.socket, ['logs', result.runId])
  assert.equal(logs.code, 0)
  assert.match(logs.stdout, /^backup run/)
  assert.match(logs.stdout, /transfer.*\[success\]/)
  const runs = await cliJson(daemon.socket, ['run', 'list'])
  assert.equal(runs[0].runId, result.runId)
  assert.equal(runs[0].status, 'success')
  assert.equal(runs[0].vms, 1)
  const points = await cliJson(daemon.socket, ['backup', 'list', '--remote', 'local', '--vm', vmUuid])
  assert.equal(points.length, 1)
  assert.equal(points[0].vmUuid, vmUuid)
})

test('logs --follow streams a run live to its end', async () => {
  slowExports({ afterMiB: 1, ms: 8000 })
  try {
    const { runId } = await cliJson(daemon.socket, ['job', 'run', 'nightly', '--schedule', 'full'])
    const follow = await cli(daemon.socket, ['logs', runId, '--follow'])
    assert.equal(follow.code, 0, follow.stderr)
    // The tree so far, then live lines up to the run's end.
    assert.match(follow.stdout, /^backup run \(nightly\)  \[pending\]/)
    assert.match(follow.stdout, /\d\d:\d\d:\d\d success\s+\[tiny-running\] transfer/)
    assert.match(follow.stdout, /\d\d:\d\d:\d\d success\s+backup run/)
    assert.match(follow.stdout, new RegExp(`run ${runId}: success`))
    runIds.push(runId)
  } finally {
    fastExports()
  }
})

test('restore --wait brings the VM back on the SR', async () => {
  const points = await cliJson(daemon.socket, ['backup', 'list', '--remote', 'local'])
  const before = await cliJson(daemon.socket, ['vm', 'list'])
  const result = await cliJson(daemon.socket, ['restore', '--remote', 'local', '--backup', points.at(-1).id, '--sr', srUuid, '--name', 'restored-by-test', '--wait'])
  assert.equal(result.status, 'success', JSON.stringify(result.tree))
  const vms = await cliJson(daemon.socket, ['vm', 'list'])
  assert.equal(vms.length, before.length + 1)
  assert.ok(vms.some((vm: { name: string }) => vm.name === 'restored-by-test'), 'the pool lists the VM named restored-by-test after the restore')
})

test('run cancel: the run ends cancelled and job run --wait exits 1', async () => {
  slowExports({ afterMiB: 1, ms: 120_000 })
  try {
    const waiting = cli(daemon.socket, ['job', 'run', 'nightly', '--schedule', 'full', '--wait', '--json'])
    const runId = await waitUntil('the run to start', async () => (await cliJson(daemon.socket, ['run', 'list', '--status', 'pending']))[0]?.runId as string | undefined)
    await waitUntil('the transfer to start', async () => (JSON.stringify((await cliJson(daemon.socket, ['run', 'show', runId])).tree).includes('"transfer"') ? true : undefined))
    const second = await cli(daemon.socket, ['job', 'run', 'nightly'])
    assert.equal(second.code, 1)
    assert.match(second.stderr, /JOB_RUNNING/)
    await cliJson(daemon.socket, ['run', 'cancel', runId])
    const result = await waiting
    assert.equal(result.code, 1)
    assert.equal(JSON.parse(result.stdout).status, 'cancelled')
    assert.equal((await cliJson(daemon.socket, ['run', 'show', runId])).tree.status, 'cancelled')
  } finally {
    fastExports()
  }
})

test('kill -9 mid-run: after a restart the run is interrupted and the next run succeeds', async () => {
  // A client that reconnects by itself (the TUI's) sees the daemon come back.
  const watcher = await DaemonClient.connect(daemon.socket, { reconnect: true })
  await watcher.subscribe(['state'])
  slowExports({ afterMiB: 1, ms: 120_000 })
  let runId: string
  let killedAt = 0
  try {
    ;({ runId } = await cliJson(daemon.socket, ['job', 'run', 'nightly', '--schedule', 'full']))
    await waitUntil('the transfer to start', async () => (JSON.stringify((await cliJson(daemon.socket, ['run', 'show', runId])).tree).includes('"transfer"') ? true : undefined))
    killedAt = Date.now()
    daemon.child.kill('SIGKILL')
    assert.equal(await daemon.exited, 'SIGKILL')
  } finally {
    fastExports()
  }
  const reconnected = once(watcher, 'reconnect')
  daemon = await startDaemon(dataDir)
  await reconnected
  // The subscription survived the restart: a change is notified to the old client.
  // (The pool reconnecting after the restart may notify its own change first.)
  const changed = new Promise((resolve, reject) => {
    watcher.onNotification('state.changed', params => {
      if ((params as { kind?: unknown }).kind === 'remotes') resolve(params)
    })
    setTimeout(() => reject(new Error('no remotes change notified to the reconnected client')), 20_000).unref()
  })
  await cliJson(daemon.socket, ['remote', 'add', 'after-restart', `file://${join(dir.path, 'remote')}`])
  assert.deepEqual(await changed, { kind: 'remotes' })
  await cliJson(daemon.socket, ['remote', 'remove', 'after-restart'])
  watcher.close()
  const shown = await cliJson(daemon.socket, ['run', 'show', runId])
  assert.equal(shown.summary.status, 'interrupted')
  assert.equal(shown.tree.status, 'interrupted')
  assert.match(JSON.stringify(shown.tree.result), /INTERRUPTED/)
  // It lasted until its last recorded event, not until now.
  assert.ok(shown.tree.end !== undefined && shown.tree.end <= killedAt, `ends at its last event (${shown.tree.end}, killed at ${killedAt})`)
  assert.equal(shown.tree.duration, shown.tree.end - shown.tree.start)
  assert.equal(shown.summary.end, shown.tree.end)
  const next = await cliJson(daemon.socket, ['job', 'run', 'nightly', '--wait'])
  assert.equal(next.status, 'success', JSON.stringify(next.tree))
  assert.match(daemon.log(), /marked interrupted/)
  // The snapshot the dead run was taking is gone (the clean-up at start-up removed it).
  const vms = (lab.control.state() as { vms: Array<{ name_label: string }> }).vms
  assert.deepEqual(vms.filter(vm => vm.name_label === TEMPORARY_SNAPSHOT_NAME), [])
})

test('lane snapshots: the export slot is shown while held, notifications at most 4 per second', async () => {
  slowExports({ afterMiB: 4, ms: 120_000 })
  const client = await DaemonClient.connect(daemon.socket)
  try {
    const times: number[] = []
    let holders = 0
    client.onNotification('lanes', ({ snapshot }) => {
      times.push(Date.now())
      for (const pool of snapshot.pools) holders += pool.vdiExports.holders.length
    })
    await client.subscribe(['lanes'])
    const { runId } = await cliJson(daemon.socket, ['job', 'run', 'nightly', '--schedule', 'full'])
    await waitUntil('an export slot held', async () => {
      const lanes = await client.call('lanes.get')
      const held = lanes.pools.flatMap(pool => pool.vdiExports.holders).find(holder => holder.runId === runId)
      return held !== undefined && (held.done ?? 0) > 0 ? held : undefined
    })
    await new Promise(resolve => setTimeout(resolve, 2000))
    await cliJson(daemon.socket, ['run', 'cancel', runId])
    assert.ok(times.length >= 3, `lane notifications while the export runs (${times.length})`)
    assert.ok(holders > 0, 'a lane notification showed at least one holder while the export ran')
    for (let i = 1; i < times.length; i++) assert.ok(times[i]! - times[i - 1]! >= 200, `at most 4 per second (${times[i]! - times[i - 1]!} ms apart)`)
    await waitUntil('the run to end', async () => ((await cliJson(daemon.socket, ['run', 'show', runId])).tree.status !== 'pending' ? true : undefined))
  } finally {
    client.close()
    fastExports()
  }
})

test('SIGTERM cancels the running run cleanly and exits 0', async () => {
  slowExports({ afterMiB: 1, ms: 120_000 })
  let runId: string
  try {
    ;({ runId } = await cliJson(daemon.socket, ['job', 'run', 'nightly', '--schedule', 'full']))
    await waitUntil('the transfer to start', async () => (JSON.stringify((await cliJson(daemon.socket, ['run', 'show', runId])).tree).includes('"transfer"') ? true : undefined))
    daemon.child.kill('SIGTERM')
    assert.equal(await daemon.exited, 0)
  } finally {
    fastExports()
  }
  // One word for it everywhere: the daemon's state and log line before any restart, then the tree and run list.
  const state = JSON.parse(await readFile(join(dataDir, 'state.json'), 'utf8')) as { runs: Array<{ runId: string; status: string; end?: number }> }
  const indexed = state.runs.find(run => run.runId === runId)!
  assert.equal(indexed.status, 'cancelled')
  assert.ok(indexed.end !== undefined, 'the run index records the end of the cancelled run')
  assert.match(daemon.log(), new RegExp(`run ${runId} .*cancelled.*SIGTERM`))
  daemon = await startDaemon(dataDir)
  const shown = await cliJson(daemon.socket, ['run', 'show', runId])
  assert.equal(shown.tree.status, 'cancelled')
  assert.equal(shown.summary.status, 'cancelled')
  assert.match(JSON.stringify(shown.tree), /SIGTERM/)
  assert.ok((await cliJson(daemon.socket, ['run', 'list', '--status', 'cancelled'])).some((run: { runId: string }) => run.runId === runId), 'run list --status cancelled lists the cancelled run')
  assert.ok(!(await cliJson(daemon.socket, ['run', 'list', '--status', 'interrupted'])).some((run: { runId: string }) => run.runId === runId), 'run list --status interrupted does not list the cancelled run')
  assert.doesNotMatch(daemon.log(), new RegExp(`run ${runId}: marked interrupted`))
})

test('a remote gone at the start of a run: job run --wait exits 1, the run is failure with the remote\'s failed export', async () => {
  const goneDir = join(dir.path, 'gone-remote')
  await mkdir(goneDir)
  await cliJson(daemon.socket, ['remote', 'add', 'gone', `file://${goneDir}`])
  const jobFile = join(dir.path, 'two-remotes.json')
  await writeFile(jobFile, JSON.stringify({ name: 'two-remotes', mode: 'delta', vms: { uuids: [vmUuid] }, remotes: ['local', 'gone'],
    schedules: [{ name: 'daily', cron: '0 3 * * *', timezone: 'UTC', enabled: false, retention: { backups: 2 } }] }))
  await cliJson(daemon.socket, ['job', 'create', '--file', jobFile])
  try {
    await rm(goneDir, { recursive: true })
    const result = await cli(daemon.socket, ['job', 'run', 'two-remotes', '--wait', '--json'])
    assert.equal(result.code, 1, result.stderr)
    const { status, tree } = JSON.parse(result.stdout)
    assert.equal(status, 'failure')
    const exports = tree.tasks.find((t: { message: string }) => t.message === 'backup VM').tasks.filter((t: { message: string }) => t.message === 'export')
    assert.deepEqual(exports.map((t: { data: { id: string }; status: string }) => [t.data.id, t.status]).sort(), [['gone', 'failure'], ['local', 'success']])
  } finally {
    await cliJson(daemon.socket, ['job', 'delete', 'two-remotes'])
    await cliJson(daemon.socket, ['remote', 'remove', 'gone'])
  }
})

test('job delete', async () => {
  await cliJson(daemon.socket, ['job', 'delete', 'nightly'])
  const missing = await cli(daemon.socket, ['job', 'show', 'nightly'])
  assert.equal(missing.code, 1)
  assert.match(missing.stderr, /JOB_NOT_FOUND/)
})

test('pool remove: the pool and its password are gone', async () => {
  await cliJson(daemon.socket, ['pool', 'remove', lab.pools[0]!.poolUuid])
  assert.deepEqual(await cliJson(daemon.socket, ['pool', 'list']), [])
  const secrets = await import('node:fs/promises').then(fs => fs.readFile(join(dataDir, 'secrets.json'), 'utf8'))
  assert.ok(!secrets.includes(lab.pools[0]!.poolUuid), 'secrets.json no longer holds anything for the removed pool')
  const vms = await cli(daemon.socket, ['vm', 'list', '--pool', lab.pools[0]!.poolUuid])
  assert.equal(vms.code, 1)
  assert.match(vms.stderr, /POOL_NOT_FOUND/)
})
