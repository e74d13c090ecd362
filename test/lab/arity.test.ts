// Every method the lab implements takes XAPI's number of parameters (xapi.md §2, XAPI's datamodel), checked through
// the real xen-api client: a lab that wants more or fewer arguments than XAPI hides bugs or invents them.
import assert from 'node:assert/strict'
import { test } from 'node:test'
import { connect, rawCall, useTinyLab, waitFor } from './helpers.ts'

/** XAPI's explicit messages: [fewest, most] parameters after the session (optional ones have defaults in the datamodel). */
const XAPI_MESSAGES: Record<string, [number, number]> = {
  'session.login_with_password': [2, 4], 'session.logout': [0, 0],
  // The client asks for it bare at login and with its session through call(); both are answered.
  'system.listMethods': [0, 1],
  'event.inject': [2, 2], 'event.from': [3, 3],
  'task.create': [2, 2], 'task.destroy': [1, 1], 'task.cancel': [1, 1], 'task.set_status': [2, 2], 'task.set_progress': [2, 2],
  'task.set_result': [2, 2], 'task.set_error_info': [2, 2],
  'VDI.create': [1, 1], 'VDI.destroy': [1, 1], 'VDI.snapshot': [1, 2], 'VDI.clone': [1, 2], 'VDI.resize': [2, 2], 'VDI.resize_online': [2, 2],
  'VDI.enable_cbt': [1, 1], 'VDI.disable_cbt': [1, 1], 'VDI.data_destroy': [1, 1], 'VDI.list_changed_blocks': [2, 2], 'VDI.get_nbd_info': [1, 1],
  'SR.scan': [1, 1],
  'VBD.create': [1, 1], 'VBD.destroy': [1, 1], 'VBD.plug': [1, 1], 'VBD.unplug': [1, 1], 'VBD.unplug_force': [1, 1],
  'VIF.create': [1, 1], 'VIF.destroy': [1, 1], 'VIF.plug': [1, 1], 'VIF.unplug': [1, 1],
  'VM.snapshot': [2, 3], 'VM.checkpoint': [2, 2], 'VM.snapshot_with_quiesce': [2, 2], 'VM.clone': [2, 2], 'VM.copy': [3, 3],
  'VM.destroy': [1, 1], 'VM.start': [3, 3], 'VM.clean_shutdown': [1, 1], 'VM.hard_shutdown': [1, 1], 'VM.create': [1, 1],
  'VM.set_memory_limits': [5, 5], 'VM.update_allowed_operations': [1, 1], 'VM.get_allowed_VBD_devices': [1, 1],
  'VM.get_allowed_VIF_devices': [1, 1], 'VM.suspend': [1, 1], 'VM.resume': [3, 3],
}

/** XAPI's generated messages of every class: the getters, and the setters of its read-write fields, sets and maps. */
const XAPI_GENERATED: Array<[RegExp, number]> = [
  [/^[A-Za-z_]+\.get_(all|all_records)$/, 0],
  [/^[A-Za-z_]+\.(get_record|get_by_uuid|get_by_name_label|get_\w+)$/, 1],
  [/^[A-Za-z_]+\.(set_\w+|add_(?!to_)\w+|remove_(?!from_)\w+|remove_from_\w+)$/, 2],
  [/^[A-Za-z_]+\.add_to_\w+$/, 3],
]

function xapiArity(method: string): [number, number] | undefined {
  const explicit = XAPI_MESSAGES[method]
  if (explicit !== undefined) return explicit
  const generated = XAPI_GENERATED.find(([pattern]) => pattern.test(method))
  return generated === undefined ? undefined : [generated[1], generated[1]]
}

/** Called without a session: login and introspection. */
const SESSIONLESS = new Set(['session.login_with_password', 'system.listMethods'])

const tiny = useTinyLab()

test('every method the lab lists takes exactly XAPI\'s parameters', async () => {
  const { url, username, password } = tiny.env.pool
  const methods = (await tiny.xapi.call('system.listMethods') as string[]).filter(name => !name.startsWith('Async.'))
  // The client refuses session.* calls and adds the session itself: those few go as raw JSON-RPC, each with a session of its own.
  const raw = async (method: string, args: unknown[]) => {
    const session = SESSIONLESS.has(method) ? [] : [(await rawCall(url, 'session.login_with_password', [username, password])).body.result]
    return (await rawCall(url, method, [...session, ...args])).body.error?.message === 'MESSAGE_PARAMETER_COUNT_MISMATCH'
  }
  const countMismatch = async (method: string, count: number): Promise<boolean> => {
    // Null refs: the handler (if the count is accepted) refuses them, so nothing changes in the lab.
    const args = Array.from({ length: count }, () => 'OpaqueRef:NULL')
    if (method.startsWith('session.') || SESSIONLESS.has(method)) return raw(method, args)
    return tiny.xapi.call(method, ...args).then(() => false, (error: any) => error.code === 'MESSAGE_PARAMETER_COUNT_MISMATCH')
  }
  const mismatches: string[] = []
  for (const method of methods) {
    const arity = xapiArity(method)
    if (arity === undefined) {
      mismatches.push(`${method}: not in this test's table of XAPI messages (add it with XAPI's parameter count)`)
      continue
    }
    const [fewest, most] = arity
    for (let count = fewest; count <= most; count++) {
      if (await countMismatch(method, count)) mismatches.push(`${method}: refuses ${count} parameters, XAPI takes them`)
    }
    if (!(await countMismatch(method, most + 1))) mismatches.push(`${method}: accepts ${most + 1} parameters, XAPI takes at most ${most}`)
    if (fewest > 0 && !(await countMismatch(method, fewest - 1))) mismatches.push(`${method}: accepts ${fewest - 1} parameters, XAPI needs ${fewest}`)
  }
  assert.deepEqual(mismatches, [])
  assert.ok(methods.length > 100, `the registry was listed (${methods.length} methods)`)
})

test('the real client\'s disconnect releases its session', async () => {
  const sessions = () => tiny.env.pool.control.state().sessions as number
  const client = await connect(tiny.env.pool)
  const before = sessions()
  await client.disconnect()
  await waitFor(() => sessions() === before - 1, `the session released (${sessions()} open, ${before - 1} expected)`)
})
