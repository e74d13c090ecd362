// Mistakes caught when they are made, through a real daemon process and the CLI, on the lab's pair of pools:
// a job naming what does not exist (remotes, pools, SRs), keeping 0 backups or 0 replicas, doing nothing (no
// target, no snapshot kept), asking for settings that exclude each other or are not carried out, with duplicate
// schedule ids or an impossible cron is refused at create and update with the reason; restore --sr takes a uuid or a unique name
// and is checked before any run starts.
import { test, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { mkdir, readFile, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { startLab, type Lab } from '../../source/lab/index.ts'
import { PoolConnection } from '../../source/xapi/index.ts'
import { DaemonClient } from '../../source/client/index.ts'
import { tempDir } from '../helpers/tools.ts'
import { cli, cliJson, startDaemon, waitUntil, type DaemonProcess } from './helpers.ts'

let dir: { path: string; cleanup: () => Promise<void> }
let lab: Lab
let daemon: DaemonProcess
let vmUuid: string
let drSr: { uuid: string; name: string }
let jobFile: string

before(async () => {
  dir = await tempDir('lifeboat-checks-')
  lab = await startLab({ dataDir: join(dir.path, 'lab'), fixture: 'pair' })
  daemon = await startDaemon(join(dir.path, 'daemon'))
  for (const pool of lab.pools) await cliJson(daemon.socket, ['pool', 'add', pool.url, '--user', pool.username, '--password-env', 'LAB_PASSWORD'], { LAB_PASSWORD: pool.password })
  await mkdir(join(dir.path, 'remote'))
  await cliJson(daemon.socket, ['remote', 'add', 'local', `file://${join(dir.path, 'remote')}`])
  vmUuid = (await cliJson(daemon.socket, ['vm', 'list'])).find((vm: { name: string }) => vm.name === 'tiny-halted').uuid
  drSr = (await cliJson(daemon.socket, ['sr', 'list'])).find((sr: { name: string }) => sr.name === 'DR storage')
  jobFile = join(dir.path, 'job.json')
})

after(async () => {
  daemon.child.kill('SIGTERM')
  await daemon.exited
  await lab.stop()
  await dir.cleanup()
})

const schedule = { name: 'daily', cron: '0 3 * * *', timezone: 'UTC', retention: { backups: 2 } }
const goodJob = () => ({ name: 'checked', mode: 'full' as const, vms: { uuids: [vmUuid] }, remotes: ['local'], schedules: [schedule] })

/** `job create --file` with this job: refused with JOB_INVALID, the problems' lines returned. */
async function refused(job: unknown): Promise<string> {
  await writeFile(jobFile, JSON.stringify(job))
  const result = await cli(daemon.socket, ['job', 'create', '--file', jobFile])
  assert.equal(result.code, 1, result.stdout)
  assert.match(result.stderr, /^lifeboat: JOB_INVALID: The job is not valid:/)
  return result.stderr
}

test('a job whose remote does not exist is refused, naming it and the command that lists remotes', async () => {
  const stderr = await refused({ ...goodJob(), remotes: ['local', 'nowhere'] })
  assert.match(stderr, /- remotes\.1: No remote is named "nowhere"; 'npx lifeboat remote list' shows them/)
  const flags = await cli(daemon.socket, ['job', 'create', '--name', 'flags', '--mode', 'full', '--vm', vmUuid, '--remote', 'nowhere', '--retention', '2'])
  assert.equal(flags.code, 1)
  assert.match(flags.stderr, /remotes\.0: No remote is named "nowhere"/)
})

test('smart-selection pools are given by name or uuid and stored as uuids; an unknown pool is refused', async () => {
  const [production, dr] = lab.pools
  const created = await cliJson(daemon.socket, ['job', 'create', '--name', 'smart', '--mode', 'full', '--pool', 'lab', '--tag', 'dev', '--remote', 'local', '--retention', '2'])
  assert.deepEqual(created.job.vms.smart.pools, [production!.poolUuid])
  await writeFile(jobFile, JSON.stringify({ ...goodJob(), name: 'smart-uuid', vms: { smart: { pools: [production!.poolUuid], notPools: ['dr'] } } }))
  const byUuid = await cliJson(daemon.socket, ['job', 'create', '--file', jobFile])
  assert.deepEqual(byUuid.job.vms.smart, { pools: [production!.poolUuid], notPools: [dr!.poolUuid], tags: [], notTags: [] })
  const stderr = await refused({ ...goodJob(), vms: { smart: { pools: ['atlantis'] } } })
  assert.match(stderr, /- vms\.smart\.pools\.0: No pool has the uuid or name "atlantis"; 'npx lifeboat pool list' shows them/)
})

test('SRs: one that does not exist or holds no VM disks is refused; one given by name is stored as its uuid, its override too', async () => {
  const missing = await refused({ ...goodJob(), srs: ['no-such-sr'] })
  assert.match(missing, /- srs\.0: No SR of a connected pool has the uuid or name "no-such-sr"; 'npx lifeboat sr list' shows them/)
  // An ISO library of the dr pool (the lab has none of its own): seen through the pool's events like any SR.
  const db = lab.pools[1]!.control.xapi.db
  db.create('SR', { name_label: 'ISO library', type: 'iso', content_type: 'iso', physical_size: 0 })
  const iso = await waitUntil('the daemon to see the ISO SR', async () => {
    const stderr = await refused({ ...goodJob(), mode: 'delta', srs: ['ISO library'] })
    return /- srs\.0: The SR "ISO library" \([0-9a-f-]+\) is an ISO library or a removable device: it cannot hold replicas/.test(stderr) ? stderr : undefined
  })
  assert.match(iso, /'npx lifeboat sr list' shows the SRs that can/)
  const twice = await refused({ ...goodJob(), srs: [drSr.uuid, 'DR storage'] })
  assert.match(twice, /- srs\.1: the SR "DR storage" is listed twice/)
  await writeFile(jobFile, JSON.stringify({ ...goodJob(), name: 'dr-by-name', srs: ['DR storage'], overrides: { srs: { 'DR storage': { copyRetention: 3 } } } }))
  const created = await cliJson(daemon.socket, ['job', 'create', '--file', jobFile])
  assert.deepEqual(created.job.srs, [drSr.uuid])
  assert.deepEqual(created.job.overrides.srs, { [drSr.uuid]: { copyRetention: 3 } })
  await cliJson(daemon.socket, ['job', 'delete', created.job.id])
})

test('the health check SR must exist and hold VM disks; given by name (for the job, a schedule, a VM or a remote), it is stored as its uuid', async () => {
  const missing = await refused({ ...goodJob(), settings: { healthCheckSr: 'no-such-sr' } })
  assert.match(missing, /- settings\.healthCheckSr: No SR of a connected pool has the uuid or name "no-such-sr"/)
  const iso = await refused({ ...goodJob(), schedules: [{ ...schedule, settings: { healthCheckSr: 'ISO library' } }] })
  assert.match(iso, /- schedules\.0\.settings\.healthCheckSr: The SR "ISO library" \([0-9a-f-]+\) is an ISO library or a removable device: it cannot hold the VM a health check restores/)
  await writeFile(jobFile, JSON.stringify({ ...goodJob(), name: 'checked-by-name', settings: { healthCheckSr: 'DR storage', healthCheckVmsWithTags: ['prod'], healthCheckTimeout: '5m' } }))
  const created = await cliJson(daemon.socket, ['job', 'create', '--file', jobFile])
  assert.deepEqual(created.job.settings, { healthCheckSr: drSr.uuid, healthCheckVmsWithTags: ['prod'], healthCheckTimeout: 300_000 })
  await cliJson(daemon.socket, ['job', 'delete', created.job.id])

  // The same in a VM's or a remote's own settings: checked, and stored as the uuid the engine looks up.
  const overridden = await refused({ ...goodJob(), overrides: { vms: { [vmUuid]: { healthCheckSr: 'no-such-sr' } } } })
  assert.match(overridden, new RegExp(`- overrides\\.vms\\.${vmUuid}\\.healthCheckSr: No SR of a connected pool has the uuid or name "no-such-sr"`))
  await writeFile(jobFile, JSON.stringify({ ...goodJob(), name: 'checked-per-vm', overrides: { vms: { [vmUuid]: { healthCheckSr: 'DR storage' } }, remotes: { local: { healthCheckSr: 'DR storage' } } } }))
  const perVm = await cliJson(daemon.socket, ['job', 'create', '--file', jobFile])
  assert.deepEqual(perVm.job.overrides.vms, { [vmUuid]: { healthCheckSr: drSr.uuid } })
  assert.deepEqual(perVm.job.overrides.remotes, { local: { healthCheckSr: drSr.uuid } })
  await cliJson(daemon.socket, ['job', 'delete', perVm.job.id])
})

test('a job with SRs keeps at least 1 replica per SR: 0 is refused, no retention keeps 1', async () => {
  const zero = await refused({ ...goodJob(), srs: [drSr.uuid], schedules: [{ ...schedule, retention: { backups: 2, replicas: 0 } }] })
  assert.match(zero, /- schedules\.0\.retention\.replicas: The schedule "daily" keeps 0 replicas on the SR "DR storage": nothing would be replicated there\. Keep at least 1 \(without a retention, 1 is kept\)/)
  const override = await refused({ ...goodJob(), srs: [drSr.uuid], overrides: { srs: { [drSr.uuid]: { copyRetention: 0 } } } })
  assert.match(override, /keeps 0 replicas on the SR "DR storage"/)
  const defaulted = await cliJson(daemon.socket, ['job', 'create', '--name', 'dr-default', '--mode', 'full', '--vm', vmUuid, '--sr', drSr.uuid])
  assert.deepEqual(defaulted.job.srs, [drSr.uuid])
  assert.equal(defaulted.job.schedules[0].retention.replicas, undefined)
  await cliJson(daemon.socket, ['job', 'delete', defaulted.job.id])
})

test('a job with no remote and no SR is refused unless it keeps snapshots (a rolling-snapshot job)', async () => {
  const nothing = await refused({ ...goodJob(), remotes: [], schedules: [{ ...schedule, retention: {} }] })
  assert.match(nothing, /- schedules\.0\.retention\.snapshots: The job has no remote and no SR, and the schedule "daily" keeps 0 snapshots: it would do nothing\. Add a remote or an SR, or keep at least 1 snapshot \(a rolling-snapshot job\)/)
  const oneVmNothing = await refused({ ...goodJob(), remotes: [], schedules: [{ ...schedule, retention: { snapshots: 2 } }], overrides: { vms: { [vmUuid]: { snapshotRetention: 0 } } } })
  assert.match(oneVmNothing, /keeps 0 snapshots: it would do nothing/)
  await writeFile(jobFile, JSON.stringify({ ...goodJob(), name: 'rolling', remotes: [], schedules: [{ ...schedule, retention: { snapshots: 3 } }] }))
  const rolling = await cliJson(daemon.socket, ['job', 'create', '--file', jobFile])
  assert.deepEqual([rolling.job.remotes, rolling.job.srs], [[], []])
  await cliJson(daemon.socket, ['job', 'delete', rolling.job.id])
})

test('checkpointSnapshot with offlineSnapshot is refused at the layer that sets them; distributing needs 2 targets and is set job-wide', async () => {
  const both = await refused({ ...goodJob(), settings: { offlineSnapshot: true, checkpointSnapshot: true } })
  assert.match(both, /- settings: offlineSnapshot \(shut the VM down for the snapshot\) and checkpointSnapshot \(a snapshot with its memory\) exclude each other/)
  const perVm = await refused({ ...goodJob(), settings: { checkpointSnapshot: true }, overrides: { vms: { [vmUuid]: { offlineSnapshot: true } } } })
  assert.match(perVm, new RegExp(`- overrides\\.vms\\.${vmUuid}: offlineSnapshot .* exclude each other`))
  const perSchedule = await refused({ ...goodJob(), settings: { checkpointSnapshot: true }, schedules: [{ ...schedule, settings: { offlineSnapshot: true } }] })
  assert.match(perSchedule, /- schedules\.0\.settings: offlineSnapshot .* exclude each other/)
  const distributed = await refused({ ...goodJob(), settings: { distributeBackups: true }, overrides: { srs: { [drSr.uuid]: { distributeReplications: true } } }, srs: [drSr.uuid] })
  assert.match(distributed, /- settings\.distributeBackups: distributing backups needs at least 2 remotes to spread them over; the job has 1\. Add a remote or set it to false\./)
  assert.match(distributed, new RegExp(`- overrides\\.srs\\.${drSr.uuid}\\.distributeReplications: distributeReplications applies to the whole job: set it in the job's settings, not here\\.`))
  await writeFile(jobFile, JSON.stringify({ ...goodJob(), name: 'xo-defaults', settings: { distributeBackups: false, distributeReplications: false, checkpointSnapshot: true } }))
  await cliJson(daemon.socket, ['job', 'delete', (await cliJson(daemon.socket, ['job', 'create', '--file', jobFile])).job.id])
})

test('a schedule that keeps 0 backups on a remote is refused; without a retention 7 are kept', async () => {
  const stderr = await refused({ ...goodJob(), schedules: [{ ...schedule, retention: { backups: 0 } }] })
  assert.match(stderr, /- schedules\.0\.retention\.backups: The schedule "daily" keeps 0 backups on "local": nothing would be written there\. Keep at least 1 \(without a retention, 7 are kept\)/)
  const override = await refused({ ...goodJob(), overrides: { remotes: { local: { exportRetention: 0 } } } })
  assert.match(override, /keeps 0 backups on "local"/)
  const defaulted = await cliJson(daemon.socket, ['job', 'create', '--name', 'default-retention', '--mode', 'full', '--vm', vmUuid, '--remote', 'local'])
  const run = await cliJson(daemon.socket, ['job', 'run', 'default-retention', '--wait'])
  assert.equal(run.status, 'success', JSON.stringify(run.tree))
  assert.ok(!JSON.stringify(run.tree).includes('keeps 0 backups'), 'the remote got the backup')
  await cliJson(daemon.socket, ['job', 'delete', defaulted.job.id])
})

test('duplicate schedule ids or names are refused', async () => {
  const ids = await refused({ ...goodJob(), schedules: [{ ...schedule, id: 'same' }, { ...schedule, name: 'weekly', id: 'same' }] })
  assert.match(ids, /- schedules\.1\.id: another schedule already has the id "same"/)
  const names = await refused({ ...goodJob(), schedules: [schedule, schedule] })
  assert.match(names, /- schedules\.1\.name: another schedule is already named "daily"/)
})

test('each cron mistake is given its real reason', async () => {
  const reasons: Array<[string, RegExp]> = [
    ['0 3 31 2 *', /February has no day 31: this schedule would never fire/],
    ['0 3 31 4,6 *', /April and June have no day 31/],
    ['0 3 * *', /it has 4 fields; write 5/],
    ['61 3 * * *', /"61" is not a valid minute \(0-59\)/],
    ['0 3 * * 9', /"9" is not a valid weekday/],
  ]
  for (const [cron, reason] of reasons) assert.match(await refused({ ...goodJob(), schedules: [{ ...schedule, cron }] }), reason, cron)
})

test('job update goes through the same checks (the wizard saves through it)', async () => {
  const client = await DaemonClient.connect(daemon.socket)
  try {
    const created = await client.call('job.create', { job: goodJob() })
    await assert.rejects(client.call('job.update', { id: created.job.id!, job: { ...goodJob(), remotes: ['gone'] } }), (error: Error & { code: string; data?: { problems?: unknown } }) => {
      assert.equal(error.code, 'JOB_INVALID')
      assert.deepEqual(error.data?.problems, [{ path: 'remotes.0', message: `No remote is named "gone"; 'npx lifeboat remote list' shows them, 'npx lifeboat remote add' adds one.` }])
      return true
    })
  } finally {
    client.close()
  }
})

test('restore --sr takes an SR uuid or unique name, checked before anything starts', async () => {
  const run = await cliJson(daemon.socket, ['job', 'run', 'checked', '--wait'])
  assert.equal(run.status, 'success', JSON.stringify(run.tree))
  const point = (await cliJson(daemon.socket, ['backup', 'list', '--remote', 'local', '--vm', vmUuid]))[0]
  const restore = (sr: string, wait: boolean) => cli(daemon.socket, ['restore', '--remote', 'local', '--backup', point.id, '--sr', sr, ...(wait ? ['--wait'] : [])])
  const byName = await cliJson(daemon.socket, ['restore', '--remote', 'local', '--backup', point.id, '--sr', 'DR storage', '--wait'])
  assert.equal(byName.status, 'success', JSON.stringify(byName.tree))
  assert.equal(byName.tree.data.srUuid, drSr.uuid)
  const restoresBefore = (await cliJson(daemon.socket, ['run', 'list'])).length
  for (const wait of [false, true]) {
    const missing = await restore('nowhere', wait)
    assert.equal(missing.code, 1)
    assert.match(missing.stderr, /^lifeboat: SR_NOT_FOUND: No SR of a connected pool has the uuid or name "nowhere"; 'npx lifeboat sr list' shows them/)
  }
  // Two SRs of the same name, one per pool: the name alone is refused, with both uuids.
  const dr = lab.pools[1]!
  const conn = await PoolConnection.connect({ url: dr.url, username: dr.username, password: dr.password })
  try {
    await conn.call('SR.set_name_label', conn.all('SR').find(sr => sr.uuid === drSr.uuid)!.$ref, 'Local storage')
  } finally {
    await conn.disconnect()
  }
  const local = (await cliJson(daemon.socket, ['sr', 'list'])).filter((sr: { name: string }) => sr.name === 'Local storage')
  assert.equal(local.length, 2, 'the daemon saw the rename')
  const ambiguous = await restore('Local storage', true)
  assert.equal(ambiguous.code, 1)
  assert.match(ambiguous.stderr, /^lifeboat: SR_AMBIGUOUS: Several SRs are named "Local storage": /)
  for (const sr of local) assert.ok(ambiguous.stderr.includes(sr.uuid), 'the SR_AMBIGUOUS error names every SR called Local storage')
  assert.match(ambiguous.stderr, /'npx lifeboat sr list'/)
  assert.equal((await cliJson(daemon.socket, ['run', 'list'])).length, restoresBefore, 'no run was started for a refused restore')
})

test('remote add: a relative file:// URL, a missing folder and an unusable encryptionKey are refused and nothing is added', async () => {
  const refusals: Array<[string[], RegExp]> = [
    [[`file://${join(dir.path, 'remote').slice(1)}`], /^lifeboat: REMOTE_BAD_URL: .*does not name an absolute folder: .*file:\/\/\/var\/backups\/lifeboat \(three slashes\)/],
    [[`file://${join(dir.path, 'missing')}`], /^lifeboat: REMOTE_UNAVAILABLE: The remote "bad" was not added: .*missing does not exist/],
    [[`file://${join(dir.path, 'remote')}`, '--encryption-key-env', 'KEY'], /^lifeboat: REMOTE_BAD_URL: .*encryptionKey is not usable: it must be exactly 32 ASCII characters/],
  ]
  for (const [args, reason] of refusals) {
    const result = await cli(daemon.socket, ['remote', 'add', 'bad', ...args], { KEY: 'k' })
    assert.equal(result.code, 1, args.join(' '))
    assert.match(result.stderr, reason)
    assert.equal(result.stderr.trim().split('\n').length, 1)
  }
  assert.deepEqual((await cliJson(daemon.socket, ['remote', 'list'])).map((r: { name: string }) => r.name), ['local'])
})

test('remote add takes the URL from an environment variable or a file, never echoing it', async () => {
  const url = `file://${join(dir.path, 'remote')}`
  const fromEnv = await cliJson(daemon.socket, ['remote', 'add', 'env', '--url-env', 'REMOTE_URL'], { REMOTE_URL: url })
  assert.equal(fromEnv.status, 'ok')
  const urlFile = join(dir.path, 'remote-url')
  await writeFile(urlFile, `${url}\n`, { mode: 0o600 })
  const fromFile = await cliJson(daemon.socket, ['remote', 'add', 'file', '--url-file', urlFile])
  assert.equal(fromFile.url, url)
  const both = await cli(daemon.socket, ['remote', 'add', 'both', url, '--url-file', urlFile])
  assert.equal(both.code, 2)
  const none = await cli(daemon.socket, ['remote', 'add', 'none'])
  assert.equal(none.code, 2)
  assert.match(none.stderr, /--url-env VAR or --url-file FILE/)
  for (const name of ['env', 'file']) await cliJson(daemon.socket, ['remote', 'remove', name])
})

test('a pool URL with credentials in it is refused; one stored by an older version loses them at start-up', async () => {
  const pool = lab.pools[0]!
  const withCredentials = pool.url.replace('://', `://${pool.username}:${pool.password}@`)
  const refused = await cli(daemon.socket, ['pool', 'add', withCredentials, '--user', pool.username, '--password-env', 'LAB_PASSWORD'], { LAB_PASSWORD: pool.password })
  assert.equal(refused.code, 1)
  assert.match(refused.stderr, /^lifeboat: POOL_URL_CREDENTIALS: The pool URL holds a user name or password/)
  assert.ok(!refused.stderr.includes(`:${pool.password}@`), 'the refusal does not repeat the credentials')
  // An older state: the URL with its credentials in state.json.
  const oldData = join(dir.path, 'old-daemon')
  await mkdir(oldData, { mode: 0o700 })
  await writeFile(join(oldData, 'state.json'), JSON.stringify({ version: 1, settings: { keepRunsPerJob: 100 }, pools: [{ id: pool.poolUuid, name: pool.name, url: withCredentials, username: pool.username }], remotes: [], jobs: [], runs: [] }), { mode: 0o600 })
  await writeFile(join(oldData, 'secrets.json'), JSON.stringify({ pools: { [pool.poolUuid]: { password: pool.password } }, remotes: {} }), { mode: 0o600 })
  const old = await startDaemon(oldData)
  try {
    const pools = await cliJson(old.socket, ['pool', 'list'])
    assert.equal(pools[0].url, pool.url)
    assert.ok(!(await readFile(join(oldData, 'state.json'), 'utf8')).includes(`:${pool.password}@`), 'the credentials are gone from state.json')
    await waitUntil('the pool to connect', async () => ((await cliJson(old.socket, ['pool', 'list']))[0].status === 'connected' ? true : undefined))
  } finally {
    old.child.kill('SIGTERM')
    await old.exited
  }
})
