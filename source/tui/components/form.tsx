// Forms: a column of fields moved through with ↑/↓ or tab; text fields take typing directly, choices
// turn with ←/→ or space, toggles flip with space. Values stay text until the form is submitted.
import { useRef, useState } from 'react'
import { Box, Text, type Key } from 'ink'
import { Caret, editText } from './input.tsx'
import { fit, wrapText } from '../format.ts'
import { useShell } from '../shell.tsx'
import { codedErrorText, errorText } from '../client.ts'
import { tone } from '../theme.ts'

export type Field =
  | { name: string; label: string; kind: 'text'; secret?: boolean; hint?: string }
  /** `unavailable` (a choice or a toggle): why it cannot be changed now (shown greyed, with the reason in place of the hint). */
  | { name: string; label: string; kind: 'choice'; choices: string[]; hint?: string; unavailable?: string }
  | { name: string; label: string; kind: 'toggle'; hint?: string; unavailable?: string }

export type FormValues = Record<string, string | boolean>

/** A form's fields, fixed or following what was typed (the remote form shows the fields of the chosen type). */
export type Fields = Field[] | ((values: FormValues) => Field[])

export interface Form {
  /** The fields shown now. */
  fields: Field[]
  values: FormValues
  focus: number
  /** The focused field takes typing: the router must not read letters as commands. */
  capturing: boolean
  onKey: (input: string, key: Key) => boolean
  set: (name: string, value: string | boolean) => void
  /** Back to the values it started with, focus on the first field. */
  reset: () => void
  /** The values with every key taken so far (`values` is what the last render showed). */
  latest: () => FormValues
}

export function useForm(fieldsOf: Fields, initial: FormValues): Form {
  // Keys read and change the latest state, not the last render's: over SSH several keys come in one read,
  // and Ink hands them over one after the other before React renders (a down then a letter went to the old field).
  const latest = useRef({ values: initial, focus: 0 })
  const given = useRef(fieldsOf)
  given.current = fieldsOf
  const [, rendered] = useState(0)
  const fieldsFor = (values: FormValues) => (typeof given.current === 'function' ? given.current(values) : given.current)
  const commit = (values: FormValues, focus: number) => {
    latest.current = { values, focus }
    rendered(n => n + 1)
  }
  const set = (name: string, value: string | boolean) => commit({ ...latest.current.values, [name]: value }, latest.current.focus)
  const onKey = (input: string, key: Key): boolean => {
    const { values, focus } = latest.current
    const fields = fieldsFor(values)
    const at = Math.min(focus, Math.max(0, fields.length - 1))
    const field = fields[at]
    if (field === undefined) return false
    if (key.upArrow || (key.tab && key.shift)) return (commit(values, Math.max(0, at - 1)), true)
    if (key.downArrow || key.tab) return (commit(values, Math.min(fields.length - 1, at + 1)), true)
    if (field.kind === 'text') {
      const edited = editText(String(values[field.name] ?? ''), input, key)
      if (edited !== undefined) commit({ ...values, [field.name]: edited }, at)
      return edited !== undefined
    }
    if (field.kind === 'toggle' && input === ' ') return (field.unavailable === undefined && set(field.name, values[field.name] !== true), true)
    if (field.kind === 'choice' && (key.leftArrow || key.rightArrow || input === ' ')) {
      if (field.unavailable !== undefined) return true
      const now = field.choices.indexOf(String(values[field.name]))
      const next = (now + (key.leftArrow ? -1 : 1) + field.choices.length) % field.choices.length
      set(field.name, field.choices[next]!)
      return true
    }
    return false
  }
  const reset = () => commit(initial, 0)
  const { values, focus: wanted } = latest.current
  const fields = fieldsFor(values)
  const focus = Math.min(wanted, Math.max(0, fields.length - 1))
  return { fields, values, focus, capturing: fields[focus]?.kind === 'text', onKey, set, reset, latest: () => latest.current.values }
}

