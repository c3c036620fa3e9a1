// Assistant audio: PCM16 chunks tagged with their item number in, played in order; reports how
// many frames of each item it actually rendered (the played clock the server truncates at).
const REPORT_EVERY = 4; // render quanta between receipts while an item plays (~21 ms at 24 kHz)

class PlaybackProcessor extends AudioWorkletProcessor {
  constructor() {
    super();
    this.queue = []; // {item, pcm: Int16Array, offset}
    this.played = new Map(); // item -> frames rendered
    this.current = null; // item playing now
    this.sinceReport = 0;
    this.port.onmessage = (event) => {
      const m = event.data;
      if (m.type === "audio") {
        this.queue.push({ item: m.item, pcm: new Int16Array(m.buffer, 4), offset: 0 });
      } else if (m.type === "clear") {
        this.queue = [];
        if (this.current !== null) this.report(this.current);
        this.current = null;
      }
    };
  }

  report(item) {
    this.port.postMessage({ item, frames: this.played.get(item) || 0 });
    this.sinceReport = 0;
  }

  process(inputs, outputs) {
    const out = outputs[0][0];
    let i = 0;
    while (i < out.length && this.queue.length) {
      const chunk = this.queue[0];
      if (chunk.item !== this.current) {
        if (this.current !== null) this.report(this.current);
        this.current = chunk.item;
        this.sinceReport = REPORT_EVERY; // the first receipt of an item goes at once
        this.played.delete(chunk.item - 64); // items long finished
      }
      const n = Math.min(out.length - i, chunk.pcm.length - chunk.offset);
      for (let k = 0; k < n; k++) out[i + k] = chunk.pcm[chunk.offset + k] / 0x8000;
      chunk.offset += n;
      i += n;
      this.played.set(chunk.item, (this.played.get(chunk.item) || 0) + n);
      if (chunk.offset >= chunk.pcm.length) this.queue.shift();
    }
    for (; i < out.length; i++) out[i] = 0;
    if (this.current !== null) {
      if (++this.sinceReport >= REPORT_EVERY || !this.queue.length) {
        this.report(this.current);
        if (!this.queue.length) this.current = null;
      }
    }
    return true;
  }
}

registerProcessor("voicepipe-playback", PlaybackProcessor);
