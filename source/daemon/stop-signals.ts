// How the daemon and the proxy service end under systemd: SIGTERM or SIGINT stops them cleanly, once.

/** What can be stopped: the daemon, the proxy service. */
export interface Stoppable {
  log(line: string): void
  stop(reason?: string): Promise<void>
}

/**
 * Resolves once SIGTERM or SIGINT has stopped the daemon (or the proxy service) cleanly (runs cancelled and logged).
 * Given it still starting, a signal received meanwhile stops it as soon as it has started; a failed start rejects.
 */
export function untilStopped(service: Stoppable | Promise<Stoppable>, name = 'daemon'): Promise<void> {
  return new Promise((resolve, reject) => {
    let started: Stoppable | undefined
    let received: NodeJS.Signals | undefined
    const stop = (signal: NodeJS.Signals) => {
      process.off('SIGTERM', stop)
      process.off('SIGINT', stop)
      received = signal
      if (started === undefined) return
      started.log(`${signal} received: stopping`)
      void started.stop(`the ${name} was stopped (${signal})`).then(resolve, error => {
        started!.log(`stop failed: ${(error as Error).message}`)
        resolve()
      })
    }
    process.on('SIGTERM', stop)
    process.on('SIGINT', stop)
    Promise.resolve(service).then(
      value => {
        started = value
        if (received !== undefined) stop(received)
      },
      error => {
        process.off('SIGTERM', stop)
        process.off('SIGINT', stop)
        reject(error)
      },
    )
  })
}
