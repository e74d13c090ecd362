// Xen Orchestra's own npm packages as oracles, installed by the test into a scratch folder outside the project
// (never its dependencies) and used from a child process. Installed once per machine and kept for the next run.
// xoFs runs @xen-orchestra/fs's handler on a folder remote (xo-fs-side.cjs).
import { createHash } from 'node:crypto'
import { existsSync } from 'node:fs'
import { mkdir, rename, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { run } from './tools.ts'

export interface ScratchPackages {
  dependencies: Record<string, string>
  /** npm overrides: @xen-orchestra/fs 4.9.3 wants xo-remote-parser ^0.10.1, which this registry lacks (test-infra.md §5). */
  overrides?: Record<string, string>
}

/** The folder whose node_modules holds these packages; fails (never skips) saying why when npm cannot install them. */
export async function installScratchPackages(spec: ScratchPackages): Promise<string> {
  const id = createHash('sha256').update(JSON.stringify(spec)).digest('hex').slice(0, 12)
  const dir = join(tmpdir(), `lifeboat-npm-${id}`)
  if (existsSync(dir)) return dir
  // Installed aside and renamed into place: two test files asking at once never see half an install.
  const staging = `${dir}.${process.pid}.tmp`
  await rm(staging, { recursive: true, force: true })
  await mkdir(staging, { recursive: true })
  await writeFile(join(staging, 'package.json'), JSON.stringify({ name: 'lifeboat-scratch', private: true, ...spec }))
  try {
    await run('npm', ['install', '--no-audit', '--no-fund', '--no-package-lock', '--loglevel=error'], { cwd: staging })
  } catch (error) {
    await rm(staging, { recursive: true, force: true })
    throw new Error(`npm could not install ${Object.keys(spec.dependencies).join(', ')} (the test needs the npm registry): ${(error as Error).message}`)
  }
  try {
    await rename(staging, dir)
  } catch (error) {
    // Another test installed it first: use that one.
    await rm(staging, { recursive: true, force: true })
    if (!existsSync(dir)) throw error
  }
  return dir
}

const XO_FS = { dependencies: { '@xen-orchestra/fs': '4.9.3' }, overrides: { 'xo-remote-parser': '0.5.0' } }
const XO_FS_SIDE = fileURLToPath(new URL('./xo-fs-side.cjs', import.meta.url))

export type XoFsOp = { op: 'sync' | 'makeAesRemote' } | { op: 'writeFile' | 'readFile' | 'readStream'; path: string; data?: string } | { op: 'writeStream'; path: string; data: string; chunk: number }
export type XoFsResult = { ok: boolean; code?: string; message?: string; data?: string; encrypted?: boolean; algorithm?: string }

/** Runs the ops in order with XO's own handler on the folder `root` (encrypted with `key` if given), in one child process. */
export async function xoFs(root: string, key: string | undefined, ops: XoFsOp[]): Promise<XoFsResult[]> {
  const input = Buffer.from(JSON.stringify({ scratch: await installScratchPackages(XO_FS), root, key, ops }))
  const { stdout } = await run(process.execPath, [XO_FS_SIDE], { input })
  return JSON.parse(stdout.toString()) as XoFsResult[]
}
