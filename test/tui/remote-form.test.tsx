// The remote form: the type first, then that type's fields; the URL it sends is Xen Orchestra's form of
// what was typed; secrets are masked while typed and in the URL preview; esc leaves it at any field; a
// refused add shows the daemon's code and sentence and keeps what was typed (secrets cleared, as it says).
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { renderApp, KEYS, goTo, frameFits, type Terminal } from './render.tsx'
import { fullDaemon } from './setup.ts'
import * as data from './data.ts'
import { parseRemoteUrl } from '../../source/storage/url.ts'

/** Opens the form and picks the type by pressing → `steps` times (local folder, NFS, SMB, S3, Azure Blob, Azurite). */
async function openForm(t: Terminal, steps: number, name: string): Promise<void> {
  await goTo(t, 'remotes')
  await t.waitFor('site-a')
  await t.press('a')
  await t.waitFor('Add a remote')
  for (let i = 0; i < steps; i++) await t.press(KEYS.right)
  await t.press(KEYS.down)
  await t.type(name)
}

/** Fills the fields after Name in order: text is typed, `null` skips a field, `true` flips a toggle or turns a choice. */
async function fill(t: Terminal, values: Array<string | null | true>): Promise<void> {
  for (const value of values) {
    await t.press(KEYS.down)
    if (value === true) await t.press(' ')
    else if (value !== null) await t.type(value)
  }
}

async function added(fields: Array<string | null | true>, steps: number, check: (frame: string) => void = () => {}): Promise<{ name: string; url: string }> {
  const client = fullDaemon().answer('remote.add', data.remotes[0]!)
  const t = await renderApp(client, { columns: 100, rows: 30 })
  try {
    await openForm(t, steps, 'new')
    await fill(t, fields)
    check(t.frame())
    await t.press(KEYS.enter)
    await t.waitFor('add remote new: done')
    const calls = client.callsOf('remote.add') as Array<{ name: string; url: string }>
    assert.equal(calls.length, 1, 'one add')
    return calls[0]!
  } finally {
    t.unmount()
  }
}

test('remote form, local folder: the folder and useVhdDirectory', async () => {
  const { name, url } = await added(['/srv/backups', true], 0)
  assert.equal(name, 'new')
  assert.equal(url, 'file:///srv/backups?useVhdDirectory=true')
})

test('remote form, NFS: host, port and export path', async () => {
  const { url } = await added(['nas.example', '2049', '/export/backups'], 1, frame => {
    assert.match(frame, /Host/)
    assert.match(frame, /Export path/)
    assert.doesNotMatch(frame, /Bucket|Share/, 'only the NFS fields')
  })
  assert.equal(url, 'nfs://nas.example:2049:/export/backups')
})

test('remote form, SMB: domain, user, password masked, host, share and sub-folder', async () => {
  const { url } = await added([null, 'backup', 'Pa55:w@rd', 'nas', 'backups', 'lifeboat/site-a'], 2, frame => {
    assert.doesNotMatch(frame, /Pa55/, 'the password is not shown')
    assert.match(frame, /•{9}/)
    assert.match(frame, /URL: smb:\/\/backup:\*\*\*@WORKGROUP\\\\nas\\backups/)
  })
  assert.equal(url, 'smb://backup:Pa55:w@rd@WORKGROUP\\\\nas\\backups\0lifeboat\\site-a')
  const parsed = parseRemoteUrl(url)
  assert.ok(parsed.type === 'smb' && parsed.password === 'Pa55:w@rd' && parsed.username === 'backup' && parsed.domain === 'WORKGROUP', `the URL reads back as typed: ${JSON.stringify(parsed)}`)
})

