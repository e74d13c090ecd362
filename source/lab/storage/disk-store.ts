// The simulated SRs' disks: layer trees as SM builds them from VHDs (xapi.md §6.4), with snapshots that copy
// nothing, reads that walk leaf → root, space accounting per SR, CBT logs and garbage collection of bases.
import { randomUUID } from 'node:crypto'
import { access, mkdir, readdir, rm, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { LifeboatError } from '../../util/errors.ts'
import { Bitmap } from './bitmap.ts'
import { FilePool } from './file-pool.ts'
import { CBT_BLOCK_SIZE, LAB_BLOCK_SIZE, Layer, blockCount, cbtBlockCount, vhdPhysicalSize } from './layer.ts'
import { SrSpace } from './sr-space.ts'
import type { SrSpec } from './sr-space.ts'

/** Sidecars are written at most this long after the writes they describe (close and flush() write them at once). */
const OPEN_MARKER = 'open'
const FLUSH_DELAY_MS = 1000

export type { SrSpec }

export interface LayerInfo {
  uuid: string
  sr: string
  size: number
  parent: string | undefined
  children: string[]
  ownAllocatedBlocks: number
  /** allocated·(2 MiB+512) + 2 KiB + BAT for file SRs; full virtual size for an inflated leaf on a thick SR */
  physicalUtilisation: number
  readOnly: boolean
  cbtEnabled: boolean
  dataDestroyed: boolean
  /** The footer uuid of this layer's VHD file: what a differencing export names as its parent. */
  vhdUid: string
  createdAt: number
}

export class DiskStore {
  private readonly layers = new Map<string, Layer>()
  private flushTimer: NodeJS.Timeout | undefined
  /** Writes in progress: close() lets them finish so that their allocation reaches the sidecars. */
  private readonly writing = new Set<Promise<void>>()
  private readonly files: FilePool

  private constructor(readonly dir: string, private readonly space: SrSpace, openFiles: number | undefined) {
    this.files = new FilePool(openFiles)
  }

  /** Opens the store kept in `dir`, with what a previous process persisted there; at most `openFiles` data files stay open. */
  static async open(dir: string, options: { openFiles?: number } = {}): Promise<DiskStore> {
    await mkdir(dir, { recursive: true })
    const store = new DiskStore(dir, await SrSpace.load(dir), options.openFiles)
    for (const sr of store.space.uuids) {
      const folder = join(dir, sr)
      await mkdir(folder, { recursive: true })
      for (const name of await readdir(folder)) {
        if (!name.endsWith('.json')) continue
        const layer = await Layer.load(folder, store.files, name)
        store.layers.set(layer.uuid, layer)
      }
    }
    for (const layer of store.layers.values()) {
      if (layer.parent !== undefined && !layer.dataDestroyed) store.layers.get(layer.parent)?.children.add(layer.uuid)
    }
    for (const sr of store.space.uuids) store.recomputeUsage(sr)
    // the marker outlives a process that dies without close(): its last writes may be in files but not in sidecars
    const marker = join(dir, OPEN_MARKER)
    if (await access(marker).then(() => true, () => false)) {
      for (const layer of store.layers.values()) {
        if (layer.readOnly || layer.staleHoles) continue
        layer.staleHoles = true
        layer.changed = true
        await layer.save()
      }
    }
    await writeFile(marker, `${process.pid}\n`)
    return store
  }

  /** Adds an SR, or changes its size and kind when it exists. */
  async addSr(spec: SrSpec): Promise<void> {
    const added = await this.space.add(spec)
    await mkdir(join(this.dir, added.uuid), { recursive: true })
    this.recomputeUsage(added.uuid)
  }

  srUsage(sr: string): { physicalSize: number; physicalUtilisation: number } {
    return this.space.usage(sr)
  }

  async createLayer(options: { sr: string; size: number; parent?: string }): Promise<string> {
    const spec = this.space.get(options.sr)
    if (!Number.isSafeInteger(options.size) || options.size < 0) {
      throw new LifeboatError('LAB_BAD_SIZE', `A disk size must be a whole number of bytes, not ${options.size}.`)
    }
    if (options.parent !== undefined) this.get(options.parent)
    this.space.reserve(spec.uuid, vhdPhysicalSize(options.size, spec.thick ? blockCount(options.size) : 0))
    const layer = await this.newLayer(options.sr, options.size, options.parent, true)
    if (options.parent !== undefined) this.get(options.parent).children.add(layer.uuid)
    return layer.uuid
  }

  layer(uuid: string): LayerInfo {
    const layer = this.get(uuid)
    return {
      uuid, sr: layer.sr, size: layer.size, parent: layer.parent, children: [...layer.children],
      ownAllocatedBlocks: layer.allocation.count(), physicalUtilisation: this.space.charge(layer),
      readOnly: layer.readOnly, cbtEnabled: layer.cbtEnabled, dataDestroyed: layer.dataDestroyed,
      vhdUid: layer.vhdUid, createdAt: layer.createdAt,
    }
  }

  has(uuid: string): boolean {
    return this.layers.has(uuid)
  }

  /** Layers of the SR (all of them, bases and CBT-only ones included). */
  layersOf(sr: string): string[] {
    return [...this.layers.values()].filter(layer => layer.sr === sr).map(layer => layer.uuid)
  }

  /** leaf → root */
  chain(uuid: string): string[] {
    return this.chainLayers(uuid).map(layer => layer.uuid)
  }

  /** The leaf that now holds the disk that `uuid` was the leaf of (itself when never snapshotted since). */
  currentLeaf(uuid: string): string {
    let layer = this.get(uuid)
    while (layer.successor !== undefined && this.layers.has(layer.successor)) layer = this.get(layer.successor)
    return layer.uuid
  }

  /**
   * Snapshot (or clone) of the disk whose leaf is `leaf`: the leaf becomes a read-only base and gets two empty
   * children, one continuing the disk and the copy. A snapshot copy is charged deflated on thick SRs, a clone inflated.
   */
  async snapshot(leaf: string, options: { clone?: boolean } = {}): Promise<{ base: string; leaf: string; copy: string }> {
    const base = this.writable(leaf)
    const spec = this.space.get(base.sr)
    const empty = vhdPhysicalSize(base.size, 0)
    const full = vhdPhysicalSize(base.size, blockCount(base.size))
    const extra = spec.thick
      ? (base.inflated ? vhdPhysicalSize(base.size, base.allocation.count()) - full : 0) + full + (options.clone === true ? full : empty)
      : 2 * empty
    this.space.reserve(spec.uuid, extra)
    const continued = await this.newLayer(base.sr, base.size, base.uuid, true)
    const copy = await this.newLayer(base.sr, base.size, base.uuid, options.clone === true)
    continued.cbtEnabled = copy.cbtEnabled = base.cbtEnabled
    base.children.add(continued.uuid).add(copy.uuid)
    base.readOnly = true
    base.inflated = false
    base.successor = continued.uuid
    for (const layer of [continued, copy, base]) layer.changed = true
    await Promise.all([continued.save(), copy.save(), base.save()])
    this.recomputeUsage(base.sr)
    return { base: base.uuid, leaf: continued.uuid, copy: copy.uuid }
  }

  async read(leaf: string, offset: number, length: number): Promise<Buffer> {
    this.checkRange(this.get(leaf), offset, length)
    const out = Buffer.alloc(length)
    for (let position = offset; position < offset + length;) {
      const block = Math.floor(position / LAB_BLOCK_SIZE)
      const end = Math.min(offset + length, (block + 1) * LAB_BLOCK_SIZE)
      // the chain is taken per block: a coalesce may change it between two blocks
      await this.readFromChain(this.chainLayers(leaf), block, out, position - offset, position, end - position)
      position = end
    }
    return out
  }

  /** The whole block `index` as the leaf sees it (LAB_BLOCK_SIZE bytes; zeros past the end of the disk). */
  async readBlock(leaf: string, index: number): Promise<Buffer> {
    const chain = this.chainLayers(leaf)
    if (!Number.isInteger(index) || index < 0 || index >= blockCount(chain[0]!.size)) {
      throw new LifeboatError('LAB_OUT_OF_RANGE', `Block ${index} is outside disk ${leaf}.`)
    }
    const out = Buffer.alloc(LAB_BLOCK_SIZE)
    await this.readFromChain(chain, index, out, 0, index * LAB_BLOCK_SIZE, LAB_BLOCK_SIZE)
    return out
  }

  /** Writes guest data: allocates the 2 MiB blocks touched (copying the parent's view of partly written ones) and marks CBT. */
  write(leaf: string, offset: number, data: Buffer): Promise<void> {
    const writing = this.writeNow(leaf, offset, data)
    this.writing.add(writing)
    const forget = (): void => void this.writing.delete(writing)
    writing.then(forget, forget)
    return writing
  }

  private async writeNow(leaf: string, offset: number, data: Buffer): Promise<void> {
    const layer = this.writable(leaf)
    this.checkRange(layer, offset, data.length)
    if (data.length === 0) return
    const first = Math.floor(offset / LAB_BLOCK_SIZE)
    const last = Math.floor((offset + data.length - 1) / LAB_BLOCK_SIZE)
    const fresh: number[] = []
    for (let block = first; block <= last; block++) if (!layer.allocation.get(block)) fresh.push(block)
    if (fresh.length > 0) {
      if (!this.space.chargesFull(layer)) this.space.reserve(layer.sr, fresh.length * (LAB_BLOCK_SIZE + 512))
      // marked before the fills finish so concurrent writes of the same block wait for the fill instead of repeating it
      for (const block of fresh) {
        layer.allocation.set(block)
        const covered = offset <= block * LAB_BLOCK_SIZE && offset + data.length >= Math.min((block + 1) * LAB_BLOCK_SIZE, layer.size)
        if (!covered) this.startFill(layer, block)
      }
    }
    for (let block = first; block <= last; block++) await layer.filling.get(block)
    await layer.withFile(file => file.write(data, 0, data.length, offset))
    layer.dirty.setRange(Math.floor(offset / CBT_BLOCK_SIZE), Math.floor((offset + data.length - 1) / CBT_BLOCK_SIZE))
    layer.changed = true
    this.scheduleFlush()
  }

  /** Whether any layer of the disk's chain holds block `index`. */
  isAllocated(leaf: string, index: number): boolean {
    return this.chainLayers(leaf).some(layer => layer.allocation.get(index))
  }

  /** Allocated blocks of the disk: the union along its chain, ascending. */
  allocatedBlocks(leaf: string): number[] {
    return unionOf(this.chainLayers(leaf), this.get(leaf).size)
  }

  /** Blocks allocated in the layers that only one of the two chains has: what changed on either side since the common ancestor. */
  deltaBlocks(leaf: string, base: string): number[] {
    const a = this.chainLayers(leaf)
    const b = this.chainLayers(base)
    const inA = new Set(a)
    const inB = new Set(b)
    return unionOf([...a.filter(layer => !inB.has(layer)), ...b.filter(layer => !inA.has(layer))], this.get(leaf).size)
  }

  /** Grows a leaf (VDI.resize); shrinking is refused as SM does. */
  async resize(leaf: string, size: number): Promise<void> {
    const layer = this.writable(leaf)
    if (!Number.isSafeInteger(size) || size < layer.size) {
      throw new LifeboatError('LAB_RESIZE_SHRINK', `Disk ${leaf} is ${layer.size} bytes and cannot be resized to ${size}: disks only grow.`)
    }
    const before = this.space.charge(layer)
    const after = vhdPhysicalSize(size, this.space.chargesFull(layer) ? blockCount(size) : layer.allocation.count())
    this.space.reserve(layer.sr, after - before)
    layer.size = size
    layer.allocation.grow(blockCount(size))
    layer.dirty.grow(cbtBlockCount(size))
    layer.changed = true
    await layer.withFile(file => file.truncate(size))
    await layer.save()
    this.recomputeUsage(layer.sr)
  }

  /**
   * Drops a layer without children, then garbage-collects the bases left without children. A base left with a
   * single child stays until coalesce() (SM's GC does that later too, which XO sees as an unhealthy chain meanwhile).
   * Returns every layer removed (the XAPI side drops the matching hidden base copies).
   */
  async destroyLayer(uuid: string): Promise<string[]> {
    const layer = this.get(uuid)
    if (layer.children.size > 0) {
      throw new LifeboatError('LAB_LAYER_HAS_CHILDREN', `Disk layer ${uuid} still has children (${[...layer.children].join(', ')}); destroy them first.`)
    }
    this.layers.delete(uuid)
    await layer.remove(false)
    // a CBT-only layer left its parent when its data was destroyed
    const collected = layer.dataDestroyed ? [] : await this.detachFromParent(layer)
    this.recomputeUsage(layer.sr)
    return [uuid, ...collected]
  }

  enableCbt(leaf: string): void {
    this.setCbt(leaf, true)
  }

  disableCbt(leaf: string): void {
    this.setCbt(leaf, false)
  }

  /**
   * XAPI's VDI.list_changed_blocks: the 64 KiB blocks written between snapshot point `from` and `to` (a later
   * snapshot or the disk itself), MSB-first, ceil(size/64 KiB/8) bytes for `to`'s size.
   */
  changedBlocks(from: string, to: string): Buffer {
    const origin = this.get(from)
    const target = this.get(to)
    for (const layer of [origin, target]) {
      if (!layer.cbtEnabled) throw new LifeboatError('LAB_NO_CBT', `Changed block tracking is not enabled on disk layer ${layer.uuid}.`)
    }
    const before = this.cbtLogs(origin)
    const changes = new Bitmap(cbtBlockCount(target.size))
    for (const [uuid, log] of this.cbtLogs(target)) {
      if (before.has(uuid)) continue
      if (log === undefined) {
        throw new LifeboatError('LAB_NO_CBT', `The changed block log between ${from} and ${to} is gone (layer ${uuid} was removed).`)
      }
      changes.or(log)
    }
    return Buffer.from(changes.bytes)
  }

  /** VDI.data_destroy: frees a snapshot's data, keeps its CBT log (the layer stays, as type cbt_metadata). */
  async dataDestroy(uuid: string): Promise<string[]> {
    const layer = this.get(uuid)
    if (layer.dataDestroyed) return []
    if (layer.children.size > 0) {
      throw new LifeboatError('LAB_LAYER_HAS_CHILDREN', `Disk layer ${uuid} has children; only a snapshot's leaf can lose its data.`)
    }
    layer.cbtAncestors = [...this.cbtLogs(layer).keys()].slice(1)
    layer.dataDestroyed = true
    layer.readOnly = true
    layer.allocation.clear()
    layer.changed = true
    await layer.remove(true)
    await layer.save()
    return this.detachFromParent(layer)
  }

  /** Bases SM's GC would coalesce: read-only layers with exactly one child (a chain XO calls unhealthy while they exist). */
  coalescable(sr?: string): string[] {
    return [...this.layers.values()]
      .filter(layer => layer.readOnly && !layer.dataDestroyed && layer.children.size === 1 && (sr === undefined || layer.sr === sr))
      .map(layer => layer.uuid)
  }

  /**
   * SM's coalesce of a base into its only child, done the other way round so that leaves keep their uuid: the child
   * takes the blocks of the base it lacks (copied at `rateMiBs`, uncapped when undefined), the base's CBT log and its
   * place in the tree; the base is removed. Every remaining layer reads the same, deltas and CBT answers are unchanged.
   * Guest writes go on meanwhile. Returns the layer removed (the XAPI side drops its hidden base copy).
   */
  async coalesce(base: string, options: { rateMiBs?: number; signal?: AbortSignal } = {}): Promise<{ removed: string; into: string }> {
    const parent = this.get(base)
    if (!parent.readOnly || parent.dataDestroyed || parent.children.size !== 1) {
      throw new LifeboatError('LAB_NOT_COALESCABLE', `Disk layer ${base} is not a base with a single child; there is nothing to coalesce.`)
    }
    const child = this.get([...parent.children][0]!)
    const missing = parent.allocation.indexes().filter(block => !child.allocation.get(block))
    if (!this.space.chargesFull(child)) this.space.reserve(child.sr, missing.length * (LAB_BLOCK_SIZE + 512))
    const started = performance.now()
    for (const [done, block] of missing.entries()) {
      if (options.signal?.aborted === true) {
        this.recomputeUsage(child.sr)
        throw new LifeboatError('LAB_COALESCE_ABORTED', `The coalesce of ${base} was stopped; the chain is unchanged and it can be run again.`)
      }
      if (child.allocation.get(block)) continue // a guest write took it meanwhile
      child.allocation.set(block)
      child.changed = true
      await this.fill(child, block, [parent])
      if (options.rateMiBs !== undefined) {
        const due = started + ((done + 1) * LAB_BLOCK_SIZE) / ((options.rateMiBs * 1024 * 1024) / 1000)
        if (due > performance.now()) await new Promise(resolve => setTimeout(resolve, due - performance.now()))
      }
    }
    child.absorbed.set(parent.uuid, parent.dirty)
    for (const [uuid, log] of parent.absorbed) child.absorbed.set(uuid, log)
    child.parent = parent.parent
    const grandparent = parent.parent === undefined ? undefined : this.layers.get(parent.parent)
    grandparent?.children.delete(parent.uuid)
    grandparent?.children.add(child.uuid)
    this.layers.delete(parent.uuid)
    child.changed = true
    await child.save() // the child points past the base before the base's files go
    await parent.remove(false)
    this.recomputeUsage(child.sr)
    return { removed: parent.uuid, into: child.uuid }
  }

  /** Persists every sidecar out of date. */
  async flush(): Promise<void> {
    if (this.flushTimer !== undefined) clearTimeout(this.flushTimer)
    this.flushTimer = undefined
    await Promise.all([...this.layers.values()].map(layer => layer.save()))
  }

  /** Flushes and closes the data files; the store must not be used afterwards. */
  async close(): Promise<void> {
    await Promise.allSettled(this.writing)
    await this.flush()
    await rm(join(this.dir, OPEN_MARKER), { force: true })
    await this.files.closeAll()
  }

  private get(uuid: string): Layer {
    const layer = this.layers.get(uuid)
    if (layer === undefined) throw new LifeboatError('LAB_LAYER_UNKNOWN', `The lab has no disk layer ${uuid}.`)
    return layer
  }

  private writable(uuid: string): Layer {
    const layer = this.get(uuid)
    if (layer.dataDestroyed) throw new LifeboatError('LAB_LAYER_NO_DATA', `Disk layer ${uuid} has no data any more (data_destroy).`)
    if (layer.readOnly || layer.children.size > 0) {
      throw new LifeboatError('LAB_LAYER_READ_ONLY', `Disk layer ${uuid} is a read-only base; write to the disk's current leaf.`)
    }
    return layer
  }

  private chainLayers(uuid: string): Layer[] {
    const chain: Layer[] = []
    for (let layer: Layer | undefined = this.get(uuid); layer !== undefined; layer = layer.parent === undefined ? undefined : this.layers.get(layer.parent)) {
      if (layer.dataDestroyed) throw new LifeboatError('LAB_LAYER_NO_DATA', `Disk layer ${layer.uuid} has no data any more (data_destroy).`)
      chain.push(layer)
    }
    return chain
  }

  /**
   * The CBT logs of the writes a snapshot point includes, by layer uuid: its chain and the bases coalesced into it,
   * or what it had before data_destroy. A log that is gone maps to undefined.
   */
  private cbtLogs(layer: Layer): Map<string, Bitmap | undefined> {
    const logs = new Map<string, Bitmap | undefined>()
    if (layer.dataDestroyed) {
      logs.set(layer.uuid, layer.dirty)
      for (const uuid of layer.cbtAncestors ?? []) logs.set(uuid, this.findCbtLog(uuid))
      return logs
    }
    for (const member of this.chainLayers(layer.uuid)) {
      logs.set(member.uuid, member.dirty)
      for (const [uuid, log] of member.absorbed) logs.set(uuid, log)
    }
    return logs
  }

  private findCbtLog(uuid: string): Bitmap | undefined {
    const layer = this.layers.get(uuid)
    if (layer !== undefined) return layer.dirty
    for (const holder of this.layers.values()) {
      const log = holder.absorbed.get(uuid)
      if (log !== undefined) return log
    }
    return undefined
  }

  private async readFromChain(chain: Layer[], block: number, out: Buffer, outOffset: number, position: number, length: number): Promise<void> {
    const owner = chain.find(layer => layer.allocation.get(block))
    if (owner === undefined) return
    // no await when nothing is pending: the file is then in use before a coalesce can remove the owner
    const filling = owner.filling.get(block)
    if (filling !== undefined) await filling
    // a base smaller than the leaf (resized since) ends early: the rest stays zero
    const readable = Math.min(length, owner.size - position)
    if (readable > 0) await owner.withFile(file => file.read(out, outOffset, readable, position))
  }

  /** Copy-on-write of a block partly written for the first time in `layer`: its parent's view goes in first. */
  private startFill(layer: Layer, block: number): void {
    const parents = layer.parent === undefined ? [] : this.chainLayers(layer.parent)
    if (layer.staleHoles || parents.some(parent => parent.allocation.get(block))) void this.fill(layer, block, parents)
  }

  /** Copies block `block` as `sources` see it into `layer`; readers and writers of the block wait for it. */
  private fill(layer: Layer, block: number, sources: Layer[]): Promise<void> {
    const fill = (async () => {
      const data = Buffer.alloc(LAB_BLOCK_SIZE)
      await this.readFromChain(sources, block, data, 0, block * LAB_BLOCK_SIZE, LAB_BLOCK_SIZE)
      const length = Math.min(LAB_BLOCK_SIZE, layer.size - block * LAB_BLOCK_SIZE)
      await layer.withFile(file => file.write(data, 0, length, block * LAB_BLOCK_SIZE))
    })()
    layer.filling.set(block, fill)
    void fill.finally(() => layer.filling.delete(block)).catch(() => undefined)
    return fill
  }

  private async newLayer(sr: string, size: number, parent: string | undefined, inflated: boolean): Promise<Layer> {
    const layer = await Layer.create(join(this.dir, sr), this.files, {
      uuid: randomUUID(), sr, size, parent, inflated, vhdUid: randomUUID(), createdAt: Date.now(), cbtEnabled: false,
    })
    this.layers.set(layer.uuid, layer)
    return layer
  }

  private async detachFromParent(layer: Layer): Promise<string[]> {
    const removed: string[] = []
    let child = layer
    for (let parent = child.parent === undefined ? undefined : this.layers.get(child.parent); parent !== undefined;) {
      parent.children.delete(child.uuid)
      if (parent.children.size > 0 || !parent.readOnly) break
      this.layers.delete(parent.uuid)
      await parent.remove(false)
      removed.push(parent.uuid)
      child = parent
      parent = child.parent === undefined ? undefined : this.layers.get(child.parent)
    }
    this.recomputeUsage(layer.sr)
    return removed
  }

  private setCbt(leaf: string, enabled: boolean): void {
    const layer = this.get(leaf)
    layer.cbtEnabled = enabled
    layer.changed = true
    this.scheduleFlush()
  }

  private recomputeUsage(sr: string): void {
    this.space.recompute(sr, this.layers.values())
  }

  private checkRange(layer: Layer, offset: number, length: number): void {
    if (!Number.isSafeInteger(offset) || !Number.isSafeInteger(length) || offset < 0 || length < 0 || offset + length > layer.size) {
      throw new LifeboatError('LAB_OUT_OF_RANGE', `Bytes ${offset}+${length} are outside disk layer ${layer.uuid} (${layer.size} bytes).`)
    }
  }

  private scheduleFlush(): void {
    if (this.flushTimer !== undefined) return
    this.flushTimer = setTimeout(() => {
      this.flushTimer = undefined
      this.flush().catch(() => undefined) // a failed sidecar stays marked changed: the next flush or close retries and reports
    }, FLUSH_DELAY_MS)
    this.flushTimer.unref()
  }
}

function unionOf(layers: Layer[], size: number): number[] {
  const union = new Bitmap(blockCount(size))
  for (const layer of layers) union.or(layer.allocation)
  return union.indexes()
}
