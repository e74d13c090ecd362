import assert from 'node:assert/strict'
import { test } from 'node:test'
import fc from 'fast-check'
import { encodeXmlRpcResponse, encodeXmlRpcValue, parseXmlRpcCall, parseXmlRpcValue } from '../../source/formats/xmlrpc.ts'
import { isLifeboatError } from '../../source/util/errors.ts'

/** What a value reads back as: XAPI's int64 convention turns integers into their decimal strings. */
function expected(value: unknown): unknown {
  if (typeof value === 'number' && Number.isSafeInteger(value)) return String(value === 0 ? 0 : value)
  if (Array.isArray(value)) return value.map(expected)
  if (value instanceof Date || Buffer.isBuffer(value) || value === null) return value
  if (typeof value === 'object') return Object.fromEntries(Object.entries(value as object).map(([k, v]) => [k, expected(v)]))
  return value
}

const leaf = fc.oneof(
  fc.string({ unit: 'grapheme', maxLength: 40 }),
  fc.string({ unit: fc.constantFrom('<', '>', '&', ';', '"', "'", ' ', '\n', '\r', '\t', '\u0001', ']]>', 'a') }),
  fc.integer(),
  fc.maxSafeInteger(),
  fc.double({ noNaN: true, noDefaultInfinity: true }).filter(d => !Number.isSafeInteger(d)),
  fc.boolean(),
  fc.constant(null),
  fc.date({ min: new Date('1970-01-01T00:00:00Z'), max: new Date('2999-12-31T23:59:59Z'), noInvalidDate: true }).map(d => new Date(Math.floor(d.getTime() / 1000) * 1000)),
  fc.uint8Array({ maxLength: 64 }).map(bytes => Buffer.from(bytes)),
)

const nested = fc.letrec<{ value: unknown }>(tie => ({
  value: fc.oneof(
    { depthSize: 'small', withCrossShrink: true },
    leaf,
    fc.array(tie('value'), { maxLength: 5 }),
    fc.dictionary(fc.string({ unit: 'grapheme', maxLength: 12 }), tie('value'), { maxKeys: 5 }),
  ),
})).value

test('XML-RPC values round-trip (property): nested structs, arrays and every leaf type', () => {
  fc.assert(
    fc.property(nested, value => {
      assert.deepStrictEqual(parseXmlRpcValue(encodeXmlRpcValue(value)), expected(value))
    }),
    { numRuns: 500 },
  )
})

test('parsing tolerates whitespace, comments and a prolog between tags, but keeps a string value verbatim', () => {
  fc.assert(
    fc.property(nested, fc.constantFrom(' ', '\n  ', '\t', '<!-- c -->'), (value, gap) => {
      const spaced = encodeXmlRpcValue(value).replace(/>(<(?:\/?(?:struct|array|data|member)|name|value><(?:struct|array)))/g, `>${gap}$1`)
      assert.deepStrictEqual(parseXmlRpcValue(`<?xml version="1.0"?>\n${spaced}\n`), expected(value))
    }),
    { numRuns: 200 },
  )
  assert.equal(parseXmlRpcValue('<value>  two spaces  </value>'), '  two spaces  ')
})

test('XAPI-shaped samples: task results, ints as plain values, typed values', () => {
  const ref = 'OpaqueRef:0b3f9b9c-7bd5-4c12-a61f-3c6b3e7d8a42'
  assert.equal(parseXmlRpcValue(`<value>${ref}</value>`), ref)
  assert.deepEqual(parseXmlRpcValue(`<value><array><data><value>${ref}</value></data></array></value>`), [ref])
  assert.equal(parseXmlRpcValue(''.padEnd(0) + '<value></value>'), '')
  assert.equal(parseXmlRpcValue('<value/>'), '')
  assert.equal(parseXmlRpcValue('<value><string>a &lt;b&gt; &amp; &#233;&#x263A;</string></value>'), 'a <b> & é☺')
  assert.equal(parseXmlRpcValue('<value><i4>-12</i4></value>'), -12)
  assert.equal(parseXmlRpcValue('<value><int>7</int></value>'), 7)
  assert.equal(parseXmlRpcValue('<value><double>0.5</double></value>'), 0.5)
  assert.equal(parseXmlRpcValue('<value><boolean>1</boolean></value>'), true)
  assert.equal(parseXmlRpcValue('<value><nil/></value>'), null)
  assert.deepEqual(parseXmlRpcValue('<value><base64>AAEC</base64></value>'), Buffer.from([0, 1, 2]))
  assert.deepEqual(parseXmlRpcValue('<value><dateTime.iso8601>20230718T13:15:49Z</dateTime.iso8601></value>'), new Date('2023-07-18T13:15:49Z'))
  assert.deepEqual(parseXmlRpcValue('<value><dateTime.iso8601>2023-07-18T13:15:49+02:00</dateTime.iso8601></value>'), new Date('2023-07-18T11:15:49Z'))
  assert.equal(encodeXmlRpcValue(1234), '<value>1234</value>')
  assert.equal(encodeXmlRpcValue('OpaqueRef:NULL'), '<value>OpaqueRef:NULL</value>')
  assert.equal(encodeXmlRpcValue(new Date('1970-01-01T00:00:00Z')), '<value><dateTime.iso8601>19700101T00:00:00Z</dateTime.iso8601></value>')
  assert.equal(
    encodeXmlRpcValue({ Status: 'Success', Value: [ref] }),
    `<value><struct><member><name>Status</name><value>Success</value></member><member><name>Value</name><value><array><data><value>${ref}</value></data></array></value></member></struct></value>`,
  )
  // A struct member named __proto__ stays a member.
  const tricky = parseXmlRpcValue('<value><struct><member><name>__proto__</name><value>x</value></member></struct></value>') as Record<string, unknown>
  assert.equal(Object.getPrototypeOf(tricky), Object.prototype)
  assert.deepEqual(Object.keys(tricky), ['__proto__'])
})

