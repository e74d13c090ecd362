import { test } from 'node:test'
import assert from 'node:assert/strict'
import { eventLine, formatBytes, formatElapsed, table, tree } from '../../source/cli/output.ts'
import { foldRun, TaskLog } from '../../source/tasks/index.ts'

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
  const names = new Map<string, string>()
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
  const names = new Map<string, string>()
  for (const event of run.log.events) {
    const line = eventLine(event, names)
    assert.doesNotMatch(line, /[\u0000-\u001f\u007f-\u009f]/, JSON.stringify(line))
  }
})
