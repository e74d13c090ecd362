// The paths a handler takes on a backend with nothing but the core (an object store): copied renames,
// ranged reads for openFile, rmtree by listing, implied folders, and the lock object. Run here on a local
// folder stripped of its native operations, so they are proven on a real store without a server.
import { rmdir } from 'node:fs/promises'
import { dirname, join } from 'node:path'
import { LocalBackend, normalizePath, OBJECT_STORE_CAPABILITIES, type Backend } from '../../source/storage/index.ts'
import { tempDir } from '../helpers/tools.ts'
import { runConformanceSuite } from './conformance.ts'

/** The local backend with only the core left, and the capabilities of an object store (whose folders vanish with their last object). */
function coreOnly(local: LocalBackend): Backend {
  const prune = async (path: string) => {
    for (let dir = dirname(join(local.root, normalizePath(path))); dir.startsWith(`${local.root}/`); dir = dirname(dir)) {
      if (!(await rmdir(dir).then(() => true, () => false))) return
    }
  }
  return {
    label: local.label,
    capabilities: { ...OBJECT_STORE_CAPABILITIES, connections: 8 },
    sync: () => local.sync(),
    close: () => local.close(),
    info: async () => ({}),
    list: (dir, options) => local.list(dir, options),
    stat: path => local.stat(path),
    read: (path, range) => local.read(path, range),
    write: (path, data, options) => local.write(path, data, options),
    delete: async paths => {
      await local.delete(paths)
      for (const path of paths) await prune(path)
    },
  }
}

runConformanceSuite('local folder with the core only', async () => {
  const dir = await tempDir('lifeboat-core-')
  const url = `file://${dir.path}`
  return { backend: coreOnly(new LocalBackend(dir.path, url)), url, cleanup: dir.cleanup }
})
