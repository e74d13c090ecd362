// A run delegated to a proxy, seen from the appliance as a StartedRun like a local one: its root task is made
// here (its id is the runId), the proxy's events are replayed under it as they come (the proxy's root becomes
// this root), so the log, the tree and the live view are the appliance's as for a local run. Cancel (and the
// job's timeout, which the proxy enforces itself) stop the run on the proxy.
//
// Faults. A channel that drops is opened again and the run re-attached from the last event seen (the proxy
// goes on meanwhile and keeps the events). A proxy that no longer has the run (its service died or restarted:
// its runs live in its memory) ends every task still going, and the run, `interrupted`. The proxy's run id is a
// property of the root, in the log the daemon keeps: a daemon that restarts takes the run up again (`resume`),
// replaying its events from the first. A daemon that stops detaches (`detach`): the run goes on on the proxy.
//
// Pool slots. The proxy asks the appliance for each snapshot and export slot its run takes (slot.request); they
// come from the daemon's own limits, so a pool's limits hold across the appliance's runs and all its proxies',
// and the lanes view shows the proxy's holders. After a re-attach the proxy asks again for what it waits for or
// holds (`held`: counted again as it is, by a restarted daemon).
import { foldRun, TaskLog, type TaskEvent, type TaskListener } from '../tasks/index.ts'
import { LifeboatError, errorCode } from '../util/errors.ts'
import { sleep } from '../util/abort.ts'
import type { StartedRun } from '../engine/index.ts'
import { RUN_EVENT, SLOT_PROGRESS, SLOT_RELEASE, SLOT_REQUEST, type RunEventNotification, type RunSpec, type SequencedEvent, type SlotProgressNotification, type SlotReleaseNotification, type SlotRequestNotification } from '../protocol/proxy.ts'
import type { PoolLimitsRegistry, SlotHolder, SlotLease } from '../xapi/index.ts'
import type { OpenChannel, Proxies } from './proxies.ts'

/** The root's property that names the run on the proxy: what a restarted daemon re-attaches to. */
export const PROXY_RUN_PROPERTY = 'proxyRunId'

/** Re-attaching after a dropped channel is tried this long before the run is given up as interrupted. */
const REATTACH_MS = 10 * 60_000

/** What a proxy answers when the run is over there (it restarted, or its service is down): it left what it had going. */
const RUN_LOST = new Set(['RUN_NOT_FOUND', 'PROXY_NOT_RUNNING'])
/** ...and when the run cannot be caught up any more (it may still be going there): either way it is interrupted here. */
const RUN_GONE = new Set([...RUN_LOST, 'RUN_EVENTS_LOST'])

export interface DelegatedRunRequest {
  proxy: string
  root: { name: string; data: Record<string, unknown> }
  /** A new run: what the proxy runs. */
  spec?: Omit<RunSpec, 'applianceRunId'>
  /** A run an earlier daemon process delegated, taken up again: its root (id, start) and its run on the proxy. */
  resume?: { id: string; start: number; proxyRunId: string }
  onEvent: TaskListener
  log: (line: string) => void
  /** The daemon's pool limits: the proxy's runs take their slots from them, beside the appliance's own runs. */
  limits: PoolLimitsRegistry
  /**
   * The run was lost with its proxy: what it left on the pools and the remotes for these VMs is cleaned here (the
   * appliance has the credentials, the proxy keeps none). Returns what was done, for the run's log.
   */
  cleanUp?: (vms: ReadonlySet<string>) => Promise<string[]>
}

export interface DelegatedRun extends StartedRun {
  /** Stops following the run (the daemon is stopping): it goes on on the proxy; `done` resolves with the tree as far as seen. */
  detach(): void
}

