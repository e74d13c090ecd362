// serializeError: every thrown value becomes plain JSON with a code; causes and AggregateError sub-errors are kept.
import assert from 'node:assert/strict'
import { test } from 'node:test'
import { LifeboatError, serializeError } from '../../source/util/errors.ts'

test('a LifeboatError keeps its code, data and cause', () => {
  const error = new LifeboatError('REMOTE_FULL', 'The remote is full.', { cause: Object.assign(new Error('no space'), { code: 'ENOSPC' }), data: { free: 0 } })
  assert.deepEqual(serializeError(error), { code: 'REMOTE_FULL', message: 'The remote is full.', name: 'LifeboatError', data: { free: 0 },
    cause: { code: 'ENOSPC', message: 'no space', name: 'Error' } })
  assert.deepEqual(JSON.parse(JSON.stringify(error)), serializeError(error))
})

test('an AggregateError keeps its sub-errors, nested ones too', () => {
  const inner = new AggregateError([new LifeboatError('VHD_TRUNCATED', 'cut')], 'one target')
  const outer = new AggregateError([new LifeboatError('REMOTE_FULL', 'full'), inner, 'a string'], 'all targets have failed')
  const serialized = serializeError(outer)
  assert.equal(serialized.message, 'all targets have failed')
  assert.deepEqual(serialized.errors?.map(error => error.code), ['REMOTE_FULL', 'UNKNOWN', 'UNKNOWN'])
  assert.deepEqual(serialized.errors?.[1]?.errors?.map(error => error.code), ['VHD_TRUNCATED'])
  assert.equal(serialized.errors?.[2]?.message, 'a string')
  assert.equal(serializeError(new Error('plain')).errors, undefined)
})

test('anything thrown that is not an Error is UNKNOWN with its text', () => {
  assert.deepEqual(serializeError('boom'), { code: 'UNKNOWN', message: 'boom' })
  assert.deepEqual(serializeError(undefined), { code: 'UNKNOWN', message: 'undefined' })
})