test('remote form, S3: endpoint, http, bucket, folder, region, keys (the secret masked), self-signed, encryption key', async () => {
  const { url } = await added(['s3.example:9000', true, 'backups', 'lifeboat', 'eu-west-3', 'AKIAEXAMPLE', 'wJalr/XUtnFEMI+K7', true, 'k'.repeat(32)], 3, frame => {
    assert.doesNotMatch(frame, /wJalr|kkkk/, 'neither the secret key nor the encryption key is shown')
    assert.match(frame.replace(/\n/g, ''), /URL: ?s3\+http:\/\/AKIAEXAMPLE:\*\*\*@s3\.example:9000\/backups\/lifeboat\?allowUnauthorized=true&encryptionKey=%22\*\*\*%22#eu-west-3/)
  })
  const parsed = parseRemoteUrl(url)
  assert.deepEqual(parsed, {
    type: 's3', protocol: 'http', host: 's3.example:9000', path: '/backups/lifeboat', username: 'AKIAEXAMPLE', password: 'wJalr/XUtnFEMI+K7', region: 'eu-west-3',
    options: { allowUnauthorized: true, encryptionKey: 'k'.repeat(32) },
  })
})

test('remote form, Azure Blob: account, key, host, container, folder', async () => {
  const { url } = await added(['lifeboatacct', 'a2V5/a2V5+a2V5==', 'lifeboatacct.blob.core.windows.net', 'backups', 'site-a'], 4)
  assert.equal(url, 'azure://lifeboatacct:a2V5%2Fa2V5%2Ba2V5%3D%3D@lifeboatacct.blob.core.windows.net/backups/site-a')
  const parsed = parseRemoteUrl(url)
  assert.ok(parsed.type === 'azure' && parsed.password === 'a2V5/a2V5+a2V5==', 'the key reads back as typed')
})

test('remote form, Azurite: over http', async () => {
  const { url } = await added(['devstoreaccount1', 'Eby8vdM02xNO==', '127.0.0.1:10000', true, 'backups'], 5)
  assert.equal(url, 'azurite+http://devstoreaccount1:Eby8vdM02xNO%3D%3D@127.0.0.1:10000/backups')
})

test('remote form: esc leaves it from any field, nothing is added; it fits 80×24 with the most fields (S3)', async () => {
  const client = fullDaemon().answer('remote.add', data.remotes[0]!)
  const t = await renderApp(client)
  for (const fieldsFilled of [0, 2, 6]) {
    await openForm(t, 3, 'x')
    await fill(t, Array.from({ length: fieldsFilled }, () => 'v'))
    assert.equal(frameFits(t.frame(), 80, 24), undefined)
    await t.press(KEYS.esc)
    await t.waitFor('No remotes: press a to add one.').catch(() => t.waitFor('site-a'))
    assert.doesNotMatch(t.frame(), /Add a remote/)
  }
  assert.equal(client.callsOf('remote.add').length, 0)
  t.unmount()
})

test('remote form: a refused add shows the code and the sentence and keeps what was typed; an empty required field is named', async () => {
  const refusals = [Object.assign(new Error('The remote "offsite" was not added: the S3 server refused the access key.'), { code: 'REMOTE_AUTH' })]
  const client = fullDaemon().answer('remote.add', () => Promise.reject(refusals.shift() ?? new Error('unexpected second add')))
  const t = await renderApp(client, { columns: 100, rows: 30 })
  await openForm(t, 3, 'offsite')
  await fill(t, ['s3.example', null, 'backups'])
  await t.press(KEYS.enter)
  let frame = await t.waitFor('Fill in Access key, Secret key.')
  assert.equal(client.callsOf('remote.add').length, 0, 'nothing is sent without the required fields')
  await fill(t, [null, null, 'AKIAEXAMPLE', 'secret'])
  await t.press(KEYS.enter)
  frame = await t.waitFor('REMOTE_AUTH')
  assert.match(frame.replace(/\s*\n\s*/g, ' '), /✖ add remote offsite failed: REMOTE_AUTH: The remote "offsite" was not added: the S3 server refused the access key\. The secret key was cleared: type it again\./)
  assert.match(frame, /s3\.example/, 'the endpoint is kept')
  assert.match(frame, /AKIAEXAMPLE/, 'the access key is kept')
  assert.match(frame, /Add a remote/, 'the form stays open')
  t.unmount()
})

test('remotes: i shows the info (free space unknown on S3, encryption, capabilities) and the last test', async () => {
  const client = fullDaemon()
    .answer('remote.info', ({ name }) => ({
      ...data.remotes.find(r => r.name === name)!,
      status: 'ok' as const,
      encryption: true,
      vhdDirectory: true,
      capabilities: { commit: 'written last' as const, locks: 'lock object' as const, merges: 'block copies' as const, freeSpaceKnown: false, maxObjectSize: 5 * 1024 ** 4, connections: 10 },
    }))
    .answer('remote.test', { ok: true, writeMiBps: 80, readMiBps: 95.5, bytes: 64 * 1024 * 1024, range: { start: 22369628, length: 1048576, ms: 12 }, latencyMs: { write: 21.5, read: 8.25, stat: 4, delete: 6.5 }, samples: 5 })
  const t = await renderApp(client)
  await goTo(t, 'remotes')
  await t.waitFor('offsite')
  await t.press(KEYS.down)
  await t.press('i')
  let frame = await t.waitFor('Remote offsite')
  assert.match(frame, /free space +unknown \(S3 and Azure do not report it\)/)
  assert.match(frame, /encryption +on \(encryptionKey\)/)
  assert.match(frame, /VHD layout +VhdDirectory \(always, on object stores\)/)
  assert.match(frame, /locks +lock object/)
  assert.match(frame, /merges +block copies \(VhdDirectory\)/)
  assert.match(frame, /last test +none yet: press t/)
  await t.press('t')
  frame = await t.waitFor('write 80.0 MiB/s, read 95.5 MiB/s (64 MiB probe)')
  assert.match(frame, /offsite: write 80\.0 MiB\/s, read 95\.5 MiB\/s, latency 21\.5 ms \(i: more\)/)
  assert.match(frame, /latency +write 21\.50 ms, read 8\.25 ms, stat 4\.00 ms, delete 6\.50 ms/)
  await t.press(KEYS.esc)
  await t.waitFor('URL / problem')
  t.unmount()
})
