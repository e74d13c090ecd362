// Which component draws which route, and the route's name in the breadcrumbs.
import type { Route } from '../shell.tsx'
import { JobsScreen } from './jobs.tsx'

export function routeLabel(route: Route): string {
  switch (route.screen) {
    case 'jobs':
      return 'Jobs'
    case 'job':
    case 'wizard':
      return route.label
    case 'lanes':
      return 'Lanes'
    case 'runs':
      return 'Runs'
    case 'run':
      return `Run ${route.runId.slice(0, 12)}`
    case 'restore':
      return 'Restore'
    case 'remotes':
      return 'Remotes'
    case 'pools':
      return 'Pools'
    case 'vms':
      return 'VMs'
    case 'srs':
      return 'SRs'
  }
}

export function Screen({ route }: { route: Route }) {
  switch (route.screen) {
    case 'jobs':
      return <JobsScreen />
    default:
      return null
  }
}
