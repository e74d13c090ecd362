// The storage contract on encrypted remotes: the conformance suite on the local folder, S3 (s3rver) and Azure
// (azurite), each opened from a URL with encryptionKey as openRemote opens it (encryption right above the bare
// backend), then run bare and decorated.
import { after, before } from 'node:test'
import { openBackend } from '../../source/storage/remotes.ts'
import { startAzurite, type Azurite } from '../helpers/azurite.ts'
import { startS3rver, type S3rver } from '../helpers/s3rver.ts'
import { tempDir } from '../helpers/tools.ts'
import { runConformanceSuite } from './conformance.ts'

const KEY = `encryptionKey=${encodeURIComponent(JSON.stringify('73c1838d7d8a6088ca2317fb5f29cd91'))}`

let s3: S3rver
let azurite: Azurite
let folders = 0

before(async () => {
  s3 = await startS3rver()
  azurite = await startAzurite()
})

after(async () => {
  await s3?.stop()
  await azurite?.stop()
})

runConformanceSuite('local, encrypted', async () => {
  const dir = await tempDir('lifeboat-remote-')
  const url = `file://${dir.path}?useVhdDirectory=true&${KEY}`
  return { backend: openBackend(url, { retry: false }), url, cleanup: dir.cleanup }
})

runConformanceSuite('S3, encrypted', async () => {
  const url = `${s3.urlFor(`encrypted-${++folders}`)}?${KEY}`
  return { backend: openBackend(url, { retry: false }), url, cleanup: async () => {} }
  // S3 keeps mtimes in seconds: the lock test's staleness spans two of them.
}, { lockStaleMs: 2500 })

runConformanceSuite('Azure, encrypted', async () => {
  const url = `${azurite.urlFor(`encrypted-${++folders}`)}?${KEY}`
  return { backend: openBackend(url, { retry: false }), url, cleanup: async () => {} }
  // A blob lease lasts 15 s at least: the lock test's staleness is as long.
}, { lockStaleMs: 15_000 })
