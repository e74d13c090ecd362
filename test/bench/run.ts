// `npm run bench`: every figure of issue #18 (performance) measured in one run, as one table — the figure, the
// issue's value before this work, the value now, the goal, whether it holds, and the baseline it is a ratio to,
// both sides as measured in this run. Each benchmark prints its own detail first.
// Run: npm run bench [-- --only vhd-write,merge] [--gib 1] [--size-gib 1] [--list] [--profile]
import { parseArgs } from 'node:util'
import { BACKUP_FIGURES, backupFigures } from './backup.ts'
import { cleanFigures } from './clean.ts'
import { FORMAT_FIGURES, formatFigures } from './formats.ts'
import { printFigures, type Figure } from './measure.ts'

const ALL = [...FORMAT_FIGURES, 'clean', ...BACKUP_FIGURES]
const { values } = parseArgs({ options: { only: { type: 'string' }, gib: { type: 'string', default: '1' }, 'size-gib': { type: 'string', default: '1' }, list: { type: 'boolean' }, profile: { type: 'boolean' } } })
if (values.profile === true) process.env.BENCH_PROFILE = '1'
if (values.list === true) {
  console.log(ALL.join('\n'))
  process.exit(0)
}
const only = values.only === undefined ? undefined : new Set(values.only.split(','))
const unknown = [...(only ?? [])].filter(id => !ALL.includes(id))
if (unknown.length > 0) {
  console.error(`unknown figure ${unknown.join(', ')}; the figures are: ${ALL.join(', ')}`)
  process.exit(2)
}
const wanted = (ids: readonly string[]) => only === undefined || ids.some(id => only.has(id))
const started = performance.now()
const figures: Figure[] = []
if (wanted(FORMAT_FIGURES)) figures.push(...(await formatFigures({ sizeGiB: Number(values['size-gib']), only })))
if (wanted(['clean'])) figures.push(...(await cleanFigures()))
if (wanted(BACKUP_FIGURES)) figures.push(...(await backupFigures({ gib: Number(values.gib), only })))
console.log(`\nissue #18's figures, measured in ${((performance.now() - started) / 60_000).toFixed(1)} min on ${process.platform}/${process.arch}, node ${process.version} (ratios of one run: absolute times on this machine are noise)`)
printFigures(figures)