export function startDelegatedRun(proxies: Proxies, request: DelegatedRunRequest): DelegatedRun {
  const root = TaskLog.start(
    { name: request.root.name, data: { ...request.root.data, proxy: request.proxy } },
    { onEvent: request.onEvent, ...(request.resume !== undefined && { resume: { id: request.resume.id, start: request.resume.start } }) },
  )
  const log = root.log
  const label = `run ${root.id}`
  let proxyRoot: string | undefined
  let lastSeq = -1
  let ended = false
  let detached = false
  let remoteRunId = request.resume?.proxyRunId
  let open: OpenChannel | undefined
  let cancelReason: string | undefined
  /** The proxy's tasks started and not ended yet, in start order, with their parents (the root mapped). */
  const going = new Map<string, string>()
  /** The VMs the run began backing up: what a lost run may have left something of. */
  const vms = new Set<string>()
  /** The pool slots held (or waited for) here for the run on the proxy, by its request id. */
  const slots = new Map<string, { lease?: SlotLease; abort: AbortController }>()
  const grant = (requestId: string) => {
    if (remoteRunId !== undefined) void open?.channel.client.call('slot.grant', { runId: remoteRunId, requestId }).catch(() => {})
  }
  const onSlotRequest = ({ requestId, pool, kind, holder, held }: SlotRequestNotification) => {
    const known = slots.get(requestId)
    // Asked again after a re-attach: granted here already, or still waiting.
    if (known !== undefined) return void (known.lease !== undefined && grant(requestId))
    const ours: SlotHolder = { ...holder, runId: root.id, proxy: request.proxy }
    const entry: { lease?: SlotLease; abort: AbortController } = { abort: new AbortController() }
    slots.set(requestId, entry)
    const limits = request.limits.of(pool)[kind]
    // One the proxy holds since before this daemon started is counted again as it is.
    if (held) entry.lease = limits.hold(ours)
    if (entry.lease !== undefined) return grant(requestId)
    limits.acquire(ours, entry.abort.signal).then(
      lease => {
        // Given back (or the run over) between the grant and this callback: the slot goes back at once.
        if (slots.get(requestId) !== entry) return lease.release()
        entry.lease = lease
        grant(requestId)
      },
      () => {},
    )
  }
  const onSlotRelease = ({ requestId }: SlotReleaseNotification) => {
    const entry = slots.get(requestId)
    slots.delete(requestId)
    entry?.abort.abort()
    entry?.lease?.release()
  }
  let wake: () => void = () => {}
  const woken = new Promise<void>(resolve => (wake = resolve))

  const relay = ({ seq, event }: SequencedEvent) => {
    if (seq <= lastSeq || ended) return
    lastSeq = seq
    if (event.parentId === undefined && event.type === 'start') {
      proxyRoot = event.id
      return
    }
    const mapped = { ...event, ...(event.id === proxyRoot && { id: root.id }), ...(event.parentId !== undefined && event.parentId === proxyRoot && { parentId: root.id }) } as TaskEvent
    if (mapped.type === 'start') {
      going.set(mapped.id, mapped.parentId!)
      if (mapped.properties.type === 'VM' && typeof mapped.properties.id === 'string') vms.add(mapped.properties.id)
    } else if (mapped.type === 'end') {
      going.delete(mapped.id)
    }
    log.emit(mapped)
    if (mapped.id === root.id && mapped.type === 'end') {
      ended = true
      wake()
    }
  }

  const attach = async (): Promise<void> => {
    open = await proxies.connect(request.proxy)
    const channel = open.channel
    // Events the proxy sends before its answer to run.attach (it may, once the connection is attached) wait for
    // that answer: relayed first, they would make the catch-up's earlier events look already seen.
    let waiting: SequencedEvent[] | undefined = []
    channel.client.onNotification(RUN_EVENT, params => {
      const notification = params as RunEventNotification
      if (notification.runId !== remoteRunId) return
      if (waiting !== undefined) waiting.push(notification)
      else relay(notification)
    })
    channel.client.onNotification(SLOT_REQUEST, params => {
      const notification = params as SlotRequestNotification
      if (notification.runId === remoteRunId && !ended) onSlotRequest(notification)
    })
    channel.client.onNotification(SLOT_PROGRESS, params => {
      const { runId, requestId, progress, targets } = params as SlotProgressNotification
      const lease = runId === remoteRunId ? slots.get(requestId)?.lease : undefined
      if (lease === undefined) return
      for (const [name, target] of Object.entries(targets)) lease.targets[name] = target
      lease.report(progress)
    })
    channel.client.onNotification(SLOT_RELEASE, params => {
      const notification = params as SlotReleaseNotification
      if (notification.runId === remoteRunId) onSlotRelease(notification)
    })
    if (remoteRunId === undefined) {
      remoteRunId = (await channel.client.call('run.start', { ...request.spec!, applianceRunId: root.id })).runId
      // In the log the daemon keeps: a restarted daemon finds the run on the proxy by it.
      root.set(PROXY_RUN_PROPERTY, remoteRunId)
      request.log(`${label}: delegated to the proxy "${request.proxy}" (its run ${remoteRunId})`)
    }
    const caught = await channel.client.call('run.attach', { runId: remoteRunId, after: lastSeq })
    caught.events.forEach(relay)
    waiting.forEach(relay)
    waiting = undefined
    if (cancelReason !== undefined) await channel.client.call('run.cancel', { runId: remoteRunId, reason: cancelReason })
  }

  /** Every task still going on the proxy, deepest first, then what the run left cleaned, then the run: interrupted, with the reason. */
  const interruptAll = async (error: LifeboatError) => {
    ended = true
    const result = { code: error.code, message: error.message }
    for (const [id, parentId] of [...going].reverse()) log.emit({ type: 'end', id, parentId, timestamp: log.now(), status: 'interrupted', result })
    going.clear()
    // Only a run the proxy no longer has (it restarted, or its service is down) is over there; one out of reach may still be going.
    const lost = RUN_LOST.has(errorCode(error.cause) ?? '')
    if (request.cleanUp !== undefined && lost && vms.size > 0) {
      try {
        const lines = await request.cleanUp(vms)
        root.info('what the run left was cleaned by the appliance', { lines })
      } catch (cleanUpError) {
        root.warning('what the run left could not be cleaned now; the next backup of each VM does it', { error: errorCode(cleanUpError) ?? (cleanUpError as Error).message })
      }
    }
    root.interrupt(error)
  }

  const done = (async () => {
    try {
      if (request.resume !== undefined) request.log(`${label}: taking up again its run ${remoteRunId} on the proxy "${request.proxy}"`)
      try {
        await attach()
      } catch (error) {
        // A run the proxy has (taken up again, or started before the channel failed) is retried as a dropped channel is; one not started fails at once.
        if (remoteRunId === undefined || RUN_GONE.has(errorCode(error) ?? '')) throw error
        await reattach(error)
      }
      for (;;) {
        const closed = new Promise<void>(resolve => open!.channel.client.once('close', () => resolve()))
        await Promise.race([woken, closed])
        if (ended || detached) break
        // The channel dropped; the proxy goes on with the run: open it again and catch up from the last event seen.
        request.log(`${label}: the channel to the proxy "${request.proxy}" dropped; re-attaching`)
        await reattach(undefined)
      }
    } catch (error) {
      if (!ended && !detached) {
        if (errorCode(error) === 'PROXY_RUN_INTERRUPTED') await interruptAll(error as LifeboatError)
        else if (remoteRunId !== undefined && RUN_GONE.has(errorCode(error) ?? '')) await interruptAll(interrupted(request.proxy, error))
        else root.fail(error)
      }
    } finally {
      open?.channel.close()
      // The run is over here (ended, given up, or detached: a restarted daemon hears of its slots again).
      for (const requestId of [...slots.keys()]) onSlotRelease({ runId: remoteRunId ?? '', requestId })
    }
    return foldRun(log.events)!
  })()

  /** Opens the channel again until the run is re-attached; the run is given up when the proxy no longer has it, or after REATTACH_MS. */
  async function reattach(first: unknown): Promise<void> {
    const deadline = Date.now() + REATTACH_MS
    let last = first
    for (let delay = 1000; ; delay = Math.min(delay * 2, 30_000)) {
      if (last !== undefined) {
        if (RUN_GONE.has(errorCode(last) ?? '') || Date.now() > deadline) throw interrupted(request.proxy, last)
        request.log(`${label}: the proxy "${request.proxy}" is not reached (${errorCode(last) ?? 'error'}: ${(last as Error).message}); trying again in ${delay / 1000} s`)
        await Promise.race([sleep(delay), woken])
        if (detached) return
      }
      try {
        return await attach()
      } catch (error) {
        last = error
      }
    }
  }

  return {
    runId: root.id,
    log,
    done,
    cancel: reason => {
      cancelReason = reason ?? 'cancelled by the administrator'
      if (remoteRunId !== undefined && open !== undefined) void open.channel.client.call('run.cancel', { runId: remoteRunId, reason: cancelReason }).catch(() => {})
    },
    detach: () => {
      if (ended) return
      detached = true
      request.log(`${label}: no longer followed (the daemon is stopping); it goes on on the proxy "${request.proxy}", and is taken up again at the daemon's next start`)
      open?.channel.close()
      wake()
    },
  }
}

function interrupted(proxy: string, cause: unknown): LifeboatError {
  return new LifeboatError(
    'PROXY_RUN_INTERRUPTED',
    `The proxy "${proxy}" no longer runs this run (its service stopped or restarted, or it stayed out of reach): the run is interrupted. What it left (an unfinished snapshot, a migration block, a partial backup) is cleaned by the appliance (see the run's log), or else by the next backup of each VM.`,
    { cause },
  )
}
