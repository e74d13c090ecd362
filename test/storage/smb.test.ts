// The SMB backend against real Samba with its default settings (asynchronous I/O on, NTLMv2 only), and again
// with `server signing = mandatory`: the conformance suite, smbclient as the independent reader and writer,
// refused credentials and shares, a server restarted under an open file, and a client run by an unprivileged user.
import { after, before, test } from 'node:test'
import assert from 'node:assert/strict'
import { spawn } from 'node:child_process'
import { createHash, randomBytes } from 'node:crypto'
import { chmod, mkdir, readdir, readFile, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { SmbBackend } from '../../source/storage/smb.ts'
import { Access, Disposition, SmbClient } from '../../source/storage/smb/client.ts'
import { Dialect } from '../../source/storage/smb/connection.ts'
import { parseRemoteUrl, redactRemoteUrl } from '../../source/storage/url.ts'
import { serializeError } from '../../source/util/errors.ts'
import { SMB_PASSWORD, startSamba, type SambaServer } from '../helpers/samba.ts'
import { tempDir } from '../helpers/tools.ts'
import { runConformanceSuite } from './conformance.ts'

function smbBackend(url: string): SmbBackend {
  const remote = parseRemoteUrl(url)
  if (remote.type !== 'smb') throw new Error(`${redactRemoteUrl(url)} is not an SMB URL`)
  return new SmbBackend(remote, redactRemoteUrl(url))
}

async function collect(stream: AsyncIterable<unknown>): Promise<Buffer> {
  const chunks: Buffer[] = []
  for await (const chunk of stream) chunks.push(chunk as Buffer)
  return Buffer.concat(chunks)
}

const servers: Record<'default' | 'mandatory', SambaServer | undefined> = { default: undefined, mandatory: undefined }
before(async () => {
  servers.default = await startSamba()
  servers.mandatory = await startSamba({ signing: 'mandatory' })
})
after(async () => {
  await servers.default?.cleanup()
  await servers.mandatory?.cleanup()
})

for (const signing of ['default', 'mandatory'] as const) {
  let folders = 0
  runConformanceSuite(signing === 'default' ? 'smb (default Samba)' : 'smb (signing mandatory)', async () => {
    const url = servers[signing]!.urlFor(`conformance-${++folders}`)
    const backend = smbBackend(url)
    return { backend, url, cleanup: () => backend.close() }
  })
}

test('smbclient reads byte for byte what the client wrote, and the client what smbclient wrote', async () => {
  const server = servers.default!
  const backend = smbBackend(server.urlFor('interop'))
  const scratch = await tempDir()
  try {
    await backend.sync()
    // 5 MiB + 3 bytes: several pipelined writes, the last one short.
    const ours = randomBytes(5 * 1024 * 1024 + 3)
    await backend.write('vm/disk.vhd', ours, { length: ours.length })
    await server.smbclient(`get interop/vm/disk.vhd ${join(scratch.path, 'got.vhd')}`)
    assert.ok((await readFile(join(scratch.path, 'got.vhd'))).equals(ours), 'smbclient reads the bytes the client wrote')

    const theirs = randomBytes(3 * 1024 * 1024 + 17)
    await writeFile(join(scratch.path, 'put.bin'), theirs)
    await server.smbclient(`put ${join(scratch.path, 'put.bin')} interop/vm/from-smbclient.bin`)
    assert.ok((await collect(await backend.read('vm/from-smbclient.bin'))).equals(theirs), 'the client reads the bytes smbclient wrote')
    assert.ok((await collect(await backend.read('vm/from-smbclient.bin', { start: 1_000_000, end: 2_500_000 }))).equals(theirs.subarray(1_000_000, 2_500_001)), 'a range of it too')
  } finally {
    await backend.close()
    await scratch.cleanup()
  }
})

test('a wrong password is REMOTE_AUTH, a missing share names the share; neither message holds the password', async () => {
  const server = servers.default!
  const wrong = 'Not-The-Pw-42'
  const url = server.urlFor('auth').replace(`:${SMB_PASSWORD}@`, `:${wrong}@`)
  const refused = smbBackend(url)
  const error = await refused.sync().then(() => undefined, (e: unknown) => e)
  await refused.close()
  assert.equal((error as { code?: string } | undefined)?.code, 'REMOTE_AUTH', `a wrong password is REMOTE_AUTH (${String(error)})`)
  const text = JSON.stringify(serializeError(error))
  assert.ok(text.includes(server.user), `the message names the user: ${text}`)
  assert.ok(!text.includes(wrong) && !text.includes(SMB_PASSWORD), `no password in the message: ${text}`)

  const missing = smbBackend(server.urlForShare('no-such-share', 'x'))
  const noShare = await missing.sync().then(() => undefined, (e: unknown) => e)
  await missing.close()
  assert.equal((noShare as { code?: string } | undefined)?.code, 'REMOTE_BAD_URL', `a missing share is a bad URL (${String(noShare)})`)
  assert.match((noShare as Error).message, /no share named no-such-share/, 'the message names the share')
  assert.ok(!JSON.stringify(serializeError(noShare)).includes(SMB_PASSWORD), 'no password in the message')
})

test('a server restarted under an open file: the handle is re-opened on a new connection and the writes land', async () => {
  const server = servers.default!
  const backend = smbBackend(server.urlFor('restart'))
  try {
    await backend.write('disk.vhd', Buffer.alloc(4096, 1))
    const file = await backend.open('disk.vhd', 'r+')
    await file.write(Buffer.alloc(512, 2), 0)
    await server.stop()
    await server.restart()
    await file.write(Buffer.alloc(512, 3), 512)
    assert.equal(await file.size(), 4096, 'the re-opened handle sees the file')
    await file.close()
    const expected = Buffer.concat([Buffer.alloc(512, 2), Buffer.alloc(512, 3), Buffer.alloc(3072, 1)])
    assert.ok((await collect(await backend.read('disk.vhd'))).equals(expected), 'both writes, before and after the restart, are in the file')
  } finally {
    await backend.close()
  }
})

test('an unprivileged user (nobody) writes and reads back a file through the backend: no privilege is needed', async () => {
  const server = servers.default!
  const smb = fileURLToPath(new URL('../../source/storage/smb.ts', import.meta.url))
  const url = fileURLToPath(new URL('../../source/storage/url.ts', import.meta.url))
  const script = `
    import { createHash, randomBytes } from 'node:crypto'
    import { SmbBackend } from ${JSON.stringify(smb)}
    import { parseRemoteUrl } from ${JSON.stringify(url)}
    const backend = new SmbBackend(parseRemoteUrl(JSON.parse(process.env.REMOTE_URL)), 'smb')
    const data = randomBytes(2 * 1024 * 1024 + 5)
    await backend.write('by-nobody.bin', data)
    const chunks = []
    for await (const chunk of await backend.read('by-nobody.bin')) chunks.push(chunk)
    await backend.close()
    process.stdout.write(JSON.stringify({ uid: process.getuid(), same: Buffer.concat(chunks).equals(data), sha256: createHash('sha256').update(data).digest('hex') }))`
  const scratch = await tempDir()
  try {
    // tsx keeps its cache under TMPDIR, which nobody may write.
    await chmod(scratch.path, 0o777)
    const child = spawn(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], {
      uid: 65534, gid: 65534, cwd: fileURLToPath(new URL('../..', import.meta.url)), env: { PATH: process.env.PATH ?? '', HOME: scratch.path, TMPDIR: scratch.path, REMOTE_URL: JSON.stringify(server.urlFor('unprivileged')) }, stdio: ['ignore', 'pipe', 'pipe'],
    })
    let out = ''
    let err = ''
    child.stdout.on('data', (d: Buffer) => (out += d.toString()))
    child.stderr.on('data', (d: Buffer) => (err += d.toString()))
    const code = await new Promise(resolve => child.on('close', resolve))
    assert.equal(code, 0, `the child failed: ${err}`)
    const result = JSON.parse(out) as { uid: number; same: boolean; sha256: string }
    assert.equal(result.uid, 65534, 'the child ran as nobody')
    assert.ok(result.same, 'the child read back the bytes it wrote')
    const onDisk = await readFile(join(server.root, 'unprivileged', 'by-nobody.bin'))
    assert.equal(createHash('sha256').update(onDisk).digest('hex'), result.sha256, 'the share holds those bytes')
  } finally {
    await scratch.cleanup()
  }
})

