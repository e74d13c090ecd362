// The start-up clean-up against FUSE views whose server answers nothing: a child process mounts an XFS volume
// (FUSE view → loop device → kernel mount) and an NTFS one (FUSE view → ntfs-3g) and is then stopped, which is
// what the kernel sees of a wedged daemon: any umount or stat there would wait forever. The clean-up aborts the
// connections through fusectl first, and removes every mount and loop device without blocking.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { spawn } from 'node:child_process'
import { mkdir, readFile, readdir, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { cleanFileRestoreLeftovers } from '../../../source/engine/file-restore/index.ts'
import { tempDir } from '../../helpers/tools.ts'
import { MiB, mountedImage, requireDiskTools } from './disk-image.ts'

const HOLDER = fileURLToPath(new URL('./hold-mounts.ts', import.meta.url))

async function mountsUnder(dir: string): Promise<string[]> {
  return (await readFile('/proc/self/mountinfo', 'utf8')).split('\n').map(line => line.split(' ')[4] ?? '').filter(point => point.startsWith(`${dir}/`))
}

async function loopsOver(dir: string): Promise<string[]> {
  const loops: string[] = []
  for (const name of (await readdir('/sys/block')).filter(name => name.startsWith('loop'))) {
    const backing = await readFile(`/sys/block/${name}/loop/backing_file`, 'utf8').catch(() => '')
    if (backing.startsWith(`${dir}/`)) loops.push(name)
  }
  return loops
}

/** Waits until `pid` is dd asleep in an open or a read (what a FUSE request without an answer looks like). */
async function blockedInFuse(pid: number): Promise<void> {
  for (;;) {
    const [comm, stat, syscall] = await Promise.all(['comm', 'stat', 'syscall'].map(file => readFile(`/proc/${pid}/${file}`, 'utf8').catch(() => '')))
    const state = stat!.slice(stat!.lastIndexOf(')') + 2, stat!.lastIndexOf(')') + 3)
    if (comm!.trim() === 'dd' && (state === 'S' || state === 'D') && ['0', '257'].includes(syscall!.split(' ')[0]!)) return
    await new Promise(resolve => setTimeout(resolve, 50))
  }
}

test('leftovers of a wedged server: aborted through fusectl, then unmounted and detached without blocking', { timeout: 300_000 }, async () => {
  requireDiskTools()
  const scratch = await tempDir('lifeboat-leftovers-')
  const workDir = join(scratch.path, 'work')
  const files = join(scratch.path, 'files')
  await mkdir(files)
  await writeFile(join(files, 'hello.txt'), 'hello\n')
  const images = [join(scratch.path, 'xfs.img'), join(scratch.path, 'ntfs.img')]
  await mountedImage('xfs', images[0]!, 320 * MiB, files, scratch.path)
  await mountedImage('ntfs', images[1]!, 16 * MiB, files, scratch.path)
  const holder = spawn(process.execPath, ['--import', 'tsx', HOLDER, workDir, ...images], { stdio: ['ignore', 'pipe', 'inherit'] })
  const exited = new Promise(resolve => holder.on('exit', resolve))
  try {
    await new Promise<void>((resolve, reject) => {
      holder.stdout!.on('data', (data: Buffer) => data.toString().includes('ready') && resolve())
      holder.on('exit', code => reject(new Error(`the holder exited (${code}) before mounting`)))
    })
    assert.equal((await mountsUnder(workDir)).length, 4, 'two FUSE views, the XFS mount and the ntfs-3g mount')
    assert.equal((await loopsOver(workDir)).length, 1)
    holder.kill('SIGSTOP')
    // Readers of the views' far ends, never read so never cached: each waits on the stopped server.
    const views = (await mountsUnder(workDir)).filter(point => point.endsWith('/view'))
    const readers = views.map(view => spawn('dd', [`if=${view}/disk`, 'of=/dev/null', 'bs=4096', 'count=1', `skip=${Math.floor((view.includes('/xfs-') ? 300 : 15) * MiB / 4096) + 7}`], { stdio: 'ignore' }))
    const readersDone = readers.map(reader => new Promise(resolve => reader.on('exit', resolve)))
    for (const reader of readers) await blockedInFuse(reader.pid!)

    const lines = await cleanFileRestoreLeftovers(workDir)
    assert.equal(lines.filter(line => /^aborted the FUSE connection \d+ of /.test(line)).length, 3, lines.join('\n'))
    assert.equal(lines.filter(line => /^detached \/dev\/loop\d+$/.test(line)).length, 1, lines.join('\n'))
    assert.equal(lines.filter(line => /^unmounted /.test(line)).length, 4, lines.join('\n'))
    assert.deepEqual(await mountsUnder(workDir), [])
    assert.deepEqual(await loopsOver(workDir), [])
    // Only the abort can free them while the server is stopped (a lazy unmount leaves the connection waiting).
    assert.deepEqual(await Promise.all(readersDone), [1, 1], 'the blocked reads end, failed')
  } finally {
    // Killed, the holder's descriptors close and the kernel aborts whatever is left: nothing stays wedged.
    holder.kill('SIGKILL')
    holder.kill('SIGCONT')
    await exited
    await cleanFileRestoreLeftovers(workDir)
    await scratch.cleanup()
  }
})
