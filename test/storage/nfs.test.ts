// The NFS backend against a real nfs-ganesha (NFSv3 over TCP on loopback ports, started by the test):
// the storage contract, byte-exact round trips checked by an independent reader (nfs-cp), the portmapper
// lookup, a server stopped and started again, a full export, and a client that runs as an unprivileged user.
import { after, before, test } from 'node:test'
import assert from 'node:assert/strict'
import { spawn } from 'node:child_process'
import { createHash, randomBytes } from 'node:crypto'
import { once } from 'node:events'
import { chown, mkdir, readFile, stat, writeFile } from 'node:fs/promises'
import { createServer } from 'node:net'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { NfsBackend, type NfsBackendOptions, type NfsRemote } from '../../source/storage/nfs.ts'
import { openBackend } from '../../source/storage/remotes.ts'
import { parseRemoteUrl, redactRemoteUrl } from '../../source/storage/url.ts'
import { XdrReader, XdrWriter } from '../../source/storage/nfs/xdr.ts'
import { startGanesha, type GaneshaServer } from '../helpers/ganesha.ts'
import { tempDir } from '../helpers/tools.ts'
import { runConformanceSuite } from './conformance.ts'
import { pattern } from '../helpers/pattern.ts'

let server: GaneshaServer
let folders = 0

before(async () => {
  server = await startGanesha()
})

after(async () => {
  await server?.cleanup()
})

function backendFor(url: string, options: NfsBackendOptions = {}): NfsBackend {
  return new NfsBackend(parseRemoteUrl(url) as NfsRemote, redactRemoteUrl(url), options)
}

async function fresh(options: NfsBackendOptions = {}): Promise<{ backend: NfsBackend; sub: string }> {
  const sub = `test-${++folders}`
  const backend = backendFor(server.urlFor(sub), options)
  await backend.sync()
  return { backend, sub }
}

async function sha256(stream: AsyncIterable<unknown>): Promise<string> {
  const hash = createHash('sha256')
  for await (const chunk of stream) hash.update(chunk as Buffer)
  return hash.digest('hex')
}

runConformanceSuite('nfs', async () => {
  const url = server.urlFor(`conformance-${++folders}`)
  return { backend: backendFor(url), url, cleanup: async () => {} }
})

test('a 40 MiB + 12345 B stream written through NFS is read back exactly, and nfs-cp reads the same bytes', async () => {
  const { backend, sub } = await fresh()
  const scratch = await tempDir('lifeboat-nfs-')
  try {
    const total = 40 * 1024 * 1024 + 12345
    const source = pattern(total, 100_003)
    assert.equal(await backend.write('vm/disk.vhd', source.chunks(), { length: total }), total)
    assert.equal(await sha256(await backend.read('vm/disk.vhd')), source.sha256)
    const copy = join(scratch.path, 'copy')
    await server.nfsCp(server.libnfsUrl(`${sub}/vm/disk.vhd`), copy)
    assert.equal(createHash('sha256').update(await readFile(copy)).digest('hex'), source.sha256, 'nfs-cp reads what Lifeboat wrote')
    // A range across READ boundaries.
    const data = await readFile(copy)
    const chunks: Buffer[] = []
    for await (const chunk of await backend.read('vm/disk.vhd', { start: 1024 * 1024 - 3, end: 3 * 1024 * 1024 + 5 })) chunks.push(chunk as Buffer)
    assert.deepEqual(Buffer.concat(chunks), data.subarray(1024 * 1024 - 3, 3 * 1024 * 1024 + 6))

    // The other way: nfs-cp writes, Lifeboat reads.
    const other = join(scratch.path, 'other')
    await writeFile(other, randomBytes(3 * 1024 * 1024 + 1))
    await server.nfsCp(other, server.libnfsUrl(`${sub}/from-nfs-cp`))
    const chunksBack: Buffer[] = []
    for await (const chunk of await backend.read('from-nfs-cp')) chunksBack.push(chunk as Buffer)
    assert.deepEqual(Buffer.concat(chunksBack), await readFile(other))
  } finally {
    await backend.close()
    await scratch.cleanup()
  }
})

