// The storage conformance suite on the Azure backend against azurite, bare and decorated (the suite runs both).
import { after, before } from 'node:test'
import assert from 'node:assert/strict'
import { AzureBackend } from '../../source/storage/azure.ts'
import { parseRemoteUrl, redactRemoteUrl } from '../../source/storage/url.ts'
import { startAzurite, type Azurite } from '../helpers/azurite.ts'
import { runConformanceSuite } from './conformance.ts'

let azurite: Azurite
let remotes = 0

before(async () => {
  azurite = await startAzurite({ container: 'conformance' })
})

after(async () => {
  await azurite?.stop()
})

runConformanceSuite(
  'azure',
  async () => {
    const url = azurite.urlFor(`remote-${++remotes}`, 'conformance')
    const remote = parseRemoteUrl(url)
    assert.ok(remote.type === 'azurite', 'an azurite remote')
    const backend = new AzureBackend(remote, redactRemoteUrl(url))
    return { backend, url, cleanup: () => backend.rmtree('') }
  },
  // Azure leases last 15 s at least: the lock tests wait for one to expire.
  { lockStaleMs: 15_000 },
)
