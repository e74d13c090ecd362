// When a schedule fires next (shared by the daemon's scheduler and the clients that show it), in its own timezone, parsed by node-cron. Computed here rather than by
// node-cron's timers so the scheduler can run on a fake clock and DST is handled once and exactly:
// a local time that occurs twice (fall back) fires at its first occurrence only; local times that do not
// exist (spring forward) fire once, at the instant the clock jumps, as cron does.
import cron from 'node-cron'
import { LifeboatError } from '../util/errors.ts'
import { cronProblem } from './job.ts'

interface Wall {
  year: number
  month: number
  day: number
  hour: number
  minute: number
  second: number
}

const formatters = new Map<string, Intl.DateTimeFormat>()

function formatter(timezone: string): Intl.DateTimeFormat {
  let format = formatters.get(timezone)
  if (format === undefined) {
    format = new Intl.DateTimeFormat('en-US', { timeZone: timezone, hourCycle: 'h23', year: 'numeric', month: 'numeric', day: 'numeric', hour: 'numeric', minute: 'numeric', second: 'numeric' })
    formatters.set(timezone, format)
  }
  return format
}

/** The wall-clock time in the zone at an instant. */
export function wallClock(instant: number, timezone: string): Wall {
  const parts: Record<string, number> = {}
  for (const part of formatter(timezone).formatToParts(new Date(instant))) if (part.type !== 'literal') parts[part.type] = Number(part.value)
  return { year: parts.year!, month: parts.month!, day: parts.day!, hour: parts.hour! % 24, minute: parts.minute!, second: parts.second! }
}

const asUtc = (wall: Wall) => Date.UTC(wall.year, wall.month - 1, wall.day, wall.hour, wall.minute, wall.second)

/** The zone's offset from UTC at an instant, in ms. */
function offsetAt(instant: number, timezone: string): number {
  const second = Math.floor(instant / 1000) * 1000
  return asUtc(wallClock(second, timezone)) - second
}

/** The instant a wall-clock time happens: the first one when it happens twice, the jump when never. */
export function instantOf(wall: Wall, timezone: string): number {
  const local = asUtc(wall)
  const before = offsetAt(local - 14 * 3_600_000, timezone)
  const after = offsetAt(local + 14 * 3_600_000, timezone)
  const candidates = [local - before, local - after].filter(t => asUtc(wallClock(t, timezone)) === local)
  if (candidates.length > 0) return Math.min(...candidates)
  // In a gap: the transition lies between the two readings; find the first instant on the new offset.
  let low = local - after
  let high = local - before
  while (high - low > 1000) {
    const middle = Math.floor((low + high) / 2000) * 1000
    if (offsetAt(middle, timezone) === after) high = middle
    else low = middle
  }
  return high
}

export interface CronSchedule {
  cron: string
  timezone: string
}

interface Compiled {
  seconds: number[]
  minutes: number[]
  hours: number[]
  /** node-cron's own day-of-month, month and day-of-week matching, asked for one calendar day. */
  dayMatches(year: number, month: number, day: number): boolean
}

const compiled = new Map<string, Compiled>()

function compile(expression: string): Compiled {
  let entry = compiled.get(expression)
  if (entry !== undefined) return entry
  const problem = cronProblem(expression)
  if (problem !== undefined) throw new LifeboatError('CRON_INVALID', `The cron expression "${expression}" is refused: ${problem}`)
  const fields = cron.parse(expression)
  const parts = expression.trim().split(/\s+/)
  const [dayOfMonth, month, dayOfWeek] = parts.slice(-3)
  const dayTask = cron.createTask(`0 0 0 ${dayOfMonth} ${month} ${dayOfWeek}`, () => {}, { timezone: 'UTC' })
  entry = {
    seconds: [...fields.second].sort((a, b) => a - b),
    minutes: [...fields.minute].sort((a, b) => a - b),
    hours: [...fields.hour].sort((a, b) => a - b),
    dayMatches: (y, m, d) => dayTask.match(new Date(Date.UTC(y, m - 1, d))),
  }
  if (compiled.size > 1000) compiled.clear()
  compiled.set(expression, entry)
  return entry
}

/** The first matching wall-clock time strictly after `from` (wall-clock order), within 100 years (as node-cron). */
function nextWall(c: Compiled, from: Wall): Wall | undefined {
  const startDay = Date.UTC(from.year, from.month - 1, from.day)
  for (let offset = 0; offset < 366 * 100; offset++) {
    const date = new Date(startDay + offset * 86_400_000)
    const year = date.getUTCFullYear()
    const month = date.getUTCMonth() + 1
    const day = date.getUTCDate()
    if (!c.dayMatches(year, month, day)) continue
    const sameDay = offset === 0
    for (const hour of c.hours) {
      if (sameDay && hour < from.hour) continue
      for (const minute of c.minutes) {
        if (sameDay && hour === from.hour && minute < from.minute) continue
        for (const second of c.seconds) {
          if (sameDay && hour === from.hour && minute === from.minute && second <= from.second) continue
          return { year, month, day, hour, minute, second }
        }
      }
    }
  }
  return undefined
}

/** The next instant (ms) strictly after `after` at which the schedule fires, or undefined when it never does. */
export function nextFireTime(schedule: CronSchedule, after: number): number | undefined {
  const c = compile(schedule.cron)
  let wall: Wall | undefined = wallClock(after, schedule.timezone)
  // Wall-clock order and instant order agree except inside a repeated hour, hence the loop.
  for (let attempts = 0; attempts < 10_000; attempts++) {
    wall = nextWall(c, wall)
    if (wall === undefined) return undefined
    const instant = instantOf(wall, schedule.timezone)
    if (instant > after) return instant
  }
  return undefined
}

export interface FireTime {
  instant: number
  /** The wall-clock time the cron asked for; it differs from the instant's own when it falls in a DST gap. */
  wall: Wall
  /** True when that wall-clock time does not exist that day (spring forward): the run fires at the jump. */
  inGap: boolean
}

/** The schedule's fire times after `after` up to `until` (at most `max` of them), each saying whether it falls in a DST gap. */
export function fireTimes(schedule: CronSchedule, after: number, until: number, max = 5000): FireTime[] {
  const c = compile(schedule.cron)
  const times: FireTime[] = []
  let wall: Wall | undefined = wallClock(after, schedule.timezone)
  while (times.length < max) {
    wall = nextWall(c, wall)
    if (wall === undefined) break
    const instant = instantOf(wall, schedule.timezone)
    if (instant > until) break
    if (instant <= after) continue
    const actual = wallClock(instant, schedule.timezone)
    times.push({ instant, wall, inGap: asUtc(actual) !== asUtc(wall) })
  }
  return times
}
