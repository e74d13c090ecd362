// The lab: a faithful XAPI simulator (protocol, objects, disks, transfers, faults) that the real xen-api client drives,
// so Lifeboat can be tried, taught and tested without a hypervisor. One process serves each pool on its own port.
import { mkdir } from 'node:fs/promises'
import { join } from 'node:path'
import { Control } from './control.ts'
import { Database } from './database.ts'
import { FaultBook } from './faults.ts'
import { defineAllMethods, FIXTURES, seedPool, type FixtureName } from './fixtures.ts'
import { LabServer } from './server.ts'
import { DiskStore, RateLimiter } from './storage/index.ts'
import { Toolstack } from './toolstack.ts'

export { Control } from './control.ts'
export type { FaultAction, FaultLogEntry, FaultRule } from './faults.ts'
export type { Knobs } from './toolstack.ts'
export { FIXTURE_NAMES, type FixtureName } from './fixtures.ts'

export interface LabOptions { dataDir: string; port?: number; fixture?: FixtureName; username?: string; password?: string }
export interface LabPool { name: string; url: string; username: string; password: string; poolUuid: string; control: Control }
export interface Lab {
  pools: LabPool[]
  /** The first pool's control plane (the only one with the tiny fixture; `lab` with pair, `production` with default). */
  control: Control
  stop(): Promise<void>
}

export async function startLab(options: LabOptions): Promise<Lab> {
  const fixture = options.fixture ?? 'default'
  const credentials = { username: options.username ?? 'root', password: options.password ?? 'lifeboat' }
  const servers: Array<{ server: LabServer; xapi: Toolstack; control: Control }> = []
  try {
    for (const [index, spec] of FIXTURES[fixture].entries()) {
      const dir = join(options.dataDir, spec.name)
      await mkdir(dir, { recursive: true })
      const db = await Database.open(join(dir, 'db.json'))
      const store = await DiskStore.open(join(dir, 'disks'))
      db.beforeSave = () => store.flush()
      const xapi = new Toolstack(spec.name, db, store, new RateLimiter(), new FaultBook(), credentials)
      defineAllMethods(xapi)
      if (db.isEmpty) await seedPool(xapi, spec, index)
      await Promise.all([db.flush(), store.flush()])
      const control = new Control(xapi)
      const server = new LabServer(xapi, control)
      control.server = server
      await server.listen(options.port === undefined || options.port === 0 ? 0 : options.port + index)
      servers.push({ server, xapi, control })
    }
  } catch (error) {
    await Promise.all(servers.map(({ server }) => server.close()))
    throw error
  }
  const pools = servers.map(({ server, xapi, control }) => ({ name: xapi.name, url: server.url, ...credentials,
    poolUuid: xapi.db.row('pool', xapi.poolRef).uuid as string, control }))
  return {
    pools,
    control: pools[0]!.control,
    async stop() {
      for (const { server, xapi, control } of servers) {
        await control.stopAll()
        await server.close()
        await xapi.db.flush()
        await xapi.store.flush()
        await xapi.store.close()
      }
    },
  }
}
