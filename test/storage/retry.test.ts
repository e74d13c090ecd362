import { test } from 'node:test'
import assert from 'node:assert/strict'
import { LocalHandler, withRetries, type RemoteHandler } from '../../source/storage/index.ts'
import { tempDir } from '../helpers/tools.ts'

function codedError(code: string): Error {
  return Object.assign(new Error(code), { code })
}

/** A real local remote whose chosen operation fails with the given codes first (a flaky NFS server). */
function flaky(inner: RemoteHandler, operation: 'readFile' | 'list' | 'writeFile', failures: string[]): RemoteHandler & { calls: number } {
  const wrapper = Object.create(inner) as RemoteHandler & { calls: number }
  wrapper.calls = 0
  const original = inner[operation].bind(inner) as (...args: unknown[]) => Promise<unknown>
  ;(wrapper as unknown as Record<string, unknown>)[operation] = async (...args: unknown[]) => {
    const failure = failures[wrapper.calls++]
    if (failure !== undefined) throw codedError(failure)
    return original(...args)
  }
  return wrapper
}

test('transient errors are retried with the policy delays, then succeed', async () => {
  const dir = await tempDir()
  try {
    const local = new LocalHandler(dir.path)
    await local.writeFile('a', 'x')
    const inner = flaky(local, 'readFile', ['EIO', 'ECONNRESET'])
    const retried: string[] = []
    const handler = withRetries(inner, { delaysMs: [1, 1, 1], onRetry: (op, error) => retried.push(`${op}: ${(error as Error).message}`) })
    assert.equal((await handler.readFile('a')).toString(), 'x')
    assert.equal(inner.calls, 3)
    assert.deepEqual(retried, ['read a: EIO', 'read a: ECONNRESET'])
  } finally {
    await dir.cleanup()
  }
})

test('errors that retrying cannot fix are not retried; retries stop after the last delay', async () => {
  const dir = await tempDir()
  try {
    const local = new LocalHandler(dir.path)
    for (const code of ['ENOENT', 'EEXIST', 'ENOTEMPTY', 'REMOTE_FULL', 'REMOTE_LOCKED']) {
      const inner = flaky(local, 'list', [code, code])
      await assert.rejects(withRetries(inner, { delaysMs: [1, 1] }).list(''), { code })
      assert.equal(inner.calls, 1, code)
    }
    const inner = flaky(local, 'list', ['EIO', 'EIO', 'EIO', 'EIO'])
    await assert.rejects(withRetries(inner, { delaysMs: [1, 1] }).list(''), { code: 'EIO' })
    assert.equal(inner.calls, 3)
  } finally {
    await dir.cleanup()
  }
})

test('a retried exclusive write is downgraded to a plain write (its first attempt may have landed)', async () => {
  const dir = await tempDir()
  try {
    const local = new LocalHandler(dir.path)
    const flags: Array<string | undefined> = []
    const inner = Object.create(local) as RemoteHandler
    let calls = 0
    inner.writeFile = async (path, data, options) => {
      flags.push(options?.flag)
      await local.writeFile(path, data, options)
      if (calls++ === 0) throw codedError('ETIMEDOUT')
    }
    await withRetries(inner, { delaysMs: [1] }).writeFile('x', 'data', { flag: 'wx' })
    assert.deepEqual(flags, ['wx', 'w'])
  } finally {
    await dir.cleanup()
  }
})

test('an operation that hangs fails with REMOTE_TIMEOUT', async () => {
  const dir = await tempDir()
  try {
    const inner = Object.create(new LocalHandler(dir.path)) as RemoteHandler
    inner.stat = () => new Promise(() => {})
    await assert.rejects(withRetries(inner, { delaysMs: [1], timeoutMs: 50 }).stat('x'), { code: 'REMOTE_TIMEOUT' })
  } finally {
    await dir.cleanup()
  }
})
