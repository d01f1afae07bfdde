#!/usr/bin/env node
// Throughput of `whisper-ts serve` for 1, 2, 4 and 8 concurrent 1-minute transcriptions, per worker layout.
//
//   npm run build && node bench/server.mjs [--model DIR] [--layouts 1x2x1,2x1x1,2x1x4] [--levels 1,2,4,8] [--seconds 60]
//
// A layout WxTxJ is W worker threads with T ONNX Runtime threads each, running up to J jobs at once per worker (J > 1:
// their greedy windows share decoder batches, --jobs-per-worker). Each concurrent request sends a different
// minute of longform_en (so the rows of a batch have their own prompts). Throughput = audio seconds / wall second over
// all requests of a level; the speedup is against the same layout's single request. The server and the client run
// on the same machine (the client is idle while waiting). CPU s per audio s (the server process, all threads) shows
// the work done apart from other load on the machine: on a busy box the wall-clock figures mean little. Requests are not batched across one another in the
// decoder: each worker runs one job at a time (see the report printed at the end).
/* global fetch, FormData, Blob, performance */
import { execFileSync, spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { cpus, loadavg, tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const SHARED = process.env.WHISPER_TS_SHARED ?? resolve(ROOT, '../shared');
const { values: args } = parseArgs({
  options: {
    model: { type: 'string', default: join(SHARED, 'models', 'whisper-tiny.en') },
    layouts: { type: 'string', default: '1x2x1,2x1x1,2x1x4' },
    levels: { type: 'string', default: '1,2,4,8' },
    seconds: { type: 'string', default: '60' },
    source: { type: 'string', default: join(SHARED, 'eval', 'longform_en', 'librispeech_test_other_3ch_concat.flac') },
  },
});
const seconds = Number(args.seconds);
const levels = args.levels.split(',').map(Number);
const layouts = args.layouts.split(',').map((l) => l.split('x').map(Number));

const dir = mkdtempSync(join(tmpdir(), 'wts-bench-server-'));
// eight different clips: request k of a level sends clip k (starts spread over the source, wrapping around)
const total = Number(execFileSync('ffprobe', ['-v', 'error', '-show_entries', 'format=duration', '-of', 'csv=p=0', args.source], { encoding: 'utf8' }));
const clips = Array.from({ length: Math.max(...levels) }, (_, k) => {
  const wav = join(dir, `clip${k}.wav`);
  const start = ((k * 37) % Math.max(1, Math.floor(total - seconds))).toFixed(2);
  execFileSync('ffmpeg', ['-v', 'error', '-ss', start, '-i', args.source, '-t', String(seconds), '-ac', '1', '-ar', '16000', wav]);
  return readFileSync(wav);
});

async function startServer(workers, threads, jobs) {
  const child = spawn(
    process.execPath,
    [join(ROOT, 'bin', 'whisper-ts.js'), 'serve', '--port', '0', '--model', args.model, '--concurrency', String(workers),
      '--jobs-per-worker', String(jobs), '--threads', String(threads), '--max-queue', String(Math.max(...levels))],
    { stdio: ['ignore', 'pipe', 'inherit'], env: { ...process.env, HF_HUB_OFFLINE: '1' } },
  );
  const url = await new Promise((resolveUrl, reject) => {
    let out = '';
    child.stdout.on('data', (d) => {
      out += d;
      const m = /listening on (http:\/\/\S+?) /.exec(out);
      if (m) resolveUrl(m[1]);
    });
    child.once('exit', (code) => reject(new Error(`serve exited with ${code}`)));
  });
  return { url, pid: child.pid, stop: () => new Promise((r) => (child.once('exit', r), child.kill('SIGTERM'))) };
}

/** CPU seconds (user + system, all threads) the server process has used: /proc/<pid>/stat fields 14 and 15. */
function cpuSeconds(pid) {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return (Number(fields[11]) + Number(fields[12])) / 100; // clock ticks; USER_HZ is 100 on Linux
}

async function transcribe(url, k) {
  const body = new FormData();
  body.append('file', new Blob([clips[k % clips.length]]), 'clip.wav');
  body.append('model', 'whisper-1');
  const t0 = performance.now();
  const r = await fetch(`${url}/v1/audio/transcriptions`, { method: 'POST', body });
  const json = await r.json();
  if (r.status !== 200) throw new Error(`HTTP ${r.status}: ${JSON.stringify(json)}`);
  return { seconds: (performance.now() - t0) / 1000, words: json.text.split(/\s+/).length };
}

console.log(`whisper-ts serve throughput: ${args.model.split('/').pop()}, ${seconds}-s requests, ${cpus().length} CPU(s), ` +
  `load average at start ${loadavg()[0].toFixed(2)}`);
const rows = [];
for (const [workers, threads, jobs = 1] of layouts) {
  const server = await startServer(workers, threads, jobs);
  const layout = `${workers}x${threads}x${jobs}`;
  try {
    await transcribe(server.url, 0); // warm-up: sessions and arenas
    // the baseline: every clip once, one request at a time (the same audio the concurrent levels send)
    const s0 = performance.now();
    for (let k = 0; k < clips.length; k++) await transcribe(server.url, k);
    const single = (clips.length * seconds) / ((performance.now() - s0) / 1000);
    console.log(`layout ${layout}  ${clips.length} clips one at a time: ${single.toFixed(2)} audio s/s`);
    for (const n of levels) {
      const t0 = performance.now();
      const cpu0 = cpuSeconds(server.pid);
      const results = await Promise.all(Array.from({ length: n }, (_, k) => transcribe(server.url, k)));
      const wall = (performance.now() - t0) / 1000;
      const cpu = (cpuSeconds(server.pid) - cpu0) / (n * seconds);
      const throughput = (n * seconds) / wall;
      const latency = results.reduce((a, r) => a + r.seconds, 0) / n;
      rows.push({ layout, concurrent: n, wall, throughput, speedup: throughput / single, latency, cpu });
      console.log(
        `layout ${layout}  ${String(n).padStart(2)} concurrent: wall ${wall.toFixed(1).padStart(6)} s, ` +
          `${throughput.toFixed(2).padStart(6)} audio s/s (×${(throughput / single).toFixed(2)} of one at a time), ` +
          `mean latency ${latency.toFixed(1)} s, ${cpu.toFixed(3)} CPU s per audio s`,
      );
    }
  } finally {
    await server.stop();
  }
}
rmSync(dir, { recursive: true, force: true });
const best8 = rows.filter((r) => r.concurrent === Math.max(...levels));
console.log(
  `\n${Math.max(...levels)} concurrent vs 1, per layout: ${best8.map((r) => `${r.layout} ×${r.speedup.toFixed(2)}`).join(', ')} ` +
    `(goal ≥ ×1.6). Layouts with more than one job per worker batch the decoder across requests.`,
);
const cores = cpus().length;
for (const r of best8) {
  const one = rows.find((x) => x.layout === r.layout && x.concurrent === 1);
  console.log(
    `${r.layout}: CPU-bound ceiling on an idle ${cores}-core box ≈ ${(cores / r.cpu).toFixed(1)} audio s/s at ${r.concurrent} concurrent ` +
      `(${r.cpu.toFixed(3)} CPU s per audio s; 1 request used ${one ? one.cpu.toFixed(3) : '?'})`,
  );
}
