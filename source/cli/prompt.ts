// Asking a person for a secret at the terminal, not echoed: what `ssh` and `sudo` do for a password.
import { LifeboatError } from '../util/errors.ts'

/** Reads one line from the terminal without showing it; ctrl-c or ctrl-d on an empty line cancels. */
export function askHidden(question: string, input: NodeJS.ReadStream = process.stdin, output: NodeJS.WritableStream = process.stderr): Promise<string> {
  return new Promise((resolve, reject) => {
    let value = ''
    const finish = (error?: Error) => {
      input.off('data', onData)
      input.setRawMode(false)
      input.pause()
      output.write('\n')
      if (error === undefined) resolve(value)
      else reject(error)
    }
    const onData = (data: Buffer | string) => {
      for (const char of String(data)) {
        if (char === '\r' || char === '\n') return finish()
        if (char === '\u0003' || (char === '\u0004' && value === '')) return finish(new LifeboatError('CANCELLED', 'Cancelled at the prompt; nothing was changed.'))
        if (char === '\u007f' || char === '\b') value = value.slice(0, -1)
        else if (char === '\u0015') value = ''
        else if (char >= ' ') value += char
      }
    }
    output.write(question)
    input.setRawMode(true)
    input.setEncoding('utf8')
    input.on('data', onData)
    input.resume()
  })
}
