// Forms: a column of fields moved through with ↑/↓ or tab; text fields take typing directly, choices
// turn with ←/→ or space, toggles flip with space. Values stay text until the form is submitted.
import { useState } from 'react'
import { Box, Text, type Key } from 'ink'
import { editText } from './input.tsx'
import { fit } from '../format.ts'

export type Field =
  | { name: string; label: string; kind: 'text'; secret?: boolean; hint?: string }
  | { name: string; label: string; kind: 'choice'; choices: string[]; hint?: string }
  | { name: string; label: string; kind: 'toggle'; hint?: string }

export type FormValues = Record<string, string | boolean>

export interface Form {
  values: FormValues
  focus: number
  /** The focused field takes typing: the router must not read letters as commands. */
  capturing: boolean
  onKey: (input: string, key: Key) => boolean
  set: (name: string, value: string | boolean) => void
}

export function useForm(fields: Field[], initial: FormValues): Form {
  const [values, setValues] = useState<FormValues>(initial)
  const [wanted, setFocus] = useState(0)
  const focus = Math.min(wanted, Math.max(0, fields.length - 1))
  const field = fields[focus]
  const set = (name: string, value: string | boolean) => setValues(v => ({ ...v, [name]: value }))
  const onKey = (input: string, key: Key): boolean => {
    if (field === undefined) return false
    if (key.upArrow || (key.tab && key.shift)) return (setFocus(Math.max(0, focus - 1)), true)
    if (key.downArrow || key.tab) return (setFocus(Math.min(fields.length - 1, focus + 1)), true)
    if (field.kind === 'text') {
      // Through an updater: keys may arrive faster than renders.
      setValues(v => ({ ...v, [field.name]: editText(String(v[field.name] ?? ''), input, key) ?? String(v[field.name] ?? '') }))
      return editText('', input, key) !== undefined || key.backspace || key.delete
    }
    if (field.kind === 'toggle' && input === ' ') return (set(field.name, values[field.name] !== true), true)
    if (field.kind === 'choice' && (key.leftArrow || key.rightArrow || input === ' ')) {
      const at = field.choices.indexOf(String(values[field.name]))
      const next = (at + (key.leftArrow ? -1 : 1) + field.choices.length) % field.choices.length
      set(field.name, field.choices[next]!)
      return true
    }
    return false
  }
  return { values, focus, capturing: field?.kind === 'text', onKey, set }
}

export function FormView({ fields, form, width, labelWidth = 18 }: { fields: Field[]; form: Form; width: number; labelWidth?: number }) {
  return (
    <Box flexDirection="column">
      {fields.map((field, i) => {
        const focused = i === form.focus
        const value = form.values[field.name]
        const shown =
          field.kind === 'toggle'
            ? value === true
              ? '[x]'
              : '[ ]'
            : field.kind === 'choice'
              ? `‹ ${String(value)} ›`
              : field.secret === true
                ? '•'.repeat(String(value ?? '').length)
                : String(value ?? '')
        return (
          <Text key={field.name} wrap="truncate">
            <Text bold={focused}>{(focused ? '› ' : '  ') + fit(field.label, labelWidth)}</Text> <Text inverse={focused}>{shown}</Text>
            {focused && field.kind === 'text' ? <Text inverse> </Text> : null}
            {field.hint === undefined ? null : <Text dimColor> {fit(field.hint, Math.max(0, width - labelWidth - shown.length - 6))}</Text>}
          </Text>
        )
      })}
    </Box>
  )
}

export interface AddForm {
  adding: boolean
  form: Form
  /** Opens the form (when the screen may change things). */
  open: () => void
  /** While open, every key goes to the form: esc closes it, enter submits it. Returns whether it took the key. */
  onKey: (input: string, key: Key) => boolean
  /** The keys shown in the footer while the form is open. */
  keys: Array<{ key: string; label: string }>
}

/** The "add" form of a list screen (a pool, a remote): open with `a`, esc cancels, enter submits. */
export function useAddForm(fields: Field[], initial: FormValues, options: { submitLabel: string; onSubmit: (values: FormValues, form: Form) => void }): AddForm {
  const [adding, setAdding] = useState(false)
  const form = useForm(fields, initial)
  const onKey = (input: string, key: Key): boolean => {
    if (!adding) return false
    if (key.escape) setAdding(false)
    else if (key.return) {
      setAdding(false)
      options.onSubmit(form.values, form)
    } else form.onKey(input, key)
    return true
  }
  return { adding, form, open: () => setAdding(true), onKey, keys: [{ key: 'enter', label: options.submitLabel }, { key: 'esc', label: 'cancel' }] }
}
