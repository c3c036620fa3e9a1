// The voicepipe browser page: microphone -> media WebSocket -> assistant audio, transcript,
// state and latency. The protocol is documented in voicepipe/serve/browser.py.
"use strict";

const PROTOCOL = "voicepipe.v1";
const TOKEN_PREFIX = "voicepipe.token.";
const FRAME_MS = 20;

const $ = (id) => document.getElementById(id);
const talk = $("talk");
const stateLabel = $("state");
const level = $("level");
const messageBox = $("message");
const transcript = $("transcript");
const latencyRows = $("latency").querySelector("tbody");

const STATES = { listening: "listening", user_speaking: "you are speaking", thinking: "thinking", speaking: "speaking" };

let call = null; // the call in progress

// The media token comes from the URL fragment (#token=...), which browsers never send.
function mediaToken() {
  const params = new URLSearchParams(location.hash.slice(1));
  return params.get("token") || "";
}

function showMessage(text) {
  messageBox.textContent = text;
  messageBox.hidden = !text;
}

function setState(state, label) {
  stateLabel.dataset.state = state;
  stateLabel.textContent = label || STATES[state] || state;
}

// -- transcript -----------------------------------------------------------------------------------

const lines = new Map(); // item_id -> {li, text}

function line(role, itemId) {
  const key = role + ":" + itemId;
  let entry = lines.get(key);
  if (!entry) {
    const li = document.createElement("li");
    li.className = role;
    li.dataset.itemId = itemId || "";
    const who = document.createElement("span");
    who.className = "who";
    who.textContent = role === "user" ? "you" : "assistant";
    const text = document.createElement("span");
    text.className = "text";
    li.append(who, text);
    transcript.append(li);
    entry = { li, text };
    lines.set(key, entry);
  }
  return entry;
}

// Each assistant delta is a span placed at the item's audio received before it, so a cut answer
// can grey out what the listener never heard.
function onTranscript(m, audioMs) {
  const entry = line(m.role, m.item_id);
  if (m.final) {
    if (entry.text.textContent !== m.text) entry.text.textContent = m.text;
  } else if (m.delta) {
    const span = document.createElement("span");
    span.textContent = m.delta;
    span.dataset.at = audioMs;
    entry.text.append(span);
  }
  entry.li.scrollIntoView({ block: "nearest" });
}

function onInterrupted(m) {
  const entry = lines.get("assistant:" + m.item_id);
  if (!entry) return;
  entry.li.classList.add("interrupted");
  entry.li.title = `heard ${Math.round(m.played_ms)} ms`;
  for (const span of entry.text.querySelectorAll("span[data-at]")) {
    if (Number(span.dataset.at) > m.played_ms) span.classList.add("unheard");
  }
}

function ms(value) {
  return value === null || value === undefined ? "–" : `${Math.round(value)} ms`;
}

function onLatency(m) {
  const row = document.createElement("tr");
  for (const cell of [latencyRows.children.length + 1, ms(m.voice_to_voice_ms), ms(m.server_first_audio_ms),
                      ms(m.playout_delay_ms), m.interrupted ? "interrupted" : ""]) {
    const td = document.createElement("td");
    td.textContent = cell;
    row.append(td);
  }
  latencyRows.append(row);
}

// -- the call -------------------------------------------------------------------------------------

class Call {
  constructor() {
    this.ws = null;
    this.opened = false;
    this.ended = false;
    this.contexts = [];
    this.stream = null;
    this.capture = null;
    this.player = null;
    this.items = new Map(); // item number -> item_id
    this.received = new Map(); // item_id -> audio frames received
    this.outputRate = 0;
    this.played = 0; // receipts sent, for tests and the curious
  }

