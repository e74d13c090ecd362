// The one test suite every remote handler must pass (restic style): a backend is done when this is
// green on it. Call it with a factory that gives a fresh, empty remote and its URL.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { spawn } from 'node:child_process'
import { createHash, randomBytes } from 'node:crypto'
import { Readable } from 'node:stream'
import { fileURLToPath } from 'node:url'
import { fileSystemAccess, TEMPORARY_FILE, type RemoteHandler } from '../../source/storage/index.ts'
import { createVhdStream, mergeVhdChain, VHD_BLOCK_SIZE, VhdChain } from '../../source/formats/vhd/index.ts'

export interface ConformanceRemote {
  handler: RemoteHandler
  /** The URL of the same remote, opened again in a child process for the crash test. */
  url: string
  cleanup(): Promise<void>
}

async function collect(stream: AsyncIterable<Buffer>): Promise<Buffer> {
  const chunks: Buffer[] = []
  for await (const chunk of stream) chunks.push(chunk)
  return Buffer.concat(chunks)
}

async function* chunks(count: number, size: number, seed = 1): AsyncGenerator<Buffer> {
  for (let i = 0; i < count; i++) yield Buffer.alloc(size, (i + seed) & 0xff)
}

const sleep = (ms: number) => new Promise(resolve => setTimeout(resolve, ms))

