// The class-independent part of the API: generic accessors generated from the schema, sessions, introspection,
// events (event.inject / event.from with XAPI's tokens) and task messages.
import { ApiError } from './errors.ts'
import { SCHEMA, cloneValue } from './schema.ts'
import { xapiDate, type Toolstack } from './toolstack.ts'

const TOKEN_PATTERN = /^(\d+),(\d+)$/

function eventToken(generation: number): string {
  return `${String(generation).padStart(20, '0')},${'0'.padStart(20, '0')}`
}

export function defineCoreMethods(xapi: Toolstack): void {
  const { db } = xapi
  for (const cls of Object.keys(SCHEMA)) defineAccessors(xapi, cls)

  xapi.define('session.login_with_password', [2, 3, 4], (_context, user, password) => xapi.login(user, password), { session: false })
  xapi.define('session.logout', 0, context => void xapi.sessions.delete(context.session))
  xapi.define('system.listMethods', [0, 1], () => xapi.listMethods(), { session: false })

  xapi.define('event.inject', 2, (_context, cls, ref) => {
    if (typeof cls !== 'string' || SCHEMA[cls] === undefined || typeof ref !== 'string' || !db.has(cls, ref)) {
      throw new ApiError('HANDLE_INVALID', [String(cls), String(ref)])
    }
    db.touch(cls, ref)
    return eventToken(db.generation)
  })
  xapi.define('event.from', 3, async (_context, classes, token, timeout) => {
    const match = token === '' ? ['', '0'] : typeof token === 'string' ? TOKEN_PATTERN.exec(token) : null
    if (match === null) throw new ApiError('EVENT_FROM_TOKEN_PARSE_FAILURE', [String(token)])
    const since = Number(match[1])
    const wanted = Array.isArray(classes) && !classes.includes('*') ? new Set(classes.map(cls => String(cls).split('/')[0]!.toLowerCase())) : undefined
    const deadline = Date.now() + Math.max(0, Number(timeout)) * 1000
    while (true) {
      const events = db.eventsSince(since, wanted)
      const remaining = deadline - Date.now()
      if (events.length > 0 || remaining <= 0 || db.closed) return { events, valid_ref_counts: db.validRefCounts(), token: eventToken(db.generation) }
      await db.waitForChange(db.generation, remaining)
      // Let the rest of a multi-object change land in the same reply, as XAPI's commit batching does.
      await new Promise(resolve => setTimeout(resolve, 20))
    }
  })

  xapi.define('task.create', 2, (_context, label, description) => xapi.createTask(String(label), String(description)))
  xapi.define('task.destroy', 1, (_context, task) => db.delete('task', xapi.ref('task', task)))
  xapi.define('task.cancel', 1, (_context, task) => xapi.cancelTask(xapi.ref('task', task)), { asyncable: true })
  xapi.define('task.set_status', 2, (_context, task, status) => {
    const ref = xapi.ref('task', task)
    const finished = status === 'success' || status === 'failure' || status === 'cancelled'
    db.update('task', ref, finished ? { status, finished: xapiDate(), progress: 1 } : { status })
  })
  xapi.define('task.set_progress', 2, (_context, task, value) => void db.update('task', xapi.ref('task', task), { progress: Number(value) }))
  xapi.define('task.set_result', 2, (_context, task, value) => void db.update('task', xapi.ref('task', task), { result: String(value) }))
  xapi.define('task.set_error_info', 2, (_context, task, value) => void db.update('task', xapi.ref('task', task), { error_info: value }))
}

// Getters are synchronous in XAPI; everything that changes state also exists as Async.*.
const asyncable = { asyncable: true }

function defineAccessors(xapi: Toolstack, cls: string): void {
  const { db } = xapi
  const schema = SCHEMA[cls]!
  const record = (ref: unknown) => db.get(cls, xapi.ref(cls, ref))
  xapi.define(`${cls}.get_record`, 1, (_context, ref) => record(ref))
  xapi.define(`${cls}.get_all`, 0, () => db.all(cls))
  xapi.define(`${cls}.get_all_records`, 0, () => Object.fromEntries(db.all(cls).map(ref => [ref, db.get(cls, ref)])))
  xapi.define(`${cls}.get_by_uuid`, 1, (_context, uuid) => db.byUuid(cls, String(uuid)))
  if ('name_label' in schema.fields) {
    xapi.define(`${cls}.get_by_name_label`, 1, (_context, label) => db.find(cls, row => row.name_label === label))
  }
  for (const field of Object.keys(schema.fields)) {
    xapi.define(`${cls}.get_${field}`, 1, (_context, ref) => record(ref)[field])
  }
  for (const field of schema.writable) {
    const initial = schema.fields[field]
    xapi.define(`${cls}.set_${field}`, 2, (_context, ref, value) => void db.update(cls, xapi.ref(cls, ref), { [field]: coerce(initial, value) }), asyncable)
    if (Array.isArray(initial)) {
      xapi.define(`${cls}.add_${field}`, 2, (_context, ref, value) => {
        const current = db.row(cls, xapi.ref(cls, ref))[field] as unknown[]
        if (!current.includes(value)) db.update(cls, ref as string, { [field]: [...current, value] })
      }, asyncable)
      xapi.define(`${cls}.remove_${field}`, 2, (_context, ref, value) => {
        const current = db.row(cls, xapi.ref(cls, ref))[field] as unknown[]
        if (current.includes(value)) db.update(cls, ref as string, { [field]: current.filter(item => item !== value) })
      }, asyncable)
    } else if (typeof initial === 'object' && initial !== null) {
      xapi.define(`${cls}.add_to_${field}`, 3, (_context, ref, key, value) => {
        const current = db.row(cls, xapi.ref(cls, ref))[field] as Record<string, unknown>
        if (Object.hasOwn(current, String(key))) throw new ApiError('MAP_DUPLICATE_KEY', [cls, field, db.row(cls, ref as string).uuid, key])
        db.update(cls, ref as string, { [field]: { ...current, [String(key)]: String(value) } })
      }, asyncable)
      xapi.define(`${cls}.remove_from_${field}`, 2, (_context, ref, key) => {
        const current = cloneValue(db.row(cls, xapi.ref(cls, ref))[field] as Record<string, unknown>)
        if (!Object.hasOwn(current, String(key))) return
        delete current[String(key)]
        db.update(cls, ref as string, { [field]: current })
      }, asyncable)
    }
  }
}

/** XML-RPC clients send int64 as strings; fields keep the type of their default. */
function coerce(initial: unknown, value: unknown): unknown {
  if (typeof initial === 'number') {
    const number = Number(value)
    if (!Number.isFinite(number)) throw new ApiError('FIELD_TYPE_ERROR', [String(value)])
    return number
  }
  if (typeof initial === 'boolean') return value === true || value === 'true'
  if (typeof initial === 'string') return String(value)
  return value
}
