// Mutated, truncated and re-sized XVAs (plain and gzip) through the XVA reader: every input ends in a result or a
// coded error within the harness's bounds, and no chunk it hands out is larger than a chunk can be.
import assert from 'node:assert/strict'
import { createHash } from 'node:crypto'
import { test } from 'node:test'
import { gzipSync } from 'node:zlib'
import fc from 'fast-check'
import { readXva, renderOvaXml } from '../../source/formats/xva/index.ts'
import { renderTarHeader, tarPadding, TAR_END } from '../../source/formats/xva/tar.ts'
import { xxh64Hex } from '../../source/formats/xxhash.ts'
import { assertReached, fuzz } from './harness.ts'

/** A small but complete XVA: tiny chunks (the reader allows any length), a gap, a keep-alive, both checksum kinds. */
async function seedXva(): Promise<Buffer> {
  const parts: Buffer[] = []
  const add = (name: string, data: Buffer) => parts.push(renderTarHeader(name, data.length, 1_700_000_000), data, tarPadding(data.length))
  const ova = renderOvaXml({
    version: { hostname: 'h', xapi_major: 24, xapi_minor: 19, export_vsn: 2 },
    objects: [
      { class: 'VDI', id: 'Ref:1', snapshot: { virtual_size: '400' } },
      { class: 'VDI', id: 'Ref:2', snapshot: { virtual_size: '100' } },
    ],
  })
  add('ova.xml', Buffer.from(ova))
  const chunk = (fill: number, length: number) => Buffer.alloc(length, fill)
  for (const [name, data, kind] of [
    ['Ref:1/00000000', chunk(1, 64), 'xxhash'],
    ['Ref:1/00000002', chunk(2, 64), 'xxhash'],
    ['Ref:1/00000003', chunk(0, 0), 'xxhash'],
    ['Ref:1/00000004', chunk(4, 20), 'checksum'],
    ['Ref:2/00000000', chunk(5, 100), 'checksum'],
  ] as const) {
    add(name, data)
    add(`${name}.${kind}`, Buffer.from(kind === 'xxhash' ? await xxh64Hex(data) : createHash('sha1').update(data).digest('hex')))
  }
  parts.push(TAR_END)
  return Buffer.concat(parts)
}

type Mutation =
  | { kind: 'flip'; at: number; mask: number }
  | { kind: 'truncate'; at: number }
  | { kind: 'insert'; at: number; bytes: Uint8Array }
  | { kind: 'delete'; at: number; length: number }
  | { kind: 'size'; block: number; digits: string } // a header size rewritten, header checksum fixed so it is believed

const mutation: fc.Arbitrary<Mutation> = fc.oneof(
  fc.record({ kind: fc.constant('flip' as const), at: fc.nat(), mask: fc.integer({ min: 1, max: 255 }) }),
  fc.record({ kind: fc.constant('truncate' as const), at: fc.nat() }),
  fc.record({ kind: fc.constant('insert' as const), at: fc.nat(), bytes: fc.uint8Array({ minLength: 1, maxLength: 600 }) }),
  fc.record({ kind: fc.constant('delete' as const), at: fc.nat(), length: fc.integer({ min: 1, max: 600 }) }),
  fc.record({ kind: fc.constant('size' as const), block: fc.nat(), digits: fc.stringMatching(/^[0-7]{1,11}$/) }),
)
const mutations = (most: number) => fc.array(mutation, { minLength: 1, maxLength: most })

function mutate(input: Buffer, list: Mutation[]): Buffer {
  let data = Buffer.from(input)
  for (const m of list) {
    const at = data.length === 0 ? 0 : ('at' in m ? m.at : 0) % data.length
    if (m.kind === 'flip' && data.length > 0) data[at]! ^= m.mask
    else if (m.kind === 'truncate') data = data.subarray(0, at)
    else if (m.kind === 'insert') data = Buffer.concat([data.subarray(0, at), m.bytes, data.subarray(at)])
    else if (m.kind === 'delete') data = Buffer.concat([data.subarray(0, at), data.subarray(at + m.length)])
    else if (m.kind === 'size' && data.length >= 512) {
      const start = (m.block % Math.floor(data.length / 512)) * 512
      data.write(`${m.digits.padStart(11, '0')}\0`, start + 124, 'latin1')
      data.write('        ', start + 148, 'latin1')
      let sum = 0
      for (let i = start; i < start + 512; i++) sum += data[i]!
      data.write(`${sum.toString(8).padStart(6, '0')}\0 `, start + 148, 'latin1')
    }
  }
  return data
}

/** Reads everything, fed in odd-sized pieces so header and data boundaries fall anywhere. */
async function readEverything(input: Buffer): Promise<void> {
  let held = 0
  const pieces = Array.from({ length: Math.ceil(input.length / 777) }, (_, i) => input.subarray(i * 777, (i + 1) * 777))
  for await (const entry of readXva(pieces)) if (entry.type === 'chunk') held = Math.max(held, entry.data.length)
  assert.ok(held <= 16 * 1024 * 1024, `a chunk of ${held} bytes was handed out`)
}

const seed = seedXva()

test('the fuzz seed itself reads cleanly', async () => {
  const entries = []
  for await (const entry of readXva([await seed])) entries.push(entry.type === 'chunk' ? [entry.ref, entry.offset, entry.data.length] : entry.type)
  assert.deepEqual(entries, ['ova.xml', ['Ref:1', 0, 64], ['Ref:1', 128, 64], ['Ref:1', 192, 20], ['Ref:2', 0, 100]])
})

test('fuzz: mutated or truncated XVAs end in a result or a coded error', async () => {
  const xva = await seed
  const outcomes = await fuzz('xva', mutations(4), list => readEverything(mutate(xva, list)), 3000)
  assertReached(outcomes, ['ok', 'XVA_TRUNCATED', 'XVA_BAD_TAR', 'XVA_BAD_CHECKSUM', 'XVA_BAD_OVA_XML'])
})

test('fuzz: gzip XVAs, mutated before or after compression, end in a result or a coded error', async () => {
  const packed = gzipSync(await seed)
  const xva = await seed
  const inputs = fc.tuple(fc.boolean(), mutations(3))
  const outcomes = await fuzz('xva gzip', inputs, ([afterCompression, list]) => readEverything(afterCompression ? mutate(packed, list) : gzipSync(mutate(xva, list))), 1500)
  assertReached(outcomes, ['ok', 'COMPRESSION_CORRUPT', 'XVA_BAD_TAR'])
})
