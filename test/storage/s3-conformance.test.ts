// The storage contract on the S3 backend, against s3rver (started once for the file, a fresh folder of
// its bucket per test), bare and decorated as openRemote decorates it.
import { after, before } from 'node:test'
import { S3Backend, type S3Remote } from '../../source/storage/s3.ts'
import { parseRemoteUrl, redactRemoteUrl } from '../../source/storage/url.ts'
import { startS3rver, type S3rver } from '../helpers/s3rver.ts'
import { runConformanceSuite } from './conformance.ts'

let server: S3rver
let folders = 0

before(async () => {
  server = await startS3rver()
})

after(async () => {
  await server?.stop()
})

runConformanceSuite(
  's3',
  async () => {
    const url = server.urlFor(`conformance-${++folders}`)
    const backend = new S3Backend(parseRemoteUrl(url) as S3Remote, redactRemoteUrl(url))
    // Each test has its own folder, and the server's data goes with it in `after`.
    return { backend, url, cleanup: async () => {} }
  },
  // S3 keeps an object's time in whole seconds.
  { lockStaleMs: 2000 },
)
