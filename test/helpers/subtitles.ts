/** Parses srt and vtt files back into cues (enough of both formats for what whisper-ts writes). */
export interface ParsedCue {
  start: number;
  end: number;
  text: string;
}

function seconds(stamp: string): number {
  const m = /^(?:(\d+):)?(\d{2}):(\d{2})[.,](\d{3})$/.exec(stamp.trim());
  if (!m) throw new Error(`bad timestamp ${JSON.stringify(stamp)}`);
  return Number(m[1] ?? 0) * 3600 + Number(m[2]) * 60 + Number(m[3]) + Number(m[4]) / 1000;
}

export function parseSubtitles(content: string): ParsedCue[] {
  const blocks = content.replace(/^WEBVTT[^\n]*\n/, '').split(/\n\n+/).filter((b) => b.trim() !== '');
  return blocks.map((block) => {
    const lines = block.split('\n');
    const at = lines.findIndex((l) => l.includes(' --> '));
    if (at < 0) throw new Error(`a cue without times: ${JSON.stringify(block)}`);
    const [a, b] = (lines[at] as string).split(' --> ');
    return { start: seconds(a ?? ''), end: seconds(b ?? ''), text: lines.slice(at + 1).join('\n').replace(/\n+$/, '') };
  });
}
