// One handler per protocol method; params arrive already validated by the method's zod schema.
import { z } from 'zod'
import { LifeboatError } from '../util/errors.ts'
import { listRestorePoints } from '../repository/index.ts'
import { parseRemoteUrl, redactRemoteUrl } from '../storage/index.ts'
import { crSeed, startFileFetchRun, startHealthCheckRun, startRestoreRun } from '../engine/index.ts'
import { findSchedule } from '../protocol/job.ts'
import { DEFAULT_SETTINGS } from '../protocol/settings.ts'
import type { methodParams, MethodName, MethodResults } from '../protocol/methods.ts'
import type { Daemon } from './daemon.ts'
import type { ClientConnection, MethodHandler } from './server.ts'
import { findSr, listSrs, listVms, selectPools } from './inventory.ts'
import { lanesSnapshot } from './lanes.ts'
import { refuseUrlCredentials } from './pools.ts'
import { IDLE_MS } from './file-restore.ts'

type Params<M extends MethodName> = NonNullable<z.output<(typeof methodParams)[M]>>
type Handler<M extends MethodName> = (params: Params<M>, client: ClientConnection) => Promise<MethodResults[M]> | MethodResults[M]

export function buildHandlers(daemon: Daemon): Record<MethodName, MethodHandler> {
  const { state, pools, remotes, runs } = daemon
  const handlers: { [M in MethodName]: Handler<M> } = {
    'daemon.info': () => daemon.info,

    'pool.add': async ({ url, username, password }) => {
      refuseUrlCredentials(url)
      const connection = await pools.probe({ url, username, password })
      const stored = { id: connection.poolUuid, name: connection.poolName, url, username }
      await state.updateSecrets(data => void (data.pools[stored.id] = { password }))
      await state.update(data => {
        data.pools = data.pools.filter(pool => pool.id !== stored.id)
        data.pools.push(stored)
      })
      pools.manage(stored, password, connection)
      daemon.log(`pool "${stored.name}" (${stored.id}) added`)
      return pools.list().find(pool => pool.id === stored.id)!
    },
    'pool.list': () => pools.list(),
    'pool.remove': async ({ id }) => {
      const pool = pools.list().find(p => p.id === id || p.name === id)
      if (pool === undefined) throw new LifeboatError('POOL_NOT_FOUND', `No pool is "${id}"; 'npx lifeboat pool list' shows them.`)
      await pools.remove(pool.id)
      await state.update(data => void (data.pools = data.pools.filter(p => p.id !== pool.id)))
      await state.updateSecrets(data => void delete data.pools[pool.id])
      return {}
    },

    'vm.list': params => listVms(selectPools(pools.connections, params?.pool), { templates: params?.templates === true }),
    'sr.list': params => listSrs(selectPools(pools.connections, params?.pool)),

    'remote.add': async ({ name, url, proxy }) => {
      if (proxy !== undefined) daemon.proxies.get(proxy)
      if (remotes.has(name)) throw new LifeboatError('REMOTE_EXISTS', `A remote is already named "${name}"; remove it first or choose another name.`)
      // XO reads file://var/x as /var/x; a new remote says what it means: file:///var/x.
      if (parseRemoteUrl(url).type === 'file' && !url.startsWith('file:///')) {
        throw new LifeboatError('REMOTE_BAD_URL', `The remote URL ${url.split('?')[0]} does not name an absolute folder: write the folder's absolute path after file://, like file:///var/backups/lifeboat (three slashes).`)
      }
      await remotes.open(name, url, { mustBeReachable: true, proxy })
      await state.updateSecrets(data => void (data.remotes[name] = { url }))
      await state.update(data => void data.remotes.push({ name, url: redactRemoteUrl(url), ...(proxy !== undefined && { proxy }) }))
      daemon.stateChanged('remotes')
      return remotes.describe(name)
    },
    'remote.list': () => remotes.list(),
    'remote.test': ({ name, bytes }) => remotes.test(name, bytes),
    'remote.info': ({ name }) => remotes.info(name),
    'remote.remove': async ({ name }) => {
      const users = state.data.jobs.filter(stored => stored.job.remotes.includes(name)).map(stored => `"${stored.job.name}"`)
      if (users.length > 0) throw new LifeboatError('REMOTE_IN_USE', `The remote "${name}" is used by the job(s) ${users.join(', ')}; change or delete them first.`)
      await remotes.remove(name)
      await state.update(data => void (data.remotes = data.remotes.filter(r => r.name !== name)))
      await state.updateSecrets(data => void delete data.remotes[name])
      await daemon.verifications.forget(name)
      daemon.stateChanged('remotes')
      return {}
    },

    'proxy.add': async ({ name, url, fingerprint, replace }) => {
      const added = await daemon.proxies.add(name, url, { ...(fingerprint !== undefined && { fingerprint }), ...(replace !== undefined && { replace }) })
      daemon.stateChanged('proxies')
      return added
    },
    'proxy.list': () => daemon.proxies.list(),
    'proxy.test': ({ name }) => daemon.proxies.test(name),
    'proxy.remove': async ({ name }) => {
      await daemon.proxies.remove(name, state.data.jobs.filter(stored => stored.job.proxy === name).map(stored => stored.job.name), state.data.remotes.filter(remote => remote.proxy === name).map(remote => remote.name))
      daemon.stateChanged('proxies')
      return {}
    },
    'proxy.key': () => daemon.proxies.key(),

    'job.create': async ({ job: input }) => {
      const job = daemon.prepareJob(input)
      const stored = { job, enabled: true }
      await state.update(data => void data.jobs.push(stored))
      daemon.refreshSchedules()
      daemon.stateChanged('jobs')
      return daemon.jobInfo(stored)
    },
    'job.update': async ({ id, job: input }) => {
      const stored = daemon.findJob(id)
      const job = daemon.prepareJob(input, stored.job)
      await state.update(() => void (stored.job = job))
      daemon.refreshSchedules()
      daemon.stateChanged('jobs')
      return daemon.jobInfo(stored)
    },
    'job.get': ({ id }) => daemon.jobInfo(daemon.findJob(id)),
    'job.list': () => state.data.jobs.map(stored => daemon.jobInfo(stored)),
    'job.delete': async ({ id }) => {
      const stored = daemon.findJob(id)
      const running = runs.runningRunOf(stored.job.id!)
      if (running !== undefined) throw new LifeboatError('JOB_RUNNING', `The job "${stored.job.name}" is running (run ${running}); cancel it first with 'npx lifeboat run cancel ${running}'.`)
      await state.update(data => void (data.jobs = data.jobs.filter(s => s !== stored)))
      daemon.refreshSchedules()
      daemon.stateChanged('jobs')
      return {}
    },
    'job.setEnabled': async ({ id, enabled }) => {
      const stored = daemon.findJob(id)
      await state.update(() => void (stored.enabled = enabled))
      daemon.refreshSchedules()
      daemon.stateChanged('jobs')
      return daemon.jobInfo(stored)
    },
    'job.run': async ({ id, schedule }) => ({ runId: await daemon.runJob(daemon.findJob(id), schedule) }),
    'job.plan': ({ id, job, schedule }) => {
      if (job === undefined) return daemon.planJob(daemon.findJob(id!), schedule)
      const saved = id === undefined ? undefined : daemon.findJob(id)
      return daemon.planJob({ job: daemon.prepareJob(job, saved?.job), enabled: saved?.enabled ?? true }, schedule)
    },
    'job.crSeed': async ({ id, schedule, vm, snapshot, targetVm }) => {
      const { job } = daemon.findJob(id)
      const running = runs.runningRunOf(job.id!)
      // A run would pick its base and replica while the marks are half set.
      if (running !== undefined) throw new LifeboatError('JOB_RUNNING', `The job "${job.name}" is running (run ${running}); wait for it to end or cancel it, then run cr-seed again.`)
      const chosen = findSchedule(job, schedule)
      const seeded = await crSeed(pools.connections, { job: { ...job, id: job.id! }, schedule: { ...chosen, id: chosen.id! }, vm, snapshotUuid: snapshot, targetVmUuid: targetVm })
      daemon.log(`job "${job.name}": cr-seed marked snapshot ${seeded.snapshotUuid} and VM ${seeded.targetVmUuid} (SR ${seeded.srUuid}) as the replication base of VM ${seeded.vmUuid}`)
      return seeded
    },

    'run.list': params => runs.list(params ?? {}),
    'run.get': async ({ runId }) => {
      const live = runs.liveTree(runId)
      const tree = live?.tree ?? (await runs.tree(runId))
      const summary = runs.summary(runId) ?? { runId, kind: tree.message === 'restore' || tree.message === 'verify' ? tree.message : tree.data?.type === 'mirror' ? 'mirror' : 'backup', start: tree.start, status: tree.status }
      return { summary, tree, ...(live !== undefined && { eventCount: live.eventCount }) }
    },
    'run.cancel': ({ runId }) => {
      runs.cancel(runId)
      return {}
    },

    'backup.list': async ({ remote, vm }) => daemon.verifications.annotate(remote, await listRestorePoints(remotes.get(remote), vm === undefined ? {} : { vmUuid: vm })),
    'remote.verify': async ({ remote, vms, readData }) => {
      remotes.get(remote)
      const runId = await daemon.startVerify({ remotes: [remote], ...(vms !== undefined && { vms }), readData: readData === true })
      daemon.log(`verify ${runId} started (remote "${remote}"${readData === true ? ', reading the data' : ''})`)
      return { runId }
    },
    'restore.start': async ({ remote, backupId, sr, name, start }) => {
      // REMOTE_NOT_FOUND and SR_NOT_FOUND now rather than as a failed run.
      remotes.get(remote)
      const srUuid = findSr(listSrs([...pools.connections.values()]), sr).uuid
      await daemon.cleanedUp
      const runId = await runs.start('restore', {}, onEvent =>
        startRestoreRun(daemon.context, { remote, backupId, srUuid, ...(name !== undefined && { name }), ...(start !== undefined && { start }) }, { onEvent }),
      )
      daemon.log(`restore ${runId} started (${backupId} from "${remote}" to SR ${srUuid})`)
      return { runId }
    },

    'backup.check': async ({ remote, backupId, sr, timeout }) => {
      remotes.get(remote)
      const srUuid = findSr(listSrs([...pools.connections.values()]), sr).uuid
      await daemon.cleanedUp
      const runId = await runs.start('health check', {}, onEvent =>
        startHealthCheckRun(daemon.context, { remote, backupId, srUuid, timeoutMs: timeout ?? DEFAULT_SETTINGS.healthCheckTimeout }, { onEvent }),
      )
      daemon.log(`health check ${runId} started (${backupId} from "${remote}" on SR ${srUuid})`)
      return { runId }
    },
    'fileRestore.open': async ({ remote, backupId }) => {
      const { id, session } = await daemon.fileRestore.open(remotes.get(remote), remote, backupId)
      const { vm, timestamp } = session.metadata
      return { session: id, vm: String(vm.name_label ?? vm.uuid), backupDate: timestamp, disks: session.disks.map(({ id: disk, name, size }) => ({ id: disk, name, size })), idleSeconds: IDLE_MS / 1000 }
    },
    'fileRestore.volumes': ({ session, disk }) => daemon.fileRestore.get(session).volumes(disk),
    'fileRestore.list': async ({ session, disk, volume, path, after, limit }) =>
      (await daemon.fileRestore.browser(session, disk, volume)).list(path, { ...(after !== undefined && { after }), ...(limit !== undefined && { limit }) }),
    'fileRestore.find': async ({ session, disk, volume, path, query, limit }) =>
      (await daemon.fileRestore.browser(session, disk, volume)).find(path, query, { ...(limit !== undefined && { limit }) }),
    'fileRestore.fetch': async ({ session, disk, volume, paths, format, destination }) => {
      const browser = await daemon.fileRestore.browser(session, disk, volume)
      const use = daemon.fileRestore.use(session)
      try {
        const request = { remote: use.remote, backupId: use.backupId, disk, volume, paths, format, destination }
        const runId = await runs.start('file-restore', {}, onEvent => startFileFetchRun(browser, request, { onEvent, onEnd: use.release }))
        daemon.log(`file restore ${runId} started (${paths.length} path(s) of ${use.backupId} to ${destination} as ${format})`)
        return { runId }
      } catch (error) {
        use.release()
        throw error
      }
    },
    'fileRestore.close': async ({ session }) => {
      await daemon.fileRestore.close(session)
      return {}
    },

    'lanes.get': () => lanesSnapshot(daemon.poolLimits, daemon.laneNames, Date.now(), daemon.remoteLanes),
    subscribe: ({ topics, runId }, client) => {
      for (const topic of topics) client.topics.add(topic)
      client.runId = runId
      return { subscribed: [...client.topics] }
    },
    unsubscribe: ({ topics }, client) => {
      for (const topic of topics) client.topics.delete(topic)
      return {}
    },
  }
  return handlers as unknown as Record<MethodName, MethodHandler>
}