test('each dialect (2.1: HMAC-SHA256; 3.0, 3.0.2: AES-CMAC; 3.1.1: AES-CMAC over the preauth hash) signs what Samba checks', async () => {
  for (const signing of ['default', 'mandatory'] as const) {
    const server = servers[signing]!
    for (const [name, dialect] of Object.entries(Dialect)) {
      const client = new SmbClient({ host: '127.0.0.1', port: server.port, share: server.share, credentials: { username: server.user, password: server.password, domain: server.domain }, dialects: [dialect] })
      try {
        assert.equal((await client.connection()).dialect, dialect, `${name} was negotiated`)
        const data = randomBytes(3 * 1024 * 1024 + 1)
        const file = await client.open(`dialect-${name}.bin`, { access: Access.READ_DATA | Access.WRITE_DATA | Access.READ_ATTRIBUTES, disposition: Disposition.OVERWRITE_IF })
        await Promise.all([0, 1, 2, 3].map(i => file.write(data.subarray(i * 1048576, (i + 1) * 1048576), i * 1048576)))
        const back = Buffer.concat(await Promise.all([0, 1, 2, 3].map(i => file.read(i * 1048576, 1048576))))
        await file.close()
        assert.ok(back.equals(data), `${name} (${signing} signing): the bytes read are the bytes written`)
        assert.ok((await readFile(join(server.root, `dialect-${name}.bin`))).equals(data), `${name} (${signing} signing): the share holds them`)
      } finally {
        await client.close()
      }
    }
  }
})