export function runConformanceSuite(name: string, createRemote: () => Promise<ConformanceRemote>): void {
  const withRemote = (title: string, fn: (handler: RemoteHandler, remote: ConformanceRemote) => Promise<void>) =>
    test(`${name}: ${title}`, async () => {
      const remote = await createRemote()
      try {
        await remote.handler.sync()
        await fn(remote.handler, remote)
      } finally {
        await remote.handler.close()
        await remote.cleanup()
      }
    })

  withRemote('writeFile/readFile round trip, parents created, atomic replace, exclusive flag', async h => {
    await h.writeFile('a/b/c.json', '{"x":1}')
    assert.equal((await h.readFile('a/b/c.json')).toString(), '{"x":1}')
    await h.writeFile('a/b/c.json', Buffer.from('second'))
    assert.equal((await h.readFile('a/b/c.json')).toString(), 'second')
    await assert.rejects(h.writeFile('a/b/c.json', 'third', { flag: 'wx' }), { code: 'EEXIST' })
    assert.equal((await h.readFile('a/b/c.json')).toString(), 'second')
    await h.writeFile('a/b/d.json', 'new', { flag: 'wx' })
    assert.deepEqual(await h.list('a/b'), ['c.json', 'd.json'])
    await assert.rejects(h.readFile('a/missing'), { code: 'ENOENT' })
  })

  withRemote('list is sorted; a missing folder is ENOENT unless ignoreMissing', async h => {
    for (const n of ['zeta', 'alpha', 'Mid', '20260101T000000Z.json']) await h.writeFile(`d/${n}`, n)
    assert.deepEqual(await h.list('d'), ['20260101T000000Z.json', 'Mid', 'alpha', 'zeta'])
    await assert.rejects(h.list('nope'), { code: 'ENOENT' })
    assert.deepEqual(await h.list('nope', { ignoreMissing: true }), [])
  })

  withRemote('stat gives size and kind; paths cannot leave the root', async h => {
    await h.writeFile('f/one', Buffer.alloc(1234))
    const file = await h.stat('f/one')
    assert.equal(file.size, 1234)
    assert.equal(file.isDirectory, false)
    assert.ok(file.mtimeMs > 0, 'the file has a modification time')
    assert.equal((await h.stat('f')).isDirectory, true)
    await assert.rejects(h.stat('f/two'), { code: 'ENOENT' })
    await h.writeFile('../../escape', 'x')
    assert.ok((await h.list('')).includes('escape'), 'a path that climbs out of the root is written inside it, as escape')
    assert.equal((await h.readFile('/escape')).toString(), 'x')
  })

  withRemote('createReadStream reads ranges (end inclusive); a missing file rejects on open', async h => {
    const data = randomBytes(100_000)
    await h.writeFile('r/data', data)
    assert.deepEqual(await collect(await h.createReadStream('r/data')), data)
    assert.deepEqual(await collect(await h.createReadStream('r/data', { start: 10, end: 19 })), data.subarray(10, 20))
    assert.deepEqual(await collect(await h.createReadStream('r/data', { start: 99_990 })), data.subarray(99_990))
    await assert.rejects(h.createReadStream('r/none'), { code: 'ENOENT' })
  })

  withRemote('outputStream writes a stream atomically and returns its size', async h => {
    const hash = createHash('sha256')
    for await (const chunk of chunks(16, 1024 * 1024)) hash.update(chunk)
    const size = await h.outputStream('xo-vm-backups/vm/20260101T000000Z.xva', chunks(16, 1024 * 1024), { length: 16 * 1024 * 1024 })
    assert.equal(size, 16 * 1024 * 1024)
    const read = createHash('sha256')
    for await (const chunk of await h.createReadStream('xo-vm-backups/vm/20260101T000000Z.xva')) read.update(chunk)
    assert.equal(read.digest('hex'), hash.digest('hex'))
    assert.deepEqual(await h.list('xo-vm-backups/vm'), ['20260101T000000Z.xva'])
  })

  withRemote('outputStream commits nothing when the source fails, is short, or the validator refuses', async h => {
    async function* failing() {
      yield Buffer.alloc(4096, 1)
      throw new Error('export cut short')
    }
    await assert.rejects(h.outputStream('v/a.vhd', failing()), /export cut short/)
    await assert.rejects(h.outputStream('v/b.vhd', chunks(2, 512), { length: 4096 }), { code: 'REMOTE_WRITE_INCOMPLETE' })
    let validated: Buffer | undefined
    await assert.rejects(
      h.outputStream('v/c.vhd', chunks(1, 512), {
        async validator(temporary) {
          assert.match(temporary, /^v\/\..*\.tmp$/)
          validated = await h.readFile(temporary)
          throw new Error('not a VHD')
        },
      }),
      /not a VHD/,
    )
    assert.equal(validated?.length, 512)
    assert.deepEqual(await h.list('v'), [])
    const controller = new AbortController()
    async function* endless() {
      for (;;) {
        yield Buffer.alloc(65536)
        controller.abort()
      }
    }
    await assert.rejects(h.outputStream('v/d.vhd', endless(), { signal: controller.signal }))
    assert.deepEqual(await h.list('v'), [])
    // Readable streams are sources too.
    assert.equal(await h.outputStream('v/e', Readable.from([Buffer.from('ok')])), 2)
  })

  withRemote('a process killed during outputStream leaves no visible file, only a temporary one the cleaner recognizes', async (h, remote) => {
    const storage = fileURLToPath(new URL('../../source/storage/index.ts', import.meta.url))
    const script = `
      import { openRemote } from ${JSON.stringify(storage)}
      const remote = openRemote(process.env.REMOTE_URL)
      async function* endless() { for (;;) { yield Buffer.alloc(65536, 7); await new Promise(r => setTimeout(r, 1)) } }
      await remote.outputStream('xo-vm-backups/vm/20260101T000000Z.xva', endless())`
    const child = spawn(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], { env: { ...process.env, REMOTE_URL: remote.url }, stdio: 'ignore' })
    try {
      let names: string[] = []
      for (let i = 0; i < 200 && !names.some(n => n.endsWith('.tmp')); i++) {
        await sleep(50)
        names = await h.list('xo-vm-backups/vm', { ignoreMissing: true })
      }
      assert.ok(names.some(n => n.endsWith('.tmp')), 'the child process never started writing')
    } finally {
      child.kill('SIGKILL')
      await new Promise(resolve => child.once('exit', resolve))
    }
    const names = await h.list('xo-vm-backups/vm')
    assert.equal(names.length, 1)
    assert.match(names[0]!, TEMPORARY_FILE)
    assert.ok(names[0]!.startsWith('.20260101T000000Z.xva.'), 'the temporary file is named after the final one, with a leading dot')
  })

  withRemote('rename, unlink, rmdir, rmtree, mkdir -p', async h => {
    await h.mkdir('m/n/o')
    await h.mkdir('m/n/o')
    await h.writeFile('m/n/o/file', 'x')
    await h.rename('m/n/o/file', 'm/n/moved')
    assert.deepEqual(await h.list('m/n'), ['moved', 'o'])
    await assert.rejects(h.rmdir('m/n'), { code: 'ENOTEMPTY' })
    await h.rmdir('m/n/o')
    await h.unlink('m/n/moved')
    await assert.rejects(h.unlink('m/n/moved'), { code: 'ENOENT' })
    await h.writeFile('t/a/b/c', 'x')
    await h.rmtree('t')
    await h.rmtree('t')
    assert.deepEqual(await h.list('', { ignoreMissing: true }).then(l => l.filter(n => n === 't')), [])
  })

  withRemote('openFile gives random access; fileSystemAccess adapts it for the VHD library', async h => {
    await h.writeFile('vhd/disk.vhd', Buffer.alloc(4096, 1))
    const file = await h.openFile('vhd/disk.vhd', 'r+')
    try {
      await file.write(Buffer.alloc(512, 9), 1024)
      const buffer = Buffer.alloc(1024)
      assert.equal(await file.read(buffer, 512), 1024)
      assert.deepEqual(buffer, Buffer.concat([Buffer.alloc(512, 1), Buffer.alloc(512, 9)]))
      assert.equal(await file.read(Buffer.alloc(1000), 3596), 500)
      await file.write(Buffer.alloc(512, 2), 4096)
      assert.equal(await file.size(), 4608)
      await file.truncate(2048)
      assert.equal(await file.size(), 2048)
    } finally {
      await file.close()
    }
    const readOnly = await h.openFile('vhd/disk.vhd', 'r')
    await assert.rejects(readOnly.write(Buffer.alloc(1), 0))
    await readOnly.close()
    await assert.rejects(h.openFile('vhd/none.vhd', 'r'), { code: 'ENOENT' })

    const fs = fileSystemAccess(h)
    assert.equal(await fs.exists('vhd/disk.vhd'), true)
    assert.equal(await fs.exists('vhd/none.vhd'), false)
    await fs.writeFile('vhd/.disk.vhd.merge.json', '{"step":"cleanup"}')
    await fs.rename('vhd/.disk.vhd.merge.json', 'vhd/state.json')
    assert.equal((await fs.readFile('vhd/state.json')).toString(), '{"step":"cleanup"}')
    await fs.unlink('vhd/state.json')
    const opened = await fs.open('vhd/disk.vhd', 'r')
    assert.equal(await opened.size(), 2048)
    await opened.close()
  })

  withRemote('the VHD library reads and merges a chain stored on the remote through fileSystemAccess', async h => {
    const dir = 'xo-vm-backups/vm/vdis/job/vdi'
    const block = (fill: number) => Buffer.alloc(VHD_BLOCK_SIZE, fill)
    const parentUuid = '11111111-2222-4333-8444-555555555555'
    const childUuid = '66666666-7777-4888-9999-aaaaaaaaaaaa'
    async function* blocks(list: Array<[number, number]>) {
      for (const [index, fill] of list) yield { index, data: block(fill) }
    }
    const parent = createVhdStream({ size: 3 * VHD_BLOCK_SIZE, uuid: parentUuid, blockIndexes: [0, 2], blocks: blocks([[0, 1], [2, 2]]) })
    await h.outputStream(`${dir}/20260101T000000Z.vhd`, parent.stream, { length: parent.length })
    const child = createVhdStream({ size: 3 * VHD_BLOCK_SIZE, uuid: childUuid, blockIndexes: [1, 2], blocks: blocks([[1, 3], [2, 4]]), parent: { uuid: parentUuid, unicodeName: '20260101T000000Z.vhd' } })
    await h.outputStream(`${dir}/20260102T000000Z.vhd`, child.stream, { length: child.length })

    const fs = fileSystemAccess(h)
    const expected = Buffer.concat([block(1), block(3), block(4)])
    const chain = await VhdChain.open(`${dir}/20260102T000000Z.vhd`, { fs })
    try {
      assert.equal(chain.uuid, childUuid)
      assert.deepEqual(await chain.read(0, 3 * VHD_BLOCK_SIZE), expected)
    } finally {
      await chain.close()
    }
    const merged = await mergeVhdChain([`${dir}/20260101T000000Z.vhd`, `${dir}/20260102T000000Z.vhd`], { fs })
    assert.deepEqual(await h.list(dir), ['20260102T000000Z.vhd'])
    const after = await VhdChain.open(merged.path, { fs })
    try {
      assert.equal(after.uuid, childUuid)
      assert.deepEqual(await after.read(0, 3 * VHD_BLOCK_SIZE), expected)
    } finally {
      await after.close()
    }
  })

  withRemote('getInfo reports consistent sizes, or nothing when the backend cannot tell', async h => {
    const info = await h.getInfo()
    if ('size' in info) {
      assert.ok(info.size > 0, 'the remote reports a size above 0')
      assert.ok(info.available >= 0 && info.available <= info.size, 'the available space is between 0 and the size')
      assert.ok(info.used >= 0 && info.used <= info.size, 'the used space is between 0 and the size')
    } else assert.deepEqual(info, {})
  })

  withRemote('lock: a second holder is refused with REMOTE_LOCKED until the first releases', async h => {
    const first = await h.lock('xo-vm-backups/vm1')
    await assert.rejects(h.lock('xo-vm-backups/vm1'), { code: 'REMOTE_LOCKED' })
    const other = await h.lock('xo-vm-backups/vm2')
    await other.release()
    await first.release()
    await first.release()
    const again = await h.lock('xo-vm-backups/vm1')
    assert.equal(again.compromised, false)
    await again.release()
    assert.deepEqual((await h.list('xo-vm-backups')).filter(n => n.endsWith('.lock')), [])
  })

  withRemote('lock: a refreshed lock stays held; an abandoned one is taken over as stale', async h => {
    const kept = await h.lock('vm', { staleMs: 300, refreshMs: 50 })
    await sleep(600)
    await assert.rejects(h.lock('vm', { staleMs: 300 }), { code: 'REMOTE_LOCKED' })
    assert.equal(kept.compromised, false)
    await kept.release()

    // An abandoned lock (its holder died: it is never refreshed).
    const abandoned = await h.lock('vm', { staleMs: 100, refreshMs: 1e9 })
    await sleep(250)
    const takenOver = await h.lock('vm', { staleMs: 100, refreshMs: 30 })
    await assert.rejects(h.lock('vm', { staleMs: 100 }), { code: 'REMOTE_LOCKED' })
    // The old holder's release must not remove the new holder's lock.
    await abandoned.release()
    await assert.rejects(h.lock('vm', { staleMs: 100 }), { code: 'REMOTE_LOCKED' })
    await takenOver.release()
    await (await h.lock('vm')).release()
  })
}

