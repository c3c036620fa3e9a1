// Microphone capture: float samples at the context's rate in, PCM16 frames of `frameSamples` out
// (transferred to the page, which sends them on the media WebSocket), with the frame's RMS level.
class CaptureProcessor extends AudioWorkletProcessor {
  constructor(options) {
    super();
    this.size = options.processorOptions.frameSamples;
    this.frame = new Int16Array(this.size);
    this.fill = 0;
    this.energy = 0;
  }

  process(inputs) {
    const channel = inputs[0] && inputs[0][0];
    if (!channel) return true;
    for (let i = 0; i < channel.length; i++) {
      let s = channel[i];
      s = s < -1 ? -1 : s > 1 ? 1 : s;
      this.energy += s * s;
      this.frame[this.fill++] = s < 0 ? s * 0x8000 : s * 0x7fff;
      if (this.fill === this.size) {
        const level = Math.sqrt(this.energy / this.size);
        this.port.postMessage({ pcm: this.frame.buffer, level }, [this.frame.buffer]);
        this.frame = new Int16Array(this.size);
        this.fill = 0;
        this.energy = 0;
      }
    }
    return true;
  }
}

registerProcessor("voicepipe-capture", CaptureProcessor);
