const { loadModel, decodeAudio, detectSpeech } = await import('/work/main/dist/index.js');
const audio = await decodeAudio('/work/shared/eval/longform_en/librispeech_test_other_3ch_concat.flac');
const w = await loadModel('/work/shared/models/whisper-base', { threads: 2 });
const r = await w.transcribeAll(audio, { language: 'en', batchSize: 8 });
for (const s of r.segments) if (s.start > 100 && s.start < 215) console.log(s.start.toFixed(2), s.end.toFixed(2), s.temperature, s.text);
