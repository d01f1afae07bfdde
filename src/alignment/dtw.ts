/**
 * The numeric steps of word alignment: a median filter along time and dynamic time warping. Hand-written (a few
 * dozen lines) because no maintained npm package offers DTW with openai/whisper's tie-breaking and backtrace, and the
 * matrices are small (tokens × ≤ 1500 frames).
 */

/**
 * openai/whisper timing.py median_filter: median of `width` values along each row of a [rows, cols] matrix, the
 * row padded by reflection (the edge value not repeated). Rows no longer than width / 2 come back unchanged.
 */
export function medianFilterRows(x: Float32Array, rows: number, cols: number, width: number): Float32Array {
  const pad = Math.floor(width / 2);
  if (cols <= pad || width <= 1) return x;
  if (width % 2 !== 1) throw new RangeError(`the median filter width must be odd, got ${width}`);
  const out = new Float32Array(rows * cols);
  const win = new Float32Array(width);
  for (let r = 0; r < rows; r++) {
    const base = r * cols;
    for (let c = 0; c < cols; c++) {
      // gather the window with reflect padding, then an insertion sort (width is tiny, 7 by default)
      for (let k = 0; k < width; k++) {
        let idx = c - pad + k;
        if (idx < 0) idx = -idx;
        else if (idx >= cols) idx = 2 * (cols - 1) - idx;
        const v = x[base + idx] as number;
        let m = k - 1;
        while (m >= 0 && (win[m] as number) > v) {
          win[m + 1] = win[m] as number;
          m--;
        }
        win[m + 1] = v;
      }
      out[base + c] = win[pad] as number;
    }
  }
  return out;
}

/**
 * openai/whisper timing.py dtw_cpu + backtrace: the cheapest monotonic path through the cost matrix `x` [n, m]
 * (diagonal, down or right moves), ties broken as upstream (diagonal only when strictly cheapest, then down, else
 * right). Accumulated costs are kept in float32 as upstream does. Returns the path as parallel index arrays, from
 * (0, 0) to (n − 1, m − 1).
 */
export function dtw(x: Float64Array | Float32Array, n: number, m: number): { textIndices: Int32Array; timeIndices: Int32Array } {
  const w = m + 1;
  const cost = new Float32Array((n + 1) * w).fill(Infinity);
  const trace = new Int8Array((n + 1) * w).fill(-1);
  cost[0] = 0;
  for (let j = 1; j <= m; j++) {
    for (let i = 1; i <= n; i++) {
      const c0 = cost[(i - 1) * w + j - 1] as number;
      const c1 = cost[(i - 1) * w + j] as number;
      const c2 = cost[i * w + j - 1] as number;
      let c: number;
      let t: number;
      if (c0 < c1 && c0 < c2) {
        c = c0;
        t = 0;
      } else if (c1 < c0 && c1 < c2) {
        c = c1;
        t = 1;
      } else {
        c = c2;
        t = 2;
      }
      cost[i * w + j] = (x[(i - 1) * m + j - 1] as number) + c;
      trace[i * w + j] = t;
    }
  }
  for (let j = 0; j <= m; j++) trace[j] = 2;
  for (let i = 0; i <= n; i++) trace[i * w] = 1;
  const ti: number[] = [];
  const tj: number[] = [];
  let i = n;
  let j = m;
  while (i > 0 || j > 0) {
    ti.push(i - 1);
    tj.push(j - 1);
    const t = trace[i * w + j];
    if (t === 0) {
      i--;
      j--;
    } else if (t === 1) i--;
    else if (t === 2) j--;
    else throw new Error(`dtw: unexpected trace value at (${i}, ${j})`);
  }
  ti.reverse();
  tj.reverse();
  return { textIndices: Int32Array.from(ti), timeIndices: Int32Array.from(tj) };
}
