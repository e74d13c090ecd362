// A fake daemon answering every screen's calls with the sample data (or `rows` of each for size checks).
import { FakeClient } from './fake-client.ts'
import * as data from './data.ts'

export function fullDaemon(rows?: number): FakeClient {
  const runs = data.runs(rows ?? 8)
  return new FakeClient()
    .answer('job.list', data.jobs(rows ?? 2))
    .answer('job.get', ({ id }) => data.jobs(rows ?? 2).find(j => j.job.id === id) ?? data.jobs(1)[0]!)
    .answer('run.list', runs)
    .answer('run.get', ({ runId }) => ({ summary: runs.find(r => r.runId === runId) ?? runs[0]!, tree: data.runTree(runId, runs.find(r => r.runId === runId)?.status) }))
    .answer('lanes.get', data.lanes())
    .answer('remote.list', rows === undefined ? data.remotes : Array.from({ length: rows }, (_, i) => ({ ...data.remotes[0]!, name: `remote-${i}` })))
    .answer('pool.list', rows === undefined ? data.pools : Array.from({ length: rows }, (_, i) => ({ ...data.pools[0]!, id: `pool-${i}`, name: `pool-${i}` })))
    .answer('vm.list', params => data.vms(rows ?? 6).filter(vm => params?.pool === undefined || vm.poolId === params.pool))
    .answer('sr.list', params => (rows === undefined ? data.srs : Array.from({ length: rows }, (_, i) => ({ ...data.srs[0]!, uuid: `sr-${i}`, name: `sr-${i}` }))).filter(sr => params?.pool === undefined || sr.poolId === params.pool))
    .answer('backup.list', data.restorePoints())
    .answer('proxy.list', data.proxies)
}
