// What every benchmark measures the same way: a plain copy of the same bytes (its time and CPU), the best or
// median of a few runs, a child process's figures, and the figures of issue #18 as one table (goal, baseline,
// holds or not). Run as a script, it is the plain copy: node --import tsx test/bench/measure.ts --copy FROM TO
import { spawn } from 'node:child_process'
import { once } from 'node:events'
import { createReadStream, createWriteStream, readFileSync } from 'node:fs'
import { mkdtemp, rm, stat } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { basename, join } from 'node:path'
import { pipeline } from 'node:stream/promises'
import { fileURLToPath } from 'node:url'
import { describeProfiles } from './profile.ts'

export const MiB = 1024 * 1024
export const GiB = 1024 * MiB

/** A goal of issue #18: the figure must be at least, or at most, `value`. */
export interface Goal {
  atLeast?: number
  atMost?: number
}

export interface Figure {
  /** Short name for --only (e.g. `vhd-write`). */
  id: string
  name: string
  /** The "today" (before this work), as it printed it. */
  today: string
  goal: Goal
  value: number
  /** What the figure is a ratio to, with both sides (e.g. `756 vs 931 MiB/s`). */
  baseline: string
}

export const holds = (figure: Figure): boolean =>
  Number.isFinite(figure.value) && (figure.goal.atLeast === undefined || figure.value >= figure.goal.atLeast) && (figure.goal.atMost === undefined || figure.value <= figure.goal.atMost)

const goalText = (goal: Goal) => [goal.atLeast !== undefined && `≥ ${goal.atLeast}`, goal.atMost !== undefined && `≤ ${goal.atMost}`].filter(Boolean).join(' and ')

/** The table `npm run bench` prints, ending with `N of M goals hold`. */
export function printFigures(figures: Figure[]): void {
  const rows = figures.map(f => [f.name, f.today, Number.isFinite(f.value) ? f.value.toFixed(2) : 'failed', goalText(f.goal), holds(f) ? 'yes' : 'NO', f.baseline])
  const header = ['figure', 'issue', 'now', 'goal', 'holds', 'baseline (this run)']
  const widths = header.map((h, k) => Math.max(h.length, ...rows.map(r => r[k]!.length)))
  const line = (cells: string[]) => cells.map((c, k) => (k === 2 || k === 1 ? c.padStart(widths[k]!) : c.padEnd(widths[k]!))).join('  ').trimEnd()
  console.log(line(header))
  console.log(widths.map(w => '-'.repeat(w)).join('  '))
  for (const row of rows) console.log(line(row))
  console.log(`${figures.filter(holds).length} of ${figures.length} goals hold`)
}

/** Median of a few numbers (the middle one, the lower of the two middles). */
export function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b)
  return sorted[Math.floor((sorted.length - 1) / 2)]!
}

/** CPU seconds (user + system) this process has used so far: its threads and libuv's pool included. */
export function cpuSeconds(): number {
  const { user, system } = process.cpuUsage()
  return (user + system) / 1e6
}

/**
 * This process's peak RSS in MiB: VmHWM, which starts afresh at exec. getrusage's maxrss does not: Linux
 * carries it over from the parent at fork, so a child of a bench that had grown reported the bench's peak.
 */
export function peakRssMiB(): number {
  try {
    const hwm = /^VmHWM:\s+(\d+) kB$/m.exec(readFileSync('/proc/self/status', 'utf8'))
    if (hwm !== null) return Number(hwm[1]) / 1024
  } catch {}
  return process.resourceUsage().maxRSS / 1024
}

/** The kernel's part of cpuSeconds (system time: copies into and out of the page cache and sockets). */
export const systemSeconds = (): number => process.cpuUsage().system / 1e6

export interface ChildFigures {
  seconds: number
  cpuSeconds: number
  /** Of cpuSeconds, the kernel's (when the child measured it). */
  systemSeconds?: number
  maxRssMiB: number
}

/**
 * Runs `script` with `args` in its own process; its last stdout line is its result (JSON). With BENCH_PROFILE=1
 * the process runs under node --cpu-prof and where its time went is printed, stage by stage (profile.ts); with
 * BENCH_PROFILE_KEEP=1 too, the profiles are kept (their folder is printed).
 */
