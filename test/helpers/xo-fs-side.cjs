// Xen Orchestra's side of the interop tests: @xen-orchestra/fs's own handler on a folder, from the scratch
// install (xo-npm.ts, whose xoFs runs this). Input on stdin: one JSON { scratch, root, key, ops }; output: one
// JSON line, a result per op. Never imported by the project.
'use strict'
const { createRequire } = require('node:module')
const { join } = require('node:path')
const { Readable } = require('node:stream')
const { readFileSync, writeFileSync } = require('node:fs')

const { scratch, root, key, ops } = JSON.parse(readFileSync(0, 'utf8'))
const scratchRequire = createRequire(join(scratch, 'package.json'))
const { getHandler } = scratchRequire('@xen-orchestra/fs')
// Not in the package's exports: required by path, to make an aes-256-gcm remote as XO before 5.103 did.
const { _getEncryptor } = scratchRequire(join(scratch, 'node_modules/@xen-orchestra/fs/dist/_encryptor.js'))

async function collect(stream) {
  const chunks = []
  for await (const chunk of stream) chunks.push(chunk)
  return Buffer.concat(chunks)
}

async function main() {
  // xo-remote-parser 0.5.0 (the override) ignores URL options: the key goes in the remote object itself.
  const handler = getHandler({ url: `file://${root}`, ...(key !== undefined && { encryptionKey: key }) })
  const results = []
  for (const op of ops) {
    try {
      switch (op.op) {
        case 'makeAesRemote': {
          const encryptor = _getEncryptor('aes-256-gcm', key)
          writeFileSync(join(root, 'encryption.json'), JSON.stringify({ algorithm: 'aes-256-gcm' }))
          writeFileSync(join(root, 'metadata.json'), encryptor.encryptData(Buffer.from('{"random":"made-by-xo-encryptor"}')))
          results.push({ ok: true })
          break
        }
        case 'sync':
          await handler.sync()
          results.push({ ok: true, encrypted: handler.isEncrypted, algorithm: handler.encryptionAlgorithm })
          break
        case 'writeFile':
          await handler.outputFile(op.path, Buffer.from(op.data, 'base64'))
          results.push({ ok: true })
          break
        case 'writeStream': {
          const data = Buffer.from(op.data, 'base64')
          const chunks = []
          for (let i = 0; i < data.length; i += op.chunk) chunks.push(data.subarray(i, i + op.chunk))
          await handler.outputStream(op.path, Readable.from(chunks), { checksum: false })
          results.push({ ok: true })
          break
        }
        case 'readFile':
          results.push({ ok: true, data: (await handler.readFile(op.path)).toString('base64') })
          break
        case 'readStream':
          results.push({ ok: true, data: (await collect(await handler.createReadStream(op.path))).toString('base64') })
          break
        default:
          throw new Error(`unknown op ${op.op}`)
      }
    } catch (error) {
      results.push({ ok: false, code: error?.code, message: String(error?.message) })
    }
  }
  process.stdout.write(JSON.stringify(results) + '\n')
}

main().catch(error => {
  process.stderr.write(String(error?.stack ?? error))
  process.exit(1)
})
