// `lifeboat remote verify` and verify jobs against a real daemon process backing up the tiny lab pool: a clean
// remote verifies (exit 0) and backup list says when; a truncated VHD makes it exit 1 naming the file and the
// reason, and the cleaner (not verify) removes it at the next start-up; the states outlive a daemon restart; a verify job with its schedule runs the same and is refused
// when it asks for what a verify cannot do.
import { test, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { readdir, readFile, truncate, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { startLab, type Lab } from '../../source/lab/index.ts'
import { tempDir } from '../helpers/tools.ts'
import { cli, cliJson, addLabPoolAndRemote, startDaemon, type DaemonProcess } from '../daemon/helpers.ts'

let dir: { path: string; cleanup: () => Promise<void> }
let lab: Lab
let daemon: DaemonProcess
let vmUuid: string

async function stopDaemon(): Promise<void> {
  daemon.child.kill('SIGTERM')
  await daemon.exited
}

before(async () => {
  dir = await tempDir('lifeboat-cli-verify-')
  lab = await startLab({ dataDir: join(dir.path, 'lab'), fixture: 'tiny' })
  daemon = await startDaemon(join(dir.path, 'daemon'))
  vmUuid = (await addLabPoolAndRemote(daemon.socket, lab, dir.path))['tiny-running']!
  await cliJson(daemon.socket, ['job', 'create', '--name', 'nightly', '--mode', 'delta', '--vm', vmUuid, '--remote', 'local', '--retention', '3'])
  for (let run = 0; run < 2; run++) {
    const result = await cli(daemon.socket, ['job', 'run', 'nightly', '--wait'])
    assert.equal(result.code, 0, result.stderr)
  }
})

after(async () => {
  await stopDaemon()
  await lab.stop()
  await dir.cleanup()
})

test('a clean remote verifies: exit 0, one line saying so, and backup list shows when (with --read-data: data)', async () => {
  const before = await cliJson(daemon.socket, ['backup', 'list', '--remote', 'local'])
  assert.equal(before.length, 2, 'two restore points')
  assert.ok(before.every((point: { verification?: unknown }) => point.verification === undefined), 'never verified yet')
  assert.match((await cli(daemon.socket, ['backup', 'list', '--remote', 'local'])).stdout, /VERIFIED[\s\S]*never/, 'the table says never')

  const structure = await cli(daemon.socket, ['remote', 'verify', 'local'])
  assert.equal(structure.code, 0, structure.stderr)
  assert.match(structure.stdout, /✔ 2 verified, 0 failed \(structure only/, structure.stdout)
  const data = await cli(daemon.socket, ['remote', 'verify', 'local', '--read-data', '--vm', vmUuid])
  assert.equal(data.code, 0, data.stderr)
  assert.match(data.stdout, /✔ 2 verified, 0 failed \(structure and data, [\d.]+ MiB read\)/, data.stdout)
  const log = (await cli(daemon.socket, ['logs'])).stdout
  assert.match(log, new RegExp(`verify VM \\(tiny-running, ${vmUuid}\\)  \\[success\\]  [\\d.]+ MiB`), `the VM's task says how much it read: ${log}`)

  const points = await cliJson(daemon.socket, ['backup', 'list', '--remote', 'local'])
  for (const point of points) {
    assert.equal(point.verification?.status, 'verified', `${point.id} verified`)
    assert.equal(point.verification?.readData, true, 'by the read-data run, the latest')
  }
  assert.match((await cli(daemon.socket, ['backup', 'list', '--remote', 'local'])).stdout, /✔ \d{4}-\d\d-\d\d \d\d:\d\d(:\d\d)? \(data\)/, 'the table says when, and that the data was read')
})

test('a truncated VHD: exit 1, the backup, the file and the reason printed; the state is kept across a daemon restart', async () => {
  const vmFolder = join(dir.path, 'remote', 'xo-vm-backups', vmUuid)
  const jsons = (await readdir(vmFolder)).filter(name => name.endsWith('.json')).sort()
  const newest = JSON.parse(await readFile(join(vmFolder, jsons.at(-1)!), 'utf8'))
  const vhd = Object.values(newest.vhds)[0] as string
  await truncate(join(vmFolder, vhd), 2048)

  const result = await cli(daemon.socket, ['remote', 'verify', 'local'])
  assert.equal(result.code, 1, 'a failed backup makes the command fail')
  assert.match(result.stdout, new RegExp(`✖ /xo-vm-backups/${vmUuid}/${jsons.at(-1)!.replace('.', '\\.')} \\(local\\)`), result.stdout)
  assert.match(result.stdout, /VHD_TRUNCATED {2}xo-vm-backups\/.*\.vhd: its disk .* is unusable: The VHD has no closing footer/, result.stdout)
  assert.match(result.stdout, /✖ 1 verified, 1 failed/, result.stdout)
  assert.match(result.stderr, /lifeboat: VERIFY_FAILED: 1 backup\(s\) on "local" failed verification/, 'the one-line reason on stderr')
  const json = await cliJson(daemon.socket, ['remote', 'verify', 'local']).catch(() => undefined)
  assert.equal(json, undefined, '--json exits 1 as well')
  const report = JSON.parse((await cli(daemon.socket, ['remote', 'verify', 'local', '--json'])).stdout)
  assert.deepEqual([report.status, report.verified, report.failed, report.failures[0].findings[0].code], ['failure', 1, 1, 'VHD_TRUNCATED'], 'the JSON report')

  const table = (await cli(daemon.socket, ['backup', 'list', '--remote', 'local'])).stdout
  assert.match(table, /✖ .*: VHD_TRUNCATED/, 'backup list shows the failure and its code')
  const kept = (await cliJson(daemon.socket, ['backup', 'list', '--remote', 'local'])).find((point: { id: string }) => point.id === `/xo-vm-backups/${vmUuid}/${jsons[0]}`)
  assert.equal(kept?.verification?.status, 'verified', 'the other backup verified')

  await stopDaemon()
  daemon = await startDaemon(join(dir.path, 'daemon'))
  // At start-up the cleaner repairs the remote (it removes the backup whose VHD is truncated, and logs it); the state of the other stays.
  const after = await cliJson(daemon.socket, ['backup', 'list', '--remote', 'local'])
  assert.deepEqual(after.map((point: { id: string }) => point.id), [kept.id], 'the broken backup was removed by the start-up clean, not by verify')
  assert.deepEqual(after[0].verification, kept.verification, 'the verification state outlived the restart')
})

test('a verify job: created from a file, listed as verify, run with --wait, its run kind verify, its states recorded; wrong settings are refused', async () => {
  const file = join(dir.path, 'verify-job.json')
  await writeFile(file, JSON.stringify({ name: 'weekly-check', type: 'verify', remotes: ['local'], readData: true, schedules: [{ name: 'sunday', cron: '0 4 * * 0', timezone: 'UTC' }] }))
  await cliJson(daemon.socket, ['job', 'create', '--file', file])
  assert.match((await cli(daemon.socket, ['job', 'list'])).stdout, /weekly-check\s+verify\s+local/, 'listed as a verify job on its remote')
  const run = await cli(daemon.socket, ['job', 'run', 'weekly-check', '--wait'])
  assert.equal(run.code, 0, run.stderr)
  assert.match(run.stdout, /verify backup .*\[success\]/, run.stdout)
  const [latest] = await cliJson(daemon.socket, ['run', 'list', '--limit', '1'])
  assert.deepEqual([latest.kind, latest.jobName, latest.scheduleName, latest.status], ['verify', 'weekly-check', 'sunday', 'success'])
  const [point] = await cliJson(daemon.socket, ['backup', 'list', '--remote', 'local'])
  assert.deepEqual([point.verification.runId, point.verification.readData], [latest.runId, true], 'the job recorded the state, data read')

  await writeFile(file, JSON.stringify({ name: 'bad-check', type: 'verify', remotes: [], mode: 'delta', settings: { concurrency: 2 }, schedules: [{ name: 's', cron: '0 4 * * 0', timezone: 'UTC', retention: { backups: 2 } }] }))
  const refused = await cli(daemon.socket, ['job', 'create', '--file', file])
  assert.notEqual(refused.code, 0, 'refused')
  for (const field of ['remotes', 'mode', 'settings.concurrency', 'schedules.0.retention']) assert.match(refused.stderr, new RegExp(`- ${field.replace('.', '\\.')}: `), `says what is wrong with ${field}`)
})
