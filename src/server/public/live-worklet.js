// The microphone's samples as 16 kHz mono 16-bit PCM, posted in 100-ms blocks (the live half of the page sends them
// to the WebSocket). The page asks for a 16 kHz AudioContext; where the browser runs another rate, samples are
// resampled here by linear interpolation.
const RATE = 16000;
const BLOCK = 1600;

class PcmCapture extends AudioWorkletProcessor {
  constructor() {
    super();
    this.block = new Int16Array(BLOCK);
    this.filled = 0;
    this.step = sampleRate / RATE; // input samples per output sample
    this.position = 0; // where the next output sample falls, in input samples from the current quantum's start
    this.last = 0; // the previous quantum's last sample
  }

  emit(x) {
    const s = Math.max(-1, Math.min(1, x));
    this.block[this.filled++] = s < 0 ? s * 32768 : s * 32767;
    if (this.filled === BLOCK) {
      this.port.postMessage(this.block.buffer, [this.block.buffer]);
      this.block = new Int16Array(BLOCK);
      this.filled = 0;
    }
  }

  process(inputs) {
    const input = inputs[0]?.[0];
    if (!input) return true;
    if (this.step === 1) {
      for (let i = 0; i < input.length; i++) this.emit(input[i]);
      return true;
    }
    while (this.position < input.length - 1) {
      const i = Math.floor(this.position);
      const f = this.position - i;
      const a = i < 0 ? this.last : input[i];
      this.emit(a + (input[i + 1] - a) * f);
      this.position += this.step;
    }
    this.position -= input.length;
    this.last = input[input.length - 1];
    return true;
  }
}

registerProcessor('pcm-capture', PcmCapture);
