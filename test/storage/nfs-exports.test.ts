// The refusals of a badly configured export, each against its own real nfs-ganesha: a read-only export, a
// `secure` one (privileged ports only), root squash, a client list without this machine, all_squash. Each
// is a coded LifeboatError whose sentence names what to change on the server or in the URL, and
// `lifeboat remote add` gives the same sentence.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import { chmod, chown, readdir, readFile, stat, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { NfsBackend, type NfsRemote } from '../../source/storage/nfs.ts'
import { parseRemoteUrl, redactRemoteUrl } from '../../source/storage/url.ts'
import { LifeboatError } from '../../source/util/errors.ts'
import { cli, cliJson, startDaemon } from '../daemon/helpers.ts'
import { startGanesha, type GaneshaExportOptions, type GaneshaServer } from '../helpers/ganesha.ts'
import { tempDir } from '../helpers/tools.ts'

function backendFor(url: string): NfsBackend {
  return new NfsBackend(parseRemoteUrl(url) as NfsRemote, redactRemoteUrl(url), { retryDelaysMs: [] })
}

async function withExport(options: GaneshaExportOptions, body: (server: GaneshaServer) => Promise<void>): Promise<void> {
  const server = await startGanesha({ export: options })
  try {
    await body(server)
  } finally {
    await server.cleanup()
  }
}

/** The refusal: a LifeboatError of `code` whose sentence names the remote by its redacted URL and matches each of `says`. */
function refusal(code: string, url: string, says: RegExp[]): (error: unknown) => boolean {
  return error => {
    assert.ok(error instanceof LifeboatError, `a LifeboatError, not ${String(error)}`)
    assert.equal(error.code, code, error.message)
    assert.ok(error.message.includes(` on ${redactRemoteUrl(url)} `), `the sentence names the remote: ${error.message}`)
    for (const said of says) assert.match(error.message, said)
    return true
  }
}

async function readAll(backend: NfsBackend, path: string): Promise<Buffer> {
  const chunks: Buffer[] = []
  for await (const chunk of await backend.read(path)) chunks.push(chunk as Buffer)
  return Buffer.concat(chunks)
}

const READ_ONLY = [/the export is read-only/, /export it read-write to this machine/, /Access_Type = RW/, /`rw`/]
const SECURE = [/privileged source port/, /`insecure`/, /above 1023/, /PrivilegedPort = false/]
const CLIENTS = [/does not export .* to this machine/, /client list/, /Clients/]

test('a read-only export (Access_Type = RO): a write is refused naming read-write, nothing is left behind, reads still work', async () => {
  await withExport({ accessType: 'RO' }, async server => {
    const url = server.urlFor('data')
    await writeFile(join(server.root, 'data', 'kept.bin'), 'written on the server')
    const backend = backendFor(url)
    try {
      await backend.sync()
      await assert.rejects(backend.write('vm/disk.vhd', randomBytes(3 * 1024 * 1024)), refusal('REMOTE_AUTH', url, READ_ONLY))
      await assert.rejects(backend.write('top.json', '{}'), refusal('REMOTE_AUTH', url, READ_ONLY))
      assert.deepEqual(await readdir(join(server.root, 'data')), ['kept.bin'], 'no file, folder or temporary is left')
      assert.equal((await readAll(backend, 'kept.bin')).toString(), 'written on the server', 'reads still work')
      assert.deepEqual((await backend.list('')).entries, [{ name: 'kept.bin', isDirectory: false }])
    } finally {
      await backend.close()
    }
  })
})

test('a `secure` export (PrivilegedPort = true): the first operation is refused naming `insecure` and ports above 1023', async () => {
  await withExport({ privilegedPort: true }, async server => {
    const url = server.urlFor('data')
    const backend = backendFor(url)
    try {
      await assert.rejects(backend.sync(), refusal('REMOTE_AUTH', url, SECURE))
      await assert.rejects(backend.write('x', 'y'), refusal('REMOTE_AUTH', url, SECURE))
      await assert.rejects(backend.list(''), refusal('REMOTE_AUTH', url, [/ refused list on nfs:/, ...SECURE]))
      assert.deepEqual(await readdir(join(server.root, 'data')), [], 'nothing is written')
    } finally {
      await backend.close()
    }
  })
})