export async function runScript<T>(script: string, args: string[], env: Record<string, string> = {}): Promise<T> {
  const profileDir = process.env.BENCH_PROFILE === '1' ? await mkdtemp(join(tmpdir(), 'lifeboat-bench-profile-')) : undefined
  const result = await new Promise<T>((resolve, reject) => {
    const proc = spawn(process.execPath, ['--import', 'tsx', ...(profileDir === undefined ? [] : ['--cpu-prof', '--cpu-prof-dir', profileDir]), script, ...args], {
      stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, ...env },
    })
    let out = ''
    let err = ''
    proc.stdout.on('data', chunk => (out += chunk))
    proc.stderr.on('data', chunk => (err += chunk))
    proc.on('exit', code => {
      const line = out.trim().split('\n').at(-1) ?? ''
      try {
        if (code !== 0) throw new Error()
        resolve(JSON.parse(line) as T)
      } catch {
        reject(new Error(`${script} ${args.join(' ')} exited ${code}: ${err.slice(-2000)}${out.slice(-2000)}`))
      }
    })
  })
  if (profileDir !== undefined) {
    const what = `${basename(script)} ${args.filter(a => !a.startsWith('{') && !a.startsWith('/')).join(' ')}`.trim()
    console.log(`    where the time goes (${what}): ${await describeProfiles(profileDir)}`)
    if (process.env.BENCH_PROFILE_KEEP === undefined) await rm(profileDir, { recursive: true, force: true })
    else console.log(`    profile kept in ${profileDir}`)
  }
  return result
}

/** A plain copy of `file` (read and written by node's streams, 1 MiB at a time) in its own process: time and CPU. */
export async function plainCopy(file: string, to: string): Promise<ChildFigures & { bytes: number }> {
  await syncDisks()
  const result = await runScript<ChildFigures & { bytes: number }>(fileURLToPath(import.meta.url), ['--copy', file, to])
  await rm(to, { force: true })
  return result
}

function spawnSyncQuiet(command: string): Promise<void> {
  return new Promise(resolve => spawn(command, { stdio: 'ignore' }).on('exit', () => resolve()))
}

/** Flushes dirty pages, so that a measured step does not pay for the previous one's writeback. */
export const syncDisks = () => spawnSyncQuiet('sync')

/** True when the module is the script node was started with (a benchmark run alone, not imported by run.ts). */
export const isMain = (meta: ImportMeta): boolean => process.argv[1] !== undefined && fileURLToPath(meta.url) === process.argv[1]

/**
 * A plain copy of `file` into `count` files at once (read once, each chunk written to all, the next read when
 * every file took it): what writing one backup to `count` folders of this disk costs at the least. Time and CPU.
 */
export async function plainTee(file: string, count: number, dir: string): Promise<ChildFigures & { bytes: number }> {
  await syncDisks()
  const outputs = Array.from({ length: count }, (_, k) => join(dir, `tee-${k}.out`))
  const result = await runScript<ChildFigures & { bytes: number }>(fileURLToPath(import.meta.url), ['--tee', file, ...outputs])
  await Promise.all(outputs.map(path => rm(path, { force: true })))
  return result
}

if (isMain(import.meta) && process.argv[2] === '--tee') {
  const [from, ...to] = process.argv.slice(3)
  const [started, cpu, system] = [performance.now(), cpuSeconds(), systemSeconds()]
  const files = to.map(path => createWriteStream(path, { highWaterMark: 4 * MiB }))
  for await (const chunk of createReadStream(from!, { highWaterMark: MiB })) {
    const full = files.filter(file => !file.write(chunk))
    await Promise.all(full.map(file => once(file, 'drain')))
  }
  await Promise.all(files.map(file => new Promise(resolve => file.end(resolve))))
  const seconds = (performance.now() - started) / 1000
  process.stdout.write(`${JSON.stringify({ seconds, cpuSeconds: cpuSeconds() - cpu, systemSeconds: systemSeconds() - system, maxRssMiB: peakRssMiB(), bytes: (await stat(from!)).size })}\n`)
}

if (isMain(import.meta) && process.argv[2] === '--copy') {
  const [from, to] = [process.argv[3]!, process.argv[4]!]
  const [started, cpu, system] = [performance.now(), cpuSeconds(), systemSeconds()]
  await pipeline(createReadStream(from, { highWaterMark: MiB }), createWriteStream(to))
  const seconds = (performance.now() - started) / 1000
  process.stdout.write(`${JSON.stringify({ seconds, cpuSeconds: cpuSeconds() - cpu, systemSeconds: systemSeconds() - system, maxRssMiB: peakRssMiB(), bytes: (await stat(from)).size })}\n`)
}
