import { test } from 'node:test'
import assert from 'node:assert/strict'
import { eventLine, formatBytes, formatElapsed, LiveRunLines, progressLine, table, TaskNames, tree } from '../../source/cli/output.ts'
import { foldRun, HEALTH_CHECK_TASK, TaskLog } from '../../source/tasks/index.ts'

test('tables align every column on its widest cell', () => {
  const text = table(['NAME', 'SIZE'], [['a', '1 KiB'], ['longer name', '2 MiB']])
  const lines = text.trimEnd().split('\n')
  assert.equal(lines.length, 3)
  const column = lines[0]!.indexOf('SIZE')
  for (const line of lines.slice(1)) assert.equal(line.search(/\d/), column)
  assert.equal(table(['A'], []), '')
})

test('sizes and durations read like a person writes them', () => {
  assert.equal(formatBytes(0), '0 B')
  assert.equal(formatBytes(1536), '1.5 KiB')
  assert.equal(formatBytes(64 * 1024 * 1024), '64 MiB')
  assert.equal(formatBytes(undefined), '-')
  assert.equal(formatElapsed(59_400), '59s')
  assert.equal(formatElapsed(61_000), '1m01s')
  assert.equal(formatElapsed(3_725_000), '1h02m')
})

test('a run tree shows each task once, nested, with status, size and error', () => {
  let t = 1000
  const run = TaskLog.start({ name: 'backup run', data: { jobName: 'nightly' } }, { now: () => (t += 1000) })
  const vm = run.child('backup VM', { type: 'VM', id: 'vm-1', name_label: 'web' })
  const transfer = vm.child('transfer')
  transfer.end({ size: 3 * 1024 * 1024 })
  vm.warning('the reference snapshot was removed by hand: full backup')
  vm.end()
  const other = run.child('backup VM', { type: 'VM', id: 'vm-2', name_label: 'db' })
  other.fail(Object.assign(new Error('SR full'), { code: 'SR_FULL' }))
  run.end()
  const text = tree(foldRun(run.log.events)!)
  assert.equal(
    text,
    [
      'backup run (nightly)  [failure]  8s',
      '├─ backup VM (web, vm-1)  [success]  4s',
      '│    ! the reference snapshot was removed by hand: full backup',
      '│  └─ transfer  [success]  3.0 MiB, 1s',
      '└─ backup VM (db, vm-2)  [failure]  1s, SR_FULL: SR full',
      '',
    ].join('\n'),
  )
  const names = new TaskNames()
  const lines = run.log.events.map(event => eventLine(event, names))
  assert.match(lines[0]!, /^\d\d:\d\d:\d\d start    backup run \(nightly\)$/)
  assert.match(lines.at(-1)!, /failure|success/)
})

test('strings from XAPI, remotes and jobs reach the terminal without their control characters', () => {
  const evil = 'web\u001b]0;pwned\u0007\u001b[2J\rname\nnext'
  const cells = table(['NAME', 'SIZE'], [[evil, '1 KiB']])
  assert.doesNotMatch(cells, /[\u0000-\u0009\u000b-\u001f\u007f-\u009f]/)
  assert.equal(cells.trimEnd().split('\n').length, 2, 'a newline in a cell does not add a row')
  const run = TaskLog.start({ name: 'backup run', data: { jobName: evil } })
  const vm = run.child('backup VM', { type: 'VM', id: 'vm-1', name_label: evil })
  vm.warning(evil)
  vm.fail(Object.assign(new Error(evil), { code: 'SR_FULL' }))
  run.end()
  const text = tree(foldRun(run.log.events)!)
  assert.doesNotMatch(text, /[\u0000-\u0009\u000b-\u001f\u007f-\u009f]/)
  assert.equal(text.trimEnd().split('\n').length, 3, 'one line per task and per warning')
  const names = new TaskNames()
  for (const event of run.log.events) {
    const line = eventLine(event, names)
    assert.doesNotMatch(line, /[\u0000-\u001f\u007f-\u009f]/, JSON.stringify(line))
  }
})