test('root squash against a folder of root, mode 0755: uid 0 is refused naming root squash and the ids sent; ?uid=&gid= of the owner work', async () => {
  await withExport({ squash: 'root_squash' }, async server => {
    const url = server.urlFor('data')
    await chown(join(server.root, 'data'), 0, 0)
    await chmod(join(server.root, 'data'), 0o755)
    const asRoot = backendFor(url)
    try {
      await asRoot.sync()
      await assert.rejects(asRoot.write('vm/disk.vhd', 'x'), refusal('REMOTE_AUTH', url, [/permission denied/, /uid 0 and gid 0 \(root\)/, /root squash/, /anonuid/, /\?uid= and \?gid=/]))
      assert.deepEqual(await readdir(join(server.root, 'data')), [], 'nothing is left behind')
    } finally {
      await asRoot.close()
    }
    // The folder given to a user, and the URL sending that user's ids.
    await chown(join(server.root, 'data'), 4321, 4322)
    const owner = server.urlFor('data', { uid: 4321, gid: 4322 })
    const asOwner = backendFor(owner)
    try {
      await asOwner.sync()
      const data = randomBytes(2 * 1024 * 1024 + 17)
      assert.equal(await asOwner.write('vm/disk.vhd', data), data.length)
      assert.deepEqual(await readAll(asOwner, 'vm/disk.vhd'), data, 'read back through NFS')
      assert.deepEqual(await readFile(join(server.root, 'data', 'vm', 'disk.vhd')), data, 'the server holds the same bytes')
      const onDisk = await stat(join(server.root, 'data', 'vm', 'disk.vhd'))
      assert.deepEqual([onDisk.uid, onDisk.gid], [4321, 4322], 'the file belongs to the ids of the URL')
      assert.equal((await stat(join(server.root, 'data', 'vm'))).uid, 4321, 'so does its folder')
    } finally {
      await asOwner.close()
    }
  })
})

test('a client list without this machine (Clients = 10.9.9.9): the mount is refused naming the client list', async () => {
  await withExport({ clients: '10.9.9.9' }, async server => {
    const url = server.urlFor('data')
    const backend = backendFor(url)
    try {
      await assert.rejects(backend.sync(), refusal('REMOTE_AUTH', url, CLIENTS))
      await assert.rejects(backend.list(''), refusal('REMOTE_AUTH', url, CLIENTS))
    } finally {
      await backend.close()
    }
  })
})

test('all_squash with anonuid: whatever ids Lifeboat sends, files land owned by the anonymous ids', async () => {
  await withExport({ squash: 'all_squash', anonUid: 4400, anonGid: 4401 }, async server => {
    const url = server.urlFor('data')
    await chown(join(server.root, 'data'), 4400, 4401)
    for (const [name, sent] of [['as-root', url], ['as-1234', server.urlFor('data', { uid: 1234, gid: 1234 })]] as const) {
      const backend = backendFor(sent)
      try {
        const data = randomBytes(1024 * 1024 + 3)
        await backend.write(`${name}/file`, data)
        assert.deepEqual(await readAll(backend, `${name}/file`), data, 'read back through NFS')
        const onDisk = await stat(join(server.root, 'data', name, 'file'))
        assert.deepEqual([onDisk.uid, onDisk.gid], [4400, 4401], `${name}: the file belongs to the anonymous ids`)
        assert.deepEqual(await readFile(join(server.root, 'data', name, 'file')), data)
      } finally {
        await backend.close()
      }
    }
  })
})

test('lifeboat remote add: a `secure` export and a client list without this machine are refused with the same sentences, and not added; a read-only one fails remote test', async () => {
  const dir = await tempDir('lifeboat-nfs-exports-')
  const daemon = await startDaemon(join(dir.path, 'daemon'))
  try {
    for (const [name, options, says] of [['secure', { privilegedPort: true }, SECURE], ['elsewhere', { clients: '10.9.9.9' }, CLIENTS]] as const) {
      await withExport(options, async server => {
        const url = server.urlFor('data')
        const added = await cli(daemon.socket, ['remote', 'add', name, url])
        assert.equal(added.code, 1, `refused: ${added.stdout}${added.stderr}`)
        assert.ok(added.stderr.startsWith(`lifeboat: REMOTE_AUTH: The remote "${name}" was not added: The NFS server 127.0.0.1 refused `), added.stderr)
        for (const said of says) assert.match(added.stderr, said)
        // The same sentence the backend gives.
        const backend = backendFor(url)
        try {
          const direct = await backend.sync().then(() => assert.fail('synced'), (error: Error) => error.message)
          assert.ok(added.stderr.includes(direct), `the CLI says what the backend says:\n${added.stderr}\n${direct}`)
        } finally {
          await backend.close()
        }
      })
    }
    const names = (await cliJson(daemon.socket, ['remote', 'list'])).map((r: { name: string }) => r.name)
    assert.deepEqual(names, [], 'neither is added')

    // A read-only export mounts, so it is added; `remote test` then fails at its first write, with the backend's sentence.
    await withExport({ accessType: 'RO' }, async server => {
      const url = server.urlFor('data')
      const added = await cli(daemon.socket, ['remote', 'add', 'read-only', url])
      assert.equal(added.code, 0, added.stderr)
      const tested = await cli(daemon.socket, ['remote', 'test', 'read-only', '--mib', '1'])
      assert.equal(tested.code, 1, `refused: ${tested.stdout}${tested.stderr}`)
      assert.match(tested.stderr, /^lifeboat: REMOTE_TEST_FAILED: The remote "read-only" failed the test while writing a 1\.0 MiB probe file: REMOTE_AUTH: The NFS server 127\.0\.0\.1 refused write \.lifeboat-probe-/)
      for (const said of READ_ONLY) assert.match(tested.stderr, said)
      assert.deepEqual(await readdir(join(server.root, 'data')), [], 'the probe left nothing')
    })
  } finally {
    daemon.child.kill('SIGTERM')
    await daemon.exited
    await dir.cleanup()
  }
})
