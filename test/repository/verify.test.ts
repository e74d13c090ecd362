// Verify on real backups made from the lab: a clean repository verifies (VHD files, VhdDirectories, an encrypted
// remote, S3 through s3rver) without a byte of it changed; then each corruption, made on a copy, is found and named
// with its file — a truncated VHD, a missing parent, an alias to nowhere, a metadata file that does not parse, an
// XVA chunk whose checksum is wrong, a flipped byte in an XVA chunk's data and a missing VhdDirectory block (those
// two only with readData); block reads stay within the remote's connections. A flipped byte inside a VHD block (a
// VHD file, a VhdDirectory block on a folder and on S3) is found against the block hashes Lifeboat recorded, also
// after a retention merge; a VHD another tool rewrote is checked for structure only, and says so.
import assert from 'node:assert/strict'
import { createHash } from 'node:crypto'
import { cp, readdir, readFile, rename, rm, truncate, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { after, before, describe, test } from 'node:test'
import { brotliCompressSync, brotliDecompressSync } from 'node:zlib'
import { BLOCK_HASHES_SUFFIX, VhdChain, VhdDirectory, VhdFile } from '../../source/formats/vhd/index.ts'
import { cleanVm, verifyVm, type BackupVerdict } from '../../source/repository/index.ts'
import { fileSystemAccess, openRemote, type RemoteHandler } from '../../source/storage/index.ts'
import { vmDisks, type XapiRecord } from '../../source/xapi/index.ts'
import { startS3rver, type S3rver } from '../helpers/s3rver.ts'
import { tempDir } from '../helpers/tools.ts'
import { describeFailure, job, runToEnd, startEngineLab, vmByName, walkRemote, type EngineLab } from '../engine/helpers.ts'

const MiB = 1024 * 1024
const KEY = '73c1838d7d8a6088ca2317fb5f29cd91'
const SCHEDULES = [{ id: 'schedule-1', name: 'daily', cron: '0 3 * * *', timezone: 'UTC', retention: { backups: 3, snapshots: 1 } }]

let env: EngineLab
let s3: S3rver
let vm: XapiRecord
const dirs: Array<{ path: string; cleanup: () => Promise<void> }> = []
/** Remote name → its URL (local remotes: their folder is the URL's path). */
const urls = new Map<string, string>()

async function folder(prefix: string): Promise<string> {
  const dir = await tempDir(prefix)
  dirs.push(dir)
  return dir.path
}

async function open(name: string, url: string): Promise<RemoteHandler> {
  const handler = openRemote(url)
  await handler.sync()
  env.remotes.set(name, handler)
  urls.set(name, url)
  return handler
}

before(async () => {
  env = await startEngineLab({ remotes: [] })
  s3 = await startS3rver()
  await open('files', `file://${await folder('lifeboat-verify-files-')}`)
  await open('dirs', `file://${await folder('lifeboat-verify-dirs-')}?useVhdDirectory=true`)
  await open('vault', `file://${await folder('lifeboat-verify-vault-')}?useVhdDirectory=true&encryptionKey=${encodeURIComponent(JSON.stringify(KEY))}`)
  await open('s3', s3.urlFor('verify'))
  const conn = env.conns[0]!
  vm = vmByName(conn, 'tiny-running')
  const delta = job({ id: 'job-delta', mode: 'delta', vms: { uuids: [vm.uuid] }, remotes: ['files', 'dirs', 'vault', 's3'], schedules: SCHEDULES })
  for (let run = 0; run < 2; run++) {
    if (run > 0) await env.lab.control.writeVdi(vmDisks(conn, conn.get('VM', vm.uuid))[0]!.vdi.uuid, { offset: 3 * MiB, length: 3 * MiB, seed: 70 + run })
    const tree = await runToEnd(env, delta)
    assert.equal(tree.status, 'success', describeFailure(tree))
  }
  const full = await runToEnd(env, job({ id: 'job-full', mode: 'full', vms: { uuids: [vm.uuid] }, remotes: ['files'], schedules: SCHEDULES }))
  assert.equal(full.status, 'success', describeFailure(full))
})

after(async () => {
  await env?.cleanup()
  await s3?.stop()
  for (const dir of dirs) await dir.cleanup()
})

/** Every file of a remote with the sha256 of its bytes, to show verify changed nothing. */
async function fingerprint(handler: RemoteHandler): Promise<Map<string, string>> {
  const out = new Map<string, string>()
  for (const path of await walkRemote(handler, '')) out.set(path, createHash('sha256').update(await handler.readFile(path)).digest('hex'))
  return out
}

function failures(verdicts: BackupVerdict[]): Array<{ id: string; codes: string[]; paths: string[] }> {
  return verdicts.filter(v => v.findings.length > 0).map(v => ({ id: v.id, codes: v.findings.map(f => f.code), paths: v.findings.map(f => f.path) }))
}

describe('a clean repository', () => {
  for (const name of ['files', 'dirs', 'vault', 's3']) {
    test(`${name}: every backup verifies, structure and data, and the remote is left byte for byte as it was`, async () => {
      const handler = env.remotes.get(name)!
      const before = await fingerprint(handler)
      for (const readData of [false, true]) {
        let bytes = 0
        const verdicts = await verifyVm(handler, vm.uuid, { readData, onRead: n => void (bytes += n) })
        assert.equal(verdicts.length, name === 'files' ? 3 : 2, 'each backup judged')
        assert.deepEqual(failures(verdicts), [], `readData ${readData}: no findings`)
        if (readData) assert.ok(bytes >= 4 * MiB, `the data was read (${bytes} bytes)`)
        if (readData) assert.deepEqual(verdicts.flatMap(v => v.notes), [], 'every disk Lifeboat wrote is checked against its block hashes')
      }
      assert.deepEqual(await fingerprint(handler), before, 'nothing written, renamed or removed')
      const sidecars = [...before.keys()].filter(path => path.endsWith(BLOCK_HASHES_SUFFIX))
      assert.equal(sidecars.length, 2, 'one block hash file per disk written')
      if (name === 'vault') {
        const raw = await readFile(join(new URL(urls.get(name)!).pathname, sidecars[0]!))
        assert.ok(!raw.includes('lifeboat-block-hashes'), 'on an encrypted remote the block hashes are encrypted like every file')
      }
    })
  }
})

interface Copy {
  handler: RemoteHandler
  /** The VM's folder in the copy. */
  vmDir: string
  /** Backup JSON names, oldest first. */
  jsons: string[]
  metadata(json: string): Promise<Record<string, any>>
}

/** A copy of a local remote to corrupt, opened as the original is. */
async function copyOf(name: string): Promise<Copy> {
  const url = new URL(urls.get(name)!)
  const root = await folder(`lifeboat-verify-copy-${name}-`)
  await cp(url.pathname, root, { recursive: true })
  const handler = openRemote(`file://${root}${url.search}`)
  await handler.sync()
  dirs.push({ path: root, cleanup: () => handler.close() })
  const vmDir = join(root, 'xo-vm-backups', vm.uuid)
  const jsons = (await readdir(vmDir)).filter(n => /^\d{8}T\d{6}Z\.json$/.test(n)).sort()
  return { handler, vmDir, jsons, metadata: async json => JSON.parse((await handler.readFile(`xo-vm-backups/${vm.uuid}/${json}`)).toString()) }
}

async function newestOf(copy: Copy, mode: 'full' | 'delta'): Promise<{ json: string; metadata: Record<string, any> }> {
  for (const json of [...copy.jsons].reverse()) {
    const metadata = await copy.metadata(json)
    if (metadata.mode === mode) return { json, metadata }
  }
  throw new Error(`no ${mode} backup`)
}

const id = (json: string) => `/xo-vm-backups/${vm.uuid}/${json}`

describe('each corruption is found and named', () => {
  test('a truncated VHD: its backup fails (VHD_TRUNCATED) naming the file; the others verify', async () => {
    const copy = await copyOf('files')
    const { json, metadata } = await newestOf(copy, 'delta')
    const vhd = Object.values(metadata.vhds)[0] as string
    await truncate(join(copy.vmDir, vhd), 4096)
    const found = failures(await verifyVm(copy.handler, vm.uuid))
    assert.deepEqual(found.map(f => f.id), [id(json)])
    assert.equal(found[0]!.codes[0], 'VHD_TRUNCATED')
    assert.equal(found[0]!.paths[0], `xo-vm-backups/${vm.uuid}/${vhd}`)
  })

  test('a missing parent: the delta on it fails (VHD_PARENT_MISSING), the backup whose disk it was fails (VHD_MISSING)', async () => {
    const copy = await copyOf('files')
    const deltas: string[] = []
    for (const json of copy.jsons) if ((await copy.metadata(json)).mode === 'delta') deltas.push(json)
    const oldest = await copy.metadata(deltas[0]!)
    await rm(join(copy.vmDir, Object.values(oldest.vhds)[0] as string))
    const found = failures(await verifyVm(copy.handler, vm.uuid))
    assert.deepEqual(found.map(f => [f.id, f.codes[0]]), [
      [id(deltas[0]!), 'VHD_MISSING'],
      [id(deltas[1]!), 'VHD_PARENT_MISSING'],
    ])
  })

  test('an alias to nowhere: VHD_ALIAS_TARGET_MISSING, naming the alias', async () => {
    const copy = await copyOf('dirs')
    const { json, metadata } = await newestOf(copy, 'delta')
    const alias = Object.values(metadata.vhds)[0] as string
    await writeFile(join(copy.vmDir, alias), 'data/20000101T000000Z.vhd')
    const found = failures(await verifyVm(copy.handler, vm.uuid))
    assert.deepEqual(found.map(f => [f.id, f.codes[0], f.paths[0]]), [[id(json), 'VHD_ALIAS_TARGET_MISSING', `xo-vm-backups/${vm.uuid}/${alias}`]])
  })

  test('a metadata file that does not parse: REPOSITORY_BAD_METADATA for that backup', async () => {
    const copy = await copyOf('files')
    const json = copy.jsons[0]!
    const text = await readFile(join(copy.vmDir, json), 'utf8')
    await writeFile(join(copy.vmDir, json), text.slice(0, text.length / 2))
    const found = failures(await verifyVm(copy.handler, vm.uuid))
    assert.deepEqual(found.map(f => [f.id, f.codes[0]]), [[id(json), 'REPOSITORY_BAD_METADATA']])
  })

  test('an XVA chunk whose checksum entry is wrong: XVA_BAD_CHECKSUM with readData', async () => {
    const copy = await copyOf('files')
    const { json, metadata } = await newestOf(copy, 'full')
    const xva = join(copy.vmDir, metadata.xva)
    const bytes = await readFile(xva)
    // The first chunk's .xxhash entry: 16 hex digits after its tar header.
    const header = bytes.indexOf('/00000000.xxhash')
    assert.ok(header > 0, 'the XVA has xxhash entries, as XAPI writes them')
    const digest = Math.ceil((header + 1) / 512) * 512
    bytes[digest] = bytes[digest] === 0x30 ? 0x31 : 0x30
    await writeFile(xva, bytes)
    assert.deepEqual(failures(await verifyVm(copy.handler, vm.uuid)), [], 'the structure alone holds')
    const found = failures(await verifyVm(copy.handler, vm.uuid, { readData: true }))
    assert.deepEqual(found.map(f => [f.id, f.codes[0], f.paths[0]]), [[id(json), 'XVA_BAD_CHECKSUM', `xo-vm-backups/${vm.uuid}/${metadata.xva.replace('./', '')}`]])
  })

  test('a flipped byte in a data block: found only with readData (the XVA chunk fails its checksum)', async () => {
    const copy = await copyOf('files')
    const { json, metadata } = await newestOf(copy, 'full')
    const xva = join(copy.vmDir, metadata.xva)
    const bytes = await readFile(xva)
    const header = bytes.indexOf('/00000000\0')
    assert.ok(header > 0, 'the XVA has the first chunk of its disk')
    const data = Math.ceil((header + 1) / 512) * 512 + 1000
    bytes[data] = bytes[data]! ^ 0x01
    await writeFile(xva, bytes)
    assert.deepEqual(failures(await verifyVm(copy.handler, vm.uuid)), [], 'the structure holds: only reading the data finds it')
    const found = failures(await verifyVm(copy.handler, vm.uuid, { readData: true }))
    assert.deepEqual(found.map(f => [f.id, f.codes[0]]), [[id(json), 'XVA_BAD_CHECKSUM']])
    assert.match((await verifyVm(copy.handler, vm.uuid, { readData: true })).find(v => v.id === id(json))!.findings[0]!.reason, /00000000 fails its checksum/)
  })

  test('a VhdDirectory block file gone: VHD_BLOCK_MISSING with readData, for every backup that needs it', async () => {
    const copy = await copyOf('dirs')
    const { metadata } = await newestOf(copy, 'delta')
    const alias = join(copy.vmDir, Object.values(metadata.vhds)[0] as string)
    const data = join(alias, '..', (await readFile(alias, 'utf8')).trim())
    const group = (await readdir(join(data, 'blocks')))[0]!
    const block = (await readdir(join(data, 'blocks', group)))[0]!
    await rm(join(data, 'blocks', group, block))
    assert.deepEqual(failures(await verifyVm(copy.handler, vm.uuid)), [], 'the structure holds')
    const found = failures(await verifyVm(copy.handler, vm.uuid, { readData: true }))
    assert.ok(found.length >= 1 && found.every(f => f.codes.includes('VHD_BLOCK_MISSING')), JSON.stringify(found))
  })

  test('an encrypted block altered: REMOTE_DECRYPT_FAILED with readData', async () => {
    const copy = await copyOf('vault')
    const found: string[] = []
    for (const path of await walkRemote(copy.handler, `xo-vm-backups/${vm.uuid}`)) if (/\/blocks\/\d+\/\d+$/.test(path)) found.push(path)
    const raw = join(copy.vmDir, '..', '..', found[0]!)
    const bytes = await readFile(raw)
    bytes[bytes.length - 20] = bytes[bytes.length - 20]! ^ 0xff
    await writeFile(raw, bytes)
    const failed = failures(await verifyVm(copy.handler, vm.uuid, { readData: true }))
    assert.ok(failed.length >= 1 && failed.every(f => f.codes.includes('REMOTE_DECRYPT_FAILED')), JSON.stringify(failed))
  })
})

/** Flips one byte inside the data of a block of a VHD file (a local path); returns the block's number. */
async function flipInVhdFile(path: string): Promise<number> {
  const vhd = await VhdFile.open(path)
  const block = vhd.allocatedBlocks().at(-1)!
  const { tableOffset } = vhd.header
  await vhd.close()
  const bytes = await readFile(path)
  const at = bytes.readUInt32BE(tableOffset + block * 4) * 512 + 512 + 12345 // past the block's 512-byte sector bitmap
  bytes[at] = bytes[at]! ^ 0x01
  await writeFile(path, bytes)
  return block
}

/** Flips one byte inside a VhdDirectory block (decompressed, flipped, compressed again: only its content changes); returns the block and how to put it back. */
async function flipInVhdDirectory(handler: RemoteHandler, alias: string): Promise<{ block: number; undo: () => Promise<void> }> {
  const vhd = await VhdDirectory.open(alias, { fs: fileSystemAccess(handler) })
  const block = vhd.allocatedBlocks().at(-1)!
  const path = vhd.blockPath(block)
  const stored = await handler.readFile(path)
  const raw = brotliDecompressSync(stored)
  raw[512 + 4242] = raw[512 + 4242]! ^ 0x01
  await handler.writeFile(path, brotliCompressSync(raw))
  return { block, undo: () => handler.writeFile(path, stored) }
}

const date = (json: string) => json.slice(0, -'.json'.length)

async function deltaJsons(copy: Pick<Copy, 'jsons' | 'metadata'>): Promise<string[]> {
  const out: string[] = []
  for (const json of copy.jsons) if ((await copy.metadata(json)).mode === 'delta') out.push(json)
  return out
}

/** The one hash finding of each failed backup: [backup id, code, disk, blocks, restore points]. */
function hashFindings(verdicts: BackupVerdict[]): Array<[string, string, string, number[] | undefined, string[] | undefined]> {
  return verdicts.filter(v => v.findings.length > 0).map(v => [v.id, v.findings[0]!.code, v.findings[0]!.path, v.findings[0]!.blocks, v.findings[0]!.restorePoints])
}

describe('a flipped byte inside a VHD block is found against the block hashes (readData)', () => {
  test('a VHD file: every backup whose chain includes the disk fails, naming the disk, the block and those restore points', async () => {
    const copy = await copyOf('files')
    const deltas = await deltaJsons(copy)
    const disk = Object.values((await copy.metadata(deltas[0]!)).vhds)[0] as string
    const block = await flipInVhdFile(join(copy.vmDir, disk))
    assert.deepEqual(failures(await verifyVm(copy.handler, vm.uuid)), [], 'the structure holds: only the data tells')
    const verdicts = await verifyVm(copy.handler, vm.uuid, { readData: true })
    const path = `xo-vm-backups/${vm.uuid}/${disk}`
    assert.deepEqual(hashFindings(verdicts), deltas.map(json => [id(json), 'VHD_BLOCK_HASH_MISMATCH', path, [block], deltas.map(date)]))
    const reason = verdicts.find(v => v.findings.length > 0)!.findings[0]!.reason
    assert.match(reason, new RegExp(`block ${block} of this disk no longer matches`))
    assert.match(reason, new RegExp(`${date(deltas[0]!)}, ${date(deltas[1]!)} read it and cannot be trusted`))
    assert.match(reason, /Run a full backup of this VM/)
  })

  for (const name of ['dirs', 's3']) {
    test(`a VhdDirectory block on ${name === 's3' ? 'S3 (s3rver)' : 'a local folder'}: the backup that reads it fails, naming disk, block and restore point`, async () => {
      const copy = name === 'dirs' ? await copyOf('dirs') : undefined
      const handler = copy?.handler ?? env.remotes.get('s3')!
      const jsons = (await handler.list(`xo-vm-backups/${vm.uuid}`)).filter(n => /^\d{8}T\d{6}Z\.json$/.test(n)).sort()
      const newest = jsons.at(-1)!
      const alias = `xo-vm-backups/${vm.uuid}/${Object.values(JSON.parse((await handler.readFile(`xo-vm-backups/${vm.uuid}/${newest}`)).toString()).vhds)[0] as string}`
      const { block, undo } = await flipInVhdDirectory(handler, alias)
      try {
        assert.deepEqual(failures(await verifyVm(handler, vm.uuid)), [], 'the structure holds')
        assert.deepEqual(hashFindings(await verifyVm(handler, vm.uuid, { readData: true })), [[id(newest), 'VHD_BLOCK_HASH_MISMATCH', alias, [block], [date(newest)]]])
      } finally {
        if (copy === undefined) await undo() // the shared S3 remote is put back as it was
      }
      if (copy === undefined) assert.deepEqual(failures(await verifyVm(handler, vm.uuid, { readData: true })), [], 'and verifies again once the block is back')
    })
  }

  for (const name of ['files', 'dirs']) {
    test(`${name}: after a retention merge the merged disk's hashes verify, and a byte flipped after the merge is found`, async () => {
      const copy = await copyOf(name)
      const [oldest, kept] = await deltaJsons(copy)
      await copy.handler.unlink(`xo-vm-backups/${vm.uuid}/${oldest}`)
      const cleaned = await cleanVm(copy.handler, vm.uuid)
      assert.ok(cleaned.merged >= 1, `the released delta is merged (${JSON.stringify(cleaned)})`)
      const verdicts = await verifyVm(copy.handler, vm.uuid, { readData: true })
      assert.deepEqual(failures(verdicts), [])
      assert.deepEqual(verdicts.flatMap(v => v.notes), [], 'the merged disk has true block hashes')
      const disk = Object.values((await copy.metadata(kept!)).vhds)[0] as string
      const path = `xo-vm-backups/${vm.uuid}/${disk}`
      const block = name === 'files' ? await flipInVhdFile(join(copy.vmDir, disk)) : (await flipInVhdDirectory(copy.handler, path)).block
      assert.deepEqual(hashFindings(await verifyVm(copy.handler, vm.uuid, { readData: true })), [[id(kept!), 'VHD_BLOCK_HASH_MISMATCH', path, [block], [date(kept!)]]])
    })
  }

  test('a byte flipped in a delta before its merge is still found in the merged disk (the hashes are carried, not recomputed)', async () => {
    const copy = await copyOf('files')
    const [oldest, kept] = await deltaJsons(copy)
    const disk = Object.values((await copy.metadata(kept!)).vhds)[0] as string
    const block = await flipInVhdFile(join(copy.vmDir, disk))
    await copy.handler.unlink(`xo-vm-backups/${vm.uuid}/${oldest}`)
    assert.ok((await cleanVm(copy.handler, vm.uuid)).merged >= 1, 'the clean merged the flipped disk into its child')
    assert.deepEqual(hashFindings(await verifyVm(copy.handler, vm.uuid, { readData: true })), [[id(kept!), 'VHD_BLOCK_HASH_MISMATCH', `xo-vm-backups/${vm.uuid}/${disk}`, [block], [date(kept!)]]])
  })

  test('a VHD merged by another tool (rewritten, its block hashes not updated): structure checked only, said as information, never a failure', async () => {
    const copy = await copyOf('files')
    const [oldest, kept] = await deltaJsons(copy)
    const older = join(copy.vmDir, Object.values((await copy.metadata(oldest!)).vhds)[0] as string)
    const disk = Object.values((await copy.metadata(kept!)).vhds)[0] as string
    const newer = join(copy.vmDir, disk)
    // What XO's merge leaves: the chain's content as one VHD under the newest name, the older VHD gone, no sidecar touched.
    await copy.handler.unlink(`xo-vm-backups/${vm.uuid}/${oldest}`)
    const chain = await VhdChain.open(newer)
    const { stream } = chain.toVhdStream()
    const chunks: Buffer[] = []
    for await (const chunk of stream) chunks.push(chunk as Buffer)
    await chain.close()
    await writeFile(`${newer}.xo`, Buffer.concat(chunks))
    await rename(`${newer}.xo`, newer)
    await rm(older)
    const verdicts = await verifyVm(copy.handler, vm.uuid, { readData: true })
    assert.deepEqual(failures(verdicts), [], 'not a corruption')
    assert.deepEqual(verdicts.find(v => v.id === id(kept!))!.notes, [{
      code: 'VHD_NO_BLOCK_HASHES', path: `xo-vm-backups/${vm.uuid}/${disk}`,
      reason: 'no block hashes for this disk (written or changed by another tool); structure checked only',
    }])
    const cleaned = await cleanVm(copy.handler, vm.uuid)
    assert.ok(cleaned.removed.some(path => path.endsWith(`${older.split('/').at(-1)}${BLOCK_HASHES_SUFFIX}`)), `the hashes of the VHD gone are removed by the cleaner (${cleaned.removed.join(', ')})`)
  })
})

describe('within the remote connection limits', () => {
  for (const connections of [1, 16]) {
    test(`a remote of ${connections} connection(s): at most ${Math.min(4, connections)} block reads in flight, and every block read`, async () => {
      const inner = env.remotes.get('dirs')!
      let inFlight = 0
      let most = 0
      let reads = 0
      // The same remote, saying it allows `connections`, counting the reads under way at once.
      const counted = new Proxy(inner, {
        get(target, name, receiver) {
          if (name === 'capabilities') return { ...target.capabilities, connections }
          if (name === 'readFile') {
            return async (path: string) => {
              inFlight++
              reads++
              most = Math.max(most, inFlight)
              try {
                return await target.readFile(path)
              } finally {
                inFlight--
              }
            }
          }
          const value = Reflect.get(target, name, receiver)
          return typeof value === 'function' ? value.bind(target) : value
        },
      })
      const verdicts = await verifyVm(counted, vm.uuid, { readData: true })
      assert.deepEqual(failures(verdicts), [], 'verified')
      assert.ok(reads > 4, `the blocks were read (${reads} reads)`)
      assert.ok(most <= Math.min(4, connections), `at most ${Math.min(4, connections)} at once, saw ${most}`)
      if (connections > 1) assert.ok(most > 1, `reads overlap when the remote allows it (saw ${most})`)
    })
  }
})
