#!/usr/bin/env node
// Speed of the audio stage: log-mel of 30 s and of the long-form file (as transcribe calls it: padding N_SAMPLES),
// plus decoding and resampling for scale. Build first (npm run build), then:
//   node bench/mel.mjs [audio] [--repeat N]
import { decodeAudio, logMelSpectrogram, melWindow, N_SAMPLES, resample, SAMPLE_RATE } from '../dist/audio/index.js';

const args = process.argv.slice(2);
const i = args.indexOf('--repeat');
const repeat = i >= 0 ? Number(args[i + 1]) : 20;
const file = args.find((a, j) => !a.startsWith('--') && args[j - 1] !== '--repeat') ??
  new URL('../../shared/eval/longform_en/librispeech_test_other_3ch_concat.flac', import.meta.url).pathname;

/**
 * Best and median wall time of `fn` over `n` runs after three warm-up runs, and its mean CPU time (user + system):
 * on a shared machine the CPU time is the steadier figure.
 */
function time(fn, n = repeat) {
  for (let k = 0; k < 3; k++) fn();
  const ms = [];
  const cpu0 = process.cpuUsage();
  for (let k = 0; k < n; k++) {
    const t0 = process.hrtime.bigint();
    fn();
    ms.push(Number(process.hrtime.bigint() - t0) / 1e6);
  }
  const cpu = process.cpuUsage(cpu0);
  ms.sort((a, b) => a - b);
  const cpuMs = (cpu.user + cpu.system) / 1000 / n;
  return `best ${ms[0].toFixed(2)} ms, median ${ms[Math.floor(n / 2)].toFixed(2)} ms, cpu ${cpuMs.toFixed(2)} ms (${n} runs)`;
}

const t0 = process.hrtime.bigint();
const audio = await decodeAudio(file);
const decodeMs = Number(process.hrtime.bigint() - t0) / 1e6;
const seconds = audio.length / SAMPLE_RATE;
console.log(`${file}: ${seconds.toFixed(1)} s, decoded by ffmpeg in ${decodeMs.toFixed(0)} ms`);

const s30 = audio.subarray(0, 30 * SAMPLE_RATE);
console.log(`log-mel 30 s, 80 mels, padding N_SAMPLES:   ${time(() => logMelSpectrogram(s30, 80, N_SAMPLES))}`);
console.log(`log-mel 30 s, 128 mels, padding N_SAMPLES:  ${time(() => logMelSpectrogram(s30, 128, N_SAMPLES))}`);
console.log(`log-mel 30 s, 80 mels, no padding:          ${time(() => logMelSpectrogram(s30, 80))}`);
const few = Math.max(3, repeat >> 2);
const whole = time(() => logMelSpectrogram(audio, 80, N_SAMPLES), few);
console.log(`log-mel ${seconds.toFixed(1)} s, 80 mels, padding N_SAMPLES: ${whole}`);
const mel = logMelSpectrogram(audio, 80, N_SAMPLES);
console.log(`melWindow 3000 frames:                      ${time(() => melWindow(mel, 1234))}`);

// Resampling 30 s from the common rates (the native WAV path), on the 16 kHz audio stretched by the resampler itself.
for (const rate of [44100, 48000, 8000]) {
  const x = resample(s30, SAMPLE_RATE, rate);
  console.log(`resample 30 s ${rate} → 16000 Hz:            ${time(() => resample(x, rate, SAMPLE_RATE), few)}`);
}