test('a full share is REMOTE_FULL, and the failed write leaves nothing behind', async () => {
  const server = await startSamba({ sizeLimitBytes: 8 * 1024 * 1024 })
  const backend = smbBackend(server.urlFor('full'))
  try {
    await backend.write('small', 'fits')
    async function* big() {
      for (let i = 0; i < 16; i++) yield Buffer.alloc(1024 * 1024, i)
    }
    await assert.rejects(backend.write('disk.vhd', big()), (error: Error & { code?: string }) => error.code === 'REMOTE_FULL' && /is full/.test(error.message))
    assert.deepEqual(await readdir(join(server.root, 'full')), ['small'], 'neither the file nor its temporary is left')
  } finally {
    await backend.close()
    await server.cleanup()
  }
})

test('a folder the share user may not write: EACCES with a sentence naming the user and the share', async () => {
  const server = servers.default!
  // Owned by root, 0755: the share user (smbd switches to it) cannot create anything in it.
  await mkdir(join(server.root, 'locked'), { mode: 0o755 })
  const backend = smbBackend(server.urlFor('locked'))
  try {
    const error = await backend.write('x.json', '{}').then(() => undefined, (e: unknown) => e)
    assert.equal((error as { code?: string } | undefined)?.code, 'EACCES', `EACCES (${String(error)})`)
    assert.match((error as Error).message, new RegExp(`user WORKGROUP\\\\${server.user} may not write x.json .*permissions of the share ${server.share}`), 'the sentence names the user, the file and the share')
  } finally {
    await backend.close()
  }
})

test('a Samba that requires encryption is refused with NOT_SUPPORTED and a sentence saying so', async () => {
  const server = await startSamba({ encrypt: 'required' })
  const backend = smbBackend(server.urlFor('encrypted'))
  try {
    await assert.rejects(backend.sync(), (error: Error & { code?: string }) => error.code === 'NOT_SUPPORTED' && /smb encrypt = required/.test(error.message) && !error.message.includes(server.password))
  } finally {
    await backend.close()
    await server.cleanup()
  }
})
