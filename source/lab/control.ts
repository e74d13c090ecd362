// The /_sim control plane (never listed by system.listMethods): guest writes and workloads, knobs, faults and their
// log, toolstack restarts, session invalidation, SR full and VDI_IN_USE windows, state dumps. JSON in, JSON out.
import type { IncomingMessage, ServerResponse } from 'node:http'
import { LifeboatError } from '../util/errors.ts'
import { z } from 'zod'
import { faultRuleSchema, type FaultRuleRequest } from './faults.ts'
import { patternBytes, startWorkload } from './storage/index.ts'
import type { LabServer } from './server.ts'
import { readBody } from './server.ts'
import { DEFAULT_KNOBS, type Knobs, type Toolstack } from './toolstack.ts'
import { refreshSr } from './vdi.ts'
import { haltVm } from './vm.ts'

const writeSchema = z.object({ offset: z.number().int().nonnegative(), length: z.number().int().positive().max(256 * 1024 * 1024).optional(),
  seed: z.number().int().optional(), data: z.base64().optional() })
const workloadSchema = z.object({ dirtyBlocksPerMin: z.number().nonnegative(), locality: z.number().min(0).max(1).optional(), seed: z.number().int().optional() })
const knobsSchema = z.object({
  exportPerStreamMiBs: z.number().positive().nullable(), exportHostMiBs: z.number().positive().nullable(), snapshotMs: z.number().nonnegative(),
  attachMs: z.number().nonnegative(), detachLagMs: z.number().nonnegative(), bootMs: z.number().nonnegative(), toolsMs: z.number().nonnegative(),
  raceQueueLimit: z.number().int().nonnegative(), gcStuck: z.boolean(), maxPendingTasks: z.number().int().nonnegative(),
  maxChainLength: z.number().int().positive(),
}).partial().strict()
const exportCutSchema = z.object({ afterBytes: z.number().int().nonnegative(), mode: z.enum(['fin', 'rst']), endpoint: z.string().optional(),
  uuid: z.string().optional() })
const restartSchema = z.object({ downMs: z.number().nonnegative().max(3600_000).default(2000), reboot: z.boolean().default(false) })
const msSchema = z.object({ ms: z.number().nonnegative().max(3600_000).default(4000) })
const srFullSchema = z.object({ freeBytes: z.number().int().nonnegative().default(0) })
const timesSchema = z.object({ times: z.number().int().nonnegative().default(1) })

export type WriteRequest = z.infer<typeof writeSchema>
export type WorkloadRequest = z.infer<typeof workloadSchema>
export type KnobChanges = z.infer<typeof knobsSchema>

/** Control operations of one pool, used by the HTTP control plane and directly by tests and the CLI. */
export class Control {
  private readonly workloads = new Map<string, () => Promise<void>>()
  server: LabServer | undefined

  constructor(readonly xapi: Toolstack) {}

  state(): Record<string, unknown> {
    const { db } = this.xapi
    const vms = db.find('VM', record => record.is_control_domain !== true).map(ref => {
      const record = db.row('VM', ref)
      return { ref, uuid: record.uuid, name_label: record.name_label, power_state: record.power_state, is_a_snapshot: record.is_a_snapshot,
        tags: record.tags, vdis: db.refsWhere('VBD', 'VM', ref).map(vbd => db.row('VBD', vbd).VDI).filter(vdi => db.has('VDI', vdi as string))
          .map(vdi => db.row('VDI', vdi as string).uuid) }
    })
    const srs = db.all('SR').map(ref => pickFields(db.row('SR', ref), ['uuid', 'name_label', 'type', 'physical_size', 'physical_utilisation', 'virtual_allocation']))
    return { pool: this.xapi.name, generation: db.generation, sessions: this.xapi.sessions.size, tasks: db.count('task'), vms, srs,
      knobs: this.xapi.knobs, faults: this.xapi.faults.list(), workloads: [...this.workloads.keys()] }
  }

  /** A guest write into a VDI: explicit bytes (base64) or a seeded pattern. */
  async writeVdi(uuid: string, request: WriteRequest): Promise<{ bytesWritten: number }> {
    const { db, store } = this.xapi
    const vdi = db.byUuid('VDI', uuid)
    const data = request.data !== undefined ? Buffer.from(request.data, 'base64') : patternBytes(request.seed ?? 1, request.offset, request.length ?? 65536)
    await store.write(db.row('VDI', vdi).location as string, request.offset, data)
    refreshSr(this.xapi, db.row('VDI', vdi).SR as string)
    return { bytesWritten: data.length }
  }

