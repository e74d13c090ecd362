// `lifeboat cr-seed`: XO's cr-seed-cli through the daemon: a snapshot and the VM imported from it by hand
// on the job's SR become the base of the job's continuous replication (its next run sends a delta).
import { formatBytes, table } from './output.ts'
import { stringOption, type Subcommand } from './index.ts'

export const CR_SEED_COMMANDS: Record<string, Record<string, Subcommand>> = {
  'cr-seed': {
    '': {
      summary: "Makes a snapshot and its copy imported on the job's SR the base of a continuous replication.",
      notes:
        "Export the snapshot (an XVA), import it on the job's SR and leave that VM halted; cr-seed checks that its disks match the snapshot's\n" +
        "in number and size, then marks both as Lifeboat and Xen Orchestra do, so the job's next run sends only the changed blocks.\n" +
        'Never delete the snapshot nor start the imported VM (it is blocked from starting; clone it to use it).',
      options: {
        job: { value: 'J', required: true, help: 'the continuous replication job (delta mode, with the SR), by id or name' },
        schedule: { value: 'S', help: 'the schedule whose replica this is, by name or id (default: the first)' },
        vm: { value: 'SOURCE_VM', required: true, help: 'the source VM (uuid or unique name)' },
        snapshot: { value: 'SNAP_UUID', required: true, help: "the source VM's snapshot that was exported" },
        'target-vm': { value: 'TARGET_VM_UUID', required: true, help: "the VM imported from it on the job's SR" },
      },
      async body(context) {
        const schedule = stringOption(context, 'schedule')
        const seeded = await (await context.client()).call('job.crSeed', {
          id: stringOption(context, 'job')!,
          ...(schedule !== undefined && { schedule }),
          vm: stringOption(context, 'vm')!,
          snapshot: stringOption(context, 'snapshot')!,
          targetVm: stringOption(context, 'target-vm')!,
        })
        context.print(seeded, () =>
          [
            `seeded: snapshot ${seeded.snapshotUuid} is the base, VM ${seeded.targetVmUuid} its replica on SR ${seeded.srUuid}, renamed "${seeded.targetVmName}"`,
            table(['DISK', 'SIZE', 'SNAPSHOT VDI', 'REPLICA VDI'], seeded.disks.map(disk => [disk.userdevice, formatBytes(disk.size), disk.snapshotVdi, disk.targetVdi])).trimEnd(),
            `the next run of the job sends only the blocks changed since the snapshot: npx lifeboat job run ${seeded.jobId} --wait`,
            '',
          ].join('\n'),
        )
      },
    },
  },
}
