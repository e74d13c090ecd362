// A run delegated to a proxy, seen from the appliance as a StartedRun like a local one: its root task is made
// here (its id is the runId), the proxy's events are replayed under it as they come (the proxy's root becomes
// this root), so the log, the tree and the live view are the appliance's as for a local run. Cancel (and the
// job's timeout, which the proxy enforces itself) stop the run on the proxy. A channel that drops is opened
// again and the run re-attached from the last event seen; a proxy that no longer knows the run (it restarted)
// fails it with PROXY_RUN_INTERRUPTED.
import { foldRun, TaskLog, type TaskEvent, type TaskListener } from '../tasks/index.ts'
import { LifeboatError, errorCode } from '../util/errors.ts'
import { sleep } from '../util/abort.ts'
import type { StartedRun } from '../engine/index.ts'
import { RUN_EVENT, type RunEventNotification, type RunSpec, type SequencedEvent } from '../protocol/proxy.ts'
import type { OpenChannel, Proxies } from './proxies.ts'

/** Re-attaching after a dropped channel is tried this long before the run is given up as interrupted. */
const REATTACH_MS = 10 * 60_000

export interface DelegatedRunRequest {
  proxy: string
  root: { name: string; data: Record<string, unknown> }
  spec: Omit<RunSpec, 'applianceRunId'>
  onEvent: TaskListener
  log: (line: string) => void
}

export function startDelegatedRun(proxies: Proxies, request: DelegatedRunRequest): StartedRun {
  const root = TaskLog.start({ name: request.root.name, data: { ...request.root.data, proxy: request.proxy } }, { onEvent: request.onEvent })
  const log = root.log
  let proxyRoot: string | undefined
  let lastSeq = -1
  let ended = false
  let remoteRunId: string | undefined
  let open: OpenChannel | undefined
  let cancelReason: string | undefined
  let endSeen: () => void = () => {}
  const endArrived = new Promise<void>(resolve => (endSeen = resolve))

  const relay = ({ seq, event }: SequencedEvent) => {
    if (seq <= lastSeq || ended) return
    lastSeq = seq
    if (event.parentId === undefined && event.type === 'start') {
      proxyRoot = event.id
      return
    }
    const mapped = { ...event, ...(event.id === proxyRoot && { id: root.id }), ...(event.parentId !== undefined && event.parentId === proxyRoot && { parentId: root.id }) } as TaskEvent
    log.emit(mapped)
    if (mapped.id === root.id && mapped.type === 'end') {
      ended = true
      endSeen()
    }
  }

  const attach = async (): Promise<void> => {
    open = await proxies.connect(request.proxy)
    const channel = open.channel
    channel.client.onNotification(RUN_EVENT, params => {
      const notification = params as RunEventNotification
      if (notification.runId === remoteRunId) relay(notification)
    })
    if (remoteRunId === undefined) {
      remoteRunId = (await channel.client.call('run.start', { ...request.spec, applianceRunId: root.id })).runId
      request.log(`run ${root.id}: delegated to the proxy "${request.proxy}" (its run ${remoteRunId})`)
    }
    const caught = await channel.client.call('run.attach', { runId: remoteRunId, after: lastSeq })
    caught.events.forEach(relay)
    if (cancelReason !== undefined) await channel.client.call('run.cancel', { runId: remoteRunId, reason: cancelReason })
  }

  const done = (async () => {
    try {
      await attach()
      for (;;) {
        const closed = new Promise<void>(resolve => open!.channel.client.once('close', () => resolve()))
        await Promise.race([endArrived, closed])
        if (ended) break
        // The channel dropped; the proxy goes on with the run: open it again and catch up from the last event seen.
        request.log(`run ${root.id}: the channel to the proxy "${request.proxy}" dropped; re-attaching`)
        const deadline = Date.now() + REATTACH_MS
        for (let delay = 1000; ; delay = Math.min(delay * 2, 30_000)) {
          try {
            await attach()
            break
          } catch (error) {
            if (errorCode(error) === 'RUN_NOT_FOUND' || Date.now() > deadline) throw interrupted(request.proxy, error)
            await sleep(delay)
          }
        }
      }
    } catch (error) {
      if (!ended) {
        root.fail(errorCode(error) === 'RUN_NOT_FOUND' ? interrupted(request.proxy, error) : error)
        ended = true
      }
    } finally {
      open?.channel.close()
    }
    return foldRun(log.events)!
  })()

  return {
    runId: root.id,
    log,
    done,
    cancel: reason => {
      cancelReason = reason ?? 'cancelled by the administrator'
      if (remoteRunId !== undefined && open !== undefined) void open.channel.client.call('run.cancel', { runId: remoteRunId, reason: cancelReason }).catch(() => {})
    },
  }
}

function interrupted(proxy: string, cause: unknown): LifeboatError {
  return new LifeboatError('PROXY_RUN_INTERRUPTED', `The proxy "${proxy}" no longer runs this run (its service stopped or restarted, or it stayed out of reach): the run is interrupted; its leftovers are cleaned at the proxy's next run.`, { cause })
}