test('a file opened r+ keeps its handle: writes in place read back exactly, through NFS and on the server', async () => {
  const { backend, sub } = await fresh()
  try {
    const data = randomBytes(5 * 1024 * 1024)
    await backend.write('disk.vhd', data)
    const file = await backend.open('disk.vhd', 'r+')
    const expected = Buffer.from(data)
    for (let i = 0; i < 20; i++) {
      const position = (i * 262_147) % (data.length - 70_000)
      const block = randomBytes(70_000)
      await file.write(block, position)
      block.copy(expected, position)
      const back = Buffer.alloc(70_000)
      assert.equal(await file.read(back, position), 70_000)
      assert.deepEqual(back, block, `block ${i} reads back at once`)
    }
    await file.close()
    assert.deepEqual(await readFile(join(server.root, sub, 'disk.vhd')), expected)
  } finally {
    await backend.close()
  }
})

test('the portmapper tells the ports when the URL gives none', async () => {
  // A portmapper of our own that answers what rpcbind would (the real one on 111 is shared by every ganesha here).
  const portmapper = createServer(socket => {
    socket.on('data', chunk => {
      const call = new XdrReader(chunk, 4)
      const xid = call.uint()
      call.skip(8)
      assert.equal(call.uint(), 100000, 'the call is to the portmapper')
      call.skip(4)
      assert.equal(call.uint(), 3, 'the call is GETPORT')
      call.uint()
      call.opaque()
      call.uint()
      call.opaque()
      const program = call.uint()
      const body = Buffer.concat(new XdrWriter().uint(xid).uint(1).uint(0).uint(0).uint(0).uint(0).uint(program === 100003 ? server.port : server.mountPort).parts())
      const mark = Buffer.alloc(4)
      mark.writeUInt32BE((0x80000000 | body.length) >>> 0)
      socket.end(Buffer.concat([mark, body]))
    })
  })
  portmapper.listen(0, '127.0.0.1')
  await once(portmapper, 'listening')
  const sub = `test-${++folders}`
  server.urlFor(sub)
  const backend = backendFor(`nfs://127.0.0.1:${join(server.exportPath, sub)}`, { portmapperPort: (portmapper.address() as { port: number }).port })
  try {
    await backend.sync()
    await backend.write('x', 'through the portmapper')
    assert.equal(await readFile(join(server.root, sub, 'x'), 'utf8'), 'through the portmapper')
  } finally {
    await backend.close()
    portmapper.close()
  }
})

test('a path below the export is mounted through the export; a missing one, or one outside every export, is refused with a sentence', async () => {
  const { backend, sub } = await fresh()
  await backend.close()
  await mkdir(join(server.root, sub, 'deeper', 'still'), { recursive: true })
  const deep = backendFor(server.urlFor(`${sub}/deeper/still`))
  try {
    await deep.sync()
    await deep.write('f', 'deep')
    assert.equal(await readFile(join(server.root, sub, 'deeper', 'still', 'f'), 'utf8'), 'deep')
  } finally {
    await deep.close()
  }
  const url = server.urlFor(sub)
  const missing = backendFor(url.replace(sub, `${sub}/not-there`))
  await assert.rejects(missing.sync(), (error: Error & { code?: string }) => error.code === 'REMOTE_UNAVAILABLE' && /not-there does not exist in the export/.test(error.message))
  await missing.close()
  const outside = backendFor(url.replace(server.exportPath, '/elsewhere'))
  await assert.rejects(outside.sync(), (error: Error & { code?: string }) => error.code === 'REMOTE_UNAVAILABLE' && /is in none of the exports/.test(error.message) && error.message.includes(server.exportPath))
  await outside.close()
})

test('nfs:// URLs open the NFS backend, and info gives the export free space', async () => {
  const url = server.urlFor(`test-${++folders}`)
  const backend = openBackend(url, { retry: false })
  try {
    await backend.sync()
    const info = await backend.info()
    assert.ok('available' in info && info.available > 0 && info.size >= info.available, `free space is known: ${JSON.stringify(info)}`)
  } finally {
    await backend.close()
  }
})

test('the server stopped: REMOTE_UNAVAILABLE with a sentence; started again, the same backend goes on', async () => {
  const own = await startGanesha()
  const backend = backendFor(own.urlFor('data'), { retryDelaysMs: [50, 50] })
  try {
    await backend.sync()
    await backend.write('before', 'kept')
    await own.stop()
    const failures = await Promise.all([backend.stat('before'), backend.write('x', 'y'), backend.list(''), backend.read('before')].map(p => p.then(() => assert.fail('a stopped server answered'), (e: unknown) => e)))
    for (const error of failures) {
      assert.equal((error as { code?: string }).code, 'REMOTE_UNAVAILABLE', `refused with REMOTE_UNAVAILABLE: ${String(error)}`)
      assert.match((error as Error).message, /refused the connection|closed the connection|dropped the connection/)
    }
    await own.restart()
    assert.equal((await backend.stat('before')).size, 4)
    await backend.write('after', 'written after the restart')
    assert.equal(await readFile(join(own.root, 'data', 'after'), 'utf8'), 'written after the restart')
  } finally {
    await backend.close()
    await own.cleanup()
  }
})

