// `lifeboat vhd info|check|raw PATH`: offline inspection of VHD files, XO's VhdDirectories and aliases, and
// their chains; no daemon needed.
import { pipeline } from 'node:stream/promises'
import { VhdChain, VhdDirectory, checkVhdChain, dateFromVhdTimestamp, openVhd, ZERO_UUID, type VhdFooter } from '../formats/vhd/index.ts'
import { describeError, errorCode } from '../util/errors.ts'
import type { CommandSpec } from '../util/args.ts'
import { UsageError, runGroupHelp, runSpec, printJson } from './command.ts'
import { printText } from './output.ts'

const DISK_TYPES: Record<VhdFooter['diskType'], string> = { 2: 'fixed', 3: 'dynamic', 4: 'differencing' }

const JSON_OPTION = { json: { help: 'print one JSON document on stdout (also for a failure: {"ok": false, "error": …})' } }

export const VHD_COMMANDS: Record<string, CommandSpec & { body(file: string, json: boolean): Promise<void> }> = {
  info: { name: 'vhd info', positionals: ['PATH'], summary: 'Prints the footer, header and block table of a VHD file, a VhdDirectory or an alias (*.alias.vhd).', options: JSON_OPTION, body: info },
  check: { name: 'vhd check', positionals: ['PATH'], summary: 'Validates a VHD file, a VhdDirectory or an alias, and its whole parent chain.', options: JSON_OPTION, body: check },
  raw: { name: 'vhd raw', positionals: ['PATH'], summary: "Writes the raw disk of a VHD chain (files, VhdDirectories, aliases) to stdout (> disk.raw).", body: file => raw(file) },
}

export async function main(args: string[]): Promise<void> {
  const [name, ...rest] = args
  const command = VHD_COMMANDS[name ?? '']
  if (command === undefined) return runGroupHelp('vhd', name, Object.values(VHD_COMMANDS))
  await runSpec(command, rest, async (values, [file]) => {
    const json = values.json === true
    try {
      await command.body(file!, json)
    } catch (error) {
      // With --json, a failure is a document too (scripts read stdout); the line on stderr is for people.
      if (json) printJson({ ok: false, error: describeError(error) })
      throw error
    }
  })
}

async function info(path: string, json: boolean): Promise<void> {
  const file = await openVhd(path)
  try {
    const { footer, header } = file
    const directory = file instanceof VhdDirectory ? file : undefined
    const differencing = footer.diskType === 4
    const summary = {
      path,
      format: directory === undefined ? 'file' : 'directory',
      /** The folder an alias points at; null for a file or a folder named directly. */
      dataPath: directory !== undefined && directory.dataPath !== path ? directory.dataPath : null,
      compression: directory?.compression ?? null,
      type: DISK_TYPES[footer.diskType],
      size: footer.currentSize,
      uuid: footer.uuid,
      parent: differencing ? { uuid: header.parentUuid, name: header.parentUnicodeName, timestamp: dateFromVhdTimestamp(header.parentTimestamp).toISOString() } : null,
      blockSize: header.blockSize,
      blocks: file.blockCount,
      allocatedBlocks: file.allocatedBlocks().length,
      tableOffset: footer.diskType === 2 || directory !== undefined ? null : header.tableOffset,
      creator: { application: footer.creatorApplication, version: footer.creatorVersion, hostOs: footer.creatorHostOs },
      timestamp: dateFromVhdTimestamp(footer.timestamp).toISOString(),
    }
    if (json) return printJson(summary)
    const lines = [
      ['File', summary.dataPath === null ? path : `${path} -> ${summary.dataPath}`],
      ['Format', directory === undefined ? 'VHD file' : `VhdDirectory, ${directory.compression === 'none' ? 'uncompressed' : `${directory.compression} per block`}`],
      ['Type', summary.type],
      ['Size', `${summary.size} bytes (${(summary.size / 2 ** 30).toFixed(2)} GiB)`],
      ['UUID', summary.uuid],
      ['Parent', summary.parent === null ? '-' : `${summary.parent.name} (${summary.parent.uuid === ZERO_UUID ? 'no uuid' : summary.parent.uuid})`],
      ['Block size', `${summary.blockSize} bytes`],
      ['Blocks', `${summary.allocatedBlocks} allocated of ${summary.blocks}`],
      ['Creator', `'${summary.creator.application}' version 0x${summary.creator.version.toString(16)}`],
      ['Timestamp', summary.timestamp],
    ]
    printText(lines.map(([k, v]) => `${k!.padEnd(11)} ${v}`).join('\n') + '\n')
  } finally {
    await file.close()
  }
}

async function check(path: string, json: boolean): Promise<void> {
  const { paths } = await checkVhdChain(path)
  if (json) printJson({ ok: true, paths })
  else printText(`OK: ${paths.length === 1 ? 'a valid VHD' : `a valid chain of ${paths.length} VHDs`}\n${paths.map(p => `  ${p}`).join('\n')}\n`)
}

async function raw(path: string): Promise<void> {
  if (process.stdout.isTTY) throw new UsageError('refusing to write a raw disk to a terminal; redirect stdout to a file or a pipe')
  const chain = await VhdChain.open(path)
  try {
    await pipeline(chain.rawStream(), process.stdout, { end: false })
  } catch (error) {
    if (errorCode(error) !== 'EPIPE') throw error // the reader went away (`| head`): not a failure of ours
  } finally {
    await chain.close()
  }
}
