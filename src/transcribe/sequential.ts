import { FRAMES_PER_SECOND, HOP_LENGTH, N_FRAMES, N_SAMPLES, SAMPLE_RATE, logMelSpectrogram, melWindow } from '../audio/index.js';
import { addWordTimestamps, wordTimestampsUnsupported, type WindowSegment } from '../alignment/index.js';
import { WhisperError, throwIfAborted } from '../errors.js';
import { decodeWindow, detectLanguage, type DecodingResult } from '../decoding/decode.js';
import type { WindowDecoder } from '../decoding/window-batcher.js';
import type { WhisperModel } from '../model/whisper-model.js';
import type { ResolvedTranscribeOptions } from '../options.js';
import { ort } from '../runtime/session.js';
import { toLanguageCode } from '../tokenizer/index.js';
import type { Segment, TranscriptionInfo } from '../types.js';
import { decodeWithFallback } from './fallback.js';
import { tableDecodingOptions } from './window-options.js';
import { getEnd, skipHallucinations } from './hallucination.js';
import { convertSegmentScript, zhScriptConverter } from './zh-script.js';

export interface TranscribeProgress {
  /** Seconds of audio done. */
  done: number;
  /** Seconds of audio in all. */
  total: number;
}

export interface CallContext {
  signal?: AbortSignal | undefined;
  onProgress?: ((p: TranscribeProgress) => void) | undefined;
  /** Decodes a window instead of `decodeWindow` (a `WindowBatcher` shared by concurrent calls). */
  windowDecoder?: WindowDecoder | undefined;
}

export interface Transcription {
  info: TranscriptionInfo;
  /** Segments in time order, produced as the audio is decoded. */
  segments: AsyncGenerator<Segment, void, undefined>;
}

/** The language to decode with: the one asked for, or detected on the given window. */
async function chooseLanguage(
  model: WhisperModel,
  asked: string,
  hidden: () => Promise<ort.Tensor>,
): Promise<{ language: string; probability: number; probs?: Record<string, number> }> {
  if (!model.isMultilingual) {
    const code = asked === 'auto' ? 'en' : toLanguageCode(asked);
    if (code !== 'en') {
      throw new WhisperError('E_OPTIONS', `this model is English-only; language "${asked}" cannot be used`);
    }
    return { language: 'en', probability: 1 };
  }
  if (asked !== 'auto') {
    const code = toLanguageCode(asked);
    if (code === undefined || !model.tokenizer.languageToToken.has(code)) {
      throw new WhisperError('E_OPTIONS', `language "${asked}" is not supported by this model`);
    }
    return { language: code, probability: 1 };
  }
  const d = await detectLanguage(model, await hidden());
  return { language: d.language, probability: d.probability, probs: d.probs };
}

/**
 * openai/whisper transcribe.py transcribe: the sequential 30-s seek loop driven by timestamp tokens, with
 * condition-on-previous-text and temperature fallback. Returns the info first (language detection runs on the
 * first window) and the segments lazily.
 */
