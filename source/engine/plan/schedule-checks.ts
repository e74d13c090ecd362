// What a plan says of a schedule: when it fires next, and whether it never fires, is disabled, or falls in
// a DST gap of its timezone in the coming year (cron fires at the jump then, not at the time written).
import { fireTimes, nextFireTime } from '../../protocol/cron.ts'
import type { PlanProblem } from '../../protocol/plan.ts'
import type { Schedule } from '../jobs/index.ts'

const YEAR_MS = 366 * 86_400_000

export function scheduleProblems(schedule: Schedule, now: number): { nextRun: number | undefined; problems: PlanProblem[] } {
  const problems: PlanProblem[] = []
  const subject = schedule.name
  if (!schedule.enabled) {
    problems.push({ code: 'SCHEDULE_DISABLED', severity: 'warning', message: `The schedule "${schedule.name}" is disabled: it never fires by itself.`, remedy: "Run it by hand ('npx lifeboat job run'), or enable it.", subject })
  }
  let nextRun: number | undefined
  try {
    nextRun = nextFireTime(schedule, now)
  } catch (error) {
    const never = /never fire/.test((error as Error).message)
    problems.push({ code: never ? 'SCHEDULE_NEVER_FIRES' : 'SCHEDULE_INVALID', severity: 'error', message: (error as Error).message, remedy: never ? 'Fix its day of the month and month (February has no 30th or 31st).' : 'Fix the cron expression of the schedule.', subject })
    return { nextRun: undefined, problems }
  }
  if (nextRun === undefined) {
    problems.push({ code: 'SCHEDULE_NEVER_FIRES', severity: 'error', message: `The schedule "${schedule.name}" (${schedule.cron}) matches no date: it would never fire.`, remedy: 'Fix its day of the month and month (February has no 30th or 31st).', subject })
    return { nextRun, problems }
  }
  if (nextRun - now > YEAR_MS) {
    problems.push({ code: 'SCHEDULE_RARE', severity: 'warning', message: `The schedule "${schedule.name}" (${schedule.cron}) fires next on ${new Date(nextRun).toISOString().slice(0, 10)}, more than a year away.`, remedy: 'Check its day of the month (a 29th of February fires only in leap years).', subject })
  }
  const gap = fireTimes(schedule, now, now + YEAR_MS).find(time => time.inGap)
  if (gap !== undefined) {
    const pad = (n: number) => String(n).padStart(2, '0')
    const asked = `${gap.wall.year}-${pad(gap.wall.month)}-${pad(gap.wall.day)} ${pad(gap.wall.hour)}:${pad(gap.wall.minute)}`
    const actual = new Intl.DateTimeFormat('en-GB', { timeZone: schedule.timezone, hour: '2-digit', minute: '2-digit', hourCycle: 'h23' }).format(new Date(gap.instant))
    problems.push({
      code: 'SCHEDULE_DST_GAP', severity: 'warning',
      message: `${asked} does not exist in ${schedule.timezone} (the clocks go forward): the schedule "${schedule.name}" fires at ${actual} that day instead.`,
      remedy: 'Move the schedule out of the hour the clocks skip (between 01:00 and 04:00 in most zones), or use UTC.',
      subject,
    })
  }
  return { nextRun, problems }
}
