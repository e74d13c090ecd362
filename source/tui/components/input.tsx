// Typing into a one-line field (filters, wizard fields, typed confirmations, the palette) and the `/`
// filter every list has: plain substring, case-insensitive; a leading `!` keeps the rows that do not match.
import { useState } from 'react'
import { Text, type Key } from 'ink'

/** Applies one key press to a field's text; undefined when the key is not an edit. */
export function editText(text: string, input: string, key: Key): string | undefined {
  if (key.backspace || key.delete) return text.slice(0, -1)
  if (key.ctrl && input === 'u') return ''
  if (key.ctrl || key.meta || key.return || key.escape || key.tab || key.upArrow || key.downArrow || key.leftArrow || key.rightArrow) return undefined
  if (input === '' || /[\u0000-\u001f]/.test(input)) return undefined
  return text + input
}

export interface Filter {
  text: string
  editing: boolean
  onKey: (input: string, key: Key) => boolean
  matches: (haystack: string) => boolean
}

export function useFilter(): Filter {
  const [text, setText] = useState('')
  const [editing, setEditing] = useState(false)
  const onKey = (input: string, key: Key): boolean => {
    if (editing) {
      if (key.return) setEditing(false)
      else if (key.escape) {
        setText('')
        setEditing(false)
      } else setText(current => editText(current, input, key) ?? current)
      return true
    }
    if (input === '/') {
      setEditing(true)
      return true
    }
    if (key.escape && text !== '') {
      setText('')
      return true
    }
    return false
  }
  const inverse = text.startsWith('!')
  const needle = (inverse ? text.slice(1) : text).toLowerCase()
  const matches = (haystack: string) => needle === '' || haystack.toLowerCase().includes(needle) !== inverse
  return { text, editing, onKey, matches }
}

export function FilterLine({ filter }: { filter: Filter }) {
  if (!filter.editing && filter.text === '') return null
  return (
    <Text wrap="truncate">
      <Text bold>/</Text>
      {filter.text}
      {filter.editing ? <Caret /> : <Text dimColor> (esc clears)</Text>}
    </Text>
  )
}

/** Where typing goes: a block glyph, visible without colours (inverse video alone is lost under NO_COLOR). */
export function Caret() {
  return <Text>█</Text>
}
