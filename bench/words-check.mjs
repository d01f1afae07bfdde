#!/usr/bin/env node
// Word timestamps on every eval file (../shared/eval, each set in its language; longform_en included): checks that
// words are monotonic, inside their segment, and add up to its text (issue "Decoding quality"); the tests check a
// sample of files, this goes through all of them. Prints one line per set and every problem found; exit code 1 on any.
//
//   npm run build && node bench/words-check.mjs [--model ../shared/models/whisper-base_timestamped] [--threads 2]
import { readdirSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const SHARED = process.env.WHISPER_TS_SHARED ?? resolve(ROOT, '../shared');
const args = process.argv.slice(2);
const arg = (name, fallback) => {
  const i = args.indexOf(`--${name}`);
  return i >= 0 && args[i + 1] !== undefined ? args[i + 1] : fallback;
};
const model = resolve(arg('model', join(SHARED, 'models', 'whisper-base_timestamped')));
const threads = Number(arg('threads', '2'));
const EVAL = join(SHARED, 'eval');
const LANGUAGE = { aishell_zh: 'zh', fleurs_de: 'de', fleurs_en: 'en', fleurs_es: 'es', fleurs_fr: 'fr', fleurs_pt: 'pt' };
const AUDIO = /\.(wav|flac|ogg|mp3|m4a)$/;

/** What is wrong with the words of these segments (nothing: an empty list). */
function problems(segments, duration) {
  const found = [];
  let previousEnd = 0;
  for (const s of segments) {
    const words = s.words ?? [];
    const where = `segment ${s.id} [${s.start}, ${s.end}]`;
    if (words.length === 0) found.push(`${where}: no words`);
    const joined = words.map((w) => w.word).join('');
    if (joined !== s.text) found.push(`${where}: words ${JSON.stringify(joined)} ≠ text ${JSON.stringify(s.text)}`);
    for (const w of words) {
      const at = `${where} word ${JSON.stringify(w.word)} [${w.start}, ${w.end}]`;
      if (w.start < previousEnd) found.push(`${at} starts before the previous word's end ${previousEnd}`);
      if (w.end < w.start) found.push(`${at} ends before it starts`);
      if (w.start < s.start || w.end > s.end) found.push(`${at} is outside its segment`);
      if (w.end > duration + 1e-6) found.push(`${at} ends after the audio (${duration} s)`);
      if (!(w.probability > 0 && w.probability <= 1)) found.push(`${at} probability ${w.probability}`);
      previousEnd = w.end;
    }
  }
  return found;
}

const { loadModel } = await import(join(ROOT, 'dist', 'index.js'));
const whisper = await loadModel(model, { threads });
let total = 0;
let files = 0;
let wordCount = 0;
const t0 = performance.now();
for (const set of readdirSync(EVAL, { withFileTypes: true }).filter((d) => d.isDirectory()).map((d) => d.name).sort()) {
  const language = LANGUAGE[set] ?? 'en';
  let setProblems = 0;
  let setWords = 0;
  const names = readdirSync(join(EVAL, set)).filter((f) => AUDIO.test(f)).sort();
  for (const file of names) {
    const r = await whisper.transcribeAll(join(EVAL, set, file), { language, wordTimestamps: true });
    const found = problems(r.segments, r.info.duration);
    for (const p of found) console.log(`  ${set}/${file}: ${p}`);
    setProblems += found.length;
    setWords += r.segments.reduce((n, s) => n + (s.words?.length ?? 0), 0);
    files++;
  }
  console.log(`${set}: ${names.length} files, ${setWords} words, ${setProblems} problems`);
  total += setProblems;
  wordCount += setWords;
}
await whisper.dispose();
console.log(`all: ${files} files, ${wordCount} words, ${total} problems (${((performance.now() - t0) / 1000).toFixed(0)} s)`);
process.exitCode = total > 0 ? 1 : 0;
