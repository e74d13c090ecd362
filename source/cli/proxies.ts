// `lifeboat proxy add|list|test|remove|key`: the proxies the appliance's daemon delegates runs to, over ssh.
import type { ProxyTestResult } from '../protocol/proxy.ts'
import { table } from './output.ts'
import { terminalSafe } from '../util/terminal-text.ts'
import { stringOption, type Subcommand } from './index.ts'

function testLines(result: ProxyTestResult): string {
  return (
    `  host key  ${result.fingerprint} (pinned)\n` +
    `  version   lifeboat ${result.version} on ${result.hostname}\n` +
    `  latency   ${result.latencyMs} ms (median of 5 calls; ssh and the first answer took ${result.connectMs} ms)\n`
  )
}

export const PROXY_COMMANDS: Record<string, Record<string, Subcommand>> = {
  proxy: {
    add: {
      positionals: ['NAME', 'URL'],
      summary: 'Registers a proxy (ssh://user@host[:port]): pins its host key, prints the key line for its authorized_keys, tests it.',
      notes:
        "The host key the proxy's sshd offers now is pinned (a different key later is refused); give --fingerprint to require the one you read on the proxy's console " +
        "(ssh-keygen -lf /etc/ssh/ssh_host_ed25519_key.pub). The daemon's own ssh key is made at first use; put the printed line in the proxy user's ~/.ssh/authorized_keys, " +
        "then 'lifeboat proxy test NAME'. A proxy whose test fails is kept, with the reason printed.",
      options: {
        fingerprint: { value: 'SHA256:…', help: "the proxy's host key fingerprint, as checked on its console (refused if it offers another)" },
        replace: { help: 'pin the host key of a proxy already added again (after a reinstall)' },
      },
      async body(context) {
        const [name, url] = context.positionals as [string, string]
        const fingerprint = stringOption(context, 'fingerprint')
        const added = await (await context.client()).call('proxy.add', { name, url, ...(fingerprint !== undefined && { fingerprint }), ...(context.values.replace === true && { replace: true }) })
        context.print(added, () => {
          const head = `proxy "${added.proxy.name}" added (${added.proxy.url}), host key ${added.proxy.fingerprint} pinned\n`
          const keyLine = `The daemon's key, for ~${/ssh:\/\/([^@]+)@/.exec(url)?.[1] ?? 'USER'}/.ssh/authorized_keys on the proxy (it may run the proxy bridge only):\n${added.authorizedKeysLine}\n`
          if (added.test !== undefined) return `${head}${testLines(added.test)}${keyLine}`
          const problem = added.problem!
          const why = problem.code === 'PROXY_KEY_REFUSED' ? `the proxy's sshd refuses the daemon's key until the line above is in its authorized_keys; then run 'npx lifeboat proxy test ${name}'` : terminalSafe(problem.message)
          return `${head}${keyLine}not usable yet: ${problem.code}: ${why}\n`
        })
      },
    },
    list: {
      summary: 'Lists the proxies: URL and pinned host key.',
      async body(context) {
        const proxies = await (await context.client()).call('proxy.list')
        context.print(proxies, () => table(['NAME', 'URL', 'HOST KEY', 'ADDED'], proxies.map(p => [p.name, p.url, p.fingerprint, new Date(p.addedAt).toISOString().slice(0, 16).replace('T', ' ')])) || 'no proxies; add one with npx lifeboat proxy add NAME ssh://user@host\n')
      },
    },
    test: {
      positionals: ['NAME'],
      summary: "Connects to a proxy over ssh: its pinned host key, its version (the appliance's is required) and the latency.",
      async body(context) {
        const result = await (await context.client()).call('proxy.test', { name: context.positionals[0]! })
        context.print(result, () => `proxy "${result.name}" (${result.url}) answered\n${testLines(result)}`)
      },
    },
    remove: {
      positionals: ['NAME'],
      summary: 'Forgets a proxy and its pinned host key (refused while a job runs on it).',
      async body(context) {
        const result = await (await context.client()).call('proxy.remove', { name: context.positionals[0]! })
        context.print(result, () => `proxy "${context.positionals[0]}" removed\n`)
      },
    },
    key: {
      summary: "Prints the daemon's ssh public key and the authorized_keys line for a proxy (the key is made at first use).",
      async body(context) {
        const key = await (await context.client()).call('proxy.key')
        context.print(key, () => `${key.authorizedKeysLine}\n`)
      },
    },
  },
}
