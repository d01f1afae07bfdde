const { decodeAudio, getSpeechTimestamps, VAD_BATCHED_DEFAULTS } = await import('/work/main/dist/index.js');
const audio = await decodeAudio('/work/shared/eval/longform_en/librispeech_test_other_3ch_concat.flac');
const spans = await getSpeechTimestamps(audio, VAD_BATCHED_DEFAULTS);
console.log(spans.map((s) => `${(s.start / 16000).toFixed(2)}-${(s.end / 16000).toFixed(2)}`).join(' '));
const { planChunks } = await import('/work/main/dist/vad/chunks.js');
const plans = planChunks(spans, 30);
for (const p of plans) { const a = p.spans[0], b = p.spans.at(-1); console.log((a.start/16000).toFixed(2), (b.end/16000).toFixed(2), p.duration.toFixed(1)); }
