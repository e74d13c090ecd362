// Without root, XFS and NTFS are refused with what they need (ext is read by Lifeboat's own reader): run here
// as the unprivileged user `nobody` (runuser, so the test itself runs as root).
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { chmod, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { run, tempDir } from '../../helpers/tools.ts'

const mounted = fileURLToPath(new URL('../../../source/engine/file-restore/mounted.ts', import.meta.url))

test('without root, XFS and NTFS are refused with FILE_RESTORE_NEEDS_ROOT and a sentence saying what is needed', async () => {
  assert.equal(process.getuid?.(), 0, 'this test switches to the user nobody, which needs root')
  const dir = await tempDir()
  try {
    await chmod(dir.path, 0o755)
    const script = join(dir.path, 'probe.mts')
    await writeFile(script, `import { openMounted } from '${mounted}'\nconst disk = { size: 1 << 20, read: async (_o: number, l: number) => Buffer.alloc(l) }\n` +
      `for (const kind of ['xfs', 'ntfs'] as const) await openMounted(kind, disk, '${join(dir.path, 'work')}').then(() => console.log('mounted'), (e: any) => console.log(JSON.stringify({ code: e.code, message: e.message })))\n`)
    await chmod(script, 0o644)
    const { stdout } = await run('runuser', ['-u', 'nobody', '--', process.execPath, '--import', 'tsx', script], { cwd: fileURLToPath(new URL('../../..', import.meta.url)) })
    const answers = stdout.toString().trim().split('\n').map(line => JSON.parse(line) as { code: string; message: string })
    assert.deepEqual(answers.map(a => a.code), ['FILE_RESTORE_NEEDS_ROOT', 'FILE_RESTORE_NEEDS_ROOT'])
    assert.match(answers[0]!.message, /^Reading XFS needs root: .* FUSE .* Run the Lifeboat daemon as root \(ext2\/3\/4 is read without root\)/)
    assert.match(answers[1]!.message, /^Reading NTFS needs root: .*ntfs-3g/)
  } finally {
    await dir.cleanup()
  }
})
