// The lab's object database: one table per XAPI class, a generation counter that drives event.from, reverse links
// computed from the records that point at an object (so they are always current), and atomic, debounced persistence.
import { randomUUID } from 'node:crypto'
import { readFile, rename, writeFile } from 'node:fs/promises'
import { ApiError } from './errors.ts'
import { NULL_REF, SCHEMA, cloneValue } from './schema.ts'

export type LabRecord = Record<string, unknown>

interface Row { record: LabRecord; created: number; modified: number }
interface Tombstone { cls: string; ref: string; created: number; deleted: number }
export interface LabEvent { id: string; timestamp: string; class: string; operation: 'add' | 'mod' | 'del'; ref: string; snapshot?: LabRecord }

// Links from a pointing field to the class that shows it as a reverse set, e.g. VBD.VM → VM.VBDs.
const POINTERS = new Map<string, Array<{ target: string; field: string }>>()
for (const [target, schema] of Object.entries(SCHEMA)) {
  for (const [field, [cls, pointer]] of Object.entries(schema.reverse ?? {})) {
    const key = `${cls}.${pointer}`
    POINTERS.set(key, [...(POINTERS.get(key) ?? []), { target, field }])
  }
}

const TOMBSTONE_LIMIT = 10_000

export class Database {
  generation = 0
  /** Set when the lab stops: long polls return at once instead of waiting out their timeout. */
  closed = false
  /** Runs before each save, so what the records point at (disk layers) is on disk first. */
  beforeSave: () => Promise<void> = async () => {}
  private readonly tables = new Map<string, Map<string, Row>>()
  private readonly classOfRef = new Map<string, string>()
  private tombstones: Tombstone[] = []
  private readonly waiters = new Set<() => void>()
  private saveTimer: NodeJS.Timeout | undefined
  private saving: Promise<void> = Promise.resolve()

  constructor(private readonly file: string | undefined) {
    for (const cls of Object.keys(SCHEMA)) this.tables.set(cls, new Map())
  }

  static async open(file: string): Promise<Database> {
    const db = new Database(file)
    let text: string | undefined
    try {
      text = await readFile(file, 'utf8')
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error
    }
    if (text !== undefined) {
      const saved = JSON.parse(text) as { generation: number; tables: Record<string, Record<string, LabRecord>> }
      db.generation = saved.generation
      for (const [cls, rows] of Object.entries(saved.tables)) {
        const table = db.tables.get(cls)
        if (table === undefined) continue
        for (const [ref, record] of Object.entries(rows)) {
          table.set(ref, { record: { ...cloneValue(SCHEMA[cls]!.fields), ...record }, created: 0, modified: 0 })
          db.classOfRef.set(ref, cls)
        }
      }
    }
    return db
  }

  get isEmpty(): boolean {
    return this.tables.get('pool')!.size === 0
  }

  classOf(ref: string): string | undefined {
    return this.classOfRef.get(ref)
  }

  has(cls: string, ref: string): boolean {
    return this.tables.get(cls)?.has(ref) === true
  }

  /** The stored fields of a record (mutate only through update). HANDLE_INVALID when absent. */
  row(cls: string, ref: string): LabRecord {
    const row = this.tables.get(cls)?.get(ref)
    if (row === undefined) throw new ApiError('HANDLE_INVALID', [cls, ref])
    return row.record
  }

  /** The full record as XAPI sends it: stored fields plus current reverse links. */
  get(cls: string, ref: string): LabRecord {
    const record = cloneValue(this.row(cls, ref))
    for (const [field, [source, pointer]] of Object.entries(SCHEMA[cls]!.reverse ?? {})) {
      record[field] = this.refsWhere(source, pointer, ref)
    }
    return record
  }

  refsWhere(cls: string, field: string, value: unknown): string[] {
    const refs: string[] = []
    for (const [ref, row] of this.tables.get(cls)!) if (row.record[field] === value) refs.push(ref)
    return refs
  }

  all(cls: string): string[] {
    return [...this.tables.get(cls)!.keys()]
  }

  find(cls: string, predicate: (record: LabRecord, ref: string) => boolean): string[] {
    const refs: string[] = []
    for (const [ref, row] of this.tables.get(cls)!) if (predicate(row.record, ref)) refs.push(ref)
    return refs
  }

  byUuid(cls: string, uuid: string): string {
    for (const [ref, row] of this.tables.get(cls)!) if (row.record.uuid === uuid) return ref
    throw new ApiError('UUID_INVALID', [cls, uuid])
  }

  count(cls: string): number {
    return this.tables.get(cls)!.size
  }

  create(cls: string, fields: LabRecord): string {
    const ref = `OpaqueRef:${randomUUID()}`
    const record: LabRecord = { ...cloneValue(SCHEMA[cls]!.fields), uuid: randomUUID() }
    for (const [field, value] of Object.entries(fields)) if (field in record) record[field] = cloneValue(value)
    for (const field of Object.keys(SCHEMA[cls]!.reverse ?? {})) record[field] = []
    const generation = this.bump()
    this.tables.get(cls)!.set(ref, { record, created: generation, modified: generation })
    this.classOfRef.set(ref, cls)
    this.touchPointees(cls, record, {})
    this.changed(cls)
    return ref
  }

