// The proxy's methods: what the appliance's daemon calls on a Lifeboat proxy over its ssh channel (the same
// JSON-RPC line framing as the daemon's socket), and what the administrator's CLI shows of a proxy.
import { z } from 'zod'
import { LifeboatError } from '../util/errors.ts'
import type { TaskEvent } from '../tasks/task.ts'
import type { SlotHolder, SlotKind } from '../xapi/slots.ts'
import type { Capabilities } from '../storage/backend.ts'

const none = z.strictObject({}).optional()

/** The proxy service's socket, in its data folder. */
export const PROXY_SOCKET = 'proxy.sock'

/** A proxy's name: what jobs name it by. */
export const PROXY_NAME = z.string().regex(/^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/, { error: 'a proxy name is 1-64 letters, digits, ".", "_" or "-", starting with a letter or digit.' })

const secretText = z.string().max(4000)

/**
 * A delegated run's specification: the job (with its ids) and the schedule it runs under (the proxy, of the same
 * version, resolves the settings and selects the VMs exactly as the appliance would), and the credentials the run
 * needs: its pools' and its remotes' (URLs with their keys). The proxy holds them in memory for the run only.
 */
export const runSpecSchema = z.strictObject({
  /** The appliance's runId: the proxy's log lines name it. */
  applianceRunId: z.string().min(1).max(200),
  job: z.unknown(),
  schedule: z.string().min(1).max(200),
  pools: z.array(z.strictObject({ url: z.string().min(1).max(2000), username: z.string().max(2000), password: secretText })).max(100),
  remotes: z.array(z.strictObject({ name: z.string().min(1).max(200), url: secretText })).max(100),
})
export type RunSpec = z.infer<typeof runSpecSchema>

/** The storage contract's calls whose arguments and answers are plain data (streams, files and locks have their own). */
export const STORAGE_OPS = ['sync', 'info', 'list', 'stat', 'delete', 'rename', 'mkdir', 'rmdir', 'rmtree', 'abortStaleUploads'] as const
export type StorageOp = (typeof STORAGE_OPS)[number]
/** Bytes a storage call carries at most (base64 in the JSON line: a third more, well under the line's bound). */
export const STORAGE_CHUNK = 1024 * 1024
const handle = z.string().min(1).max(100)
const remotePath = z.string().max(4096)
const chunk = z.base64().max(Math.ceil(STORAGE_CHUNK / 3) * 4)

/** What a proxy says of a remote it opened: its label (no secret) and what its backend can do. */
export interface StorageSession {
  session: string
  label: string
  capabilities: Capabilities
  /** The backend's optional operations that exist (open, rename, lock…). */
  methods: string[]
}

export const proxyMethodParams = {
  /** The appliance says who it is; the proxy answers with its own version (the appliance refuses another one). */
  'hello': z.strictObject({ version: z.string().min(1).max(100) }),
  'ping': none,
  /** Starts a delegated run; its events are sent to the connections that attach to it. */
  'run.start': runSpecSchema,
  /** The run's events after `after` (-1: all kept), then each new one as a run.event notification on this connection. */
  'run.attach': z.strictObject({ runId: z.string().min(1).max(200), after: z.number().int().min(-1) }),
  'run.cancel': z.strictObject({ runId: z.string().min(1).max(200), reason: z.string().max(2000).optional() }),
  /** The appliance grants a pool slot the run asked for (slot.request). */
  'slot.grant': z.strictObject({ runId: z.string().min(1).max(200), requestId: z.string().min(1).max(200) }),
  // A remote that lives on the proxy (`remote add --proxy`): the appliance opens it here, over its channel, and
  // works on it through these calls (the storage contract's, one session per remote and connection).
  'storage.open': z.strictObject({ url: secretText }),
  'storage.call': z.strictObject({ session: handle, op: z.enum(STORAGE_OPS), args: z.array(z.unknown()).max(4) }),
  'storage.read': z.strictObject({ session: handle, path: remotePath, range: z.strictObject({ start: z.number().int().min(0), end: z.number().int().min(0).optional() }).optional() }),
  'storage.pull': z.strictObject({ stream: handle }),
  'storage.write': z.strictObject({ session: handle, path: remotePath, length: z.number().int().min(0).optional(), ifAbsent: z.boolean().optional() }),
  'storage.push': z.strictObject({ stream: handle, data: chunk }),
  'storage.finish': z.strictObject({ stream: handle }),
  'storage.abort': z.strictObject({ stream: handle }),
  'storage.file': z.strictObject({ session: handle, path: remotePath, mode: z.enum(['r', 'r+']) }),
  'storage.fileRead': z.strictObject({ file: handle, position: z.number().int().min(0), length: z.number().int().min(0).max(STORAGE_CHUNK) }),
  'storage.fileWrite': z.strictObject({ file: handle, position: z.number().int().min(0), data: chunk }),
  'storage.fileSize': z.strictObject({ file: handle }),
  'storage.fileTruncate': z.strictObject({ file: handle, size: z.number().int().min(0) }),
  'storage.fileClose': z.strictObject({ file: handle }),
  'storage.lock': z.strictObject({ session: handle, path: remotePath, staleMs: z.number().int().min(1).optional(), refreshMs: z.number().int().min(1).optional() }),
  'storage.lockState': z.strictObject({ lock: handle }),
  'storage.unlock': z.strictObject({ lock: handle }),
  'storage.close': z.strictObject({ session: handle }),
} as const

