// Sample daemon data for frame tests: a realistic handful, or a thousand rows to check windowing.
import { parseJob } from '../../source/protocol/job.ts'
import type { BackupListEntry, JobInfo, LanesSnapshot, Pool, Proxy, Remote, RunSummary, Sr, TaskNode, Vm } from '../../source/tui/contract.ts'
import type { JobPlan } from '../../source/protocol/plan.ts'

export const NOW = Date.UTC(2026, 10, 22, 10, 0, 0)
const MiB = 1024 * 1024
const GiB = 1024 * MiB

export const pools: Pool[] = [
  { id: 'pool-main', name: 'main', url: 'https://xcp-main', username: 'root', status: 'connected', hosts: 3 },
  { id: 'pool-dr', name: 'dr-site', url: 'https://xcp-dr', username: 'root', status: 'connected', hosts: 1 },
]

export function vms(count = 4): Vm[] {
  const names = ['web-01', 'db-01', 'mail', 'build']
  return Array.from({ length: count }, (_, i) => ({
    uuid: `vm-${String(i).padStart(4, '0')}`,
    name: i < names.length ? names[i]! : `vm-${i}`,
    poolId: i % 3 === 2 ? 'pool-dr' : 'pool-main',
    poolName: i % 3 === 2 ? 'dr-site' : 'main',
    powerState: i % 4 === 3 ? 'Halted' : 'Running',
    tags: i % 2 === 0 ? ['prod'] : ['test'],
    disks: [{ uuid: `vdi-${i}`, name: 'xvda', size: 20 * GiB, srId: 'sr-main' }],
    hasTools: true,
  }))
}

export const srs: Sr[] = [
  { uuid: 'sr-main', name: 'Local storage', poolId: 'pool-main', poolName: 'main', type: 'ext', size: 500 * GiB, used: 200 * GiB, free: 300 * GiB, shared: false },
  { uuid: 'sr-dr', name: 'DR storage', poolId: 'pool-dr', poolName: 'dr-site', type: 'nfs', size: 1000 * GiB, used: 100 * GiB, free: 900 * GiB, shared: true },
]

export const remotes: Remote[] = [
  { name: 'site-a', url: 'file:///srv/backups', type: 'file', status: 'ok', space: { size: 2000 * GiB, used: 500 * GiB, free: 1500 * GiB } },
  { name: 'offsite', url: 's3://backup.example/lifeboat', type: 's3', status: 'error', error: { code: 'REMOTE_UNREACHABLE', message: 'The S3 endpoint does not answer.' } },
]

export const proxies: Proxy[] = [
  { name: 'edge', url: 'ssh://lifeboat@proxy1.example.net', fingerprint: 'SHA256:3mK0m1c2uQfFv7yq0i9yQ3b6lQyq8cQm6kq7Xr3w2pE', addedAt: NOW - 86400_000 },
  { name: 'dc2', url: 'ssh://lifeboat@10.0.2.15:2222', fingerprint: 'SHA256:Jq2o6m0bW1a8x6kX9r3hQ5s2Yv0u7cN4pL1tD8eF3gA', addedAt: NOW - 3600_000 },
]

export function jobs(count = 2): JobInfo[] {
  return Array.from({ length: count }, (_, i) => ({
    job: parseJob({
      id: `job-${i}`,
      name: i === 0 ? 'nightly' : `job-${i}`,
      mode: i % 2 === 0 ? ('delta' as const) : ('full' as const),
      vms: i % 2 === 0 ? { smart: { pools: ['pool-main'], notPools: [], tags: ['prod'], notTags: [] } } : { uuids: ['vm-0001'] },
      remotes: ['site-a'],
      srs: [],
      settings: { concurrency: 2 },
      schedules: [{ id: `sched-${i}`, name: 'daily', cron: '0 3 * * *', timezone: 'Europe/Paris', enabled: true, retention: { backups: 7 } }],
    }),
    enabled: i !== 1,
    ...(i === 0 ? { lastRun: { runId: 'run-0', kind: 'backup' as const, jobId: 'job-0', jobName: 'nightly', start: NOW - 3600_000, end: NOW - 3000_000, status: 'success' as const } } : {}),
    nextRun: NOW + 3600_000,
  }))
}

