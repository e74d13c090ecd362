// The health check of an SR target (XO's _MixinXapiWriter.healthCheck): the replica just made is cloned when all its
// disks are on the health check SR already (cheap, copy-on-write), copied onto that SR otherwise, and the copy checked.
import { LifeboatError } from '../../util/errors.ts'
import { terminalSafeLine } from '../../util/terminal-text.ts'
import { vmDisks, type PoolConnection } from '../../xapi/index.ts'
import { runHealthCheck, type HealthCheckStep } from '../restore/health-check.ts'

export async function checkReplica(conn: PoolConnection, replicaRef: string | undefined, step: HealthCheckStep): Promise<void> {
  if (replicaRef === undefined) throw new Error('BUG: a health check of a replica this target did not make')
  if (step.conn.poolUuid !== conn.poolUuid) {
    throw new LifeboatError('HEALTH_CHECK_SR_OTHER_POOL', `The health check SR ${terminalSafeLine(String(step.sr.name_label))} is on pool ${terminalSafeLine(conn.poolName === step.conn.poolName ? step.conn.poolUuid : step.conn.poolName)}, the replica on pool ${terminalSafeLine(conn.poolName)}: a replica is checked on an SR of its own pool. Choose such an SR as healthCheckSr.`)
  }
  await runHealthCheck(step, async signal => {
    await conn.sync(signal)
    const replica = conn.byRef(replicaRef)
    if (replica === undefined) throw new LifeboatError('HEALTH_CHECK_REPLICA_GONE', 'The replica just made is no longer on its pool (deleted by hand?); there is nothing to check.')
    const name = `Health Check - ${String(replica.name_label)}`
    const onCheckSr = vmDisks(conn, replica).every(disk => disk.vdi.SR === step.sr.$ref)
    const copy = step.task.child(onCheckSr ? 'cloning-vm' : 'copying-vm')
    // Settled: a copy XAPI finishes after a cancel is still returned, to be destroyed.
    return copy.run(async () => (onCheckSr ? await conn.callAsyncSettled(signal, 'VM.clone', replicaRef, name) : await conn.callAsyncSettled(signal, 'VM.copy', replicaRef, name, step.sr.$ref)) as string, { signal })
  })
}
