import { test } from 'node:test'
import assert from 'node:assert/strict'
import { join } from 'node:path'
import { readdir, stat, writeFile } from 'node:fs/promises'
import fc from 'fast-check'
import { EventEmitter, once } from 'node:events'
import { TaskLog, foldRun, foldEvents, markInterrupted, RunLogStore, newTaskId, HEALTH_CHECK_TASK, type TaskEvent, type TaskNode } from '../../source/tasks/index.ts'
import { cancelledError, timeoutError } from '../../source/util/abort.ts'
import { LifeboatError } from '../../source/util/errors.ts'
import { tempDir } from '../helpers/tools.ts'

function clock(start = 1_000): () => number {
  let now = start
  return () => (now += 10)
}

test('task ids follow XO: base-36 time padded to 9, a dash, a random part; they sort by creation', () => {
  const a = newTaskId(1753776067468)
  assert.match(a, /^[0-9a-z]{9}-[0-9a-f]+$/)
  assert.equal(a.split('-')[0], (1753776067468).toString(36).padStart(9, '0'))
  assert.ok(newTaskId(1000) < newTaskId(2000), 'a task id made later sorts after one made earlier')
  assert.notEqual(newTaskId(5), newTaskId(5))
})

test('a run emits start/info/warning/property/end events with id, parentId and timestamp; folding gives the tree', () => {
  const events: TaskEvent[] = []
  const run = TaskLog.start({ name: 'backup run', data: { jobId: 'j1', mode: 'delta' } }, { now: clock(), onEvent: e => events.push(e) })
  assert.equal(run.runId, run.id)
  run.info('vms', { vms: ['vm1'] })
  const vm = run.child('backup VM', { type: 'VM', id: 'vm1' })
  assert.equal(vm.runId, run.id)
  const transfer = vm.child('export', { type: 'remote', id: 'r1', isFull: true }).child('transfer')
  transfer.set('progress', 50)
  transfer.set('progress', 100)
  transfer.end({ size: 4096 })
  transfer.parent!.end()
  vm.warning('Backup fell back to a full', { reason: 'base gone' })
  vm.end()
  run.end()

  assert.deepEqual(events.map(e => e.type), ['start', 'info', 'start', 'start', 'start', 'property', 'property', 'end', 'end', 'warning', 'end', 'end'])
  for (const event of events) {
    assert.equal(typeof event.id, 'string')
    assert.equal(typeof event.timestamp, 'number')
  }
  assert.equal(events[2]!.parentId, run.id)
  assert.equal(events[0]!.parentId, undefined)

  const tree = foldRun(events)!
  assert.equal(tree.message, 'backup run')
  assert.deepEqual(tree.data, { jobId: 'j1', mode: 'delta' })
  assert.equal(tree.status, 'success')
  assert.deepEqual(tree.infos, [{ message: 'vms', data: { vms: ['vm1'] }, timestamp: 1020 }])
  const vmNode = tree.tasks![0]!
  assert.equal(vmNode.message, 'backup VM')
  assert.equal(vmNode.warnings![0]!.message, 'Backup fell back to a full')
  const transferNode = vmNode.tasks![0]!.tasks![0]!
  assert.deepEqual(transferNode.result, { size: 4096 })
  assert.deepEqual(transferNode.properties, { progress: 100 })
  assert.equal(transferNode.duration, transferNode.end! - transferNode.start)
  assert.ok(transferNode.duration! > 0, 'the transfer task has a duration above 0')
  // The log keeps every event, so a late subscriber can rebuild the same tree.
  assert.deepEqual(foldRun(run.log.events), tree)
})

