// What the tests need of a file server they start (Samba for SMB, nfs-ganesha for NFS): one shape, so the
// end-to-end tests and the benchmark run the same code against either.
export interface ShareServer {
  /** 'smb' or 'nfs': for test names. */
  readonly kind: 'smb' | 'nfs'
  /** The folder of this machine the server exports: to check what was written with an independent reader. */
  readonly root: string
  /** A remote URL of a sub-folder of the share or export (created by the first write), in XO's form. */
  urlFor(sub: string, options?: Record<string, unknown>): string
  /** Kills the server (a server gone mid-transfer); the URLs stay valid for `restart`. */
  stop(): Promise<void>
  /** Starts it again on the same port and folder. */
  restart(): Promise<void>
  /** Stops it and removes its scratch folder. */
  cleanup(): Promise<void>
}

export interface ShareServerOptions {
  /** The exported folder is a private tmpfs of this size: a share that fills up (REMOTE_FULL). */
  sizeLimitBytes?: number
}
