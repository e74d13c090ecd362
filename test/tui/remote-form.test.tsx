// The remote form: the type first, then that type's fields; the URL it sends is Xen Orchestra's form of
// what was typed (and parses back to it); secrets are masked while typed and in the URL preview; a wrong
// entry is named with what it should be before anything is sent; esc leaves it at any field and drops what
// was typed; a refused add shows the daemon's code and sentence and keeps what was typed, secrets too.
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

test('remote form, NFS: the uid and gid the server sees and the MOUNT port, in the query; their hints say the defaults', async () => {
  const { url } = await added(['nas.example', null, '/export/backups', '1000', '1001', '20048'], 1, frame => {
    assert.match(frame, /UID +1000/)
    assert.match(frame, /MOUNT port +20048/)
    assert.match(frame, /URL: nfs:\/\/nas\.example:\/export\/backups\?uid=1000&gid=1001&mountPort=20048/)
  })
  assert.equal(url, 'nfs://nas.example:/export/backups?uid=1000&gid=1001&mountPort=20048')
  assert.deepEqual(parseRemoteUrl(url), { type: 'nfs', host: 'nas.example', path: '/export/backups', options: { uid: 1000, gid: 1001, mountPort: 20048 } })
  const t = await renderApp(fullDaemon(), { columns: 120, rows: 30 })
  await openForm(t, 1, 'hints')
  const frame = t.frame()
  assert.match(frame, /UID +optional: the uid the server sees; default: the daemon's own/)
  assert.match(frame, /GID +optional: the gid the server sees; default: the daemon's own/)
  assert.match(frame, /MOUNT port +optional: else the portmapper on port 111 is asked/)
  t.unmount()
})

test('remote form, SMB: domain, user, password masked, host, share and sub-folder', async () => {
  const { url } = await added([null, 'backup', 'Pa55:w@rd', 'nas', 'backups', 'lifeboat/site-a'], 2, frame => {
    assert.doesNotMatch(frame, /Pa55/, 'the password is not shown')
    assert.match(frame, /•{9}/)
    // The NUL XO puts before the sub-folder is shown as \0, never sent to the terminal.
    assert.match(frame, /URL: smb:\/\/backup:\*\*\*@WORKGROUP\\\\nas\\backups\\0lifeboat\\site-a$/m)
    assert.ok(!frame.includes('\0') && !frame.includes('\ufffd'), 'no NUL, no replacement glyph')
  })
  assert.equal(url, 'smb://backup:Pa55:w@rd@WORKGROUP\\\\nas\\backups\0lifeboat\\site-a')
  const parsed = parseRemoteUrl(url)
  assert.ok(parsed.type === 'smb' && parsed.password === 'Pa55:w@rd' && parsed.username === 'backup' && parsed.domain === 'WORKGROUP', `the URL reads back as typed: ${JSON.stringify(parsed)}`)
})

test('remote form, SMB: an IPv6 address in brackets, with its port', async () => {
  const { url } = await added([null, 'backup', 'pw', '[fd00::5]:4445', 'backups'], 2)
  assert.equal(url, 'smb://backup:pw@WORKGROUP\\\\[fd00::5]:4445\\backups\0')
})

test('remote form, SMB: a host with its port, the URL in XO\'s form, parsed back to what was typed', async () => {
  const { url } = await added(['AD', 'backup', 'p@ss\\w:rd?x', 'nas.example:4445', 'backups', 'lifeboat/site-a'], 2)
  assert.equal(url, 'smb://backup:p@ss\\w:rd?x@AD\\\\nas.example:4445\\backups\0lifeboat\\site-a')
  assert.deepEqual(parseRemoteUrl(url), { type: 'smb', username: 'backup', password: 'p@ss\\w:rd?x', domain: 'AD', host: 'nas.example:4445\\backups', path: 'lifeboat\\site-a', options: {} })
})

/** The form filled with `fields` (after Name) and enter pressed: the sentence it shows; nothing is sent. */
async function refusedByForm(steps: number, fields: Array<string | null | true>, expected: string): Promise<void> {
  const client = fullDaemon()
  const t = await renderApp(client, { columns: 120, rows: 30 })
  try {
    await openForm(t, steps, 'wrong')
    await fill(t, fields)
    await t.press(KEYS.enter)
    const frame = await t.waitFor(`✖ add remote wrong failed: ${expected}`)
    assert.match(frame, new RegExp(`^${expected.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}$`, 'm'), `the preview line says it too:\n${frame}`)
    assert.equal(client.callsOf('remote.add').length, 0, `nothing is sent for ${JSON.stringify(fields)}`)
  } finally {
    t.unmount()
  }
}

test('remote form: a wrong entry is named with what it should be, before anything is sent', async () => {
  await refusedByForm(1, ['nas.example', 'nfs', '/export'], 'Port must be a number from 1 to 65535 (the NFS port, 2049 on most servers).')
  await refusedByForm(1, ['nas.example', '70000', '/export'], 'Port must be a number from 1 to 65535 (the NFS port, 2049 on most servers).')
  await refusedByForm(1, ['nas.example', null, 'export/backups'], 'Export path must be absolute, as the server exports it: /export/backups.')
  await refusedByForm(1, ['nas.example:2049', null, '/export'], 'Host is the name or address alone: put the port in Port.')
  await refusedByForm(1, ['nas', null, '/export', '-1'], 'UID must be a whole number from 0 to 4294967295 (as id -u shows it).')
  await refusedByForm(1, ['nas', null, '/export', null, 'staff'], 'GID must be a whole number from 0 to 4294967295 (as id -g shows it).')
  await refusedByForm(1, ['nas', null, '/export', null, null, 'x'], 'MOUNT port must be a number from 1 to 65535, or left empty.')
  await refusedByForm(2, [null, 'u', 'p', 'nas', 'backups/lifeboat'], 'Share is the share\'s name alone, without / or \\: put the folders under it in Sub-folder.')
  await refusedByForm(2, [null, 'u', 'p', '\\\\nas\\backups', 'backups'], 'Host is the name or address, with :port when it is not 445: put the share in Share.')
  await refusedByForm(2, [null, 'u', 'p', 'nas:smb', 'backups'], 'Host is the name or address, with :port when it is not 445: put the share in Share.')
  await refusedByForm(2, [null, 'u', 'p', '[fd00::5', 'backups'], 'Host is the name or address, with :port when it is not 445: put the share in Share.')
  await refusedByForm(2, [null, 'u:x', 'p', 'nas', 'backups'], 'User cannot hold ":" (put a domain in Domain).')
  await refusedByForm(1, ['nas', null, '/export', null, null, null, true, 'short'], 'Encryption key must be exactly 32 ASCII characters (it has 5).')
  await refusedByForm(1, ['nas', null, '/export', null, null, null, null, 'k'.repeat(32)], 'An encryption key needs VhdDirectory: tick it (Xen Orchestra requires it too).')
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

test('remote form: a refused add shows the code and the sentence and keeps all that was typed, the secret hidden; an empty required field is named', async () => {
  const refusals = [Object.assign(new Error('The remote "offsite" was not added: the S3 server s3.exampel does not answer.'), { code: 'REMOTE_UNAVAILABLE' })]
  const client = fullDaemon().answer('remote.add', () => (refusals.length > 0 ? Promise.reject(refusals.shift()) : Promise.resolve(data.remotes[0]!)))
  const t = await renderApp(client, { columns: 100, rows: 30 })
  await openForm(t, 3, 'offsite')
  await fill(t, ['s3.exampel', null, 'backups'])
  await t.press(KEYS.enter)
  let frame = await t.waitFor('Fill in Access key, Secret key.')
  assert.equal(client.callsOf('remote.add').length, 0, 'nothing is sent without the required fields')
  await fill(t, [null, null, 'AKIAEXAMPLE', 'secret'])
  await t.press(KEYS.enter)
  frame = await t.waitFor('REMOTE_UNAVAILABLE')
  assert.match(frame.replace(/\s*\n\s*/g, ' '), /✖ add remote offsite failed: REMOTE_UNAVAILABLE: The remote "offsite" was not added: the S3 server s3\.exampel does not answer\./)
  assert.doesNotMatch(frame, /cleared|type it again/)
  assert.match(frame, /s3\.exampel/, 'the endpoint is kept')
  assert.match(frame, /AKIAEXAMPLE/, 'the access key is kept')
  assert.match(frame, /Secret key +•{6}/, 'the secret key is kept, hidden')
  assert.doesNotMatch(frame, /Secret key +s|AKIAEXAMPLE:secret/, 'and not shown')
  assert.match(frame, /Add a remote/, 'the form stays open')
  // Only the endpoint was wrong: fix it, enter again, the secret goes with it.
  await t.press(KEYS.up, KEYS.up, KEYS.up, KEYS.up, KEYS.up, KEYS.up, KEYS.backspace, KEYS.backspace, KEYS.backspace)
  await t.type('ple')
  await t.press(KEYS.enter)
  await t.waitFor('add remote offsite: done')
  const url = (client.callsOf('remote.add').at(-1) as { url: string }).url
  assert.equal(url, 's3://AKIAEXAMPLE:secret@s3.example/backups')
  t.unmount()
})

test('remote form: esc drops what was typed, secrets included; the form opens empty again', async () => {
  const t = await renderApp(fullDaemon(), { columns: 100, rows: 30 })
  await openForm(t, 2, 'dropped')
  await fill(t, [null, 'backup', 'Pa55word', 'nas'])
  assert.match(t.frame(), /•{8}/)
  await t.press(KEYS.esc)
  await t.waitFor('site-a')
  await t.press('a')
  const frame = await t.waitFor('Add a remote')
  assert.match(frame, /Type +‹ local folder ›/, 'the type is back to the first')
  assert.doesNotMatch(frame, /dropped|•/, 'nothing typed before is there')
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

test('remotes: the list shows the NUL of an SMB URL as \\0 (as it is typed), never the character itself', async () => {
  const smb = { name: 'nas', url: 'smb://backup:***@WORKGROUP\\\\nas\\backups\0lifeboat', type: 'smb' as const, status: 'ok' as const, space: { size: 1024 ** 4, used: 0, free: 1024 ** 4 } }
  const t = await renderApp(fullDaemon().answer('remote.list', [smb]), { columns: 120 })
  await goTo(t, 'remotes')
  const frame = await t.waitFor('nas')
  assert.match(frame, /smb:\/\/backup:\*\*\*@WORKGROUP\\\\nas\\backups\\0lifeboat/)
  assert.ok(!frame.includes('\0') && !frame.includes('\ufffd'), 'no NUL, no replacement glyph')
  t.unmount()
})

test('remotes: a remote that lives on a proxy says so in the list, before its URL (on the proxy host)', async () => {
  const edge = { name: 'edge-store', url: 'file:///srv/backups', type: 'file' as const, status: 'ok' as const, proxy: 'edge', space: { size: 1024 ** 4, used: 0, free: 1024 ** 4 } }
  const t = await renderApp(fullDaemon().answer('remote.list', [edge]), { columns: 100 })
  await goTo(t, 'remotes')
  const frame = await t.waitFor('edge-store')
  assert.match(frame, /on proxy edge · file:\/\/\/srv\/backups/, 'the row names the proxy the remote lives on')
  t.unmount()
})
