import { test } from 'node:test'
import assert from 'node:assert/strict'
import fc from 'fast-check'
import { LineSplitter, MAX_LINE_BYTES, requestSchema } from '../../source/protocol/jsonrpc.ts'

function split(chunks: Buffer[]): { lines: string[]; overflows: number } {
  const lines: string[] = []
  let overflows = 0
  const splitter = new LineSplitter(l => lines.push(l), () => overflows++)
  for (const c of chunks) splitter.push(c)
  return { lines, overflows }
}

test('lines come out whole whatever the chunking', () => {
  fc.assert(
    fc.property(fc.array(fc.string({ minLength: 1, maxLength: 30 }).filter(s => !s.includes('\n') && s.trim() !== ''), { maxLength: 20 }), fc.array(fc.integer({ min: 1, max: 17 }), { minLength: 1 }), (messages, cuts) => {
      const all = Buffer.from(messages.map(m => m + '\n').join(''))
      const chunks: Buffer[] = []
      for (let i = 0, k = 0; i < all.length; k++) {
        const n = cuts[k % cuts.length]!
        chunks.push(all.subarray(i, i + n))
        i += n
      }
      assert.deepEqual(split(chunks).lines, messages)
    }),
  )
})

test('an over-long line is refused once and the next line still arrives', () => {
  const big = Buffer.alloc(MAX_LINE_BYTES + 10, 'a')
  const { lines, overflows } = split([big.subarray(0, 1000), big.subarray(1000), Buffer.from('\n{"ok":1}\n')])
  assert.equal(overflows, 1)
  assert.deepEqual(lines, ['{"ok":1}'])
})

test('request envelope: valid and invalid shapes', () => {
  assert.equal(requestSchema.safeParse({ jsonrpc: '2.0', id: 1, method: 'job.list' }).success, true)
  assert.equal(requestSchema.safeParse({ jsonrpc: '2.0', method: 'subscribe', params: {} }).success, true)
  assert.equal(requestSchema.safeParse({ jsonrpc: '1.0', id: 1, method: 'x' }).success, false)
  assert.equal(requestSchema.safeParse({ jsonrpc: '2.0', id: {}, method: 'x' }).success, false)
  assert.equal(requestSchema.safeParse({ jsonrpc: '2.0', id: 1, method: '' }).success, false)
})