const STATUS_TABLE: Array<{ name: string; build: (run: ReturnType<typeof TaskLog.start>) => void; root: TaskNode['status']; vm?: TaskNode['status'] }> = [
  { name: 'all children succeed', build: run => (run.child('backup VM').end(), run.end()), root: 'success' },
  { name: 'a failed child fails the ended parent', build: run => (run.child('backup VM').fail(new Error('boom')), run.end()), root: 'failure', vm: 'failure' },
  {
    name: 'a skip message makes a failure skipped, and the parent skipped',
    build: run => (run.child('backup VM').fail(new LifeboatError('X', 'no VMs match this pattern')), run.end()),
    root: 'skipped',
    vm: 'skipped',
  },
  { name: 'failure beats skipped', build: run => (run.child('a').fail(new Error('unhealthy VDI chain')), run.child('b').fail(new Error('disk broken')), run.end()), root: 'failure' },
  { name: 'the root itself skipped', build: run => run.fail(new Error('no VMs match this pattern')), root: 'skipped' },
  { name: 'cancel', build: run => (run.child('backup VM').fail(cancelledError('asked by admin')), run.fail(cancelledError('asked by admin'))), root: 'cancelled', vm: 'cancelled' },
  { name: 'a cancelled child cancels a successful parent', build: run => (run.child('backup VM').fail(cancelledError()), run.end()), root: 'cancelled' },
  { name: 'unfinished run stays pending', build: run => void run.child('backup VM').end(), root: 'pending', vm: 'success' },
  { name: 'unfinished child of a finished parent stays pending', build: run => (run.child('backup VM'), run.end()), root: 'success', vm: 'pending' },
]
for (const row of STATUS_TABLE) {
  test(`status rules: ${row.name}`, () => {
    const run = TaskLog.start({ name: 'backup run' }, { now: clock() })
    row.build(run)
    const tree = foldRun(run.log.events)!
    assert.equal(tree.status, row.root)
    if (row.vm !== undefined) assert.equal(tree.tasks![0]!.status, row.vm)
  })
}

test("a health check's status is its own: the backup it checks keeps its status, its ancestors show the worst check", () => {
  const run = TaskLog.start({ name: 'backup run' }, { now: clock() })
  const vms = ['a', 'b', 'c'].map(id => run.child('backup VM', { type: 'VM', id }))
  const outcomes: Array<(task: ReturnType<typeof run.child>) => void> = [task => task.end(), task => task.fail(new LifeboatError('HEALTH_CHECK_TIMEOUT', 'no agent')), task => task.fail(cancelledError())]
  vms.forEach((vm, index) => {
    const exportTask = vm.child('export', { type: 'remote', id: 'r' })
    exportTask.child('transfer').end({ size: 10 })
    outcomes[index]!(exportTask.child(HEALTH_CHECK_TASK))
    exportTask.end()
    vm.end()
  })
  run.end()
  const tree = foldRun(run.log.events)!
  assert.equal(tree.status, 'success', 'a failed or cancelled check fails no backup')
  assert.deepEqual(tree.tasks!.map(vm => [vm.status, vm.healthCheck, vm.tasks![0]!.status, vm.tasks![0]!.healthCheck]), [
    ['success', 'success', 'success', 'success'],
    ['success', 'failure', 'success', 'failure'],
    ['success', 'cancelled', 'success', 'cancelled'],
  ])
  assert.equal(tree.healthCheck, 'failure', 'the run shows its worst check')
  const noCheck = TaskLog.start({ name: 'backup run' }, { now: clock() })
  noCheck.child('backup VM').end()
  noCheck.end()
  assert.equal(foldRun(noCheck.log.events)!.healthCheck, undefined, 'a run without checks says nothing of them')
})

test('a health check still going when the daemon stopped is interrupted, on its ancestors too', () => {
  const run = TaskLog.start({ name: 'backup run' }, { now: clock() })
  const vm = run.child('backup VM', { type: 'VM', id: 'a' })
  vm.child('export').child(HEALTH_CHECK_TASK)
  const tree = markInterrupted(foldRun(run.log.events)!, 'the daemon stopped')
  assert.equal(tree.healthCheck, 'interrupted')
  assert.equal(tree.tasks![0]!.healthCheck, 'interrupted')
})

test('errors are serialized with their code; AggregateError keeps its sub-errors', () => {
  const run = TaskLog.start({ name: 'backup run' })
  run.fail(new AggregateError([new LifeboatError('REMOTE_FULL', 'full'), new Error('other')], 'all targets have failed'))
  const tree = foldRun(run.log.events)!
  assert.equal(tree.status, 'failure')
  const result = tree.result as { message: string; errors: Array<{ code: string }> }
  assert.equal(result.message, 'all targets have failed')
  assert.deepEqual(result.errors.map(e => e.code), ['REMOTE_FULL', 'UNKNOWN'])
})

