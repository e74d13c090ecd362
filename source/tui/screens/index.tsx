// Which component draws which route, and the route's name in the breadcrumbs.
import type { Route } from '../shell.tsx'
import { JobsScreen } from './jobs.tsx'
import { JobScreen } from './job.tsx'
import { PlanScreen } from './plan.tsx'
import { WizardScreen } from './wizard.tsx'
import { LanesScreen } from './lanes.tsx'
import { RunsScreen } from './runs.tsx'
import { RunScreen } from './run.tsx'
import { SeedScreen } from './seed.tsx'
import { RestoreScreen } from './restore.tsx'
import { FileRestoreScreen } from './files.tsx'
import { RemotesScreen } from './remotes.tsx'
import { PoolsScreen, SrsScreen, VmsScreen } from './inventory.tsx'

export function routeLabel(route: Route): string {
  switch (route.screen) {
    case 'jobs':
      return 'Jobs'
    case 'job':
    case 'plan':
    case 'wizard':
      return route.label
    case 'lanes':
      return 'Lanes'
    case 'runs':
      return 'Runs'
    case 'run':
      return `Run ${route.runId.slice(0, 12)}`
    case 'seed':
      return route.label
    case 'restore':
      return 'Restore'
    case 'files':
      return route.label
    case 'remotes':
      return 'Remotes'
    case 'pools':
      return 'Pools'
    case 'vms':
      return route.pool === undefined ? 'VMs' : `VMs of ${route.pool.name}`
    case 'srs':
      return route.pool === undefined ? 'SRs' : `SRs of ${route.pool.name}`
  }
}

export function Screen({ route }: { route: Route }) {
  switch (route.screen) {
    case 'jobs':
      return <JobsScreen />
    case 'job':
      return <JobScreen id={route.id} />
    case 'plan':
      return <PlanScreen id={route.id} />
    case 'wizard':
      return <WizardScreen {...(route.id !== undefined && { id: route.id })} />
    case 'lanes':
      return <LanesScreen />
    case 'runs':
      return <RunsScreen {...(route.jobId !== undefined && { jobId: route.jobId })} />
    case 'run':
      return <RunScreen runId={route.runId} follow={route.follow === true} />
    case 'seed':
      return <SeedScreen id={route.id} />
    case 'restore':
      return <RestoreScreen />
    case 'files':
      return <FileRestoreScreen remote={route.remote} backupId={route.backupId} />
    case 'remotes':
      return <RemotesScreen />
    case 'pools':
      return <PoolsScreen />
    case 'vms':
      return <VmsScreen {...(route.pool !== undefined && { poolId: route.pool.id })} />
    case 'srs':
      return <SrsScreen {...(route.pool !== undefined && { poolId: route.pool.id })} />
  }
}
