// `lifeboat remote verify R [--vm UUID] [--read-data]`: a verify run, followed live; then each finding with its
// file and reason, and the exit code says whether every backup verified.
import type { TaskNode, VerifyFinding } from '../protocol/methods.ts'
import { terminalSafeLine } from '../util/terminal-text.ts'
import { LifeboatError } from '../util/errors.ts'
import { EXIT_FAILURE, EXIT_OK, errorLine } from './command.ts'
import { formatBytes } from './output.ts'
import { followAndPrint, followRun } from './runs.ts'
import { listOption, type Subcommand } from './index.ts'

export interface VerifyReport {
  verified: number
  failed: number
  bytesRead: number
  /** The backups that failed, each with every finding. */
  failures: Array<{ remote: string; backupId: string; findings: VerifyFinding[] }>
  /** What was checked for structure only (disks without block hashes), once per disk, with the backups that read it. */
  notes: Array<VerifyFinding & { remote: string; backups: number }>
  /** What stopped a VM or a remote from being verified at all (a remote unreachable, a VM with no backup). */
  errors: string[]
}

/** The report a verify run's tree gives: its backups' findings are the warnings of their failed tasks. */
export function verifyReport(root: TaskNode): VerifyReport {
  const result = root.result as { verified?: number; failed?: number; bytesRead?: number } | undefined
  const report: VerifyReport = { verified: result?.verified ?? 0, failed: result?.failed ?? 0, bytesRead: result?.bytesRead ?? 0, failures: [], notes: [], errors: [] }
  const message = (node: TaskNode) => String((node.result as { message?: unknown } | undefined)?.message ?? node.status)
  for (const remote of root.tasks ?? []) {
    const name = String(remote.data?.remote ?? '')
    if (remote.status !== 'success' && (remote.tasks ?? []).length === 0) report.errors.push(`remote "${name}": ${message(remote)}`)
    for (const vm of remote.tasks ?? []) {
      const backups = vm.tasks ?? []
      if (vm.status !== 'success' && !backups.some(backup => backup.status === 'failure')) report.errors.push(`VM ${String(vm.data?.id)} on "${name}": ${message(vm)}`)
      for (const backup of backups) {
        for (const info of backup.infos ?? []) {
          const note = info.data as VerifyFinding | undefined
          if (typeof note?.code !== 'string') continue
          const known = report.notes.find(other => other.remote === name && other.path === note.path && other.code === note.code)
          if (known === undefined) report.notes.push({ ...note, remote: name, backups: 1 })
          else known.backups++
        }
        if (backup.status !== 'failure') continue
        const findings = (backup.warnings ?? []).map(warning => warning.data as VerifyFinding).filter(finding => typeof finding?.code === 'string')
        report.failures.push({ remote: name, backupId: String(backup.data?.backupId), findings })
      }
    }
  }
  return report
}

function reportText(report: VerifyReport, readData: boolean): string {
  const lines: string[] = []
  for (const failure of report.failures) {
    lines.push(`✖ ${terminalSafeLine(failure.backupId)} (${failure.remote})`)
    for (const finding of failure.findings) lines.push(`    ${finding.code}  ${terminalSafeLine(finding.path)}: ${terminalSafeLine(finding.reason)}`)
  }
  for (const error of report.errors) lines.push(`✖ ${terminalSafeLine(error)}`)
  for (const note of report.notes) {
    lines.push(`ℹ ${note.code}  ${terminalSafeLine(note.path)} (${note.remote}, ${note.backups} backup${note.backups === 1 ? '' : 's'}): ${terminalSafeLine(note.reason)}`)
  }
  const disks = new Set(report.notes.map(note => `${note.remote}\n${note.path}`)).size
  const partly = disks === 0 ? '' : `; ${disks} disk${disks === 1 ? '' : 's'} without block hashes, structure only`
  const level = readData ? `structure and data, ${formatBytes(report.bytesRead)} read${partly}` : 'structure only; --read-data reads every block'
  lines.push(`${report.failed === 0 && report.errors.length === 0 ? '✔' : '✖'} ${report.verified} verified, ${report.failed} failed (${level})`)
  return lines.join('\n') + '\n'
}

export const VERIFY_COMMAND: Subcommand = {
  positionals: ['NAME'],
  summary: "Verifies the backups on a remote, as a run; it only reads (the cleaner repairs).",
  notes: 'Exits 1 when a backup failed; each restore point keeps its state (backup list shows it).',
  options: {
    vm: { value: 'UUID', multiple: true, help: "only this VM's backups" },
    'read-data': { help: 'read every block of every VHD and every XVA chunk (checksums), not only the structure' },
  },
  async body(context) {
    const readData = context.values['read-data'] === true
    const vms = listOption(context, 'vm')
    const client = await context.client()
    const remote = context.positionals[0]!
    const { runId } = await client.call('remote.verify', { remote, ...(vms.length > 0 && { vms }), ...(readData && { readData }) })
    const final = context.json ? await followRun(client, runId) : await followAndPrint(client, runId, process.stderr)
    const report = verifyReport(final)
    context.print({ runId, status: final.status, ...report }, () => reportText(report, readData))
    if (final.status === 'success') return EXIT_OK
    const why = report.failed > 0 ? `${report.failed} backup(s) on "${remote}" failed verification; the findings are above ('npx lifeboat run show ${runId}' has them too).` : `the verify of "${remote}" did not finish: ${report.errors[0] ?? final.status}.`
    process.stderr.write(errorLine(new LifeboatError(report.failed > 0 ? 'VERIFY_FAILED' : 'VERIFY_INCOMPLETE', why)))
    return EXIT_FAILURE
  },
}
