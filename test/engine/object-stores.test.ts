// Backups to object stores end to end: the lab over HTTP, s3rver and azurite started by the test, remotes
// opened from their URL as the daemon opens them. Delta jobs with retention that merges (VhdDirectory behind
// aliases, forced on both stores as XO does), a full job, an encrypted remote whose stored bytes hold none of
// the guest's plaintext; every restore point restored onto the pool with the snapshot's bytes.
import assert from 'node:assert/strict'
import { after, before, describe, test } from 'node:test'
import { listVmBackups } from '../../source/repository/index.ts'
import { BackendHandler, parseRemoteUrl } from '../../source/storage/index.ts'
import { S3Backend } from '../../source/storage/s3.ts'
import { vmDisks } from '../../source/xapi/index.ts'
import { startAzurite, type Azurite } from '../helpers/azurite.ts'
import { startS3rver, type S3rver } from '../helpers/s3rver.ts'
import { checkRestores, describeFailure, job, newestJobSnapshot, runToEnd, runWithWrites, startEngineLab, vmByName, vmDigests, walkRemote, type EngineLab } from './helpers.ts'

const MiB = 1024 * 1024
const KEY = 'lifeboat-test-key-0123456789abcd' // 32 characters, as XO requires
// What the guest writes into its disk: high-entropy and unique, so that finding it means plaintext was stored.
const MARKER = Buffer.from('LIFEBOAT-MARKER-7f3c9a1e5b2d4068-end-of-marker', 'ascii')

let s3: S3rver
let azurite: Azurite
let env: EngineLab

before(async () => {
  s3 = await startS3rver()
  azurite = await startAzurite()
  env = await startEngineLab({
    remoteUrls: {
      s3: s3.urlFor('delta'),
      azure: azurite.urlFor('delta'),
      full: s3.urlFor('full'),
      plain: s3.urlFor('plain'),
      secret: `${s3.urlFor('secret')}?encryptionKey=${encodeURIComponent(JSON.stringify(KEY))}`,
    },
  })
})

after(async () => {
  await env?.cleanup()
  await s3?.stop()
  await azurite?.stop()
})

const daily = (backups: number) => [{ id: 'schedule-1', name: 'daily', cron: '0 3 * * *', timezone: 'UTC', retention: { backups, snapshots: 1 } }]

/** The store's bytes of every object of an S3 remote, read past any encryption. */
async function storedObjects(url: string): Promise<Map<string, Buffer>> {
  const raw = new BackendHandler(new S3Backend(parseRemoteUrl(url.split('?')[0]!) as Extract<ReturnType<typeof parseRemoteUrl>, { type: 's3' }>, 'raw'))
  const objects = new Map<string, Buffer>()
  for (const path of await walkRemote(raw, '')) objects.set(path, await raw.readFile(path))
  return objects
}

for (const remote of ['s3', 'azure'] as const) {
  describe(`delta backups to ${remote === 's3' ? 'S3 (s3rver)' : 'Azure Blob (azurite)'}`, () => {
    test('4 runs with guest writes, retention 2: VhdDirectory behind aliases, the old deltas merged, every kept point restores to its snapshot', async () => {
      const conn = env.conns[0]!
      const vm = vmByName(conn, 'tiny-running')
      const theJob = job({ id: `delta-${remote}`, mode: 'delta', vms: { uuids: [vm.uuid] }, remotes: [remote], schedules: daily(2) })
      const expected = await runWithWrites(env, theJob, 4, remote === 's3' ? 10 : 20)
      const handler = env.remotes.get(remote)!
      const backups = await listVmBackups(handler, vm.uuid)
      assert.equal(backups.length, 2, 'retention keeps 2 backups')
      const [oldest, newest] = backups
      assert.ok(oldest?.mode === 'delta' && newest?.mode === 'delta', 'both kept backups are deltas')
      for (const backup of [oldest, newest]) {
        for (const path of Object.values(backup.vhds)) assert.match(path, /\.alias\.vhd$/, 'an object store gets VhdDirectory disks behind aliases')
      }
      assert.ok(Object.values(oldest.isVhdDifferencing ?? {}).every(d => d === false), 'the oldest kept backup took the merged deltas (no longer differencing)')
      assert.ok(Object.values(newest.isVhdDifferencing ?? {}).some(d => d === true), 'the newest backup is still a delta on top of it')
      // Nothing but the kept backups' data is left: two aliases and two data folders per disk folder.
      for (const path of Object.values(oldest.vhds)) {
        const folder = `xo-vm-backups/${vm.uuid}/${path.split('/').slice(0, -1).join('/')}`
        assert.equal((await handler.list(folder)).filter(name => name.endsWith('.alias.vhd')).length, 2, `${folder} holds the two kept aliases`)
        assert.equal((await handler.list(`${folder}/data`)).length, 2, `${folder}/data holds the two kept VhdDirectory folders`)
      }
      await checkRestores(env, remote, backups, expected)
    })
  })
}

