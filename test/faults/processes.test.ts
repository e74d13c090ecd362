// The fault matrix's second half: the daemon restarted, killed or doubled, an engine killed mid-merge or mid-clean (matrix.ts).
import { test } from 'node:test'
import { PROCESS_FAULTS, runFaultRow } from './matrix.ts'

for (const row of PROCESS_FAULTS) test(`fault: ${row.fault}`, () => runFaultRow(row))
