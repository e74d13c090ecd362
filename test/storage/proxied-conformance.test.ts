// A remote that lives on a proxy, as the appliance works on it: the storage conformance suite run on the
// forwarding backend (daemon/proxy-storage.ts) against a real proxy service over its socket, then what only a
// channel can do: it drops (the remote is unavailable, naming the proxy; the next channel gets a new session),
// and what the proxy does for a connection that went (its write leaves nothing, its lock is released).
import { test, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { connect, type Socket } from 'node:net'
import { once } from 'node:events'
import { readdir } from 'node:fs/promises'
import { join } from 'node:path'
import { RpcClient } from '../../source/client/index.ts'
import { ProxyService } from '../../source/proxy/service.ts'
import { ProxiedBackend } from '../../source/daemon/proxy-storage.ts'
import { BackendHandler, decorate } from '../../source/storage/index.ts'
import { LifeboatError } from '../../source/util/errors.ts'
import type { ProxyMethods } from '../../source/protocol/proxy.ts'
import { tempDir } from '../helpers/tools.ts'
import { runConformanceSuite } from './conformance.ts'

let home: Awaited<ReturnType<typeof tempDir>>
let service: ProxyService

async function channel(): Promise<{ client: RpcClient<ProxyMethods>; socket: Socket }> {
  const socket = connect(service.socketPath)
  await once(socket, 'connect')
  const words = {
    name: 'the test proxy',
    unreachable: () => new LifeboatError('PROXY_DISCONNECTED', 'the channel is closed'),
    lost: () => new LifeboatError('PROXY_DISCONNECTED', 'the channel closed before the proxy answered'),
    timeout: (method: string) => new LifeboatError('PROXY_TIMEOUT', `${method} timed out`),
  }
  return { client: new RpcClient<ProxyMethods>(socket, words), socket }
}

let shared: RpcClient<ProxyMethods>

before(async () => {
  home = await tempDir('lifeboat-proxied-')
  service = await ProxyService.start({ dataDir: join(home.path, 'proxy'), log: () => {} })
  shared = (await channel()).client
})

after(async () => {
  shared?.close()
  await service?.stop()
  await home?.cleanup()
})

runConformanceSuite('proxied local', async () => {
  const dir = await tempDir('lifeboat-proxied-remote-')
  const url = `file://${dir.path}`
  return { backend: new ProxiedBackend(url, 'edge', async () => shared), url, cleanup: dir.cleanup }
})

test('proxied: the channel drops: the remote is unavailable naming its proxy; the next channel opens a new session and works', async () => {
  const dir = await tempDir('lifeboat-proxied-drop-')
  try {
    let current = await channel()
    const backend = new ProxiedBackend(`file://${dir.path}`, 'edge', async () => current.client)
    await backend.sync()
    await backend.write('a', Buffer.from('first'))
    current.socket.destroy()
    await assert.rejects(backend.stat('a'), (error: LifeboatError) => {
      assert.equal(error.code, 'REMOTE_UNAVAILABLE', 'a dropped channel is the remote unavailable')
      assert.match(error.message, /on the proxy "edge"/, 'the message names the proxy')
      return true
    })
    current = await channel()
    assert.equal((await backend.stat('a')).size, 5, 'a new channel gets a new session, and the file is there')
    await backend.close()
    current.client.close()
  } finally {
    await dir.cleanup()
  }
})

test('proxied: a connection that goes leaves no part of its unfinished write visible, and its lock is released for others', async () => {
  const dir = await tempDir('lifeboat-proxied-gone-')
  try {
    const first = await channel()
    const backend = new ProxiedBackend(`file://${dir.path}`, 'edge', async () => first.client)
    await backend.sync()
    const lock = await backend.lock!('vm', { staleMs: 60_000, refreshMs: 100 })
    async function* slow() {
      yield Buffer.alloc(1024 * 1024, 1)
      // The next chunk comes after the channel dropped.
      await new Promise(resolve => setTimeout(resolve, 500))
      yield Buffer.alloc(1024 * 1024, 2)
    }
    const writing = backend.write('big', slow(), { length: 4 * 1024 * 1024 })
    writing.catch(() => {})
    await new Promise(resolve => setTimeout(resolve, 200))
    first.socket.destroy()
    await assert.rejects(writing, { code: 'REMOTE_UNAVAILABLE' }, 'the write fails with the channel')
    const second = await channel()
    const other = new ProxiedBackend(`file://${dir.path}`, 'edge', async () => second.client)
    await other.sync()
    // The proxy releases the lock of the connection that went: another holder gets it (not REMOTE_LOCKED).
    const again = await waitFor(() => other.lock!('vm', { staleMs: 60_000 }))
    await again.release()
    await assert.rejects(other.stat('big'), { code: 'ENOENT' }, 'nothing of the unfinished write is visible')
    assert.deepEqual((await readdir(dir.path)).filter(name => name.startsWith('big')), [], 'and no temporary file is left')
    await waitFor(async () => assert.ok(lock.compromised, 'the first holder learns that its lock is lost'))
    await other.close()
    second.client.close()
  } finally {
    await dir.cleanup()
  }
})

test('proxied: the handler the daemon builds (decorated) reads a range and lists through the proxy', async () => {
  const dir = await tempDir('lifeboat-proxied-handler-')
  try {
    const handler = new BackendHandler(decorate(new ProxiedBackend(`file://${dir.path}`, 'edge', async () => shared), { log: () => {} }))
    await handler.sync()
    const data = Buffer.from(Array.from({ length: 3 * 1024 * 1024 + 17 }, (_, i) => (i * 7) & 0xff))
    await handler.writeFile('folder/file', data)
    assert.deepEqual(await handler.list('folder'), ['file'], 'the folder lists the file')
    const chunks: Buffer[] = []
    for await (const chunk of await handler.createReadStream('folder/file', { start: 1024 * 1024 - 5, end: 2 * 1024 * 1024 + 5 })) chunks.push(chunk as Buffer)
    assert.deepEqual(Buffer.concat(chunks), data.subarray(1024 * 1024 - 5, 2 * 1024 * 1024 + 6), 'a range across chunks reads back exactly')
    await handler.close()
  } finally {
    await dir.cleanup()
  }
})

async function waitFor<T>(attempt: () => Promise<T>): Promise<T> {
  const deadline = Date.now() + 10_000
  for (;;) {
    try {
      return await attempt()
    } catch (error) {
      if (Date.now() > deadline) throw error
      await new Promise(resolve => setTimeout(resolve, 50))
    }
  }
}