describe('full backups to S3 (s3rver)', () => {
  test('3 runs, retention 2: the XVAs are stored whole and restore to their snapshots', async () => {
    const vm = vmByName(env.conns[0]!, 'tiny-running')
    const theJob = job({ id: 'full-s3', mode: 'full', vms: { uuids: [vm.uuid] }, remotes: ['full'], schedules: daily(2) })
    const expected = await runWithWrites(env, theJob, 3, 30)
    const backups = await listVmBackups(env.remotes.get('full')!, vm.uuid)
    assert.equal(backups.length, 2, 'retention keeps 2 backups')
    for (const backup of backups) assert.equal(backup.mode, 'full')
    await checkRestores(env, 'full', backups, expected)
  })
})

describe('an encrypted S3 remote', () => {
  test("holds none of the guest's plaintext (a full and a delta backup), and restores both to their snapshots", async () => {
    const conn = env.conns[0]!
    const vm = vmByName(conn, 'tiny-running')
    const disk = vmDisks(conn, conn.get('VM', vm.uuid))[0]!.vdi
    const page = Buffer.alloc(64 * 1024)
    for (let at = 0; at + MARKER.length <= page.length; at += 512) MARKER.copy(page, at)
    await env.lab.control.writeVdi(disk.uuid, { offset: 24 * MiB, data: page.toString('base64') })

    const expected = new Map<string, string[]>()
    for (const [mode, remotes] of [['full', ['secret', 'plain']], ['delta', ['secret']]] as const) {
      const theJob = job({ id: `secret-${mode}`, mode, vms: { uuids: [vm.uuid] }, remotes: [...remotes], schedules: daily(2) })
      const tree = await runToEnd(env, theJob)
      assert.equal(tree.status, 'success', describeFailure(tree))
      const snapshot = await newestJobSnapshot(env, vm, theJob.id)
      expected.set(snapshot.uuid, await vmDigests(conn, snapshot))
    }

    // The control: the same full backup on a plain remote holds the marker, so the search below can find one.
    const plain = [...(await storedObjects(s3.urlFor('plain'))).values()]
    assert.ok(plain.some(bytes => bytes.includes(MARKER)), 'the unencrypted XVA holds the marker')
    const stored = await storedObjects(s3.urlFor('secret'))
    assert.ok(stored.has('encryption.json') && stored.has('metadata.json'), 'the remote has XO\'s encryption.json and metadata.json')
    assert.deepEqual(JSON.parse(stored.get('encryption.json')!.toString()), { algorithm: 'chacha20-poly1305' })
    const paths = [...stored.keys()]
    assert.ok(paths.some(p => p.endsWith('.xva')) && paths.some(p => p.includes('/vdis/')), `the full and the delta backup are there: ${paths.join(', ')}`)
    const leaking = [...stored].filter(([, bytes]) => bytes.includes(MARKER) || bytes.includes(Buffer.from(KEY))).map(([path]) => path)
    assert.deepEqual(leaking, [], 'no stored object holds the marker or the key')
    const names = [...stored.keys()].filter(path => path.endsWith('.json') && path.startsWith('xo-vm-backups/'))
    assert.ok(names.every(path => !stored.get(path)!.toString('latin1').includes('"mode"')), 'the metadata is encrypted too')

    const handler = env.remotes.get('secret')!
    const backups = await listVmBackups(handler, vm.uuid)
    assert.deepEqual(backups.map(b => b.mode).sort(), ['delta', 'full'])
    await checkRestores(env, 'secret', backups, expected)
  })
})
