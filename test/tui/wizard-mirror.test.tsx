// The wizard makes mirror jobs: type mirror and its source remote on the first step; the VMs step lists the
// VMs found on the source (picked, or filtered by the tags their backups recorded); Where offers the other
// remotes only; When keeps backups only; How only what applies to copies, with the health check of the copies;
// Review names the mirror.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { renderApp, KEYS, type Terminal } from './render.tsx'
import { fullDaemon } from './setup.ts'
import * as data from './data.ts'

const POINTS = data.restorePoints().map(point => ({ ...point, vmTags: point.vmName === 'web-01' ? ['prod'] : ['db'] }))

/** A new mirror job named `name`, from site-a, through to the VMs step. */
async function toVms(t: Terminal, name: string): Promise<void> {
  await t.waitFor('nightly')
  await t.press('n')
  await t.waitFor('[Job]')
  await t.type(name)
  await t.press(KEYS.down, KEYS.down, KEYS.right)
  await t.waitFor('Source remote')
  await t.press(KEYS.down, KEYS.right)
  await t.waitFor('‹ site-a ›')
  await t.press(KEYS.enter)
  await t.waitFor('[Which VMs]')
}

test('wizard: a delta mirror from site-a filtered by tag, to the other remote, keeping 14 backups', async () => {
  const client = fullDaemon().answer('backup.list', POINTS).answer('job.create', data.jobs(1)[0]!)
  const t = await renderApp(client)
  await toVms(t, 'copy')
  let frame = await t.waitFor('Filter by the tags the backups on site-a recorded')
  assert.doesNotMatch(frame, /Pools \(none = all\)/, 'a mirror filters no pool')
  assert.doesNotMatch(frame, /Power state/, 'nor by power state')
  await t.press(KEYS.down)
  await t.type('prod')
  frame = await t.waitFor('Matches 1 VM now')
  assert.match(frame, /web-01 · 2 backups on site-a · prod/)
  await t.press(KEYS.enter)
  frame = await t.waitFor('[Where]')
  assert.match(frame, /Where the backups of site-a are copied \(0 remotes\)/)
  assert.doesNotMatch(frame, /\] remote site-a/, 'the source is not offered as a target')
  assert.doesNotMatch(frame, /SR DR storage/, 'a mirror takes no SR')
  await t.press(' ')
  frame = await t.waitFor('Delta mirror (site-a → 1 remote)')
  assert.match(frame.replace(/\s+/g, ' '), /copies the VHD chains found on remote site-a to each remote/)
  await t.press(KEYS.enter)
  frame = await t.waitFor('[When]')
  assert.match(frame, /Keep backups/)
  assert.doesNotMatch(frame, /Keep replicas|Keep snapshots|Full every/, 'a mirror keeps backups only')
  await t.press(KEYS.down, KEYS.down, KEYS.down)
  await t.press(KEYS.backspace)
  await t.type('14')
  await t.press(KEYS.enter)
  frame = await t.waitFor('[How]')
  assert.doesNotMatch(frame, /Compression|Offline snapshot|With memory|Distribute/, 'nothing about snapshots or exports')
  assert.match(frame, /VMs at once/)
  assert.match(frame, /Health check SR/, 'the copies can be health-checked')
  for (let i = 0; i < 3; i++) await t.press(KEYS.down)
  await t.type('DR storage')
  await t.press(KEYS.down)
  await t.type('prod')
  await t.press(KEYS.enter)
  frame = await t.waitFor('Press enter to save')
  assert.match(frame, /Check: VMs tagged prod · on SR DR storage \(pool dr-site\) · 10m at most/)
  assert.match(frame, /Does: Delta mirror \(site-a → 1 remote\)/)
  assert.match(frame, /From: remote site-a/)
  assert.match(frame, /To: remote offsite/)
  assert.match(frame, /Keep: 14 backups per remote/)
  await t.press(KEYS.enter)
  await t.waitFor('create copy: done')
  const [params] = client.callsOf('job.create') as Array<{ job: Record<string, unknown> }>
  assert.deepEqual(
    { type: params!.job.type, sourceRemote: params!.job.sourceRemote, mode: params!.job.mode, vms: params!.job.vms, remotes: params!.job.remotes, srs: params!.job.srs },
    { type: 'mirror', sourceRemote: 'site-a', mode: 'delta', vms: { smart: { tags: ['prod'], notTags: [] } }, remotes: ['offsite'], srs: undefined },
  )
  assert.deepEqual((params!.job.schedules as Array<{ retention: unknown; fullInterval?: unknown }>)[0]!.retention, { backups: 14 })
  assert.deepEqual(params!.job.settings, { concurrency: 2, healthCheckSr: 'DR storage', healthCheckVmsWithTags: ['prod'] })
  t.unmount()
})

test('wizard: a mirror picks VMs among those with backups on its source; none picked copies every VM', async () => {
  const client = fullDaemon().answer('backup.list', POINTS).answer('job.create', data.jobs(1)[0]!)
  const t = await renderApp(client)
  await toVms(t, 'all-of-it')
  await t.press('p')
  let frame = await t.waitFor('VMs with backups on remote site-a')
  assert.match(frame, /\[ \] web-01 +2 backups on site-a/)
  assert.match(frame, /\[ \] db-01 +1 backup on site-a/)
  await t.press(KEYS.enter, ' ', KEYS.enter, KEYS.enter, KEYS.enter)
  frame = await t.waitFor('Press enter to save')
  assert.match(frame, /every VM found on site-a/)
  await t.press(KEYS.enter)
  await t.waitFor('create all-of-it: done')
  const [params] = client.callsOf('job.create') as Array<{ job: Record<string, unknown> }>
  assert.equal(params!.job.vms, undefined, 'no filter: the daemon copies every VM of the source')
  t.unmount()
})
