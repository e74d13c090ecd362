// The CLI against a real daemon process backing up the tiny lab pool: what a person reads in the terminal.
import { test, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { startLab, type Lab } from '../../source/lab/index.ts'
import { PoolConnection } from '../../source/xapi/index.ts'
import { tempDir } from '../helpers/tools.ts'
import { cli, cliJson, addLabPoolAndRemote, startDaemon, type DaemonProcess } from '../daemon/helpers.ts'

const CONTROL = /[\u0000-\u0009\u000b-\u001f\u007f-\u009f]/
const EVIL = '\u001b]0;pwned\u0007\u001b[2J'

let dir: { path: string; cleanup: () => Promise<void> }
let lab: Lab
let daemon: DaemonProcess
let vmUuid: string

before(async () => {
  dir = await tempDir('lifeboat-cli-')
  lab = await startLab({ dataDir: join(dir.path, 'lab'), fixture: 'tiny' })
  daemon = await startDaemon(join(dir.path, 'daemon'))
  vmUuid = (await addLabPoolAndRemote(daemon.socket, lab, dir.path))['tiny-running']!
})

after(async () => {
  daemon.child.kill('SIGTERM')
  await daemon.exited
  await lab.stop()
  await dir.cleanup()
})

test('a VM and a job named with ESC sequences are printed without them (vm list, job list, job run --wait, logs)', async () => {
  const pool = lab.pools[0]!
  const xapi = await PoolConnection.connect({ url: pool.url, username: pool.username, password: pool.password })
  try {
    await xapi.call('VM.set_name_label', xapi.get('VM', vmUuid).$ref, `tiny-running${EVIL}`)
  } finally {
    await xapi.disconnect()
  }
  const name = `evil${EVIL}`
  await cliJson(daemon.socket, ['job', 'create', '--name', name, '--mode', 'full', '--vm', vmUuid, '--remote', 'local', '--retention', '2'])
  for (const args of [['vm', 'list'], ['job', 'list'], ['job', 'show', name], ['job', 'run', name, '--wait'], ['logs'], ['run', 'list']]) {
    const result = await cli(daemon.socket, args)
    assert.equal(result.code, 0, `${args.join(' ')}: ${result.stderr}`)
    assert.doesNotMatch(result.stdout, CONTROL, `${args.join(' ')} prints no control character`)
    assert.doesNotMatch(result.stderr, CONTROL, `${args.join(' ')} prints no control character on stderr`)
    assert.match(result.stdout, /\ufffd\]0;pwned\ufffd/, `${args.join(' ')} shows where they were`)
  }
})