test('a full export is REMOTE_FULL and leaves no file behind', async () => {
  const own = await startGanesha({ sizeLimitBytes: 8 * 1024 * 1024 })
  const backend = backendFor(own.urlFor('data'))
  try {
    await backend.sync()
    await assert.rejects(backend.write('big', pattern(32 * 1024 * 1024).chunks()), { code: 'REMOTE_FULL' })
    assert.deepEqual((await backend.list('')).entries, [], 'neither the file nor its temporary is left')
    await backend.write('small', 'fits')
  } finally {
    await backend.close()
    await own.cleanup()
  }
})

test('an unprivileged user (nobody) writes and reads back a file through NfsBackend: the client needs no root', async () => {
  const sub = `test-${++folders}`
  const url = server.urlFor(sub)
  await chown(join(server.root, sub), 65534, 65534)
  const nfs = fileURLToPath(new URL('../../source/storage/nfs.ts', import.meta.url))
  const urls = fileURLToPath(new URL('../../source/storage/url.ts', import.meta.url))
  const script = `
    import { NfsBackend } from ${JSON.stringify(nfs)}
    import { parseRemoteUrl } from ${JSON.stringify(urls)}
    const data = Buffer.from(Array.from({ length: 3_000_000 }, (_, i) => (i * 31) & 0xff))
    const backend = new NfsBackend(parseRemoteUrl(process.env.REMOTE_URL), 'nfs')
    await backend.sync()
    await backend.write('by-nobody.bin', data)
    const chunks = []
    for await (const chunk of await backend.read('by-nobody.bin')) chunks.push(chunk)
    await backend.close()
    process.stdout.write(JSON.stringify({ uid: process.getuid(), same: Buffer.concat(chunks).equals(data) }))`
  const child = spawn(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], { uid: 65534, gid: 65534, env: { ...process.env, REMOTE_URL: url, HOME: '/tmp' }, stdio: ['ignore', 'pipe', 'pipe'] })
  let out = ''
  let err = ''
  child.stdout.on('data', (d: Buffer) => (out += d))
  child.stderr.on('data', (d: Buffer) => (err += d))
  const [code] = await once(child, 'exit')
  assert.equal(code, 0, `the unprivileged child failed: ${err}`)
  assert.deepEqual(JSON.parse(out), { uid: 65534, same: true })
  const written = await readFile(join(server.root, sub, 'by-nobody.bin'))
  assert.deepEqual(written, Buffer.from(Array.from({ length: 3_000_000 }, (_, i) => (i * 31) & 0xff)), 'the server holds the bytes the child wrote')
  assert.equal((await stat(join(server.root, sub, 'by-nobody.bin'))).uid, 65534, 'the file belongs to the uid the client sent')
})

test('the server killed and started again during a stream write: the WRITEs are sent again and the file is exact', async () => {
  const own = await startGanesha()
  // Long enough waits between attempts for the server to come back.
  const backend = backendFor(own.urlFor('data'), { retryDelaysMs: [500, 1000, 2000, 4000, 8000] })
  const block = randomBytes(1024 * 1024)
  const hash = createHash('sha256')
  async function* source() {
    for (let i = 0; i < 48; i++) {
      const chunk = Buffer.from(block)
      chunk.writeUInt32BE(i, 0)
      hash.update(chunk)
      yield chunk
      // Mid-transfer, with WRITEs in flight and uncommitted data on the server.
      if (i === 20) {
        await own.stop()
        await own.restart()
      }
    }
  }
  try {
    await backend.sync()
    assert.equal(await backend.write('disk.vhd', source()), 48 * 1024 * 1024)
    const expected = hash.digest('hex')
    assert.equal(await sha256(await backend.read('disk.vhd')), expected)
    assert.equal(createHash('sha256').update(await readFile(join(own.root, 'data', 'disk.vhd'))).digest('hex'), expected, 'the server holds the same bytes')
    assert.deepEqual((await backend.list('')).entries.map(e => e.name), ['disk.vhd'], 'no temporary file is left')
  } finally {
    await backend.close()
    await own.cleanup()
  }
})