  startWorkload(vmUuid: string, request: WorkloadRequest): { disks: number } {
    const { db, store } = this.xapi
    const vm = db.byUuid('VM', vmUuid)
    this.stopWorkloadNow(vmUuid)
    const leaves = db.refsWhere('VBD', 'VM', vm).map(vbd => db.row('VBD', vbd).VDI as string).filter(vdi => db.has('VDI', vdi))
      .map(vdi => db.row('VDI', vdi).location as string)
    const stops = leaves.map((leaf, index) => startWorkload(store, leaf, { dirtyBlocksPerMin: request.dirtyBlocksPerMin, locality: request.locality ?? 0.5,
      seed: (request.seed ?? 1) + index, onError: (error: unknown) => this.xapi.faults.log(this.xapi, 'workloadStopped', { vm: vmUuid, error: String(error) }) }))
    this.workloads.set(vmUuid, async () => void (await Promise.all(stops.map(stop => stop()))))
    return { disks: leaves.length }
  }

  async stopWorkload(vmUuid: string): Promise<void> {
    const stop = this.workloads.get(vmUuid)
    this.workloads.delete(vmUuid)
    await stop?.()
  }

  /** Changes knobs; `null` lifts a rate cap. */
  setKnobs(changes: KnobChanges | Partial<Knobs>): Knobs {
    const parsed = knobsSchema.safeParse(changes)
    if (!parsed.success) {
      throw new LifeboatError('LAB_BAD_KNOB', `The knobs are not valid (${z.prettifyError(parsed.error)}); known knobs: ${Object.keys(DEFAULT_KNOBS).join(', ')}.`)
    }
    for (const [key, value] of Object.entries(parsed.data)) {
      ;(this.xapi.knobs as unknown as Record<string, unknown>)[key] = value === null ? undefined : value
    }
    this.xapi.rates.setLimits({ perStreamMiBs: this.xapi.knobs.exportPerStreamMiBs, hostMiBs: this.xapi.knobs.exportHostMiBs })
    if ('gcStuck' in parsed.data) for (const sr of this.xapi.db.all('SR')) refreshSr(this.xapi, sr)
    return this.xapi.knobs
  }

  addFault(rule: FaultRuleRequest) {
    return this.xapi.faults.add(faultRuleSchema.parse(rule))
  }

  /** Shorthands for the faults of xapi.md §4. */
  snapshotFailure(times = 1) {
    return this.addFault({ match: { method: 'VM.snapshot' }, times,
      action: { type: 'error', code: 'SR_BACKEND_FAILURE_82', params: ['', 'Failed to snapshot VDI [opterr=failed to pause VDI]', ''] } })
  }

  exportCut(options: z.infer<typeof exportCutSchema>) {
    return this.addFault({ match: { endpoint: options.endpoint ?? '/export_raw_vdi/', uuid: options.uuid },
      action: { type: 'truncate', afterBytes: options.afterBytes, mode: options.mode } })
  }

  faultLog() {
    return this.xapi.faults.entries
  }

  /** Sessions gone (as after 400 newer logins or 24 h idle): every call answers SESSION_INVALID. */
  invalidateSessions(): void {
    this.xapi.faults.log(this.xapi, 'sessionInvalidate', { sessions: this.xapi.sessions.size })
    this.xapi.sessions.clear()
  }

  /** Toolstack restart; with `reboot`, a host reboot: running VMs come back Halted and dom0 lets go of every disk. */
  async restart(downMs: number, options: { reboot?: boolean } = {}): Promise<void> {
    const { db } = this.xapi
    this.xapi.faults.log(this.xapi, options.reboot === true ? 'hostReboot' : 'toolstackRestart',
      { downMs, sessions: this.xapi.sessions.size, tasks: db.count('task') })
    await this.server?.restart(downMs)
    if (options.reboot !== true) return
    await this.stopAll()
    for (const vm of db.find('VM', record => record.is_control_domain !== true && record.power_state !== 'Halted' && record.power_state !== 'Suspended')) {
      haltVm(this.xapi, vm)
    }
    const dom0s = new Set(db.find('VM', record => record.is_control_domain === true))
    for (const vbd of db.find('VBD', record => dom0s.has(record.VM as string))) db.delete('VBD', vbd)
  }

  /**
   * Fills the SR (its free space set to `freeBytes`, zero by default): writes, snapshots, clones and imports that need more
   * fail with SR_BACKEND_FAILURE_44, an import in the middle of its stream.
   */
  async srFull(srUuid: string, freeBytes = 0): Promise<void> {
    const { db, store } = this.xapi
    const sr = db.byUuid('SR', srUuid)
    const physicalSize = store.srUsage(srUuid).physicalUtilisation + freeBytes
    await store.addSr({ uuid: srUuid, physicalSize, thick: db.row('SR', sr).type === 'lvm' })
    refreshSr(this.xapi, sr)
    this.xapi.faults.log(this.xapi, 'srFull', { sr: srUuid, physicalSize, freeBytes })
  }

  /** Keeps the VDI plugged into dom0 for `ms`, as a slow unplug after an export does. */
  vdiInUse(vdiUuid: string, ms: number): void {
    const { db } = this.xapi
    const vdi = db.byUuid('VDI', vdiUuid)
    const vbd = db.create('VBD', { VM: db.row('host', this.xapi.masterRef).control_domain, VDI: vdi, currently_attached: true, mode: 'RO', type: 'Disk',
      userdevice: 'autodetect', device: 'xvdz' })
    setTimeout(() => db.has('VBD', vbd) && db.delete('VBD', vbd), ms).unref()
    this.xapi.faults.log(this.xapi, 'vdiInUse', { vdi: vdiUuid, ms })
  }

