// File-level restore in the TUI (frames with ink-testing-library against the fake daemon): `f` on a delta restore
// point opens a session and lists its volumes (a refused one says why and cannot be opened); a folder opens and
// closes; a big folder is listed a page at a time after a name cursor; `/` searches; two entries marked are
// fetched as zip to a path; leaving the screen closes the session; a full point says why it cannot be browsed.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { renderApp, KEYS, goTo, frameFits, tick, type Terminal } from './render.tsx'
import { fullDaemon } from './setup.ts'
import * as data from './data.ts'
import type { FileRestoreEntry } from '../../source/protocol/file-restore.ts'
import { PAGE_SIZE } from '../../source/tui/screens/files.tsx'

const BIG = 1000
const file = (name: string, size = 1234): FileRestoreEntry => ({ name, type: 'file', size, mtime: data.NOW, mode: 0o644, uid: 0, gid: 0 })
const folder = (name: string): FileRestoreEntry => ({ name, type: 'directory', size: 4096, mtime: data.NOW, mode: 0o755, uid: 0, gid: 0 })
const bigNames = Array.from({ length: BIG }, (_, i) => `f${String(i).padStart(5, '0')}`)
const TREE: Record<string, FileRestoreEntry[]> = {
  '/': [folder('big'), folder('etc'), file('notes.txt')],
  '/etc': [file('fstab', 512), file('hosts', 220)],
  '/big': bigNames.map(name => file(name)),
}

function fileDaemon() {
  return fullDaemon()
    .answer('fileRestore.open', { session: 'sess-1', vm: 'web-01', backupDate: data.NOW, disks: [{ id: '0', name: 'root', size: 20 * 2 ** 30 }], idleSeconds: 900 })
    .answer('fileRestore.volumes', [
      { id: '1', offset: 1048576, size: 2 ** 30, kind: 'partition', content: 'xfs', browsable: false, reason: 'An XFS file system is read through the kernel: run the daemon as root to browse it.' },
      { id: '2', offset: 2 ** 30, size: 19 * 2 ** 30, kind: 'partition', content: 'ext', label: 'data', browsable: true },
    ])
    .answer('fileRestore.list', ({ path, after, limit }) => {
      const all = TREE[path] ?? []
      const start = after === undefined ? 0 : all.findIndex(e => e.name > after)
      const entries = all.slice(start === -1 ? all.length : start, (start === -1 ? all.length : start) + (limit ?? 200))
      const last = entries[entries.length - 1]
      return { path, entries, total: all.length, ...(last !== undefined && all[all.length - 1] !== last && { next: last.name }) }
    })
    .answer('fileRestore.find', ({ query }) => ({ matches: [{ ...file('hosts', 220), path: '/etc/hosts' }].filter(m => m.name.includes(query)), truncated: false }))
    .answer('fileRestore.fetch', { runId: 'run-00003' })
    .answer('fileRestore.close', {})
}

async function openFiles(t: Terminal, vmRow: number): Promise<void> {
  await goTo(t, 'restore')
  await t.waitFor('site-a')
  await t.press(KEYS.enter)
  await t.waitFor('[VM]')
  for (let i = 0; i < vmRow; i++) await t.press(KEYS.down)
  await t.press(KEYS.enter)
  await t.waitFor('[Restore point]')
  await t.press('f')
}

const fits = (t: Terminal) => assert.equal(frameFits(t.frame(), 80, 24), undefined)

