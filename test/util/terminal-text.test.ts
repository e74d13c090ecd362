import { test } from 'node:test'
import assert from 'node:assert/strict'
import { terminalSafe, terminalSafeLine } from '../../source/util/terminal-text.ts'

test('escape sequences, bells and C1 controls are replaced, printable text is kept', () => {
  assert.equal(terminalSafe('web\u001b]2;pwned\u0007-01'), 'web\ufffd]2;pwned\ufffd-01')
  assert.equal(terminalSafe('a\u009b31mb\u007f'), 'a\ufffd31mb\ufffd')
  assert.equal(terminalSafe('é ✔ 日本\tx\ny'), 'é ✔ 日本\tx\ny')
  assert.equal(terminalSafe('over\rwrite'), 'over\ufffdwrite')
})

test('one-line form flattens tabs and newlines too', () => {
  assert.equal(terminalSafeLine('a\tb\nc\u001b[2J'), 'a b c\ufffd[2J')
})

test('a NUL is shown as \\0, as XO writes the one between an SMB share and its sub-folder', () => {
  assert.equal(terminalSafe('smb://u:***@D\\\\nas\\backups\0site-a\\vm'), 'smb://u:***@D\\\\nas\\backups\\0site-a\\vm')
  assert.equal(terminalSafeLine('a\0b\u0001'), 'a\\0b\ufffd')
})
