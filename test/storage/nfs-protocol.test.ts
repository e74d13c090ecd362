// The NFS client against a fake server, for what a real ganesha cannot show on demand: replies out of order,
// a reply split into fragments and TCP chunks, a connection dropped mid-call, a call never answered, the
// statuses NOSPC/ACCES/STALE, a reply that does not decode, a server that restarts and loses unstable writes.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { once } from 'node:events'
import { createServer, type Server, type Socket } from 'node:net'
import { NfsBackend, type NfsRemote } from '../../source/storage/nfs.ts'
import { Nfs3Client } from '../../source/storage/nfs/nfs3.ts'
import { XdrReader, XdrWriter } from '../../source/storage/nfs/xdr.ts'
import { parseRemoteUrl } from '../../source/storage/url.ts'

const MOUNT = 100005
const NFS = 100003

interface Call {
  xid: number
  program: number
  procedure: number
  /** A reader on the call's arguments (a new one each time). */
  readonly args: XdrReader
  socket: Socket
  connection: number
}

type Answer = Buffer[] | 'drop' | 'silence'

/** One RPC reply record: accepted, SUCCESS, then the results. */
function record(xid: number, results: Buffer[]): Buffer {
  return frame(Buffer.concat([...new XdrWriter().uint(xid).uint(1).uint(0).uint(0).uint(0).uint(0).parts(), ...results]))
}

/** A reply MSG_DENIED with AUTH_ERROR. */
function denied(xid: number, authStatus: number): Buffer {
  return frame(Buffer.concat(new XdrWriter().uint(xid).uint(1).uint(1).uint(1).uint(authStatus).parts()))
}

/** One record of one fragment. */
function frame(body: Buffer): Buffer {
  const mark = Buffer.alloc(4)
  mark.writeUInt32BE((0x80000000 | body.length) >>> 0)
  return Buffer.concat([mark, body])
}

const w = () => new XdrWriter()

function fattr(type: number, size: number, fileid = 7): XdrWriter {
  return w().uint(type).uint(0o755).uint(1).uint(0).uint(0).uhyper(size).uhyper(size).uint(0).uint(0).uhyper(1).uhyper(fileid).uint(1).uint(0).uint(1).uint(0).uint(1).uint(0)
}

interface Fake {
  port: number
  calls: Call[]
  connections: number
  /** Connections still open. */
  open: number
  close(): Promise<void>
}

/** A fake server of both MOUNT and NFS on one port; `answer` gives the result buffers of a call, or drops it. */
async function fakeServer(answer: (call: Call) => Answer | Promise<Answer>): Promise<Fake> {
  const calls: Call[] = []
  const sockets = new Set<Socket>()
  const state = { connections: 0 }
  const server: Server = createServer(socket => {
    const connection = ++state.connections
    sockets.add(socket)
    socket.on('close', () => sockets.delete(socket))
    socket.on('error', () => {})
    let pending = Buffer.alloc(0)
    socket.on('data', async chunk => {
      pending = Buffer.concat([pending, chunk])
      while (pending.length >= 4) {
        const length = pending.readUInt32BE(0) & 0x7fffffff
        if (pending.length < 4 + length) return
        const body = pending.subarray(4, 4 + length)
        pending = pending.subarray(4 + length)
        const pad = (n: number) => n + ((4 - (n % 4)) % 4)
        const credentials = pad(body.readUInt32BE(28))
        const argsAt = 32 + credentials + 8 + pad(body.readUInt32BE(32 + credentials + 4))
        const call = {
          xid: body.readUInt32BE(0),
          program: body.readUInt32BE(12),
          procedure: body.readUInt32BE(20),
          get args() {
            return new XdrReader(body, argsAt)
          },
          socket,
          connection,
        }
        calls.push(call)
        const result = await answer(call)
        if (result === 'drop') socket.destroy()
        else if (result !== 'silence') socket.write(record(call.xid, result))
      }
    })
  })
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  const port = (server.address() as { port: number }).port
  return {
    port,
    calls,
    get connections() {
      return state.connections
    },
    get open() {
      return sockets.size
    },
    close: async () => {
      for (const socket of sockets) socket.destroy()
      server.close()
      await once(server, 'close')
    },
  }
}