  /** Back to a quiet lab: no faults, default knobs, workloads stopped (data and objects are kept). */
  async reset(): Promise<void> {
    this.xapi.faults.clear()
    this.setKnobs({ ...DEFAULT_KNOBS })
    for (const vm of [...this.workloads.keys()]) await this.stopWorkload(vm)
  }

  async stopAll(): Promise<void> {
    for (const vm of [...this.workloads.keys()]) await this.stopWorkload(vm)
  }

  private stopWorkloadNow(vmUuid: string): void {
    void this.stopWorkload(vmUuid).catch(() => {})
  }

  /**
   * Routes (JSON bodies): GET state · POST vdi/:uuid/write {offset, length?, seed?, data?} · POST vdi/:uuid/in-use {ms}
   * · POST vm/:uuid/workload {dirtyBlocksPerMin, locality?, seed?} · DELETE vm/:uuid/workload · POST sr/:uuid/full {freeBytes?}
   * · POST knobs {…Knobs} · GET|DELETE activity (in flight, most at once, bytes/blocks imported per VDI) · GET|POST|DELETE faults · GET faults/log · POST faults/snapshot-failure {times?}
   * · POST faults/export-cut {afterBytes, mode, endpoint?, uuid?} · POST sessions/invalidate · POST restart {downMs, reboot?}
   * · POST reset.
   */
  async handle(server: LabServer, request: IncomingMessage, response: ServerResponse, url: URL): Promise<void> {
    const parts = url.pathname.split('/').filter(part => part !== '').slice(1)
    const body = request.method === 'GET' || request.method === 'DELETE' ? {} : parseJson(await readBody(request, 1024 * 1024 * 64))
    const route = `${request.method} ${parts.map((part, index) => (index === 1 && ['vdi', 'vm', 'sr'].includes(parts[0]!) ? ':id' : part)).join('/')}`
    const id = parts[1] ?? ''
    const reply = (status: number, value: unknown): void => void response.writeHead(status, { 'content-type': 'application/json' }).end(JSON.stringify(value ?? null))
    this.server = server
    try {
      switch (route) {
        case 'GET state': return reply(200, this.state())
        case 'POST vdi/:id/write': return reply(200, await this.writeVdi(id, writeSchema.parse(body)))
        case 'POST vdi/:id/in-use': return reply(200, this.vdiInUse(id, msSchema.parse(body).ms))
        case 'POST vm/:id/workload': return reply(200, this.startWorkload(id, workloadSchema.parse(body)))
        case 'DELETE vm/:id/workload': return reply(200, await this.stopWorkload(id))
        case 'POST sr/:id/full': return reply(200, await this.srFull(id, srFullSchema.parse(body).freeBytes))
        case 'POST knobs': return reply(200, this.setKnobs(body as KnobChanges))
        case 'GET activity': return reply(200, this.xapi.activity.snapshot())
        case 'DELETE activity': return reply(200, this.xapi.activity.reset())
        case 'GET faults': return reply(200, this.xapi.faults.list())
        case 'POST faults': return reply(200, this.addFault(body as FaultRuleRequest))
        case 'DELETE faults': return reply(200, this.xapi.faults.clear())
        case 'GET faults/log': return reply(200, this.faultLog())
        case 'POST faults/snapshot-failure': return reply(200, this.snapshotFailure(timesSchema.parse(body).times))
        case 'POST faults/export-cut': return reply(200, this.exportCut(exportCutSchema.parse(body)))
        case 'POST sessions/invalidate': return reply(200, this.invalidateSessions())
        case 'POST restart': {
          const { downMs, reboot } = restartSchema.parse(body)
          reply(200, { downMs, reboot })
          return void response.on('finish', () => void this.restart(downMs, { reboot }))
        }
        case 'POST reset': return reply(200, await this.reset())
        default: return reply(404, { code: 'LAB_UNKNOWN_ROUTE', message: `No control route ${route}` })
      }
    } catch (error) {
      if (error instanceof z.ZodError) return reply(400, { code: 'LAB_BAD_REQUEST', message: z.prettifyError(error) })
      const code = (error as { code?: unknown }).code
      reply(400, { code: typeof code === 'string' ? code : 'LAB_CONTROL_FAILED', message: (error as Error).message, params: (error as { params?: unknown }).params })
    }
  }
}

function parseJson(body: Buffer): unknown {
  if (body.length === 0) return {}
  try {
    return JSON.parse(body.toString('utf8'))
  } catch {
    throw new LifeboatError('LAB_BAD_JSON', 'The control request body is not JSON.')
  }
}

function pickFields(record: Record<string, unknown>, fields: string[]): Record<string, unknown> {
  return Object.fromEntries(fields.map(field => [field, record[field]]))
}