test('task.run ends with the result, fails on error, cancels on abort', async () => {
  const run = TaskLog.start({ name: 'backup run' })
  assert.equal(await run.child('snapshot').run(async () => 'uuid-1'), 'uuid-1')
  await assert.rejects(run.child('export').run(async () => { throw new LifeboatError('REMOTE_FULL', 'full') }), { code: 'REMOTE_FULL' })
  const controller = new AbortController()
  controller.abort()
  await assert.rejects(run.child('transfer').run(async () => { controller.signal.throwIfAborted() }, { signal: controller.signal }))
  run.end()
  const tree = foldRun(run.log.events)!
  assert.deepEqual(tree.tasks!.map(t => [t.message, t.status]), [['snapshot', 'success'], ['export', 'failure'], ['transfer', 'cancelled']])
  assert.equal(tree.status, 'failure')
})

test('a task ended by an abort is cancelled with the coded reason (never a raw ABORT_ERR); an abort by a timeout fails with TIMEOUT', async () => {
  // Node's own AbortError, as streams and once() throw it: code ABORT_ERR, the signal's reason as cause.
  const abortError = async (reason?: unknown) => {
    const controller = new AbortController()
    controller.abort(reason)
    return once(new EventEmitter(), 'never', { signal: controller.signal }).catch((error: unknown) => error)
  }
  const run = TaskLog.start({ name: 'backup run' })
  run.child('export').fail(await abortError(cancelledError()))
  run.child('transfer').fail(await abortError())
  run.child('clean-vm').fail(await abortError(timeoutError('the run', 1000)))
  const controller = new AbortController()
  controller.abort(cancelledError('stopped by SIGTERM'))
  await assert.rejects(run.child('snapshot').run(async () => { throw new Error('socket hang up') }, { signal: controller.signal }))
  run.end()
  const tree = foldRun(run.log.events)!
  assert.deepEqual(tree.tasks!.map(t => [t.message, t.status, (t.result as { code: string }).code]), [
    ['export', 'cancelled', 'CANCELLED'], ['transfer', 'cancelled', 'CANCELLED'], ['clean-vm', 'failure', 'TIMEOUT'], ['snapshot', 'cancelled', 'CANCELLED'],
  ])
  assert.equal((tree.tasks![3]!.result as { message: string }).message, 'stopped by SIGTERM')
  assert.doesNotMatch(JSON.stringify(tree), /ABORT_ERR|The operation was aborted/)
})

test('an interrupted run lasts until its last recorded event, not until it is looked at', () => {
  const run = TaskLog.start({ name: 'backup run' }, { now: clock(1_000) })
  const transfer = run.child('backup VM').child('transfer')
  transfer.set('progress', 10)
  transfer.set('progress', 20)
  const last = run.log.events.at(-1)!.timestamp
  const marked = markInterrupted(foldRun(run.log.events)!, 'the daemon died')
  assert.equal(marked.status, 'interrupted')
  assert.equal(marked.end, last)
  assert.equal(marked.duration, last - marked.start)
  const markedTransfer = marked.tasks![0]!.tasks![0]!
  assert.equal(markedTransfer.end, last)
  assert.equal(markedTransfer.duration, last - markedTransfer.start)
})

test('an ended task refuses more events (a bug, not silently ignored)', () => {
  const run = TaskLog.start({ name: 'backup run' })
  run.end()
  assert.throws(() => run.end(), { code: 'TASK_ENDED' })
  assert.throws(() => run.info('late'), { code: 'TASK_ENDED' })
  assert.throws(() => run.child('x'), { code: 'TASK_ENDED' })
})

test('a subscriber that throws is dropped and does not break the run', () => {
  const seen: string[] = []
  const run = TaskLog.start({ name: 'backup run' }, { onEvent: () => { throw new Error('socket closed') } })
  run.log.subscribe(e => seen.push(e.type))
  run.info('hello')
  run.end()
  assert.deepEqual(seen, ['info', 'end'])
})