export function runs(count = 3): RunSummary[] {
  const statuses = ['success', 'failure', 'pending', 'skipped', 'cancelled', 'interrupted'] as const
  return Array.from({ length: count }, (_, i) => ({
    runId: `run-${String(i).padStart(5, '0')}`,
    kind: 'backup' as const,
    jobId: 'job-0',
    jobName: 'nightly',
    scheduleName: 'daily',
    start: NOW - i * 86400_000,
    ...(statuses[i % statuses.length] === 'pending' ? {} : { end: NOW - i * 86400_000 + 600_000 }),
    status: statuses[i % statuses.length]!,
    vms: 2,
    size: 3 * GiB,
  }))
}

export function runTree(runId = 'run-00000', status: TaskNode['status'] = 'failure'): TaskNode {
  return {
    id: runId,
    message: 'backup',
    data: { jobName: 'nightly' },
    start: NOW,
    end: NOW + 600_000,
    duration: 600_000,
    status,
    tasks: [
      {
        id: 't-web',
        parentId: runId,
        message: 'VM web-01',
        data: { vmName: 'web-01' },
        start: NOW,
        end: NOW + 300_000,
        duration: 300_000,
        status: 'success',
        tasks: [
          { id: 't-snap', parentId: 't-web', message: 'snapshot', start: NOW, end: NOW + 2000, duration: 2000, status: 'success' },
          { id: 't-export', parentId: 't-web', message: 'export to site-a', start: NOW + 2000, end: NOW + 300_000, duration: 298_000, status: 'success', result: { size: 2 * GiB }, warnings: [{ message: 'the reference snapshot is gone: full backup', timestamp: NOW + 3000 }] },
        ],
      },
      {
        id: 't-db',
        parentId: runId,
        message: 'VM db-01',
        data: { vmName: 'db-01' },
        start: NOW,
        end: NOW + 600_000,
        duration: 600_000,
        status: 'failure',
        result: { code: 'REMOTE_FULL', message: 'The remote site-a is full: 0 bytes left.' },
        tasks: [{ id: 't-db-export', parentId: 't-db', message: 'export to site-a', start: NOW, end: NOW + 600_000, duration: 600_000, status: 'failure', result: { code: 'REMOTE_FULL', message: 'The remote site-a is full: 0 bytes left.' } }],
      },
    ],
  }
}

export function restorePoints(): BackupListEntry[] {
  return [
    {
      id: 'xo-vm-backups/vm-0000/20261121T030000Z.json', vmUuid: 'vm-0000', vmName: 'web-01', date: '20261121T030000Z', timestamp: NOW - 86400_000, mode: 'delta', size: 2 * GiB, jobId: 'job-0', scheduleId: 'sched-0', filename: 'f',
      verification: { status: 'failed', at: NOW - 3600_000, readData: true, runId: 'run-verify', findings: [{ code: 'VHD_TRUNCATED', path: 'xo-vm-backups/vm-0000/vdis/job-0/vdi-0/20261121T030000Z.vhd', reason: 'its disk is unusable: The VHD has no closing footer' }] },
    },
    { id: 'xo-vm-backups/vm-0000/20261122T030000Z.json', vmUuid: 'vm-0000', vmName: 'web-01', date: '20261122T030000Z', timestamp: NOW, mode: 'delta', size: 100 * MiB, jobId: 'job-0', scheduleId: 'sched-0', filename: 'f' },
    {
      id: 'xo-vm-backups/vm-0001/20261122T030000Z.json', vmUuid: 'vm-0001', vmName: 'db-01', date: '20261122T030000Z', timestamp: NOW, mode: 'full', size: 8 * GiB, jobId: 'job-1', scheduleId: 'sched-1', filename: 'f',
      verification: { status: 'verified', at: NOW - 3600_000, readData: false, runId: 'run-verify', findings: [] },
    },
  ]
}

