/**
 * A small seeded PRNG (mulberry32). Hand-written: sampling needs a reproducible stream per call, and a 32-bit
 * generator is all the categorical draws need.
 */
export class Rng {
  private state: number;
  constructor(seed: number) {
    this.state = seed >>> 0;
  }
  next(): number {
    let t = (this.state = (this.state + 0x6d2b79f5) >>> 0);
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  }
}

/** Draws a token from softmax(logits / temperature). */
export function sampleToken(logits: Float32Array, temperature: number, rng: Rng): number {
  let max = -Infinity;
  for (let i = 0; i < logits.length; i++) if ((logits[i] as number) > max) max = logits[i] as number;
  let sum = 0;
  const p = new Float64Array(logits.length);
  for (let i = 0; i < logits.length; i++) {
    const v = Math.exp(((logits[i] as number) - max) / temperature);
    p[i] = v;
    sum += v;
  }
  let r = rng.next() * sum;
  for (let i = 0; i < p.length; i++) {
    r -= p[i] as number;
    if (r <= 0) return i;
  }
  return logits.length - 1;
}