test('logs --follow names the VM on every line of its tasks and shows the transfer progress', async () => {
  await cliJson(daemon.socket, ['job', 'create', '--name', 'follow', '--mode', 'delta', '--vm', vmUuid, '--remote', 'local', '--retention', '2'])
  lab.control.setKnobs({ exportPerStreamMiBs: 4 })
  // The export pauses a while halfway, so that `logs --follow` (a new process) is attached before the run ends however loaded the machine is.
  lab.control.addFault({ match: { endpoint: '/export_raw_vdi/' }, times: 1, action: { type: 'stall', ms: 8000, afterBytes: 2 * 1024 * 1024 } })
  try {
    const { runId } = await cliJson(daemon.socket, ['job', 'run', 'follow'])
    const result = await cli(daemon.socket, ['logs', runId, '--follow'])
    assert.equal(result.code, 0, result.stderr)
    const live = result.stdout.split('\n').filter(line => /^\d\d:\d\d:\d\d /.test(line))
    const vmLines = live.filter(line => !/ (start|success|failure) +backup (run|VM)\b/.test(line))
    assert.ok(vmLines.length > 3, result.stdout)
    for (const line of vmLines) assert.match(line, /\[tiny-running/, `the VM is named: ${line}`)
    assert.match(result.stdout, /progress \[tiny-running\S*\] tiny-running disk 0 export: [\d.]+ [KMG]?i?B of [\d.]+ [KMG]iB \(\d+%\)/)
  } finally {
    lab.control.setKnobs({ exportPerStreamMiBs: undefined })
  }
})

test('restore --wait names the VM it created with its uuid; a failed restore says why on stderr', async () => {
  const [point] = await cliJson(daemon.socket, ['backup', 'list', '--remote', 'local'])
  const [sr] = await cliJson(daemon.socket, ['sr', 'list'])
  const restored = await cli(daemon.socket, ['restore', '--remote', 'local', '--backup', point.id, '--sr', sr.uuid, '--name', 'restored-web', '--wait'])
  assert.equal(restored.code, 0, restored.stderr)
  const vms = await cliJson(daemon.socket, ['vm', 'list'])
  const vm = vms.find((v: { name: string }) => v.name === 'restored-web')
  assert.ok(vm, 'the VM exists')
  assert.match(restored.stdout.split('\n')[0]!, new RegExp(`^restore .*\\[success\\].*created VM "restored-web" ${vm.uuid}`))
  const json = await cliJson(daemon.socket, ['restore', '--remote', 'local', '--backup', point.id, '--sr', sr.uuid, '--wait'])
  assert.match(json.tree.result.vmName, /^tiny-running.* \(\d{4}-\d\d-\d\d \d\d:\d\d\)$/, "XO's name: the VM's and the backup's date")
  assert.match(json.tree.result.vmUuid, /^[0-9a-f-]{36}$/)
  const failed = await cli(daemon.socket, ['restore', '--remote', 'local', '--backup', point.id, '--sr', '00000000-0000-0000-0000-000000000000', '--wait'])
  assert.equal(failed.code, 1)
  assert.match(failed.stderr.trimEnd().split('\n').at(-1)!, /^lifeboat: SR_NOT_FOUND: .*'npx lifeboat sr list'/)
})

test('job list shows a schedule’s next run in its own timezone when it is not the local one; backup list names the job, to the second, newest first', async () => {
  await cliJson(daemon.socket, ['job', 'create', '--name', 'paris', '--mode', 'full', '--vm', vmUuid, '--remote', 'local', '--cron', '0 3 * * *', '--timezone', 'Europe/Paris', '--retention', '1'])
  const row = (stdout: string) => stdout.split('\n').find(line => /\bparis\b/.test(line))!
  const utc = await cli(daemon.socket, ['job', 'list'], { TZ: 'UTC' })
  assert.match(row(utc.stdout), /\d{4}-\d\d-\d\d 03:00:00 Europe\/Paris$/)
  const paris = await cli(daemon.socket, ['job', 'list'], { TZ: 'Europe/Paris' })
  assert.match(row(paris.stdout), /\d{4}-\d\d-\d\d 03:00:00$/, 'no zone where it is the local one')
  const shown = await cli(daemon.socket, ['job', 'show', 'paris'], { TZ: 'UTC' })
  assert.match(shown.stdout, /03:00:00 Europe\/Paris/)

  const jobs = await cliJson(daemon.socket, ['job', 'list'])
  const points = await cliJson(daemon.socket, ['backup', 'list', '--remote', 'local'])
  const listed = await cli(daemon.socket, ['backup', 'list', '--remote', 'local'])
  const lines = listed.stdout.trimEnd().split('\n')
  assert.match(lines[0]!, /^DATE\s+VM\s+JOB\s+MODE\s+SIZE\s+VERIFIED\s+ID/)
  assert.equal(lines.length, points.length + 1)
  const dates = lines.slice(1).map(line => line.slice(0, 19))
  assert.ok(new Set(dates).size >= 2, `two backups of different seconds to order: ${dates.join(', ')}`)
  assert.deepEqual(dates, [...dates].sort().reverse(), 'newest first, as its help says')
  for (const point of points) {
    const line = lines.find(l => l.endsWith(point.id))!
    const job = jobs.find((j: { job: { id: string } }) => j.job.id === point.jobId)
    assert.ok(line.includes(job.job.name.replace(/[\u0000-\u001f]/g, '\ufffd')), `the job's name: ${line}`)
    assert.ok(!line.includes(point.jobId), 'not its uuid')
    assert.match(line, /^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d /)
  }
})

test('a job refused by the daemon lists one field a line', async () => {
  const file = join(dir.path, 'bad-job.json')
  await writeFile(file, JSON.stringify({ name: 'bad', mode: 'weekly', vms: { uuids: [vmUuid] }, remotes: ['local'], schedules: [{ name: 'd', cron: '0 3 * * *', timezone: 'Nowhere/City' }] }))
  const result = await cli(daemon.socket, ['job', 'create', '--file', file])
  assert.equal(result.code, 1)
  const lines = result.stderr.trimEnd().split('\n')
  assert.match(lines[0]!, /^lifeboat: JOB_INVALID: /)
  assert.ok(lines.some(line => /^- mode: /.test(line)), result.stderr)
  assert.ok(lines.some(line => /^- schedules\.0\.timezone: /.test(line)), result.stderr)
})
