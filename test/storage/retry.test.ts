// The decorators every backend is wrapped in: retries (XO's delays and final codes), the bound on parallel
// requests, and the failure log. Each is run around a real local backend whose chosen operation misbehaves.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { BackendHandler, LocalBackend, withConcurrencyLimit, withLogging, withRetries, type Backend } from '../../source/storage/index.ts'
import { alreadyRetried } from '../../source/storage/errors.ts'
import { tempDir } from '../helpers/tools.ts'

function codedError(code: string): Error {
  return Object.assign(new Error(code), { code })
}

/** `inner` with some operations replaced; the others still run on it. */
function override(inner: LocalBackend, replaced: Partial<Backend>): Backend {
  const bound: Record<string, unknown> = { label: inner.label, capabilities: inner.capabilities }
  for (const name of ['sync', 'close', 'info', 'list', 'stat', 'read', 'write', 'delete', 'rename', 'open', 'mkdir', 'rmdir', 'rmtree', 'lock'] as const) bound[name] = inner[name].bind(inner)
  return { ...(bound as unknown as Backend), ...replaced }
}

/** A real local backend whose chosen operation fails with the given codes first (a flaky NFS server, an S3 hiccup). */
function flaky(inner: LocalBackend, operation: 'read' | 'list' | 'write', failures: string[]): Backend & { calls: number } {
  const original = inner[operation].bind(inner) as (...args: unknown[]) => Promise<unknown>
  const wrapper = override(inner, {
    [operation]: async (...args: unknown[]) => {
      const failure = failures[wrapper.calls++]
      if (failure !== undefined) throw codedError(failure)
      return original(...args)
    },
  }) as Backend & { calls: number }
  wrapper.calls = 0
  return wrapper
}

async function text(stream: AsyncIterable<unknown>): Promise<string> {
  let out = ''
  for await (const chunk of stream) out += String(chunk)
  return out
}

test('transient errors are retried with the policy delays, then succeed', async () => {
  const dir = await tempDir()
  try {
    const local = new LocalBackend(dir.path)
    await local.write('a', 'x')
    const inner = flaky(local, 'read', ['EIO', 'ECONNRESET'])
    const retried: string[] = []
    const backend = withRetries(inner, { delaysMs: [1, 1, 1], onRetry: (op, error) => retried.push(`${op}: ${(error as Error).message}`) })
    assert.equal(await text(await backend.read('a')), 'x')
    assert.equal(inner.calls, 3)
    assert.deepEqual(retried, ['read a: EIO', 'read a: ECONNRESET'])
  } finally {
    await dir.cleanup()
  }
})

test('errors that retrying cannot fix are not retried (XO: no retry on 401/403/404/405); retries stop after the last delay', async () => {
  const dir = await tempDir()
  try {
    const local = new LocalBackend(dir.path)
    for (const code of ['ENOENT', 'EEXIST', 'ENOTEMPTY', 'REMOTE_FULL', 'REMOTE_LOCKED', 'REMOTE_AUTH', 'REMOTE_CERTIFICATE', 'REMOTE_BAD_URL', 'REMOTE_BAD_KEY', 'REMOTE_DECRYPT_FAILED', 'NOT_SUPPORTED', 'REMOTE_WRITE_INCOMPLETE']) {
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

test('an error its backend already retried (NFS reconnected and resent) is not retried again: the waits would multiply', async () => {
  const dir = await tempDir()
  try {
    const local = new LocalBackend(dir.path)
    let calls = 0
    const inner = override(local, {
      list: async () => {
        calls++
        throw alreadyRetried(codedError('REMOTE_UNAVAILABLE'))
      },
    })
    await assert.rejects(withRetries(inner, { delaysMs: [1, 1, 1] }).list(''), { code: 'REMOTE_UNAVAILABLE' })
    assert.equal(calls, 1, 'one attempt: the backend had made its own')
  } finally {
    await dir.cleanup()
  }
})

test('a retried exclusive write is downgraded to a plain write (its first attempt may have landed); a stream is never retried', async () => {
  const dir = await tempDir()
  try {
    const local = new LocalBackend(dir.path)
    const flags: Array<boolean | undefined> = []
    let calls = 0
    const inner = override(local, {
      write: async (path, data, options) => {
        flags.push(options?.ifAbsent)
        const size = await local.write(path, data, options)
        if (calls++ === 0) throw codedError('ETIMEDOUT')
        return size
      },
    })
    await withRetries(inner, { delaysMs: [1] }).write('x', 'data', { ifAbsent: true })
    assert.deepEqual(flags, [true, false])

    const streamed = flaky(local, 'write', ['ECONNRESET'])
    await assert.rejects(withRetries(streamed, { delaysMs: [1, 1] }).write('y', (async function* () { yield Buffer.from('once') })()), { code: 'ECONNRESET' })
    assert.equal(streamed.calls, 1, 'a stream is consumed once: its write is not retried')
  } finally {
    await dir.cleanup()
  }
})

test('an operation that hangs fails with REMOTE_TIMEOUT', async () => {
  const dir = await tempDir()
  try {
    const inner = override(new LocalBackend(dir.path), { stat: () => new Promise(() => {}) })
    await assert.rejects(withRetries(inner, { delaysMs: [1], timeoutMs: 50 }).stat('x'), { code: 'REMOTE_TIMEOUT' })
  } finally {
    await dir.cleanup()
  }
})

test('the parallel-request bound holds every operation to its count, and lets the rest through in turn', async () => {
  const dir = await tempDir()
  try {
    const local = new LocalBackend(dir.path)
    let running = 0
    let most = 0
    const inner = override(local, {
      stat: async path => {
        most = Math.max(most, ++running)
        await new Promise(resolve => setImmediate(resolve))
        running--
        return local.stat(path)
      },
    })
    const bounded = withConcurrencyLimit(inner, 3)
    await local.write('f', 'x')
    const stats = await Promise.all(Array.from({ length: 20 }, () => bounded.stat('f')))
    assert.equal(stats.length, 20)
    assert.equal(most, 3)
  } finally {
    await dir.cleanup()
  }
})

test('the failure log names the operation, the path and the code, and nothing of the data', async () => {
  const dir = await tempDir()
  try {
    const lines: string[] = []
    const inner = flaky(new LocalBackend(dir.path, 'file:///remote'), 'write', ['EIO'])
    const logged = withLogging(inner, line => lines.push(line))
    await assert.rejects(logged.write('xo-vm-backups/vm/a.json', 'SECRET-CONTENT'), { code: 'EIO' })
    await assert.rejects(logged.read('missing'), { code: 'ENOENT' })
    assert.equal(lines.length, 1, 'a missing file is an answer, not a failure worth a line')
    assert.match(lines[0]!, /^remote file:\/\/\/remote: write xo-vm-backups\/vm\/a\.json failed after \d+ ms: EIO$/)
  } finally {
    await dir.cleanup()
  }
})

test('the decorators and the handler pass a backend\'s clean-up of interrupted uploads through (S3 bills them until aborted)', async () => {
  const dir = await tempDir()
  try {
    const asked: number[] = []
    const inner = override(new LocalBackend(dir.path), { abortStaleUploads: async olderThanMs => (asked.push(olderThanMs), 3) })
    const handler = new BackendHandler(withConcurrencyLimit(withRetries(withLogging(inner, () => {}))))
    assert.equal(await handler.abortStaleUploads(1000), 3)
    assert.deepEqual(asked, [1000])
    assert.equal(await new BackendHandler(new LocalBackend(dir.path)).abortStaleUploads(1000), 0, 'a local folder has none')
  } finally {
    await dir.cleanup()
  }
})
