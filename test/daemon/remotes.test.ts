// The daemon's remote test and info on a local folder, and on a local folder made to misbehave (a range
// ignored, a byte flipped, a delete ignored, a full disk): the test catches each and names the step, and
// leaves nothing behind.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { mkdir, readdir } from 'node:fs/promises'
import { join } from 'node:path'
import { Readable } from 'node:stream'
import { Remotes } from '../../source/daemon/remotes.ts'
import { openRemote, remoteFull, type RemoteHandler } from '../../source/storage/index.ts'
import { LifeboatError } from '../../source/util/errors.ts'
import { tempDir } from '../helpers/tools.ts'

const MiB = 1024 * 1024

/** Remotes whose handlers are local folders with some methods replaced (the rest bound to the real handler). */
function misbehaving(overrides: (real: RemoteHandler) => Partial<RemoteHandler>): Remotes {
  return new Remotes(url => {
    const real = openRemote(url, { retry: false })
    const replaced = overrides(real) as Record<PropertyKey, unknown>
    return new Proxy(real, {
      get(target, key) {
        if (key in replaced) return replaced[key]
        const value = Reflect.get(target, key)
        return typeof value === 'function' ? value.bind(target) : value
      },
    })
  })
}

async function withRemote(remotes: Remotes, body: (folder: string) => Promise<void>, query = ''): Promise<void> {
  const dir = await tempDir('lifeboat-remote-test-')
  const folder = join(dir.path, 'remote')
  await mkdir(folder)
  try {
    await remotes.open('r', `file://${folder}${query}`, { mustBeReachable: true })
    await body(folder)
  } finally {
    await remotes.closeAll()
    await dir.cleanup()
  }
}

async function failsAt(remotes: Remotes, step: RegExp, code: string): Promise<void> {
  await withRemote(remotes, async folder => {
    await assert.rejects(remotes.test('r', 3 * MiB + 123), (error: LifeboatError) => {
      assert.equal(error.code, 'REMOTE_TEST_FAILED', error.message)
      assert.match(error.message, step, 'the message names the step')
      assert.equal(error.data?.code, code, 'the cause is kept as data')
      return true
    })
    assert.deepEqual(await readdir(folder), [], 'the probe files are deleted after a failure too')
  })
}

test('remote test on a local folder: speeds, a compared range, latencies, and nothing left behind', async () => {
  const remotes = new Remotes()
  await withRemote(remotes, async folder => {
    const result = await remotes.test('r', 3 * MiB + 123)
    assert.equal(result.bytes, 3 * MiB + 123)
    assert.ok(result.writeMiBps > 0 && result.readMiBps > 0, 'both speeds are measured')
    assert.ok(result.range.start > 0 && result.range.start % 4096 !== 0, `the range starts at an odd offset (${result.range.start})`)
    assert.equal(result.range.length, MiB)
    assert.equal(result.samples, 5)
    for (const [what, value] of Object.entries(result.latencyMs)) assert.ok(value >= 0 && Number.isFinite(value), `${what} latency is a duration`)
    assert.deepEqual(await readdir(folder), [], 'the probe and the small files are deleted')
  })
})

test('remote test: a backend that ignores ranges fails at the range read', async () => {
  await failsAt(misbehaving(real => ({ createReadStream: path => real.createReadStream(path) })), /while reading a range of the probe: REMOTE_CORRUPT: .*other bytes/, 'REMOTE_CORRUPT')
})

test('remote test: a backend that flips a byte fails at the read back', async () => {
  const flip = (real: RemoteHandler): Partial<RemoteHandler> => ({
    async createReadStream(path, range) {
      const chunks: Buffer[] = []
      for await (const chunk of await real.createReadStream(path, range)) chunks.push(chunk as Buffer)
      const data = Buffer.concat(chunks)
      data[data.length >> 1] ^= 1
      return Readable.from([data])
    },
  })
  await failsAt(misbehaving(flip), /while reading the probe back: REMOTE_CORRUPT/, 'REMOTE_CORRUPT')
})

test('remote test: a full remote fails at the write, with its code', async () => {
  await failsAt(misbehaving(real => ({ outputStream: () => Promise.reject(remoteFull(real.label, new Error('ENOSPC'))) })), /while writing a 3\.0 MiB probe file: REMOTE_FULL: The remote file:\/\/.* is full/, 'REMOTE_FULL')
})

test('remote test: a delete that does nothing is caught', async () => {
  let deleting = true
  const remotes = misbehaving(real => ({ unlink: path => (deleting ? Promise.resolve() : real.unlink(path)) }))
  await withRemote(remotes, async folder => {
    await assert.rejects(remotes.test('r', MiB), /while checking that the probe file is gone: REMOTE_DELETE_IGNORED/)
    deleting = false
    // What the broken delete left: the test's own clean-up could not remove it either.
    assert.ok((await readdir(folder)).some(name => name.startsWith('.lifeboat-probe-')), 'the probe is still there')
  })
})

test('remote info: type, redacted URL, free space, encryption off, VHD files or VhdDirectory', async () => {
  const remotes = new Remotes()
  await withRemote(remotes, async () => {
    const info = await remotes.info('r')
    assert.equal(info.type, 'file')
    assert.equal(info.status, 'ok')
    assert.ok(info.space !== undefined && info.space.free > 0, 'a local folder knows its free space')
    assert.equal(info.encryption, false)
    assert.equal(info.vhdDirectory, false)
  })
  await withRemote(remotes, async () => assert.equal((await remotes.info('r')).vhdDirectory, true, 'useVhdDirectory=true is shown'), '?useVhdDirectory=true')
  await assert.rejects(remotes.info('nope'), { code: 'REMOTE_NOT_FOUND' })
})

test('a remote opened in the background (on a proxy, at start-up) is kept at once; a sync that fails later is its status, with its code', async () => {
  let fail: (error: Error) => void = () => {}
  const remotes = new Remotes(url => {
    const real = openRemote(url, { retry: false })
    return new Proxy(real, {
      get(target, key) {
        if (key === 'sync') return () => new Promise<void>((_, reject) => (fail = reject))
        const value = Reflect.get(target, key)
        return typeof value === 'function' ? value.bind(target) : value
      },
    })
  })
  const dir = await tempDir('lifeboat-remote-background-')
  try {
    await remotes.open('edge-store', `file://${dir.path}`, { proxy: 'edge', inBackground: true })
    assert.ok(remotes.has('edge-store'), 'the remote is there before its sync ended')
    assert.equal((await remotes.describe('edge-store')).proxy, 'edge', 'it says which proxy it lives on')
    fail(new LifeboatError('PROXY_UNREACHABLE', 'ssh could not reach the proxy "edge"'))
    await new Promise(resolve => setImmediate(resolve))
    const described = await remotes.describe('edge-store')
    assert.equal(described.status, 'error', 'a failed sync makes its status error')
    assert.equal(described.error?.code, 'PROXY_UNREACHABLE', 'with the code of the failure')
  } finally {
    await remotes.closeAll()
    await dir.cleanup()
  }
})
