/** Index of the first item after `seq` in items sorted by `seq`, searching from `from` on. */
export function indexAfterSeq(items: readonly { readonly seq: number }[], seq: number, from = 0): number {
  let low = from;
  let high = items.length;
  while (low < high) {
    const mid = (low + high) >> 1;
    if (items[mid]!.seq <= seq) low = mid + 1;
    else high = mid;
  }
  return low;
}