  async start() {
    const token = mediaToken();
    const protocols = [PROTOCOL];
    if (token) {
      if (!/^[A-Za-z0-9!#$%&'*+\-.^_`|~]+$/.test(token)) {
        throw new Error("the media token in this link has characters a WebSocket cannot carry; ask for a new link");
      }
      protocols.push(TOKEN_PREFIX + token);
    }
    // the microphone first: the browser asks the user while nothing is connected yet
    this.stream = await navigator.mediaDevices.getUserMedia({
      audio: { echoCancellation: true, noiseSuppression: true, autoGainControl: true, channelCount: 1 },
    });
    const url = new URL("ws", location.href);
    url.protocol = location.protocol === "https:" ? "wss:" : "ws:";
    url.hash = "";
    this.ws = new WebSocket(url, protocols);
    this.ws.binaryType = "arraybuffer";
    this.ws.onopen = () => { this.opened = true; setState("connecting", "connecting…"); };
    this.ws.onmessage = (event) => this.onMessage(event.data);
    this.ws.onclose = (event) => this.onClose(event);
  }

  async onReady(m) {
    this.outputRate = m.output_rate;
    const output = new AudioContext({ sampleRate: m.output_rate, latencyHint: "interactive" });
    const input = m.input_rate === m.output_rate ? output : new AudioContext({ sampleRate: m.input_rate });
    this.contexts = input === output ? [output] : [output, input];
    await output.audioWorklet.addModule("static/playback-worklet.js");
    await input.audioWorklet.addModule("static/capture-worklet.js");
    this.player = new AudioWorkletNode(output, "voicepipe-playback", { outputChannelCount: [1] });
    this.player.port.onmessage = (event) => this.onPlayed(event.data);
    this.player.connect(output.destination);
    const source = input.createMediaStreamSource(this.stream);
    this.capture = new AudioWorkletNode(input, "voicepipe-capture", {
      numberOfOutputs: 0,
      processorOptions: { frameSamples: Math.round(m.input_rate * FRAME_MS / 1000) },
    });
    this.capture.port.onmessage = (event) => {
      if (this.ws.readyState === WebSocket.OPEN) this.ws.send(event.data.pcm);
      level.value = Math.min(1, event.data.level * 4);
    };
    source.connect(this.capture);
    for (const context of this.contexts) await context.resume();
    setState("listening");
  }

  onPlayed(receipt) {
    const itemId = this.items.get(receipt.item);
    if (itemId === undefined || this.ws.readyState !== WebSocket.OPEN) return;
    this.ws.send(JSON.stringify({ type: "played", item_id: itemId, ms: receipt.frames * 1000 / this.outputRate }));
    this.played++;
  }

  onMessage(data) {
    if (typeof data !== "string") {
      const item = new DataView(data).getUint32(0, true);
      const itemId = this.items.get(item);
      this.received.set(itemId, (this.received.get(itemId) || 0) + (data.byteLength - 4) / 2);
      if (this.player) this.player.port.postMessage({ type: "audio", item, buffer: data }, [data]);
      return;
    }
    const m = JSON.parse(data);
    switch (m.type) {
      case "ready": this.onReady(m).catch((err) => this.fail(`audio could not start: ${err.message}`)); break;
      case "item": this.items.set(m.n, m.item_id); break;
      case "clear": if (this.player) this.player.port.postMessage({ type: "clear" }); break;
      case "transcript": onTranscript(m, (this.received.get(m.item_id) || 0) * 1000 / (this.outputRate || 1)); break;
      case "interrupted": onInterrupted(m); break;
      case "state": setState(m.state); break;
      case "latency": onLatency(m); break;
      case "error": showMessage(m.message); break;
      case "ended": this.endReason = m.reason; break;
    }
  }

  async onClose(event) {
    if (this.ended) return;
    let why;
    if (!this.opened) {
      // a refused WebSocket tells the page nothing: ask the endpoint why, without the token
      why = await refusalReason(this.ws.url);
    } else if (this.endReason || event.reason) {
      why = `the call ended (${(this.endReason || event.reason).replace(/_/g, " ")})`;
    } else {
      why = `the connection dropped (code ${event.code}); press Talk to call again`;
    }
    this.stop();
    showMessage(why);
  }

  fail(text) {
    this.hangUp();
    showMessage(text);
  }

  hangUp() {
    if (this.ws && this.ws.readyState === WebSocket.OPEN) this.ws.send(JSON.stringify({ type: "hangup" }));
    this.stop();
  }

  stop() {
    if (this.ended) return;
    this.ended = true;
    if (this.ws && this.ws.readyState <= WebSocket.OPEN) this.ws.close(1000, "hangup");
    if (this.stream) for (const track of this.stream.getTracks()) track.stop();
    for (const context of this.contexts) context.close();
    level.value = 0;
    setState("idle", "not connected");
    talk.textContent = "Talk";
    talk.classList.remove("live");
    call = null;
  }
}

async function refusalReason(wsUrl) {
  const url = new URL(wsUrl);
  url.protocol = location.protocol;
  try {
    const response = await fetch(url, { cache: "no-store" });
    const body = await response.json().catch(() => ({}));
    if (body.error) return `the server refused the call: ${body.error}`;
    return `the server refused the call (HTTP ${response.status})`;
  } catch (err) {
    return "the server cannot be reached; check your connection and press Talk again";
  }
}

talk.addEventListener("click", async () => {
  if (call) {
    call.hangUp();
    return;
  }
  showMessage("");
  call = new Call();
  talk.textContent = "Hang up";
  talk.classList.add("live");
  try {
    await call.start();
  } catch (err) {
    const text = err.name === "NotAllowedError" ? "the microphone is blocked: allow it for this page and press Talk again" : err.message;
    if (call) call.fail(text);
  }
});

$("profile").textContent = decodeURIComponent(location.pathname.split("/").filter(Boolean).pop() || "");
window.voicepipe = { get call() { return call; } };