  update(cls: string, ref: string, patch: LabRecord): void {
    const row = this.tables.get(cls)?.get(ref)
    if (row === undefined) throw new ApiError('HANDLE_INVALID', [cls, ref])
    const before = { ...row.record }
    for (const [field, value] of Object.entries(patch)) row.record[field] = cloneValue(value)
    row.modified = this.bump()
    this.touchPointees(cls, row.record, before)
    this.changed(cls)
  }

  /** A `mod` event for the object without changing it (event.inject, barrier-style touches). */
  touch(cls: string, ref: string): void {
    const row = this.tables.get(cls)?.get(ref)
    if (row === undefined) throw new ApiError('HANDLE_INVALID', [cls, ref])
    row.modified = this.bump()
    this.changed(cls)
  }

  delete(cls: string, ref: string): void {
    const table = this.tables.get(cls)!
    const row = table.get(ref)
    if (row === undefined) throw new ApiError('HANDLE_INVALID', [cls, ref])
    table.delete(ref)
    this.classOfRef.delete(ref)
    this.tombstones.push({ cls, ref, created: row.created, deleted: this.bump() })
    if (this.tombstones.length > TOMBSTONE_LIMIT) this.tombstones = this.tombstones.slice(-TOMBSTONE_LIMIT / 2)
    this.touchPointees(cls, {}, row.record)
    this.changed(cls)
  }

  /** Drops a whole volatile table without events (what a toolstack restart does to tasks). */
  forget(cls: string): void {
    for (const ref of this.tables.get(cls)!.keys()) this.classOfRef.delete(ref)
    this.tables.get(cls)!.clear()
    this.tombstones = this.tombstones.filter(tombstone => tombstone.cls !== cls)
  }

  /** Coalesced changes since a generation: one event per object, with the snapshot taken now. */
  eventsSince(generation: number, classes: Set<string> | undefined): LabEvent[] {
    const events: LabEvent[] = []
    const wanted = (cls: string) => classes === undefined || classes.has(cls.toLowerCase())
    for (const [cls, table] of this.tables) {
      if (!wanted(cls)) continue
      for (const [ref, row] of table) {
        if (row.modified <= generation) continue
        events.push({ id: String(row.modified), timestamp: '0.0', class: cls.toLowerCase(), operation: row.created > generation ? 'add' : 'mod',
          ref, snapshot: this.get(cls, ref) })
      }
    }
    for (const tombstone of this.tombstones) {
      if (tombstone.deleted > generation && tombstone.created <= generation && wanted(tombstone.cls)) {
        events.push({ id: String(tombstone.deleted), timestamp: '0.0', class: tombstone.cls.toLowerCase(), operation: 'del', ref: tombstone.ref })
      }
    }
    return events.sort((a, b) => Number(a.id) - Number(b.id))
  }

  validRefCounts(): Record<string, number> {
    return Object.fromEntries([...this.tables].map(([cls, table]) => [cls.toLowerCase(), table.size]))
  }

  /** Resolves when the generation moves past `generation`, or after `timeoutMs`. */
  waitForChange(generation: number, timeoutMs: number): Promise<void> {
    if (this.generation > generation) return Promise.resolve()
    return new Promise(resolve => {
      const done = () => {
        clearTimeout(timer)
        this.waiters.delete(done)
        resolve()
      }
      const timer = setTimeout(done, timeoutMs)
      timer.unref()
      this.waiters.add(done)
    })
  }

  /** Ends every event.from wait for good (used on shutdown). */
  close(): void {
    this.closed = true
    for (const waiter of [...this.waiters]) waiter()
  }

  async flush(): Promise<void> {
    clearTimeout(this.saveTimer)
    this.saveTimer = undefined
    await (this.saving = this.saving.then(() => this.save()))
  }

  private bump(): number {
    return ++this.generation
  }

  private changed(cls: string): void {
    for (const waiter of [...this.waiters]) waiter()
    if (this.file !== undefined && !this.closed && SCHEMA[cls]!.volatile !== true && this.saveTimer === undefined) {
      this.saveTimer = setTimeout(() => {
        this.saveTimer = undefined
        this.saving = this.saving.then(() => this.save()).catch(error => console.error('lab: cannot save the database:', error))
      }, 200)
    }
  }

  private async save(): Promise<void> {
    if (this.file === undefined) return
    await this.beforeSave()
    const tables: Record<string, Record<string, LabRecord>> = {}
    for (const [cls, table] of this.tables) {
      if (SCHEMA[cls]!.volatile === true) continue
      tables[cls] = Object.fromEntries([...table].map(([ref, row]) => [ref, row.record]))
    }
    const temporary = `${this.file}.${process.pid}.tmp`
    await writeFile(temporary, JSON.stringify({ generation: this.generation, tables }))
    await rename(temporary, this.file)
  }

  // A change of a pointing field is a change of the reverse set on both the old and the new object.
  private touchPointees(cls: string, after: LabRecord, before: LabRecord): void {
    for (const field of Object.keys(SCHEMA[cls]!.fields)) {
      const pointers = POINTERS.get(`${cls}.${field}`)
      if (pointers === undefined || after[field] === before[field]) continue
      for (const { target } of pointers) {
        for (const value of [before[field], after[field]]) {
          const row = typeof value === 'string' && value !== NULL_REF ? this.tables.get(target)!.get(value) : undefined
          if (row !== undefined) row.modified = this.generation
        }
      }
    }
  }
}