export type ProxyMethodName = keyof typeof proxyMethodParams

/** What a proxy service says of itself. */
export interface ProxyServiceInfo {
  version: string
  pid: number
  hostname: string
  dataDir: string
  socket: string
  startedAt: number
}

/** One event of a delegated run, numbered from 0 in the order the run emitted them. */
export interface SequencedEvent {
  seq: number
  event: TaskEvent
}

export interface ProxyMethodResults {
  'hello': ProxyServiceInfo
  'ping': Record<string, never>
  'run.start': { runId: string }
  'run.attach': { events: SequencedEvent[]; ended: boolean }
  'run.cancel': Record<string, never>
  'slot.grant': Record<string, never>
  'storage.open': StorageSession
  'storage.call': { result?: unknown }
  'storage.read': { stream: string }
  /** The next bytes (base64), and whether the stream ended after them. */
  'storage.pull': { data: string; end: boolean }
  'storage.write': { stream: string }
  'storage.push': Record<string, never>
  'storage.finish': { size: number }
  'storage.abort': Record<string, never>
  'storage.file': { file: string }
  'storage.fileRead': { data: string }
  'storage.fileWrite': Record<string, never>
  'storage.fileSize': { size: number }
  'storage.fileTruncate': Record<string, never>
  'storage.fileClose': Record<string, never>
  'storage.lock': { lock: string; path: string }
  'storage.lockState': { compromised: boolean }
  'storage.unlock': Record<string, never>
  'storage.close': Record<string, never>
}

/**
 * The proxy's notifications of a run's pool slots, handed out by the appliance so that each pool's limits hold
 * across the appliance and all its proxies: a slot asked for (again after a re-attach; `held` when it was granted
 * before), and one given back (or no longer wanted).
 */
export const SLOT_REQUEST = 'slot.request'
export const SLOT_RELEASE = 'slot.release'
export interface SlotRequestNotification {
  runId: string
  requestId: string
  pool: string
  kind: SlotKind
  holder: SlotHolder
  held: boolean
}
export interface SlotReleaseNotification {
  runId: string
  requestId: string
}
/** A held slot's progress (an export's bytes, its writers'), for the appliance's lanes. */
export const SLOT_PROGRESS = 'slot.progress'
export interface SlotProgressNotification {
  runId: string
  requestId: string
  progress: { done: number; total?: number; bytesPerSecond?: number }
  targets: Record<string, { done: number; state: 'writing' | 'done' | 'failed' }>
}

/** The proxy's notification: a delegated run's next event, to each connection attached to it. */
export const RUN_EVENT = 'run.event'
export type RunEventNotification = { runId: string } & SequencedEvent

export type ProxyMethods = { [M in ProxyMethodName]: { params: z.input<(typeof proxyMethodParams)[M]>; result: ProxyMethodResults[M] } }

/** A proxy registered on the appliance (proxy.list): where it is and the host key pinned when it was added. */
export interface Proxy {
  name: string
  /** ssh://user@host[:port] */
  url: string
  /** The SHA256 fingerprint of the host key pinned at `proxy add`. */
  fingerprint: string
  addedAt: number
}

/** What `proxy add` and `proxy test` saw: the pinned host key, the proxy's version and the channel's latency. */
export interface ProxyTestResult {
  name: string
  url: string
  fingerprint: string
  version: string
  hostname: string
  /** Milliseconds for ssh to connect and the proxy to answer its first call. */
  connectMs: number
  /** Milliseconds, the median of a few pings over the open channel. */
  latencyMs: number
}

/** `ssh://user@host[:port]`, read strictly: a user and a host are required; nothing after the port. */
export function parseProxyUrl(url: string): { user: string; host: string; port: number } {
  const match = /^ssh:\/\/([A-Za-z0-9._][A-Za-z0-9._-]{0,31})@(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9.-]+)(?::(\d{1,5}))?\/?$/.exec(url)
  const port = match?.[3] === undefined ? 22 : Number(match[3])
  if (match === null || port < 1 || port > 65535) {
    throw new LifeboatError('PROXY_BAD_URL', `The proxy URL ${JSON.stringify(url.slice(0, 200))} is not ssh://user@host[:port] (for example ssh://lifeboat@proxy1.example.net:22); give the user the proxy's key is authorized for, and its host.`)
  }
  return { user: match[1]!, host: match[2]!.replace(/^\[|\]$/g, ''), port }
}