export function FormView({ form, width, labelWidth = 18 }: { form: Form; width: number; labelWidth?: number }) {
  return (
    <Box flexDirection="column">
      {form.fields.map((field, i) => {
        const focused = i === form.focus
        const value = form.values[field.name]
        const unavailable = field.kind === 'text' ? undefined : field.unavailable
        const hint = unavailable ?? field.hint
        const shown =
          field.kind === 'toggle'
            ? unavailable !== undefined
              ? '[-]'
              : value === true
              ? '[x]'
              : '[ ]'
            : field.kind === 'choice'
              ? `‹ ${String(value)} ›`
              : field.secret === true
                ? '•'.repeat(String(value ?? '').length)
                : String(value ?? '')
        // A filled-in text field shows its hint only while focused: next to a value it reads as part of it.
        const hinted = focused || field.kind !== 'text' || shown === ''
        return (
          <Text key={field.name} wrap="truncate" dimColor={unavailable !== undefined}>
            <Text bold={focused}>{(focused ? '› ' : '  ') + fit(field.label, labelWidth)}</Text> <Text inverse={focused}>{shown}</Text>
            {focused && field.kind === 'text' ? <Caret /> : null}
            {hint === undefined || !hinted ? null : <Text dimColor> {fit(hint, Math.max(0, width - labelWidth - shown.length - 6))}</Text>}
          </Text>
        )
      })}
    </Box>
  )
}

export interface AddForm {
  adding: boolean
  form: Form
  /** Why the last submission was refused, whole; what was typed is kept. */
  failure: string | undefined
  /** Opens the form (when the screen may change things). */
  open: () => void
  /** While open, every key goes to the form: esc closes it, enter submits it. Returns whether it took the key. */
  onKey: (input: string, key: Key) => boolean
  /** The keys shown in the footer while the form is open. */
  keys: Array<{ key: string; label: string }>
}

/**
 * The "add" form of a list screen (a pool, a remote): open with `a`, esc cancels (what was typed is dropped),
 * enter submits. A refused form stays open with all that was typed, secrets too (still hidden): often the
 * host or a path was wrong, not the password.
 */
export function useAddForm(fields: Fields, initial: FormValues, options: { submitLabel: string; label: (values: FormValues) => string; submit: (values: FormValues) => Promise<unknown> }): AddForm {
  const shell = useShell()
  const [adding, setAdding] = useState(false)
  const [failure, setFailure] = useState<string>()
  const form = useForm(fields, initial)
  const submit = () => {
    const values = form.latest()
    const label = options.label(values)
    if (!shell.canChange(label)) return
    options.submit(values).then(
      () => {
        shell.notify(`${label}: done.`)
        setAdding(false)
        setFailure(undefined)
        form.reset()
      },
      (error: unknown) => {
        setFailure(`${label} failed: ${codedErrorText(error)}`)
        shell.notify(`${label} failed: ${errorText(error)}`, 'error')
      },
    )
  }
  const onKey = (input: string, key: Key): boolean => {
    if (!adding) return false
    if (key.escape) {
      setAdding(false)
      setFailure(undefined)
      form.reset()
    } else if (key.return) submit()
    else form.onKey(input, key)
    return true
  }
  return { adding, form, failure, open: () => setAdding(true), onKey, keys: [{ key: 'enter', label: options.submitLabel }, { key: 'esc', label: 'cancel' }] }
}

/** An add form with its title and, after a refusal, the reason whole. */
export function AddFormView({ title, add, width, labelWidth }: { title: string; add: AddForm; width: number; labelWidth: number }) {
  return (
    <Box flexDirection="column">
      <Text bold>{title}</Text>
      <FormView form={add.form} width={width} labelWidth={labelWidth} />
      {add.failure === undefined
        ? null
        : wrapText(`✖ ${add.failure}`, width).map((line, i) => (
            <Text key={i} color={tone('red')}>
              {line}
            </Text>
          ))}
    </Box>
  )
}