test('logs --follow names the VM on every line of its tasks, and shows transfer progress', () => {
  const run = TaskLog.start({ name: 'backup run', data: { jobName: 'nightly' } })
  const vm = run.child('backup VM', { type: 'VM', id: 'vm-1', name_label: 'web' })
  const exportTask = vm.child('export', { type: 'remote', id: 'site-a' })
  const transfer = exportTask.child('transfer')
  transfer.set('progress', 40)
  transfer.warning('slow remote')
  transfer.end({ size: 1024 })
  exportTask.end()
  vm.end()
  run.end()
  const names = new TaskNames()
  const lines = run.log.events.map(event => eventLine(event, names).slice(9))
  assert.deepEqual(lines, [
    'start    backup run (nightly)',
    'start    backup VM (web, vm-1)',
    'start    [web] export (site-a)',
    'start    [web] transfer',
    'progress [web] transfer: 40%',
    'warning  [web] transfer: slow remote',
    'success  [web] transfer 1.0 KiB',
    'success  [web] export (site-a)',
    'success  backup VM (web, vm-1)',
    'success  backup run (nightly)',
  ])
  // Names known from the tree fetched before the live events.
  const later = new TaskNames()
  later.learnTree(foldRun(run.log.events)!)
  assert.equal(later.label(transfer.id), '[web] transfer')

  const holder = { runId: 'r', vm: 'vm-1', vmName: 'web', disk: 'xvda', phase: 'export', since: 0, done: 3 * 1024 ** 3, total: 4 * 1024 ** 3, bytesPerSecond: 50 * 1024 ** 2 }
  assert.match(progressLine(holder, Date.now()), /^\d\d:\d\d:\d\d progress \[web\] xvda export: 3\.0 GiB of 4\.0 GiB \(75%\), 50 MiB\/s$/)
  const { total, ...unknownSize } = holder
  assert.match(progressLine({ ...unknownSize, bytesPerSecond: 0 }, Date.now()), /progress \[web\] xvda export: 3\.0 GiB$/, 'no invented % or speed')
})

test('a live end line gives the status of the tree: a VM whose one export failed, and its run, end "failure" as the final tree shows', () => {
  const run = TaskLog.start({ name: 'backup run', data: { jobName: 'nightly' } })
  const vm = run.child('backup VM', { type: 'VM', id: 'vm-1', name_label: 'web' })
  vm.child('export', { type: 'remote', id: 'nas' }).fail(Object.assign(new Error('the NFS server refused the connection'), { code: 'REMOTE_UNAVAILABLE' }))
  vm.child('export', { type: 'remote', id: 'local' }).end()
  vm.end()
  run.end()
  const final = foldRun(run.log.events)!
  assert.equal(final.status, 'failure', 'the final tree: failed')
  const events = run.log.events
  const live = new LiveRunLines()
  const lines = events.map(event => live.line(event)?.slice(9))
  assert.deepEqual(lines.slice(-2), ['failure  backup VM (web, vm-1)', 'failure  backup run (nightly)'], 'the live lines agree with the final tree')

  // Joining mid-run: the tree fetched first holds the failed export; the later end lines still say failure.
  const split = events.findIndex(event => event.type === 'end' && event.id === vm.id)
  const joined = new LiveRunLines()
  joined.learnTree(foldRun(events.slice(0, split))!)
  assert.deepEqual(events.slice(split).map(event => joined.line(event)?.slice(9)), ['failure  backup VM (web, vm-1)', 'failure  backup run (nightly)'])
})

test('a live end line says when the backup exists but its health check did not pass, as the final tree does', () => {
  const run = TaskLog.start({ name: 'backup run', data: { jobName: 'nightly' } })
  const vm = run.child('backup VM', { type: 'VM', id: 'vm-1', name_label: 'web' })
  vm.child('export', { type: 'remote', id: 'local' }).end()
  vm.child(HEALTH_CHECK_TASK).fail(Object.assign(new Error('the VM did not start its guest tools in 600s'), { code: 'HEALTH_CHECK_TIMEOUT' }))
  vm.end()
  const passed = run.child('backup VM', { type: 'VM', id: 'vm-2', name_label: 'db' })
  passed.child(HEALTH_CHECK_TASK).end()
  passed.end()
  run.end()
  const live = new LiveRunLines()
  const ends = run.log.events.map(event => live.line(event)).filter(line => line !== undefined && /backup (VM|run)/.test(line) && !/ start /.test(line))
  assert.deepEqual(ends.map(line => line!.slice(9)), ['success, health check failed backup VM (web, vm-1)', 'success  backup VM (db, vm-2)', 'success, health check failed backup run (nightly)'])
  assert.match(tree(foldRun(run.log.events)!), /backup VM \(web, vm-1\)  \[success, health check failed\]/, 'the tree says the same')
})
