// The storage conformance suite on the Azure backend against azurite, bare and decorated (the suite runs both).
import { after, before } from 'node:test'
import { azureBackendOf, startAzurite, type Azurite } from '../helpers/azurite.ts'
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
    const backend = azureBackendOf(url)
    return { backend, url, cleanup: () => backend.rmtree('') }
  },
  // Azure leases last 15 s at least: the lock tests wait for one to expire.
  { lockStaleMs: 15_000 },
)
