// The writer's choice of disk format (XO's useVhdDirectory: forced on object stores, asked by the URL
// elsewhere) and XO's isMergeableParent: a delta chains only onto a chain of the tip's snapshot, all of the
// format the remote writes, VhdDirectories with the same compression; the base is looked for among every disk of
// the chain folder (two chains may share it), never one that already has a child.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { VHD_BLOCK_SIZE, writeVhdAlias, writeVhdDirectory } from '../../source/formats/vhd/index.ts'
import { aliasDataPath, chainRefusal, findBaseDisk, formatFilenameDate, usesVhdDirectory } from '../../source/repository/index.ts'
import { fileSystemAccess, LocalHandler, type RemoteHandler } from '../../source/storage/index.ts'
import { tempDir } from '../helpers/tools.ts'
import { DISKS, START, VM, newDisks, random, snapshotVdiUuid, vhdPath, writeDeltaBackup } from './clean-fixtures.ts'

const labelled = (label: string, randomWrite = true) => ({ label, capabilities: { randomWrite } }) as RemoteHandler

test('VhdDirectory is used on S3 and Azure whatever the URL says (and wherever files cannot be rewritten in place), and on other remotes when the URL asks for it', () => {
  assert.equal(usesVhdDirectory(labelled('s3://key:***@s3.example.net/bucket/dir')), true, 'S3')
  assert.equal(usesVhdDirectory(labelled('s3+http://key:***@localhost:9000/bucket?useVhdDirectory=false')), true, 'S3 over http, even told otherwise')
  assert.equal(usesVhdDirectory(labelled('azure://account:***@account.blob.core.windows.net/container')), true, 'Azure')
  assert.equal(usesVhdDirectory(labelled('azurite+http://devstoreaccount1:***@127.0.0.1:10000/container')), true, 'Azurite')
  assert.equal(usesVhdDirectory(labelled('file:///mnt/backups')), false, 'a local folder')
  assert.equal(usesVhdDirectory(labelled('file:///mnt/backups?useVhdDirectory=true')), true, 'a local folder that asks')
  assert.equal(usesVhdDirectory(labelled('nfs://nas:/export?useVhdDirectory=true')), true, 'NFS that asks')
  assert.equal(usesVhdDirectory(labelled('<not a remote URL>')), false, 'an unparsable label')
  assert.equal(usesVhdDirectory(labelled('file:///mnt/backups', false)), true, 'a store that cannot rewrite a file in place')
})

async function withRemote(fn: (root: string) => Promise<void>): Promise<void> {
  const dir = await tempDir('lifeboat-format-')
  try {
    await fn(dir.path)
  } finally {
    await dir.cleanup()
  }
}

test('a chain of VHD files takes deltas on a file remote only; a VhdDirectory chain on a VhdDirectory remote of its compression only', async () => {
  await withRemote(async root => {
    const files = new LocalHandler(root)
    const directories = new LocalHandler(root, `file://${root}?useVhdDirectory=true`)
    const disks = newDisks(1, 4)
    const rand = random(3)
    for (let g = 0; g < 2; g++) await writeDeltaBackup(files, disks, g, rand)
    const fileTip = vhdPath(0, 1)
    assert.equal(await chainRefusal(files, fileTip, snapshotVdiUuid(0, 1)), undefined, 'a file chain takes a file delta')
    assert.match((await chainRefusal(files, fileTip, snapshotVdiUuid(0, 0)))!, /not of the base snapshot/)
    assert.match((await chainRefusal(directories, fileTip, snapshotVdiUuid(0, 1)))!, /chain of VHD files.*VhdDirector/)

    for (let g = 2; g < 4; g++) await writeDeltaBackup(directories, disks, g, rand, { full: g === 2, directory: true })
    const directoryTip = vhdPath(0, 3, true)
    assert.equal(await chainRefusal(directories, directoryTip, snapshotVdiUuid(0, 3)), undefined, 'a brotli VhdDirectory chain takes a VhdDirectory delta')
    assert.match((await chainRefusal(files, directoryTip, snapshotVdiUuid(0, 3)))!, /chain of VhdDirectories.*VHD files/)

    // A VhdDirectory XO wrote with gzip (backups.vhdDirectoryCompression changed): a new chain starts.
    const alias = vhdPath(0, 4, true)
    const fs = fileSystemAccess(directories)
    await writeVhdDirectory(aliasDataPath(alias), {
      fs, compression: 'gzip', size: 4 * VHD_BLOCK_SIZE, uuid: snapshotVdiUuid(0, 4), blockIndexes: [0],
      blocks: (async function* () { yield { index: 0, data: Buffer.alloc(VHD_BLOCK_SIZE, 4) } })(),
    })
    await writeVhdAlias(fs, alias, aliasDataPath(alias))
    assert.match((await chainRefusal(directories, alias, snapshotVdiUuid(0, 4)))!, /compressed with gzip, and Lifeboat writes brotli/)
    assert.equal(alias, `xo-vm-backups/${VM}/vdis/59af07fc-2222-4a2b-8c3d-000000000002/${DISKS[0]}/${formatFilenameDate(START + 4 * 3_600_000)}.alias.vhd`)
  })
})

test('the base of a delta is found among all the disks of its chain folder, newest first; a disk that has a child already is refused', async () => {
  await withRemote(async root => {
    const files = new LocalHandler(root)
    const folder = vhdPath(0, 0).replace(/\/[^/]+$/, '')
    assert.deepEqual(await findBaseDisk(files, folder, snapshotVdiUuid(0, 0), 'r'), { refusal: 'no earlier backup of this disk on remote r' })
    const disks = newDisks(1, 4)
    const rand = random(5)
    // A chain g0 ← g1 ← g2, then a new chain at g3 (a key, as another job's full would be).
    for (let g = 0; g < 4; g++) await writeDeltaBackup(files, disks, g, rand, { full: g === 3 })
    const name = (g: number) => vhdPath(0, g).split('/').at(-1)!
    assert.deepEqual(await findBaseDisk(files, folder, snapshotVdiUuid(0, 3), 'r'), { disk: name(3) })
    assert.deepEqual(await findBaseDisk(files, folder, snapshotVdiUuid(0, 2), 'r'), { disk: name(2) }, 'found behind a newer disk of another chain')
    for (const g of [0, 1]) {
      assert.deepEqual(await findBaseDisk(files, folder, snapshotVdiUuid(0, g), 'r'), { refusal: `the backup of the base snapshot on remote r (${name(g)}) already has a delta after it: another would fork its chain` })
    }
    assert.match((await findBaseDisk(files, folder, snapshotVdiUuid(0, 9), 'r') as { refusal: string }).refusal, /^no backup of this disk on remote r is of the base snapshot cccccccc-/)
  })
})