/** What a server answers to the mount sequence (EXPORT, MNT, GETATTR of the root, FSINFO), else undefined. */
function mountAnswers(call: Call): Buffer[] | undefined {
  if (call.program === MOUNT && call.procedure === 5) return w().bool(true).string('/export').bool(false).bool(false).parts()
  if (call.program === MOUNT && call.procedure === 1) return w().uint(0).opaque(Buffer.from('root')).uint(1).uint(1).parts()
  if (call.program === MOUNT && call.procedure === 3) return []
  if (call.program === NFS && call.procedure === 19) return w().uint(0).bool(false).uint(65536).uint(65536).uint(1).uint(65536).uint(65536).uint(1).uint(4096).uhyper(2 ** 40).uint(0).uint(1).uint(0).parts()
  if (call.program === NFS && call.procedure === 1 && handleOf(call) === 'root') return w().uint(0).fixed(Buffer.concat(fattr(2, 4096).parts())).parts()
  return undefined
}

function handleOf(call: Call): string {
  return call.args.opaque().toString()
}

/** Waits for a condition (generous bound: the machine may be loaded). */
async function until(condition: () => boolean, what: string): Promise<void> {
  const deadline = Date.now() + 30_000
  while (!condition()) {
    if (Date.now() > deadline) assert.fail(`never came: ${what}`)
    await new Promise(resolve => setTimeout(resolve, 10))
  }
}

async function collect(stream: AsyncIterable<Buffer>): Promise<Buffer> {
  const chunks: Buffer[] = []
  for await (const chunk of stream) chunks.push(chunk)
  return Buffer.concat(chunks)
}

function backendOn(fake: Fake, options: { timeoutMs?: number; retryDelaysMs?: number[] } = {}, query = ''): NfsBackend {
  const url = `nfs://127.0.0.1:${fake.port}:/export?mountPort=${fake.port}&uid=1234&gid=5678${query}`
  return new NfsBackend(parseRemoteUrl(url) as NfsRemote, url, { retryDelaysMs: [10, 10], ...options })
}

function client(fake: Fake, options: { timeoutMs?: number; retryDelaysMs?: number[] } = {}): Nfs3Client {
  return new Nfs3Client({ host: '127.0.0.1', port: fake.port, mountPort: fake.port, credentials: { uid: 1, gid: 1 }, retryDelaysMs: [10, 10], ...options })
}

test('replies out of order reach their own calls (many calls in flight on one connection)', async () => {
  const held: Call[] = []
  const fake = await fakeServer(call => {
    held.push(call)
    // Hold the first five, then answer them last first.
    if (held.length === 5) for (const c of held.slice().reverse()) c.socket.write(record(c.xid, w().uint(0).fixed(Buffer.concat(fattr(1, Number(handleOf(c)) * 100).parts())).parts()))
    return 'silence'
  })
  const nfs = client(fake)
  try {
    const sizes = await Promise.all([1, 2, 3, 4, 5].map(n => nfs.getattr(Buffer.from(String(n))).then(a => a.size)))
    assert.deepEqual(sizes, [100, 200, 300, 400, 500])
    assert.equal(fake.connections, 1, 'the five calls shared one connection')
  } finally {
    nfs.close()
    await fake.close()
  }
})

test('a reply split into several record fragments, sent byte by byte, arrives whole and exact', async () => {
  const payload = Buffer.from(Array.from({ length: 3001 }, (_, i) => (i * 7) & 0xff))
  const fake = await fakeServer(async (call): Promise<Answer> => {
    const body = Buffer.concat([...w().uint(call.xid).uint(1).uint(0).uint(0).uint(0).uint(0).uint(0).bool(false).uint(payload.length).bool(true).opaque(payload).parts()])
    // Three fragments of uneven sizes; only the last has the last-fragment bit.
    const cuts = [0, 5, 1500, body.length]
    for (let i = 0; i < 3; i++) {
      const part = body.subarray(cuts[i]!, cuts[i + 1]!)
      const mark = Buffer.alloc(4)
      mark.writeUInt32BE(((i === 2 ? 0x80000000 : 0) | part.length) >>> 0)
      const bytes = Buffer.concat([mark, part])
      for (let at = 0; at < bytes.length; at += 97) {
        call.socket.write(bytes.subarray(at, at + 97))
        await new Promise(resolve => setImmediate(resolve))
      }
    }
    return 'silence'
  })
  const nfs = client(fake)
  try {
    const { data, eof } = await nfs.read(Buffer.from('f'), 0, 4096)
    assert.deepEqual(data, payload)
    assert.equal(eof, true)
  } finally {
    nfs.close()
    await fake.close()
  }
})

