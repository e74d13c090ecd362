// Where an encrypted remote's key lives in the daemon: only in secrets.json (mode 0600, in a 0700 folder),
// never in state.json, which holds the redacted URL.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { readFile, stat, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { DaemonState } from '../../source/daemon/state.ts'
import { redactRemoteUrl } from '../../source/storage/url.ts'
import { tempDir } from '../helpers/tools.ts'

const KEY = '73c1838d7d8a6088ca2317fb5f29cd91'
const URL = `file:///srv/backups?useVhdDirectory=true&encryptionKey=${encodeURIComponent(JSON.stringify(KEY))}`

test('a remote URL with its encryption key is kept in secrets.json, mode 0600; state.json has it redacted', async () => {
  const dir = await tempDir()
  try {
    const data = join(dir.path, 'data')
    const state = await DaemonState.open(data)
    await state.updateSecrets(secrets => void (secrets.remotes.vault = { url: URL }))
    await state.update(stored => void stored.remotes.push({ name: 'vault', url: redactRemoteUrl(URL) }))
    assert.equal((await stat(join(data, 'secrets.json'))).mode & 0o777, 0o600)
    assert.equal((await stat(data)).mode & 0o777, 0o700)
    assert.equal((await readFile(join(data, 'state.json'), 'utf8')).includes(KEY), false, 'state.json does not hold the key')
    assert.equal((await readFile(join(data, 'secrets.json'), 'utf8')).includes(KEY), true, 'secrets.json holds it, for the daemon to open the remote')
    assert.equal((await DaemonState.open(data)).remoteUrl('vault'), URL)
  } finally {
    await dir.cleanup()
  }
})

test('a secrets.json left readable by others is tightened to 0600 when the daemon opens it', async () => {
  const dir = await tempDir()
  try {
    await writeFile(join(dir.path, 'secrets.json'), JSON.stringify({ pools: {}, remotes: { vault: { url: URL } } }), { mode: 0o644 })
    await DaemonState.open(dir.path)
    assert.equal((await stat(join(dir.path, 'secrets.json'))).mode & 0o777, 0o600)
  } finally {
    await dir.cleanup()
  }
})
