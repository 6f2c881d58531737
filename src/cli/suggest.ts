/**
 * "Did you mean ...?" for mistyped commands and options: the closest candidate by edit distance,
 * or the only candidate the input is a prefix of.
 */

/**
 * Edit distance with adjacent transpositions (optimal string alignment): `stauts` is one edit
 * from `status`, as a reader would count it.
 */
export function editDistance (a: string, b: string): number {
  const rows = a.length + 1
  const cols = b.length + 1
  const d: number[] = new Array<number>(rows * cols).fill(0)
  const at = (i: number, j: number): number => d[i * cols + j] ?? 0
  for (let i = 0; i < rows; i++) d[i * cols] = i
  for (let j = 0; j < cols; j++) d[j] = j
  for (let i = 1; i < rows; i++) {
    for (let j = 1; j < cols; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1
      let best = Math.min(at(i - 1, j) + 1, at(i, j - 1) + 1, at(i - 1, j - 1) + cost)
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1]) best = Math.min(best, at(i - 2, j - 2) + 1)
      d[i * cols + j] = best
    }
  }
  return at(rows - 1, cols - 1)
}

/**
 * The candidate closest to `input`, or undefined when none is close enough to be a likely typo:
 * within a third of the input's length in edits (at least one, none below three letters), or the
 * one candidate it begins.
 */
export function closest (input: string, candidates: Iterable<string>): string | undefined {
  const lower = input.toLowerCase()
  const all = [...new Set(candidates)]
  const exact = all.find(c => c.toLowerCase() === lower)
  if (exact !== undefined) return exact
  // One edit turns any one- or two-letter name into another: guess those by prefix only.
  const allowed = lower.length < 3 ? 0 : Math.max(1, Math.floor(lower.length / 3))
  let best: string | undefined
  let bestDistance = Infinity
  for (const candidate of all) {
    const distance = editDistance(lower, candidate.toLowerCase())
    if (distance > 0 && distance <= allowed && distance < bestDistance) {
      best = candidate
      bestDistance = distance
    }
  }
  if (best !== undefined) return best
  const prefixed = lower.length >= 2 ? all.filter(c => c.toLowerCase().startsWith(lower)) : []
  return prefixed.length === 1 ? prefixed[0] : undefined
}