test('files: volumes with a refused one, a folder in and out, a big folder page by page, search, two marked fetched as zip, the session closed', async () => {
  const client = fileDaemon()
  const t = await renderApp(client)
  await openFiles(t, 1) // web-01, its newest point
  let frame = await t.waitFor('Volumes')
  frame = await t.waitFor('✖ no')
  assert.deepEqual(client.callsOf('fileRestore.open'), [{ remote: 'site-a', backupId: 'xo-vm-backups/vm-0000/20261122T030000Z.json' }])
  assert.match(frame, /XFS file system is read through the kernel: run the daemon as root/, 'the refused volume says why')
  fits(t)
  await t.press(KEYS.enter) // the XFS one: refused
  frame = await t.waitFor('cannot be browsed')
  assert.deepEqual(client.callsOf('fileRestore.list'), [], 'a refused volume is not listed')

  await t.press(KEYS.down, KEYS.enter)
  frame = await t.waitFor('notes.txt')
  assert.match(frame, /drwxr-xr-x +- .* etc\//)
  assert.match(frame, /-rw-r--r-- +1\.2 KiB .* notes\.txt/)
  await t.press(KEYS.down, KEYS.enter) // etc
  frame = await t.waitFor('fstab')
  assert.match(frame, /volume 2 \(ext\) ▸ \/etc/)
  await t.press(' ') // fstab marked, the cursor goes to hosts
  await t.press(KEYS.backspace)
  await t.waitFor('notes.txt')
  await t.press(KEYS.down, KEYS.down, ' ') // notes.txt
  frame = await t.waitFor('2 marked')
  fits(t)

  await t.press(KEYS.up, KEYS.up, KEYS.enter) // big
  frame = await t.waitFor('1000 entries: 1–200, page 1')
  assert.match(frame, /Mode +Size +Modified +Name/, 'a full page keeps its header')
  assert.match(frame, /… \d+ more/, 'the rows of the page that do not fit are counted')
  fits(t)
  await t.press(']')
  frame = await t.waitFor('201–400, page 2')
  assert.match(frame, /f00200/)
  await t.press(']')
  await t.waitFor('401–600, page 3')
  await t.press('[')
  await t.waitFor('201–400, page 2')
  const pages = (client.callsOf('fileRestore.list') as Array<{ path: string; after?: string; limit: number }>).filter(p => p.path === '/big')
  assert.deepEqual(pages.map(p => p.after), [undefined, 'f00199', 'f00399', 'f00199'], 'one page at a time, after the last name of the page before')
  assert.ok(pages.every(p => p.limit === PAGE_SIZE && PAGE_SIZE < BIG), 'never the whole folder at once')
  await t.press(KEYS.left)
  await t.waitFor('notes.txt')

  await t.press('/')
  await t.type('host')
  await t.press(KEYS.enter)
  frame = await t.waitFor('1 match for "host"')
  assert.match(frame, /\/etc\/hosts/)
  assert.deepEqual((client.callsOf('fileRestore.find') as Array<Record<string, unknown>>).map(p => [p.path, p.query]), [['/', 'host']])
  await t.press(KEYS.esc)
  await t.waitFor('notes.txt')

  await t.press('g')
  frame = await t.waitFor('Fetch 2 marked files and folders')
  fits(t)
  await t.type('/srv/restore/web.zip')
  await t.press(KEYS.down, KEYS.right) // tar → zip
  await t.waitFor('‹ zip ›')
  await t.press(KEYS.enter)
  await t.waitFor('fetch of 2 paths: started (run run-00003)')
  assert.deepEqual(client.callsOf('fileRestore.fetch'), [{ session: 'sess-1', disk: '0', volume: '2', paths: ['/etc/fstab', '/notes.txt'], format: 'zip', destination: '/srv/restore/web.zip' }])
  assert.deepEqual(client.callsOf('fileRestore.close'), [], 'the session stays open under the run it feeds')

  await t.press(KEYS.esc) // back to the files
  await t.waitFor('volume 2')
  await t.press(KEYS.esc) // to the volumes
  await t.waitFor('✖ no')
  await t.press(KEYS.esc) // leaves the screen
  await t.waitFor('[Restore point]')
  await tick(50)
  assert.deepEqual(client.callsOf('fileRestore.close'), [{ session: 'sess-1' }])
  t.unmount()
})

test('files: a full (XVA) restore point says why it cannot be browsed', async () => {
  const client = fileDaemon().answer('fileRestore.open', () => {
    throw Object.assign(new Error('The backup x is a full backup (one XVA archive), which cannot be read at random; file-level restore reads delta backups.'), { code: 'FILE_RESTORE_FULL_BACKUP' })
  })
  const t = await renderApp(client)
  await openFiles(t, 0) // db-01: a full backup
  const frame = await t.waitFor('is a full backup (one XVA archive)')
  assert.doesNotMatch(frame, /Opening the restore point/)
  fits(t)
  t.unmount()
})

test('files: a destination that is not an absolute path is refused before anything is fetched', async () => {
  const client = fileDaemon()
  const t = await renderApp(client)
  await openFiles(t, 1)
  await t.waitFor('✖ no')
  await t.press(KEYS.down, KEYS.enter)
  await t.waitFor('notes.txt')
  await t.press(KEYS.down, KEYS.down, 'g') // the cursor's entry, nothing marked
  await t.waitFor('Fetch /notes.txt')
  await t.type('restore.tar')
  await t.press(KEYS.enter)
  await t.waitFor('absolute path on the appliance')
  assert.deepEqual(client.callsOf('fileRestore.fetch'), [])
  t.unmount()
})