test('a connection dropped mid-call: the call is sent again on a new connection; a REMOVE resent and answered NOENT is done', async () => {
  let dropped = 0
  const fake = await fakeServer(call => {
    if (call.procedure === 1) {
      if (dropped++ === 0) return 'drop'
      return w().uint(0).fixed(Buffer.concat(fattr(1, 42).parts())).parts()
    }
    if (call.procedure === 12) {
      // The first REMOVE is done, then the connection is lost before its reply; the second finds nothing.
      if (call.connection === 2) return 'drop'
      return w().uint(2).bool(false).bool(false).parts()
    }
    return 'drop'
  })
  const nfs = client(fake)
  try {
    assert.equal((await nfs.getattr(Buffer.from('f'))).size, 42)
    assert.equal(fake.connections, 2)
    await nfs.remove(Buffer.from('dir'), 'name')
    assert.equal(fake.calls.filter(c => c.procedure === 12).length, 2, 'the REMOVE was sent twice')
    // A REMOVE answered NOENT the first time is an error.
    await assert.rejects(nfs.remove(Buffer.from('dir'), 'other'), { code: 'ENOENT' })
  } finally {
    nfs.close()
    await fake.close()
  }
})

test('a server that keeps dropping the connection: REMOTE_UNAVAILABLE after a bounded number of attempts', async () => {
  const fake = await fakeServer(call => mountAnswers(call) ?? 'drop')
  const backend = backendOn(fake)
  try {
    await backend.sync()
    await assert.rejects(backend.stat('x'), (error: Error & { code?: string }) => error.code === 'REMOTE_UNAVAILABLE' && /(closed|dropped) the connection.*, 3 times in a row/.test(error.message))
    assert.equal(fake.calls.filter(c => c.procedure === 3).length, 3, 'the LOOKUP was sent 3 times, no more')
  } finally {
    await backend.close()
    await fake.close()
  }
})

test('a call never answered fails after the timeout, the connection is dropped, and the next call works', async () => {
  let silent = true
  const fake = await fakeServer(call => {
    const mounted = mountAnswers(call)
    if (mounted !== undefined) return mounted
    if (silent) return 'silence'
    if (call.procedure === 1) return w().uint(0).fixed(Buffer.concat(fattr(1, 9).parts())).parts()
    return w().uint(0).opaque(Buffer.from('file')).bool(true).fixed(Buffer.concat(fattr(1, 9).parts())).bool(false).parts()
  })
  const backend = backendOn(fake, { timeoutMs: 300, retryDelaysMs: [] })
  try {
    await backend.sync()
    await assert.rejects(backend.stat('x'), (error: Error & { code?: string }) => error.code === 'REMOTE_UNAVAILABLE' && /did not answer LOOKUP x within 0.3 s/.test(error.message))
    silent = false
    const before = fake.connections
    assert.equal((await backend.stat('x')).size, 9)
    assert.ok(fake.connections > before, 'a new connection replaced the dead one')
  } finally {
    await backend.close()
    await fake.close()
  }
})

