// The one test suite every storage backend must pass (restic style): a backend is done when this is green
// on its real server. It asserts contracts, not mechanisms: what a caller can see, whatever the store does
// underneath. Each test runs twice: on the bare backend, and on it decorated as openRemote decorates every
// remote (retries, the request bound, logging). Call it with a factory that gives a fresh, empty remote.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { spawn } from 'node:child_process'
import { createHash, randomBytes } from 'node:crypto'
import { Readable } from 'node:stream'
import { fileURLToPath } from 'node:url'
import { BackendHandler, decorate, fileSystemAccess, type Backend, type RemoteHandler } from '../../source/storage/index.ts'
import { createVhdStream, mergeVhdChain, VHD_BLOCK_SIZE, VhdChain } from '../../source/formats/vhd/index.ts'

export interface ConformanceRemote {
  /** The bare backend of a fresh, empty remote. */
  backend: Backend
  /** The URL of the same remote, opened with openRemote in a child process for the crash test. */
  url: string
  cleanup(): Promise<void>
}

export interface ConformanceOptions {
  /** staleMs for the lock tests: at least twice the store's time resolution (S3 keeps seconds). Default 300 ms. */
  lockStaleMs?: number
}

async function collect(stream: AsyncIterable<unknown>): Promise<Buffer> {
  const chunks: Buffer[] = []
  for await (const chunk of stream) chunks.push(chunk as Buffer)
  return Buffer.concat(chunks)
}

async function* chunks(count: number, size: number, seed = 1): AsyncGenerator<Buffer> {
  for (let i = 0; i < count; i++) yield Buffer.alloc(size, (i + seed) & 0xff)
}

const sleep = (ms: number) => new Promise(resolve => setTimeout(resolve, ms))

async function absent(h: RemoteHandler, path: string): Promise<void> {
  await assert.rejects(h.stat(path), { code: 'ENOENT' }, `${path} must not be visible`)
  const dir = path.split('/').slice(0, -1).join('/')
  const name = path.split('/').at(-1)!
  assert.ok(!(await h.list(dir)).includes(name), `${path} must not be listed`)
}