test('property: folding any prefix of a run\'s events never throws and keeps pending exactly the unfinished tasks', () => {
  fc.assert(
    fc.property(fc.array(fc.tuple(fc.nat(20), fc.constantFrom('child', 'info', 'set', 'end', 'fail')), { maxLength: 60 }), fc.nat(200), (ops, cut) => {
      const run = TaskLog.start({ name: 'backup run' })
      const open = [run]
      for (const [pick, op] of ops) {
        if (open.length === 0) break
        const task = open[pick % open.length]!
        if (op === 'child') open.push(task.child(`t${pick}`))
        else if (op === 'info') task.info('i')
        else if (op === 'set') task.set('progress', pick)
        else {
          // ending a parent before its children is allowed; the children stay open
          if (op === 'end') task.end()
          else task.fail(new Error('x'))
          open.splice(open.indexOf(task), 1)
        }
      }
      const events = run.log.events.slice(0, cut)
      const trees = foldEvents(events)
      const ended = new Set(events.filter(e => e.type === 'end').map(e => e.id))
      const walk = (node: TaskNode): void => {
        assert.equal(node.status === 'pending', !ended.has(node.id))
        node.tasks?.forEach(walk)
      }
      trees.forEach(walk)
    }),
    { numRuns: 200 },
  )
})

test('run logs persist atomically per runId; unfinished runs are marked interrupted with the reason', async () => {
  const { path, cleanup } = await tempDir()
  try {
    const store = new RunLogStore(join(path, 'runs'))
    const finished = TaskLog.start({ name: 'backup run' })
    finished.child('backup VM').end()
    finished.end()
    const unfinished = TaskLog.start({ name: 'backup run' })
    unfinished.child('backup VM').child('transfer').set('progress', 30)
    await store.save(foldRun(finished.log.events)!)
    await store.save(foldRun(unfinished.log.events)!)
    await writeFile(join(path, 'runs', 'broken.json'), '{ not json')
    assert.deepEqual((await readdir(join(path, 'runs'))).filter(n => n.endsWith('.tmp')), [])
    assert.deepEqual(await store.list(), [finished.id, unfinished.id, 'broken'].sort())

    assert.deepEqual((await store.markInterruptedRuns('the daemon restarted')).map(run => run.id), [unfinished.id])
    const marked = (await store.load(unfinished.id))!
    assert.equal(marked.status, 'interrupted')
    assert.deepEqual(marked.result, { code: 'INTERRUPTED', message: 'the daemon restarted' })
    assert.equal(marked.tasks![0]!.tasks![0]!.status, 'interrupted')
    assert.equal((await store.load(finished.id))!.status, 'success')
    assert.equal(await store.load('nope'), undefined)
    await assert.rejects(store.load('broken'), { code: 'RUN_LOG_CORRUPT' })
    await assert.rejects(store.load('../etc/passwd'), { code: 'RUN_ID_INVALID' })
  } finally {
    await cleanup()
  }
})

test('run logs are 0600 in a 0700 folder whatever the umask lets through', async () => {
  const { path, cleanup } = await tempDir()
  const umask = process.umask(0o022)
  try {
    const store = new RunLogStore(join(path, 'runs'))
    const run = TaskLog.start({ name: 'backup run' })
    run.end()
    await store.save(foldRun(run.log.events)!)
    assert.equal((await stat(join(path, 'runs'))).mode & 0o777, 0o700)
    assert.equal((await stat(join(path, 'runs', `${run.id}.json`))).mode & 0o777, 0o600)
  } finally {
    process.umask(umask)
    await cleanup()
  }
})

test('record keeps a running run on disk: pending while it runs, final when it ends', async () => {
  const { path, cleanup } = await tempDir()
  try {
    const store = new RunLogStore(path)
    const run = TaskLog.start({ name: 'backup run', data: { jobId: 'j' } })
    const recorded = store.record(run)
    const vm = run.child('backup VM')
    await new Promise(resolve => setTimeout(resolve, 20))
    assert.equal((await store.load(run.id))!.status, 'pending')
    vm.end()
    run.end()
    await recorded
    const saved = (await store.load(run.id))!
    assert.equal(saved.status, 'success')
    assert.equal(saved.tasks![0]!.status, 'success')
  } finally {
    await cleanup()
  }
})
