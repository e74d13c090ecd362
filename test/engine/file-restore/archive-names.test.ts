// The names inside a fetched archive: relative to the folder that holds every selected path, so that one folder
// fetched gives its own name first (as tar -C does) and two files of the same name from different folders never
// collide. On a small in-memory file system (the engine test reads real ext4, XFS and NTFS).
import assert from 'node:assert/strict'
import { Readable } from 'node:stream'
import { test } from 'node:test'
import { commonFolder, FileSystemBrowser } from '../../../source/engine/file-restore/browse.ts'
import type { BrowsableFileSystem, FileEntry } from '../../../source/engine/file-restore/filesystem.ts'

const TREE: Record<string, string[] | string> = {
  '/': ['etc', 'srv'], '/etc': ['fstab', 'ssh'], '/etc/fstab': 'a', '/etc/ssh': ['sshd_config'], '/etc/ssh/sshd_config': 'b', '/srv': ['fstab'], '/srv/fstab': 'c',
}

const memory: BrowsableFileSystem = {
  kind: 'ext',
  names: async dir => [...(TREE[dir] as string[])],
  stat: async path => {
    const node = TREE[path]
    if (node === undefined) throw Object.assign(new Error(`no ${path}`), { code: 'ENOENT' })
    const entry: FileEntry = { name: path.split('/').pop() ?? '', type: typeof node === 'string' ? 'file' : 'directory', size: typeof node === 'string' ? node.length : 0, mtime: 0, mode: 0o644, uid: 0, gid: 0 }
    return entry
  },
  createReadStream: path => Readable.from([Buffer.from(TREE[path] as string)]),
  close: async () => {},
}

async function names(paths: string[]): Promise<string[]> {
  const out: string[] = []
  for await (const entry of new FileSystemBrowser(memory).entries(paths)) out.push(entry.path)
  return out
}

test('archive names: relative to the folder holding every selected path; same names from two folders stay apart', async () => {
  assert.deepEqual(await names(['/etc/fstab']), ['fstab'], 'one file: its name')
  assert.deepEqual(await names(['/etc/ssh']), ['ssh', 'ssh/sshd_config'], 'one folder: its name, then what it holds')
  assert.deepEqual(await names(['/etc/fstab', '/srv/fstab']), ['etc/fstab', 'srv/fstab'], 'two fstab files do not collide')
  assert.deepEqual(await names(['/etc/fstab', '/etc/ssh/sshd_config']), ['fstab', 'ssh/sshd_config'])
  assert.deepEqual(await names(['/etc/fstab', '/etc/fstab/']), ['fstab'], 'the same path twice is archived once')
  assert.deepEqual([commonFolder(['/a/b', '/a/c']), commonFolder(['/a/b', '/a/b']), commonFolder(['/x', '/y']), commonFolder(['/'])], ['/a', '/a/b', '/', '/'])
})
