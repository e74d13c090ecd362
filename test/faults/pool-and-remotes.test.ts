// The fault matrix's first half: faults of the pool and of the remotes (matrix.ts).
import { test } from 'node:test'
import { POOL_AND_REMOTE_FAULTS, runFaultRow } from './matrix.ts'

for (const row of POOL_AND_REMOTE_FAULTS) test(`fault: ${row.fault}`, () => runFaultRow(row))