/** `exports` VDI exports in flight on the main pool (12 is the default limit), 3 more waiting. */
export function lanes(exports = 12, progress = 0.5): LanesSnapshot {
  const holders = Array.from({ length: exports }, (_, i) => ({
    runId: 'run-00002',
    jobId: 'job-0',
    jobName: 'nightly',
    vm: `vm-${String(i).padStart(4, '0')}`,
    vmName: `vm-${i}`,
    disk: 'xvda',
    phase: 'export',
    since: NOW - 60_000,
    done: Math.round(progress * 20 * GiB),
    total: 20 * GiB,
    bytesPerSecond: 30 * MiB,
    targets: { 'site-a': { done: Math.round(progress * 20 * GiB), state: 'writing' as const }, offsite: { done: Math.round(progress * 10 * GiB), state: 'writing' as const } },
  }))
  return {
    at: NOW,
    pools: [
      {
        poolId: 'pool-main',
        poolName: 'main',
        snapshots: { limit: 2, holders: [{ runId: 'run-00002', jobName: 'nightly', vm: 'vm-9000', vmName: 'mail', phase: 'snapshot', since: NOW - 5000 }], waiting: [] },
        vdiExports: { limit: 12, holders, waiting: Array.from({ length: 3 }, (_, i) => ({ runId: 'run-00002', vm: `vm-w${i}`, vmName: `waiting-${i}`, disk: 'xvda', phase: 'export' })) },
        vmExports: { limit: 2, holders: [], waiting: [] },
      },
    ],
    totalBytesPerSecond: exports * 30 * MiB,
  }
}

export const GB = GiB

/** The plan of the next run of nightly: one VM going full on one disk, one problem, enough lines to scroll at 80×24. */
export function plan(excluded = 12): JobPlan {
  const delta = { uuid: 'vdi-1', name: 'root', virtualSize: 20 * 2 ** 30, mode: 'delta' as const, reason: "delta from the job's last exported snapshot (2026-11-30 03:00:12 UTC)", expected: { bytes: 300 * 2 ** 20, basis: 'median of the last 5 deltas of this disk' } }
  const full = { uuid: 'vdi-2', name: 'data', virtualSize: 100 * 2 ** 30, mode: 'full' as const, reason: 'the newest backup of this disk on remote site-a (20261130T030012Z.vhd) is not the base snapshot: its chain was removed', refusedBy: 'site-a', expected: { bytes: 40 * 2 ** 30, basis: 'allocated size, from XAPI' } }
  return {
    jobId: 'job-0', jobName: 'nightly', mode: 'delta', scheduleId: 'sched-0', scheduleName: 'daily', timezone: 'Europe/Paris', plannedAt: NOW, nextRun: NOW + 3600_000,
    vms: [{ uuid: 'vm-0001', name: 'web-01', poolId: 'pool-main', poolName: 'main', disks: [delta, full], targets: ['site-a'], expected: { bytes: 40 * 2 ** 30 + 300 * 2 ** 20, basis: 'recent deltas + allocated sizes' }, problems: [] }],
    excluded: Array.from({ length: excluded }, (_, i) => ({ uuid: `vm-x${i}`, name: `other-${i}`, poolName: 'main', reason: 'it has none of the tags "prod"' })),
    targets: [{ kind: 'remote', id: 'site-a', name: 'site-a', freeSpace: 30 * 2 ** 30, expected: { bytes: 40 * 2 ** 30 + 300 * 2 ** 20, basis: 'recent deltas + allocated sizes' }, deletions: 1, merges: 1 }],
    cost: { snapshots: 1, exports: 2, merges: 1, expected: { bytes: 40 * 2 ** 30 + 300 * 2 ** 20, basis: 'recent deltas + allocated sizes' }, window: { seconds: 1500, basis: '1 at 30.0 MiB/s (median of recent transfers), 1 at a time' } },
    problems: [{ code: 'TARGET_TOO_SMALL', severity: 'error', message: 'remote "site-a" has 30 GiB free; this run is expected to write 40 GiB there (recent deltas + allocated sizes).', remedy: 'Free space on it, lower the retention, or enable deleteFirst (retention before the transfer).', subject: 'site-a' }],
  }
}