export function runConformanceSuite(name: string, createRemote: () => Promise<ConformanceRemote>, options: ConformanceOptions = {}): void {
  const staleMs = options.lockStaleMs ?? 300
  const withRemote = (title: string, fn: (handler: RemoteHandler, remote: ConformanceRemote) => Promise<void>) => {
    for (const variant of ['bare', 'decorated'] as const) {
      test(`${name} (${variant}): ${title}`, async () => {
        const remote = await createRemote()
        const handler = new BackendHandler(variant === 'bare' ? remote.backend : decorate(remote.backend, { log: () => {} }))
        try {
          await handler.sync()
          await fn(handler, remote)
        } finally {
          await handler.close()
          await remote.cleanup()
        }
      })
    }
  }

  withRemote('buffers round trip; a write replaces; write-if-absent refuses an existing object and keeps it', async h => {
    await h.writeFile('a/b/c.json', '{"x":1}')
    assert.equal((await h.readFile('a/b/c.json')).toString(), '{"x":1}')
    await h.writeFile('a/b/c.json', Buffer.from('second'))
    assert.equal((await h.readFile('a/b/c.json')).toString(), 'second')
    await assert.rejects(h.writeFile('a/b/c.json', 'third', { flag: 'wx' }), { code: 'EEXIST' })
    assert.equal((await h.readFile('a/b/c.json')).toString(), 'second')
    await h.writeFile('a/b/d.json', 'new', { flag: 'wx' })
    assert.deepEqual(await h.list('a/b'), ['c.json', 'd.json'])
    await assert.rejects(h.readFile('a/missing'), { code: 'ENOENT' })
    await h.writeFile('a/empty', Buffer.alloc(0))
    assert.equal((await h.readFile('a/empty')).length, 0)
  })

  withRemote('list gives the direct children, sorted, folders among them; a missing folder is empty', async h => {
    for (const n of ['zeta', 'alpha', 'Mid', '20260101T000000Z.json', 'sub/deep/x', 'sub/y']) await h.writeFile(`d/${n}`, n)
    assert.deepEqual(await h.list('d'), ['20260101T000000Z.json', 'Mid', 'alpha', 'sub', 'zeta'])
    assert.deepEqual(await h.list('d/sub'), ['deep', 'y'])
    assert.deepEqual(await h.list('nope'), [])
    assert.deepEqual(await h.list('d/zeta/not-a-folder').catch(() => []), [], 'a file is not a folder')
  })

  withRemote('list pages past 1000 entries: every entry once, in order, through the cursor', async (h, remote) => {
    const names = Array.from({ length: 1005 }, (_, i) => `k${String(i).padStart(5, '0')}`)
    for (let i = 0; i < names.length; i += 25) await Promise.all(names.slice(i, i + 25).map(n => h.writeFile(`many/${n}`, n)))
    assert.deepEqual(await h.list('many'), names)
    const paged: string[] = []
    let cursor: string | undefined
    let pages = 0
    do {
      const page = await remote.backend.list('many', { limit: 300, ...(cursor !== undefined && { cursor }) })
      assert.ok(page.entries.length <= 300, `a page holds at most the limit (${page.entries.length})`)
      paged.push(...page.entries.map(e => e.name))
      cursor = page.next
      pages++
    } while (cursor !== undefined)
    assert.deepEqual(paged, names)
    assert.equal(pages, 4)
  })

  withRemote('stat gives size, time and kind; a name prefix with objects under it is a folder; paths cannot leave the root', async h => {
    await h.writeFile('f/one', Buffer.alloc(1234))
    const file = await h.stat('f/one')
    assert.equal(file.size, 1234)
    assert.equal(file.isDirectory, false)
    assert.ok(Math.abs(file.mtimeMs - Date.now()) < 10 * 60_000, 'the file has a modification time near now')
    assert.equal((await h.stat('f')).isDirectory, true)
    await assert.rejects(h.stat('f/two'), { code: 'ENOENT' })
    await h.writeFile('../../escape', 'x')
    assert.ok((await h.list('')).includes('escape'), 'a path that climbs out of the root is written inside it, as escape')
    assert.equal((await h.readFile('/escape')).toString(), 'x')
  })

  withRemote('a range read returns exactly those bytes (end inclusive); a missing object rejects on open', async h => {
    const data = randomBytes(100_000)
    await h.writeFile('r/data', data)
    assert.deepEqual(await collect(await h.createReadStream('r/data')), data)
    assert.deepEqual(await collect(await h.createReadStream('r/data', { start: 10, end: 19 })), data.subarray(10, 20))
    assert.deepEqual(await collect(await h.createReadStream('r/data', { start: 0, end: 0 })), data.subarray(0, 1))
    assert.deepEqual(await collect(await h.createReadStream('r/data', { start: 99_990 })), data.subarray(99_990))
    assert.deepEqual(await collect(await h.createReadStream('r/data', { start: 65_530, end: 99_999 })), data.subarray(65_530))
    await assert.rejects(h.createReadStream('r/none'), { code: 'ENOENT' })
  })

  withRemote('a stream is written whole, with its length, and reads back the same', async h => {
    const hash = createHash('sha256')
    for await (const chunk of chunks(16, 1024 * 1024 + 7)) hash.update(chunk)
    const length = 16 * (1024 * 1024 + 7)
    const size = await h.outputStream('xo-vm-backups/vm/20260101T000000Z.xva', chunks(16, 1024 * 1024 + 7), { length })
    assert.equal(size, length)
    assert.equal((await h.stat('xo-vm-backups/vm/20260101T000000Z.xva')).size, length)
    const read = createHash('sha256')
    for await (const chunk of await h.createReadStream('xo-vm-backups/vm/20260101T000000Z.xva')) read.update(chunk)
    assert.equal(read.digest('hex'), hash.digest('hex'))
    assert.deepEqual(await h.list('xo-vm-backups/vm'), ['20260101T000000Z.xva'])
    // Readable streams are sources too, and the length is optional.
    assert.equal(await h.outputStream('v/e', Readable.from([Buffer.from('ok')])), 2)
    assert.equal((await h.readFile('v/e')).toString(), 'ok')
  })

  withRemote('an interrupted write leaves no visible object: a failing source, a short one, an abort', async h => {
    await h.writeFile('v/kept', 'before')
    async function* failing() {
      yield Buffer.alloc(4096, 1)
      throw new Error('export cut short')
    }
    await assert.rejects(h.outputStream('v/a.vhd', failing()), /export cut short/)
    await absent(h, 'v/a.vhd')
    await assert.rejects(h.outputStream('v/b.vhd', chunks(2, 512), { length: 4096 }), { code: 'REMOTE_WRITE_INCOMPLETE' })
    await absent(h, 'v/b.vhd')
    await assert.rejects(h.outputStream('v/kept', chunks(2, 512), { length: 4096 }), { code: 'REMOTE_WRITE_INCOMPLETE' })
    assert.equal((await h.readFile('v/kept')).toString(), 'before', 'a failed write does not touch the object it would have replaced')
    const controller = new AbortController()
    async function* endless() {
      for (let i = 0; ; i++) {
        yield Buffer.alloc(65536)
        if (i === 3) controller.abort()
      }
    }
    await assert.rejects(h.outputStream('v/d.vhd', endless(), { signal: controller.signal }))
    await absent(h, 'v/d.vhd')
  })

  withRemote('a process killed during a write leaves no visible object', async (h, remote) => {
    const storage = fileURLToPath(new URL('../../source/storage/index.ts', import.meta.url))
    const script = `
      import { openRemote } from ${JSON.stringify(storage)}
      const remote = openRemote(JSON.parse(process.env.REMOTE_URL))
      await remote.sync()
      async function* endless() {
        for (let i = 0; ; i++) {
          yield Buffer.alloc(1024 * 1024, 7)
          if (i === 8) process.stdout.write('writing\\n')
          await new Promise(r => setTimeout(r, 5))
        }
      }
      await remote.outputStream('xo-vm-backups/vm/20260101T000000Z.xva', endless())`
    // JSON-encoded: an SMB URL holds a NUL (XO's form), which an environment variable cannot.
    const child = spawn(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], { env: { ...process.env, REMOTE_URL: JSON.stringify(remote.url) }, stdio: ['ignore', 'pipe', 'inherit'] })
    try {
      const started = await new Promise<boolean>(resolve => {
        child.stdout!.on('data', (data: Buffer) => data.toString().includes('writing') && resolve(true))
        child.once('exit', () => resolve(false))
      })
      assert.ok(started, 'the child process never started writing')
    } finally {
      child.kill('SIGKILL')
      await new Promise(resolve => (child.exitCode !== null || child.signalCode !== null ? resolve(undefined) : child.once('exit', resolve)))
    }
    await absent(h, 'xo-vm-backups/vm/20260101T000000Z.xva')
  })

  withRemote('delete: many at once, a missing object is not an error; rmtree removes a folder and only it', async (h, remote) => {
    for (const n of ['a', 'b', 'c']) await h.writeFile(`del/${n}`, n)
    await h.unlink('del/a')
    await h.unlink('del/a')
    await remote.backend.delete(['del/b', 'del/none', 'del/c'])
    assert.deepEqual(await h.list('del'), [])
    await h.writeFile('t/a/b/c', 'x')
    await h.writeFile('t/a/d', 'x')
    await h.writeFile('t/e', 'x')
    await h.writeFile('tt/kept', 'x')
    await h.writeFile('t.json', 'x')
    await h.rmtree('t')
    await h.rmtree('t')
    await h.rmtree('never-there')
    const root = await h.list('')
    assert.ok(!root.includes('t'), 't is gone')
    assert.ok(root.includes('tt') && root.includes('t.json'), 'names that only start like the folder are kept')
    assert.equal((await h.readFile('tt/kept')).toString(), 'x')
  })

  withRemote('rename moves an object over another; rmdir refuses a folder with something in it', async h => {
    await h.mkdir('m/n/o')
    await h.mkdir('m/n/o')
    await h.writeFile('m/n/o/file', 'x')
    await h.writeFile('m/n/target', 'old')
    await h.rename('m/n/o/file', 'm/n/target')
    assert.equal((await h.readFile('m/n/target')).toString(), 'x')
    await absent(h, 'm/n/o/file')
    await assert.rejects(h.rmdir('m/n'), { code: 'ENOTEMPTY' })
    await h.rmdir('m/n/o')
    await h.unlink('m/n/target')
    await h.rmdir('m/n')
    assert.deepEqual((await h.list('m')).filter(n => n === 'n'), [])
  })

  withRemote('openFile reads at any position; it writes in place only where the backend has random writes', async h => {
    const data = randomBytes(4096)
    await h.writeFile('vhd/disk.vhd', data)
    const file = await h.openFile('vhd/disk.vhd', 'r')
    try {
      const buffer = Buffer.alloc(1024)
      assert.equal(await file.read(buffer, 512), 1024)
      assert.deepEqual(buffer, data.subarray(512, 1536))
      assert.equal(await file.read(Buffer.alloc(1000), 3596), 500, 'a read past the end is short')
      assert.equal(await file.read(Buffer.alloc(10), 5000), 0)
      assert.equal(await file.size(), 4096)
      await assert.rejects(file.write(Buffer.alloc(1), 0))
    } finally {
      await file.close()
    }
    await assert.rejects(h.openFile('vhd/none.vhd', 'r'), { code: 'ENOENT' })
    if (!h.capabilities.randomWrite) {
      await assert.rejects(h.openFile('vhd/disk.vhd', 'r+'), { code: 'NOT_SUPPORTED' })
      return
    }
    const writable = await h.openFile('vhd/disk.vhd', 'r+')
    try {
      await writable.write(Buffer.alloc(512, 9), 1024)
      await writable.write(Buffer.alloc(512, 2), 4096)
      assert.equal(await writable.size(), 4608)
      await writable.truncate(2048)
      assert.equal(await writable.size(), 2048)
    } finally {
      await writable.close()
    }
    assert.deepEqual(await h.readFile('vhd/disk.vhd'), Buffer.concat([data.subarray(0, 1024), Buffer.alloc(512, 9), data.subarray(1536, 2048)]))
  })

  withRemote('the VHD library reads a chain stored on the remote; it merges in place only where random writes exist', async h => {
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
    assert.equal(await fs.exists(`${dir}/20260101T000000Z.vhd`), true)
    assert.equal(await fs.exists(`${dir}/none.vhd`), false)
    const expected = Buffer.concat([block(1), block(3), block(4)])
    const chain = await VhdChain.open(`${dir}/20260102T000000Z.vhd`, { fs })
    try {
      assert.equal(chain.uuid, childUuid)
      assert.deepEqual(await chain.read(0, 3 * VHD_BLOCK_SIZE), expected)
    } finally {
      await chain.close()
    }
    const merging = mergeVhdChain([`${dir}/20260101T000000Z.vhd`, `${dir}/20260102T000000Z.vhd`], { fs })
    if (!h.capabilities.randomWrite) {
      await assert.rejects(merging, { code: 'NOT_SUPPORTED' })
      return
    }
    const merged = await merging
    assert.deepEqual(await h.list(dir), ['20260102T000000Z.vhd'])
    const after = await VhdChain.open(merged.path, { fs })
    try {
      assert.equal(after.uuid, childUuid)
      assert.deepEqual(await after.read(0, 3 * VHD_BLOCK_SIZE), expected)
    } finally {
      await after.close()
    }
  })

  withRemote('info reports consistent sizes where free space is known, and nothing elsewhere', async h => {
    const info = await h.getInfo()
    if (!h.capabilities.freeSpaceKnown) {
      assert.deepEqual(info, {})
      return
    }
    assert.ok('size' in info, 'a backend that knows its free space reports it')
    assert.ok(info.size > 0, 'the remote reports a size above 0')
    assert.ok(info.available >= 0 && info.available <= info.size, 'the available space is between 0 and the size')
    assert.ok(info.used >= 0 && info.used <= info.size, 'the used space is between 0 and the size')
  })

  withRemote('lock: a second holder is refused with REMOTE_LOCKED until the first releases; nothing is left after', async h => {
    const first = await h.lock('xo-vm-backups/vm1', { staleMs: staleMs * 100 })
    await assert.rejects(h.lock('xo-vm-backups/vm1', { staleMs: staleMs * 100 }), { code: 'REMOTE_LOCKED' })
    const other = await h.lock('xo-vm-backups/vm2')
    await other.release()
    await first.release()
    await first.release()
    const again = await h.lock('xo-vm-backups/vm1')
    assert.equal(again.compromised, false)
    await again.release()
    assert.deepEqual((await h.list('xo-vm-backups')).filter(n => n.endsWith('.lock')), [])
  })

  withRemote('lock: of lockers racing for the same lock at most one holds it', async h => {
    const attempts = await Promise.allSettled(Array.from({ length: 4 }, () => h.lock('xo-vm-backups/race', { staleMs: staleMs * 100 })))
    const held = attempts.filter(a => a.status === 'fulfilled')
    assert.ok(held.length <= 1, `${held.length} lockers hold the lock at once`)
    for (const attempt of attempts) if (attempt.status === 'rejected') assert.equal((attempt.reason as { code?: string }).code, 'REMOTE_LOCKED')
    for (const attempt of held) await attempt.value.release()
    await (await h.lock('xo-vm-backups/race')).release()
  })

  withRemote('lock: a refreshed lock stays held; an abandoned one is taken over, and its old holder cannot release it', async h => {
    const kept = await h.lock('vm', { staleMs, refreshMs: Math.floor(staleMs / 6) })
    await sleep(staleMs * 1.6)
    await assert.rejects(h.lock('vm', { staleMs }), { code: 'REMOTE_LOCKED' })
    assert.equal(kept.compromised, false)
    await kept.release()

    // An abandoned lock (its holder hangs: it is never refreshed).
    const abandoned = await h.lock('vm', { staleMs, refreshMs: 1e9 })
    await sleep(staleMs * 1.6)
    const takenOver = await h.lock('vm', { staleMs, refreshMs: Math.floor(staleMs / 6) })
    await assert.rejects(h.lock('vm', { staleMs }), { code: 'REMOTE_LOCKED' })
    // The old holder's release must not remove the new holder's lock.
    await abandoned.release()
    await assert.rejects(h.lock('vm', { staleMs }), { code: 'REMOTE_LOCKED' })
    await takenOver.release()
    await (await h.lock('vm')).release()
  })
}
