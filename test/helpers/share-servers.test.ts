// The Samba and ganesha test servers work, checked with the independent clients only (smbclient, nfs-cp): a file
// goes in and back byte-exact, a size-limited share really fills, stop/restart keeps port and data, and two of
// each run at once.
import { after, describe, test } from 'node:test'
import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import { readFile, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { parseRemoteUrl } from '../../source/storage/url.ts'
import { startGanesha, type GaneshaServer } from './ganesha.ts'
import { startSamba, type SambaServer } from './samba.ts'
import { listening } from './share-host.ts'
import { tempDir } from './tools.ts'

const local = await tempDir('lifeboat-share-servers-')
const servers: Array<{ cleanup(): Promise<void> }> = []
after(async () => {
  await Promise.all(servers.map(server => server.cleanup()))
  await local.cleanup()
})

async function payload(name: string, size: number): Promise<{ path: string; bytes: Buffer }> {
  const bytes = randomBytes(size)
  const path = join(local.path, name)
  await writeFile(path, bytes)
  return { path, bytes }
}

async function samba(options?: Parameters<typeof startSamba>[0]): Promise<SambaServer> {
  const server = await startSamba(options)
  servers.push(server)
  return server
}

async function ganesha(options?: Parameters<typeof startGanesha>[0]): Promise<GaneshaServer> {
  const server = await startGanesha(options)
  servers.push(server)
  return server
}

describe('Samba', () => {
  test('smbclient puts a file and gets it back byte-exact; the server wrote it in root', async () => {
    const server = await samba()
    const { path, bytes } = await payload('smb-in.bin', 3 << 20)
    await server.smbclient(`mkdir vm; put ${path} vm/disk.vhd; get vm/disk.vhd ${path}.back`)
    assert.deepEqual(await readFile(`${path}.back`), bytes, 'smbclient reads back the bytes it wrote')
    assert.deepEqual(await readFile(join(server.root, 'vm', 'disk.vhd')), bytes, 'the file is in the exported folder')
  })

  test("urlFor gives XO's form, which parses to the user, the domain, host:port\\share and the sub-folder", async () => {
    const server = await samba({ extraShares: ['second'] })
    const remote = parseRemoteUrl(server.urlFor('jobs/a', { useVhdDirectory: true }))
    assert.deepEqual(remote, { type: 'smb', username: server.user, password: server.password, domain: 'WORKGROUP', host: `127.0.0.1:${server.port}\\backups`, path: 'jobs\\a', options: { useVhdDirectory: true } }, 'the URL parses back to its parts')
    const second = parseRemoteUrl(server.urlForShare('second', 'x'))
    assert.equal(second.type === 'smb' && second.host, `127.0.0.1:${server.port}\\second`, 'urlForShare names the other share')
    const { path, bytes } = await payload('smb-second.bin', 1000)
    await server.smbclient(`put ${path} f.bin`, 'second')
    assert.deepEqual(await readFile(join(server.shareRoot('second'), 'f.bin')), bytes, 'the second share is its own folder')
  })

  test('with mandatory signing smbclient still round-trips (it signs)', async () => {
    const server = await samba({ signing: 'mandatory' })
    const { path, bytes } = await payload('smb-signed.bin', 1 << 20)
    await server.smbclient(`put ${path} signed.bin; get signed.bin ${path}.back`)
    assert.deepEqual(await readFile(`${path}.back`), bytes, 'the signed round trip keeps the bytes')
  })

  test('a size-limited share fills up: writing more than the limit fails with NT_STATUS_DISK_FULL', async () => {
    const server = await samba({ sizeLimitBytes: 4 << 20 })
    const small = await payload('smb-small.bin', 1 << 20)
    const big = await payload('smb-big.bin', 6 << 20)
    await server.smbclient(`put ${small.path} small.bin`)
    await assert.rejects(server.smbclient(`put ${big.path} big.bin`), /DISK_FULL/, 'the share refuses what does not fit')
    assert.deepEqual(await readFile(join(server.root, 'small.bin')), small.bytes, 'root shows the tmpfs, with what fitted')
  })

  test('stop kills it (the port closes), restart brings it back on the same port with the same files', async () => {
    const server = await samba({ sizeLimitBytes: 8 << 20 })
    const { path, bytes } = await payload('smb-restart.bin', 100_000)
    await server.smbclient(`put ${path} kept.bin`)
    await server.stop()
    assert.equal(await listening(server.port), false, 'nothing listens once stopped')
    await assert.rejects(server.smbclient('ls'), /smbclient/, 'smbclient cannot reach a stopped server')
    await server.restart()
    await server.smbclient(`get kept.bin ${path}.back`)
    assert.deepEqual(await readFile(`${path}.back`), bytes, 'the file written before the stop is served after the restart')
  })

  test('two servers at once, each with its own port and folder', async () => {
    const [a, b] = await Promise.all([samba(), samba()])
    assert.notEqual(a.port, b.port, 'each has its port')
    const one = await payload('smb-a.bin', 1000)
    const two = await payload('smb-b.bin', 2000)
    await Promise.all([a.smbclient(`put ${one.path} f.bin`), b.smbclient(`put ${two.path} f.bin`)])
    assert.deepEqual(await readFile(join(a.root, 'f.bin')), one.bytes, 'the first server wrote its own file')
    assert.deepEqual(await readFile(join(b.root, 'f.bin')), two.bytes, 'the second server wrote its own file')
  })
})

describe('nfs-ganesha', () => {
  test('nfs-cp copies a file in and back byte-exact; the server wrote it in root', async () => {
    const server = await ganesha()
    const { path, bytes } = await payload('nfs-in.bin', 3 << 20)
    await server.nfsCp(path, server.libnfsUrl('disk.vhd'))
    await server.nfsCp(server.libnfsUrl('disk.vhd'), `${path}.back`)
    assert.deepEqual(await readFile(`${path}.back`), bytes, 'nfs-cp reads back the bytes it wrote')
    assert.deepEqual(await readFile(join(server.root, 'disk.vhd')), bytes, 'the file is in the exported folder')
  })

  test("urlFor gives XO's form with the NFS port and the MOUNT port in the query; its folder exists", async () => {
    const server = await ganesha()
    const remote = parseRemoteUrl(server.urlFor('jobs/a', { uid: 0, gid: 0 }))
    assert.deepEqual(remote, { type: 'nfs', host: '127.0.0.1', port: String(server.port), path: `${server.exportPath}/jobs/a`, options: { mountPort: server.mountPort, uid: 0, gid: 0 } }, 'the URL parses back to its parts')
    const { path, bytes } = await payload('nfs-sub.bin', 1000)
    await server.nfsCp(path, server.libnfsUrl('jobs/a/f.bin'))
    assert.deepEqual(await readFile(join(server.root, 'jobs', 'a', 'f.bin')), bytes, 'the sub-folder is served')
  })

  test('a size-limited export fills up: writing more than the limit fails', async () => {
    const server = await ganesha({ sizeLimitBytes: 4 << 20 })
    const small = await payload('nfs-small.bin', 1 << 20)
    const big = await payload('nfs-big.bin', 6 << 20)
    await server.nfsCp(small.path, server.libnfsUrl('small.bin'))
    await assert.rejects(server.nfsCp(big.path, server.libnfsUrl('big.bin')), /Failed to write/, 'the export refuses what does not fit (NFS3ERR_NOSPC)')
    assert.deepEqual(await readFile(join(server.root, 'small.bin')), small.bytes, 'root shows the tmpfs, with what fitted')
  })

  test('stop kills it (the ports close), restart brings it back on the same ports with the same files', async () => {
    const server = await ganesha({ sizeLimitBytes: 8 << 20 })
    const { path, bytes } = await payload('nfs-restart.bin', 100_000)
    await server.nfsCp(path, server.libnfsUrl('kept.bin'))
    await server.stop()
    assert.equal(await listening(server.port), false, 'the NFS port is closed once stopped')
    assert.equal(await listening(server.mountPort), false, 'the MOUNT port is closed once stopped')
    await server.restart()
    await server.nfsCp(server.libnfsUrl('kept.bin'), `${path}.back`)
    assert.deepEqual(await readFile(`${path}.back`), bytes, 'the file written before the stop is served after the restart')
  })

  test('two servers started at once (both registering with the one portmapper) each serve their own folder', async () => {
    const [a, b] = await Promise.all([ganesha(), ganesha()])
    assert.notEqual(a.port, b.port, 'each has its port')
    const one = await payload('nfs-a.bin', 1000)
    const two = await payload('nfs-b.bin', 2000)
    await Promise.all([a.nfsCp(one.path, a.libnfsUrl('f.bin')), b.nfsCp(two.path, b.libnfsUrl('f.bin'))])
    assert.deepEqual(await readFile(join(a.root, 'f.bin')), one.bytes, 'the first server wrote its own file')
    assert.deepEqual(await readFile(join(b.root, 'f.bin')), two.bytes, 'the second server wrote its own file')
  })
})
