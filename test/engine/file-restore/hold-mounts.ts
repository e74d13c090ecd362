// Run as a child by leftovers.test.ts: mounts the XFS and NTFS images given (as FUSE views, a loop device and
// kernel or ntfs-3g mounts under the work folder), says "ready" and serves them until it is stopped or killed.
import { open } from 'node:fs/promises'
import { openMounted } from '../../../source/engine/file-restore/mounted.ts'

const [workDir, ...images] = process.argv.slice(2)
for (const [k, image] of images.entries()) {
  const handle = await open(image!, 'r')
  const size = (await handle.stat()).size
  const reader = {
    size,
    async read(offset: number, length: number) {
      const buffer = Buffer.alloc(length)
      await handle.read(buffer, 0, length, offset)
      return buffer
    },
  }
  const fs = await openMounted(k === 0 ? 'xfs' : 'ntfs', reader, workDir!)
  await fs.names('/')
}
process.stdout.write('ready\n')
setInterval(() => {}, 60_000)