test('XML-RPC calls and responses for an XML-RPC endpoint', () => {
  const call = parseXmlRpcCall(
    '<?xml version="1.0"?><methodCall><methodName>session.login_with_password</methodName><params><param><value>root</value></param><param><value><string>pw</string></value></param></params></methodCall>',
  )
  assert.deepEqual(call, { method: 'session.login_with_password', params: ['root', 'pw'] })
  assert.deepEqual(parseXmlRpcCall('<methodCall><methodName>pool.get_all</methodName></methodCall>'), { method: 'pool.get_all', params: [] })
  const response = encodeXmlRpcResponse({ Status: 'Success', Value: 'OpaqueRef:1' })
  assert.match(response, /^<\?xml version="1.0"\?><methodResponse><params><param><value><struct>/)
})

test('malformed or hostile XML-RPC ends in a coded error', () => {
  const bad = [
    '',
    '<value>',
    '<value>a</valu>',
    '<value><int>1.5</int></value>',
    '<value><boolean>yes</boolean></value>',
    '<value><double>abc</double></value>',
    '<value><dateTime.iso8601>yesterday</dateTime.iso8601></value>',
    '<value><base64>!!</base64></value>',
    '<value>a &nbsp; b</value>',
    '<value>a & b</value>',
    '<value>&#x110000;</value>',
    '<value>x<string>y</string></value>',
    '<value><struct>text</struct></value>',
    '<value><struct><member><name>a</name></member></struct></value>',
    '<value><blob>1</blob></value>',
    '<value>1</value><value>2</value>',
    '<value><![CDATA[open</value>',
  ]
  for (const xml of bad) {
    assert.throws(() => parseXmlRpcValue(xml), (error: unknown) => isLifeboatError(error) && /^XMLRPC_/.test(error.code), xml)
  }
  const deep = '<value><array><data>'.repeat(10_000) + '</data></array></value>'.repeat(10_000)
  assert.throws(() => parseXmlRpcValue(deep), (error: unknown) => isLifeboatError(error, 'XMLRPC_TOO_DEEP'))
  const cycle: Record<string, unknown> = {}
  cycle.self = cycle
  assert.throws(() => encodeXmlRpcValue(cycle), (error: unknown) => isLifeboatError(error, 'XMLRPC_TOO_DEEP'))
  assert.throws(() => encodeXmlRpcValue(Number.NaN), (error: unknown) => isLifeboatError(error, 'XMLRPC_BAD_VALUE'))
  assert.throws(() => encodeXmlRpcValue(() => 1), (error: unknown) => isLifeboatError(error, 'XMLRPC_BAD_VALUE'))
})

test('fuzz: mutated XML-RPC documents parse or fail with a coded error', () => {
  fc.assert(
    fc.property(nested, fc.array(fc.tuple(fc.nat(), fc.constantFrom('<', '>', '/', '&', ';', 'x', '', ' ', '<value>', '</data>')), { maxLength: 6 }), (value, edits) => {
      let xml = encodeXmlRpcValue(value)
      for (const [position, text] of edits) {
        const at = position % (xml.length + 1)
        xml = xml.slice(0, at) + text + xml.slice(at + (text === '' ? 1 : 0))
      }
      try {
        parseXmlRpcValue(xml)
      } catch (error) {
        assert.ok(isLifeboatError(error) && /^XMLRPC_/.test(error.code), String(error))
      }
    }),
    { numRuns: 1000 },
  )
})