export async function transcribeSequential(
  model: WhisperModel,
  audio: Float32Array,
  o: ResolvedTranscribeOptions,
  ctx: CallContext = {},
): Promise<Transcription> {
  if (o.task === 'translate' && !model.isMultilingual) {
    throw new WhisperError('E_OPTIONS', 'this model is English-only and cannot translate');
  }
  if (o.wordTimestamps && !model.hasCrossAttentions) throw wordTimestampsUnsupported(model);
  throwIfAborted(ctx.signal);
  const mel = logMelSpectrogram(audio, model.config.nMels, N_SAMPLES);
  const contentFrames = mel.nFrames - N_FRAMES;
  const duration = audio.length / SAMPLE_RATE;
  const tk = model.tokenizer;
  const tb = tk.special.timestampBegin;
  const inputStride = N_FRAMES / model.config.nAudioCtx; // mel frames per encoder position: 2
  const timePrecision = (inputStride * HOP_LENGTH) / SAMPLE_RATE; // 0.02 s

  const encodeAt = async (seek: number, endFrame?: number): Promise<ort.Tensor> =>
    model.encode(melWindow(mel, seek, N_FRAMES, endFrame), 1, ctx.signal);

  let firstHidden: ort.Tensor | undefined;
  const lang = await chooseLanguage(model, o.language, async () => (firstHidden ??= await encodeAt(0)));
  const info: TranscriptionInfo = {
    language: lang.language,
    languageProbability: lang.probability,
    duration,
    task: o.task,
  };
  if (lang.probs) info.allLanguageProbs = lang.probs;

  const toScript = await zhScriptConverter(o.zhScript);
  // openai/whisper transcribe.py: clip_timestamps → (start, end) frame pairs, the last end defaulting to the end
  const seekPoints = o.clipTimestamps.map((t) => Math.round(t * FRAMES_PER_SECOND));
  if (seekPoints.length % 2 === 1) seekPoints.push(contentFrames);
  const seekClips: [number, number][] = [];
  for (let i = 0; i < seekPoints.length; i += 2) {
    seekClips.push([seekPoints[i] as number, Math.min(seekPoints[i + 1] as number, contentFrames)]);
  }

  async function* run(): AsyncGenerator<Segment, void, undefined> {
    let clipIdx = 0;
    let seek = seekClips[0]?.[0] ?? 0;
    const allTokens: number[] = [];
    let promptResetSince = 0;
    const initialPromptTokens = o.initialPrompt !== null ? tk.encode(' ' + o.initialPrompt.trim()) : [];
    allTokens.push(...initialPromptTokens);
    // openai/whisper transcribe.py: with carry_initial_prompt the rest of the prompt keeps to what is left of half the
    // text context
    const remainingPromptLength = Math.floor(model.config.nTextCtx / 2) - 1 - initialPromptTokens.length;
    const prefix = o.prefix !== null ? tk.encode(' ' + o.prefix.trim()) : [];
    const hotwords = o.hotwords !== null ? tk.encode(' ' + o.hotwords.trim()) : [];
    let firstWindow = true;
    let nextId = 0;
    // word timestamps: end of the last speech (openai's last_speech_timestamp) and of the last word reported
    let lastSpeechTimestamp = 0;
    let previousWordEnd = 0;
    while (clipIdx < seekClips.length) {
      throwIfAborted(ctx.signal);
      const [clipStart, clipEnd] = seekClips[clipIdx] as [number, number];
      if (seek < clipStart) seek = clipStart;
      if (seek >= clipEnd) {
        clipIdx++;
        if (clipIdx < seekClips.length) seek = (seekClips[clipIdx] as [number, number])[0];
        continue;
      }
      const windowSeek = seek;
      const timeOffset = (seek * HOP_LENGTH) / SAMPLE_RATE;
      const segmentSize = Math.min(N_FRAMES, contentFrames - seek, clipEnd - seek);
      const segmentDuration = (segmentSize * HOP_LENGTH) / SAMPLE_RATE;
      // a clip that ends inside the window: the audio after it must not reach the model (openai pads with zeros)
      const cut = clipEnd < contentFrames && clipEnd < seek + N_FRAMES;
      const hidden =
        seek === 0 && firstHidden && !cut ? firstHidden : await encodeAt(seek, cut ? seek + segmentSize : undefined);
      let language = lang.language;
      if (o.languageDetection === 'window' && o.language === 'auto' && model.isMultilingual && seek > 0) {
        language = (await detectLanguage(model, hidden)).language;
      }
      // openai/whisper transcribe.py carry_initial_prompt: the initial prompt, then the latest text that fits
      const prompt = o.carryInitialPrompt
        ? [
            ...initialPromptTokens,
            ...(remainingPromptLength > 0
              ? allTokens.slice(Math.max(initialPromptTokens.length, promptResetSince)).slice(-remainingPromptLength)
              : []),
          ]
        : allTokens.slice(promptResetSince);
      const windowPrefix = firstWindow ? prefix : [];
      firstWindow = false;
      const decodeOne: WindowDecoder = ctx.windowDecoder ?? ((h, options) => decodeWindow(model, h, options, ort));
      const result: DecodingResult = await decodeWithFallback(o, (temperature) =>
        decodeOne(
          hidden,
          {
            ...tableDecodingOptions(o),
            language,
            prompt,
            prefix: windowPrefix,
            hotwords,
            temperature,
            seed: o.seed + seek,
            signal: ctx.signal,
          },
        ),
      );
      // openai/whisper transcribe.py: skip a window the no-speech gate calls silent
      if (o.noSpeechThreshold !== null) {
        let skip = result.noSpeechProb > o.noSpeechThreshold;
        if (o.logprobThreshold !== null && result.avgLogprob > o.logprobThreshold) skip = false;
        if (skip) {
          seek += segmentSize;
          ctx.onProgress?.({ done: Math.min(duration, (seek * HOP_LENGTH) / SAMPLE_RATE), total: duration });
          continue;
        }
      }
      const tokens = result.tokens;
      const pieces: (WindowSegment & { tokens: number[] })[] = [];
      const isTs = tokens.map((t) => t >= tb);
      const singleTimestampEnding = isTs.length >= 2 && !isTs[isTs.length - 2] && isTs[isTs.length - 1] === true;
      const consecutive: number[] = [];
      for (let i = 1; i < tokens.length; i++) if (isTs[i - 1] && isTs[i]) consecutive.push(i);
      if (consecutive.length > 0) {
        const slices = [...consecutive];
        if (singleTimestampEnding) slices.push(tokens.length);
        let last = 0;
        for (const cur of slices) {
          const sliced = tokens.slice(last, cur);
          const startPos = (sliced[0] as number) - tb;
          const endPos = (sliced[sliced.length - 1] as number) - tb;
          pieces.push({
            start: timeOffset + startPos * timePrecision,
            end: timeOffset + endPos * timePrecision,
            tokens: sliced,
          });
          last = cur;
        }
        if (singleTimestampEnding) seek += segmentSize;
        else seek += ((tokens[last - 1] as number) - tb) * inputStride;
      } else {
        let dur = segmentDuration;
        const stamps = tokens.filter((t) => t >= tb);
        const lastStamp = stamps[stamps.length - 1];
        if (lastStamp !== undefined && lastStamp !== tb) dur = (lastStamp - tb) * timePrecision;
        pieces.push({ start: timeOffset, end: timeOffset + dur, tokens });
        seek += segmentSize;
      }
      if (o.wordTimestamps) {
        // openai/whisper transcribe.py: word timestamps for the window, then seek from the last word
        await addWordTimestamps(model, hidden, pieces, {
          language,
          task: o.task,
          numFrames: segmentSize,
          timeOffset,
          prependPunctuations: o.prependPunctuations,
          appendPunctuations: o.appendPunctuations,
          lastSpeechTimestamp,
          previousWordEnd,
          duration,
          signal: ctx.signal,
        });
        if (!singleTimestampEnding) {
          const lastWordEnd = getEnd(pieces);
          if (lastWordEnd !== undefined && lastWordEnd > timeOffset) seek = Math.round(lastWordEnd * FRAMES_PER_SECOND);
        }
        const threshold = o.hallucinationSilenceThreshold;
        if (threshold !== null) {
          const skip = skipHallucinations(pieces, {
            threshold,
            singleTimestampEnding,
            windowSeek,
            segmentSize,
            seek,
            contentFrames,
            lastSpeechTimestamp,
          });
          seek = skip.seek;
          if (skip.dropWindow) {
            // a possible hallucination after a long silence: skip the silence and decode again from its end
            ctx.onProgress?.({ done: Math.min(duration, (seek * HOP_LENGTH) / SAMPLE_RATE), total: duration });
            continue;
          }
          pieces.splice(skip.keep);
        }
        const lastWordEnd = getEnd(pieces);
        if (lastWordEnd !== undefined) lastSpeechTimestamp = lastWordEnd;
      }
      // a clip's audio ends at the clip: no segment runs past what the model heard
      const limit = cut ? Math.min(duration, (clipEnd * HOP_LENGTH) / SAMPLE_RATE) : duration;
      for (const p of pieces) {
        const text = tk.decode(p.tokens);
        allTokens.push(...p.tokens);
        // faster-whisper transcribe.py: instantaneous or empty segments are not reported
        if (p.start === p.end || text.trim() === '' || p.start >= limit) continue;
        const segment: Segment = {
          id: nextId++,
          seek: windowSeek,
          start: round3(p.start),
          end: round3(Math.min(p.end, limit)),
          text,
          tokens: p.tokens,
          avgLogprob: result.avgLogprob,
          noSpeechProb: result.noSpeechProb,
          compressionRatio: result.compressionRatio,
          temperature: result.temperature,
        };
        if (p.words) {
          segment.words = p.words;
          const lastWord = p.words[p.words.length - 1];
          if (lastWord !== undefined) previousWordEnd = lastWord.end;
        }
        // after an abort, the window's remaining segments are not handed out: the next read rejects
        throwIfAborted(ctx.signal);
        // the output script of Chinese, on the text and the words alike (the prompt keeps the model's own tokens)
        yield toScript && (language === 'zh' || language === 'yue') && o.task === 'transcribe'
          ? convertSegmentScript(segment, toScript)
          : segment;
      }
      if (!o.conditionOnPreviousText || result.temperature > o.promptResetOnTemperature) {
        promptResetSince = allTokens.length;
      }
      ctx.onProgress?.({ done: Math.min(duration, (seek * HOP_LENGTH) / SAMPLE_RATE), total: duration });
    }
    // the seek counts whole mel frames (10 ms): the last one may fall short of the audio's end
    if ((seek * HOP_LENGTH) / SAMPLE_RATE < duration) ctx.onProgress?.({ done: duration, total: duration });
  }
  return { info, segments: run() };
}

function round3(x: number): number {
  return Math.round(x * 1000) / 1000;
}