test('NOSPC and DQUOT are REMOTE_FULL; ACCES at MNT and on a call name the export options to check; ROFS too', async () => {
  let status = 28
  let mountStatus = 0
  const fake = await fakeServer(call => {
    if (call.program === MOUNT && call.procedure === 1 && mountStatus !== 0) return w().uint(mountStatus).parts()
    const mounted = mountAnswers(call)
    if (mounted !== undefined) return mounted
    if (call.procedure === 3) return w().uint(2).bool(false).parts()
    // CREATE of the temporary file.
    if (call.procedure === 8) return w().uint(status).bool(false).bool(false).parts()
    return w().uint(10006).parts()
  })
  // A fake left listening keeps the test file from ending, whatever fails.
  try {
    const backend = backendOn(fake)
    try {
      await backend.sync()
      await assert.rejects(backend.write('a', 'x'), { code: 'REMOTE_FULL' })
      status = 69
      await assert.rejects(backend.write('a', 'x'), { code: 'REMOTE_FULL' })
      for (status of [13, 1]) {
        await assert.rejects(backend.write('a', 'x'), (error: Error & { code?: string }) => {
          assert.equal(error.code, 'REMOTE_AUTH')
          for (const option of ['Lifeboat sends uid 1234 and gid 5678;', 'root squash', 'anonuid', 'all_squash', '?uid= and ?gid=']) assert.ok(error.message.includes(option), `the sentence names ${option}: ${error.message}`)
          assert.ok(!error.message.includes('insecure') && !error.message.includes('read-only'), `the sentence blames no other option: ${error.message}`)
          return true
        })
      }
      status = 30
      await assert.rejects(backend.write('a', 'x'), (error: Error & { code?: string }) => error.code === 'REMOTE_AUTH' && /The export is read-only: export it read-write/.test(error.message) && !/squash|insecure/.test(error.message))
    } finally {
      await backend.close()
    }
    mountStatus = 13
    const refused = backendOn(fake)
    try {
      await assert.rejects(refused.sync(), (error: Error & { code?: string }) => error.code === 'REMOTE_AUTH' && /mounting \/export: permission denied \(MNT3ERR 13\)/.test(error.message) && /does not export \/export to this machine: add this machine's address to the export's client list/.test(error.message) && /`insecure`/.test(error.message) && !/squash/.test(error.message))
    } finally {
      await refused.close()
    }
  } finally {
    await fake.close()
  }
})

test('STALE: the path is looked up again once (the export mounted again), then REMOTE_UNAVAILABLE', async () => {
  let staleLeft = 1
  const fake = await fakeServer(call => {
    const mounted = mountAnswers(call)
    if (mounted !== undefined) return mounted
    if (call.procedure === 3) return w().uint(0).opaque(Buffer.from('file')).bool(false).bool(false).parts()
    if (call.procedure === 1) {
      if (staleLeft-- > 0) return w().uint(70).parts()
      return w().uint(0).fixed(Buffer.concat(fattr(1, 5).parts())).parts()
    }
    return w().uint(10006).parts()
  })
  const backend = backendOn(fake)
  try {
    await backend.sync()
    assert.equal((await backend.stat('x')).size, 5, 'one stale handle is recovered by looking the path up again')
    const mounts = fake.calls.filter(c => c.program === MOUNT && c.procedure === 1).length
    assert.equal(mounts, 2, 'the export was mounted again')
    staleLeft = 100
    await assert.rejects(backend.stat('x'), (error: Error & { code?: string }) => error.code === 'REMOTE_UNAVAILABLE' && /stale file handle/.test(error.message))
  } finally {
    await backend.close()
    await fake.close()
  }
})

test('a reply that does not decode is a clear error, not a crash; the connection goes on working', async () => {
  let malformed = true
  const fake = await fakeServer(call => {
    const mounted = mountAnswers(call)
    if (mounted !== undefined) return mounted
    if (call.procedure === 3) return w().uint(0).opaque(Buffer.from('file')).bool(false).bool(false).parts()
    if (call.procedure === 1) return malformed ? w().uint(0).uint(1).parts() : w().uint(0).fixed(Buffer.concat(fattr(1, 77).parts())).parts()
    // A READ announcing 1000 bytes and holding 3.
    if (call.procedure === 6) return w().uint(0).bool(false).uint(1000).bool(true).uint(1000).fixed(Buffer.from('abc\0')).parts()
    return w().uint(10006).parts()
  })
  const backend = backendOn(fake)
  try {
    await backend.sync()
    await assert.rejects(backend.stat('x'), (error: Error & { code?: string }) => error.code === 'REMOTE_UNAVAILABLE' && /does not decode as NFSv3 \(the reply ends after/.test(error.message))
    malformed = false
    await assert.rejects(collect(await backend.read('x')), (error: Error & { code?: string }) => error.code === 'REMOTE_UNAVAILABLE' && /does not decode/.test(error.message))
    assert.equal((await backend.stat('x')).size, 77)
  } finally {
    await backend.close()
    await fake.close()
  }
})

test('a record too short for an RPC header drops the connection with a clear error; the call is not left waiting', async () => {
  const fake = await fakeServer(call => {
    call.socket.write(Buffer.from([0x80, 0, 0, 2, 1, 2]))
    return 'silence'
  })
  const nfs = client(fake, { retryDelaysMs: [] })
  try {
    await assert.rejects(nfs.getattr(Buffer.from('f')), (error: Error & { code?: string }) => error.code === 'EBADRPC' && /too short for an RPC header/.test(error.message))
  } finally {
    nfs.close()
    await fake.close()
  }
})

test('a server that restarted before COMMIT (another write verifier): the lost writes are sent again FILE_SYNC', async () => {
  const stored = new Map<number, Buffer>()
  const fake = await fakeServer(call => {
    const mounted = mountAnswers(call)
    if (mounted !== undefined) return mounted
    if (call.procedure === 3) return w().uint(2).bool(false).parts()
    if (call.procedure === 8) return w().uint(0).bool(true).opaque(Buffer.from('tmp')).bool(false).bool(false).bool(false).parts()
    if (call.procedure === 7) {
      const args = call.args
      args.opaque()
      const offset = args.uhyper()
      args.uint()
      const stable = args.uint()
      const data = Buffer.from(args.opaque())
      stored.set(offset, data)
      // UNSTABLE writes are answered under verifier A; the COMMIT comes after a "restart": verifier B.
      return w().uint(0).bool(false).bool(false).uint(data.length).uint(stable).fixed(Buffer.from(stable === 0 ? 'AAAAAAAA' : 'BBBBBBBB')).parts()
    }
    if (call.procedure === 21) {
      stored.clear()
      return w().uint(0).bool(false).bool(false).fixed(Buffer.from('BBBBBBBB')).parts()
    }
    if (call.procedure === 14) return w().uint(0).bool(false).bool(false).bool(false).bool(false).parts()
    return w().uint(10006).parts()
  })
  const backend = backendOn(fake)
  const data = Buffer.from(Array.from({ length: 200_000 }, (_, i) => (i * 13) & 0xff))
  try {
    await backend.sync()
    assert.equal(await backend.write('file', data), data.length)
    const writes = fake.calls.filter(c => c.procedure === 7)
    assert.ok(writes.length >= 2 * Math.ceil(data.length / 65536), 'every block was written twice')
    const rebuilt = Buffer.concat([...stored.keys()].sort((a, b) => a - b).map(offset => stored.get(offset)!))
    assert.deepEqual(rebuilt, data, 'what the server holds after the restart is the whole file')
  } finally {
    await backend.close()
    await fake.close()
  }
})

test('a read is pipelined with backpressure: a paused reader stops the READs after a few in flight', async () => {
  const size = 64 * 1024 * 1024
  const fake = await fakeServer(call => {
    const mounted = mountAnswers(call)
    if (mounted !== undefined) return mounted
    if (call.procedure === 3) return w().uint(0).opaque(Buffer.from('file')).bool(false).bool(false).parts()
    if (call.procedure === 1) return w().uint(0).fixed(Buffer.concat(fattr(1, size).parts())).parts()
    if (call.procedure === 6) {
      const args = call.args
      args.opaque()
      const offset = args.uhyper()
      const count = Math.min(args.uint(), size - offset)
      return w().uint(0).bool(false).uint(count).bool(offset + count === size).opaque(Buffer.alloc(count, offset / 65536)).parts()
    }
    return w().uint(10006).parts()
  })
  const backend = backendOn(fake)
  try {
    await backend.sync()
    const stream = await backend.read('x')
    const reads = () => fake.calls.filter(c => c.procedure === 6).length
    const first: Buffer = await new Promise(resolve => stream.once('data', resolve))
    stream.pause()
    assert.equal(first[0], 0)
    // Let whatever the stream would still ask for arrive.
    await new Promise(resolve => setTimeout(resolve, 300))
    assert.ok(reads() <= 12, `a paused reader keeps at most a few READs in flight (${reads()} of ${size / 65536} sent)`)
    let total = first.length
    let ordered = true
    let expected = first.length / 65536
    stream.on('data', (chunk: Buffer) => {
      if (chunk[0] !== (expected++ & 0xff)) ordered = false
      total += chunk.length
    })
    stream.resume()
    await once(stream, 'end')
    assert.equal(total, size)
    assert.ok(ordered, 'the chunks arrive in file order')
  } finally {
    await backend.close()
    await fake.close()
  }
})

test('a stream write keeps several WRITEs in flight, and stops pulling from its source while they are unanswered', async () => {
  const held: Call[] = []
  const fake = await fakeServer(call => {
    const mounted = mountAnswers(call)
    if (mounted !== undefined) return mounted
    if (call.procedure === 3) return w().uint(2).bool(false).parts()
    if (call.procedure === 8) return w().uint(0).bool(true).opaque(Buffer.from('tmp')).bool(false).bool(false).bool(false).parts()
    if (call.procedure === 7) {
      held.push(call)
      return 'silence'
    }
    if (call.procedure === 21) return w().uint(0).bool(false).bool(false).fixed(Buffer.from('AAAAAAAA')).parts()
    if (call.procedure === 14) return w().uint(0).bool(false).bool(false).bool(false).bool(false).parts()
    return w().uint(10006).parts()
  })
  const backend = backendOn(fake)
  let pulled = 0
  async function* source() {
    for (let i = 0; i < 1000; i++) {
      pulled++
      yield Buffer.alloc(65536, i & 0xff)
    }
  }
  try {
    await backend.sync()
    const writing = backend.write('file', source())
    await until(() => held.length >= 8, 'eight WRITEs in flight at once')
    // Let whatever the writer would still send arrive.
    await new Promise(resolve => setTimeout(resolve, 300))
    assert.equal(held.length, 8, 'no more than eight WRITEs in flight')
    assert.ok(pulled <= 12, `the source is not read ahead while the WRITEs are unanswered (${pulled} chunks pulled)`)
    const answer = (call: Call) => {
      const args = call.args
      args.opaque()
      args.uhyper()
      const count = args.uint()
      call.socket.write(record(call.xid, w().uint(0).bool(false).bool(false).uint(count).uint(0).fixed(Buffer.from('AAAAAAAA')).parts()))
    }
    held.splice(0).forEach(answer)
    held.push = (...calls: Call[]) => (calls.forEach(answer), 0)
    assert.equal(await writing, 1000 * 65536)
  } finally {
    await backend.close()
    await fake.close()
  }
})

test('AUTH_SYS refused as too weak (a `secure` export and a port above 1023): REMOTE_AUTH naming `insecure`; refused otherwise, naming sec=sys', async () => {
  let authStatus = 5
  const fake = await fakeServer(call => {
    if (call.program === MOUNT) return mountAnswers(call)!
    // MSG_DENIED, AUTH_ERROR, AUTH_TOOWEAK: what ganesha answers on an export with PrivilegedPort = true.
    call.socket.write(denied(call.xid, authStatus))
    return 'silence'
  })
  const backend = backendOn(fake)
  try {
    await assert.rejects(backend.sync(), (error: Error & { code?: string }) => {
      assert.equal(error.code, 'REMOTE_AUTH')
      assert.match(error.message, /credentials too weak \(the export wants a privileged source port, `secure`/)
      assert.match(error.message, /connects from a port above 1023: mark the export `insecure`/)
      assert.doesNotMatch(error.message, /squash|client list/)
      return true
    })
    // AUTH_BADCRED: an export that wants Kerberos.
    authStatus = 1
    await assert.rejects(backend.sync(), (error: Error & { code?: string }) => error.code === 'REMOTE_AUTH' && /bad credentials/.test(error.message) && /sends AUTH_SYS credentials \(a uid and a gid\) only: allow them on the export \(Linux: sec=sys; ganesha: SecType = sys\)/.test(error.message) && !/insecure/.test(error.message))
  } finally {
    await backend.close()
    await fake.close()
  }
})

test('calls that are not idempotent, resent after a lost connection, are checked: RENAME by lookup, MKDIR, LINK by file id', async () => {
  // Each call's first sending is done by the server and its reply lost (the connection drops).
  const seen = new Map<number, number>()
  let targetThere = true
  const fake = await fakeServer(call => {
    const count = (seen.get(call.procedure) ?? 0) + 1
    seen.set(call.procedure, count)
    const first = count % 2 === 1
    if (call.procedure === 14) return first ? 'drop' : w().uint(2).bool(false).bool(false).bool(false).bool(false).parts()
    if (call.procedure === 9) return first ? 'drop' : w().uint(17).bool(false).bool(false).parts()
    if (call.procedure === 15) return first ? 'drop' : w().uint(17).bool(false).bool(false).bool(false).parts()
    if (call.procedure === 3) {
      const args = call.args
      args.opaque()
      const name = args.string()
      // After the "first sending": the source of the rename is gone, its target there (or not, below).
      if (name === 'from' || (name === 'to' && !targetThere)) return w().uint(2).bool(false).parts()
      return w().uint(0).opaque(Buffer.from(name)).bool(true).fixed(Buffer.concat(fattr(1, 1, name === 'linked' ? 99 : 7).parts())).bool(false).parts()
    }
    return w().uint(10006).parts()
  })
  const nfs = client(fake)
  const dir = Buffer.from('dir')
  try {
    await nfs.rename(dir, 'from', dir, 'to')
    targetThere = false
    await assert.rejects(nfs.rename(dir, 'from', dir, 'to'), { code: 'ENOENT' }, 'neither name there: the rename did not happen')
    assert.equal((await nfs.mkdir(dir, 'made', 0o750, false)).toString(), 'made', 'MKDIR resent and answered EXIST is done')
    await assert.rejects(nfs.mkdir(dir, 'lock', 0o750, true), { code: 'EEXIST' }, 'an exclusive MKDIR (a lock folder) keeps its EEXIST')
    await nfs.link(Buffer.from('file'), dir, 'linked', 99n)
    await assert.rejects(nfs.link(Buffer.from('file'), dir, 'linked', 98n), { code: 'EEXIST' }, 'the name is another file: write-if-absent refuses')
  } finally {
    nfs.close()
    await fake.close()
  }
})

test('a URL asking for another NFS version than 3 is refused with a sentence', () => {
  const url = 'nfs://127.0.0.1:2049:/export?version=4'
  assert.throws(() => new NfsBackend(parseRemoteUrl(url) as NfsRemote, url), (error: Error & { code?: string }) => error.code === 'REMOTE_BAD_URL' && /speaks NFS version 3, not 4/.test(error.message))
  assert.throws(() => new NfsBackend(parseRemoteUrl(`${url.replace('version=4', 'uid=-1')}`) as NfsRemote, url), { code: 'REMOTE_BAD_URL' })
})

test('a file opened r+ writes behind: a WRITE refused (NOSPC) fails the file at the latest at close, never silently', async () => {
  const fake = await fakeServer(call => {
    const mounted = mountAnswers(call)
    if (mounted !== undefined) return mounted
    if (call.procedure === 3) return w().uint(0).opaque(Buffer.from('file')).bool(false).bool(false).parts()
    if (call.procedure === 1) return w().uint(0).fixed(Buffer.concat(fattr(1, 0).parts())).parts()
    if (call.procedure === 7) return w().uint(28).bool(false).bool(false).parts()
    return w().uint(10006).parts()
  })
  const backend = backendOn(fake)
  try {
    await backend.sync()
    const file = await backend.open('x', 'r+')
    const outcomes = await Promise.allSettled([file.write(Buffer.alloc(1000, 1), 0), file.write(Buffer.alloc(1000, 2), 1000), file.close()])
    const last = outcomes.at(-1)!
    assert.equal(last.status, 'rejected', 'close reports the refused WRITE')
    assert.equal((last as PromiseRejectedResult).reason.code, 'REMOTE_FULL')
  } finally {
    await backend.close()
    await fake.close()
  }
})

test('close unmounts the export it mounted (UMNT of the same path) and ends the connections', async () => {
  const fake = await fakeServer(call => mountAnswers(call) ?? w().uint(10006).parts())
  const backend = backendOn(fake)
  await backend.sync()
  await backend.close()
  const unmounts = fake.calls.filter(c => c.program === MOUNT && c.procedure === 3)
  assert.deepEqual(unmounts.map(c => c.args.string()), ['/export'])
  const mounts = fake.calls.filter(c => c.program === MOUNT && c.procedure === 1)
  assert.deepEqual(mounts.map(c => c.args.string()), ['/export'])
  await until(() => fake.open === 0, 'every connection closed')
  await fake.close()
})

test('JUKEBOX (the server busy): the call is sent again after a wait, a bounded number of times', async () => {
  let busy = 2
  const fake = await fakeServer(call => {
    if (call.procedure === 1) return busy-- > 0 ? w().uint(10008).parts() : w().uint(0).fixed(Buffer.concat(fattr(1, 3).parts())).parts()
    return w().uint(10006).parts()
  })
  const nfs = client(fake)
  try {
    assert.equal((await nfs.getattr(Buffer.from('f'))).size, 3)
    busy = 100
    await assert.rejects(nfs.getattr(Buffer.from('f')), { code: 'EJUKEBOX' })
    assert.equal(fake.calls.length, 3 + 3, 'three sendings each time (the delays given are two)')
  } finally {
    nfs.close()
    await fake.close()
  }
})

test('a file opened r+: a write over bytes whose WRITE is still unanswered waits for it, so the server ends with the last data written (a merge rewrites its BAT sector)', async () => {
  const file = Buffer.alloc(8192)
  let delayed = 0
  const fake = await fakeServer(call => {
    const mounted = mountAnswers(call)
    if (mounted !== undefined) return mounted
    if (call.procedure === 3) return w().uint(0).opaque(Buffer.from('file')).bool(false).bool(false).parts()
    if (call.procedure === 1) return w().uint(0).fixed(Buffer.concat(fattr(1, file.length).parts())).parts()
    if (call.procedure === 7) {
      const args = call.args
      args.opaque()
      const offset = Number(args.uhyper())
      args.uint()
      args.uint()
      const data = Buffer.from(args.opaque())
      const reply = w().uint(0).bool(false).bool(false).uint(data.length).uint(2).fixed(Buffer.from('VVVVVVVV')).parts()
      // The first WRITE is applied and answered late, as a server thread that got it first but ran last.
      if (delayed++ === 0) {
        setTimeout(() => {
          data.copy(file, offset)
          call.socket.write(record(call.xid, reply))
        }, 150)
        return 'silence'
      }
      data.copy(file, offset)
      return reply
    }
    if (call.procedure === 21) return w().uint(0).bool(false).bool(false).fixed(Buffer.from('VVVVVVVV')).parts()
    return w().uint(10006).parts()
  })
  const backend = backendOn(fake)
  try {
    await backend.sync()
    const opened = await backend.open('x', 'r+')
    await opened.write(Buffer.alloc(512, 0xaa), 1024)
    await opened.write(Buffer.alloc(512, 0xbb), 4096)
    await opened.write(Buffer.alloc(512, 0xcc), 1024)
    await opened.close()
    assert.deepEqual(file.subarray(1024, 1536), Buffer.alloc(512, 0xcc), 'the sector holds the second write to it, not the first that was answered late')
    assert.deepEqual(file.subarray(4096, 4608), Buffer.alloc(512, 0xbb), 'a write elsewhere went out meanwhile')
    const writes = fake.calls.filter(c => c.procedure === 7).length
    assert.equal(writes, 3, 'three WRITEs, none sent twice')
  } finally {
    await backend.close()
    await fake.close()
  }
})
