"""The audio plugin end to end against the emulator: a spoken turn from a WAV file, and a barge-in
that truncates where the output clock stopped, with the output WAV cut at the same place."""

import base64
import textwrap
import wave
from pathlib import Path

import numpy as np
import pytest

from voicepipe.audio.batching import ONSET_S

ROOT = Path(__file__).resolve().parent.parent
QUESTION = ROOT / "profiles" / "audio" / "question.wav"
RATE = 24000
CHUNK_MS = 20
LONG_ANSWER = (
    "The Caspian Sea is the largest lake in the world. It lies between Europe and Asia, it is "
    "bordered by five countries, and its water is about a third as salty as the ocean. Its area is "
    "about three hundred and seventy thousand square kilometres."
)


def question_samples() -> np.ndarray:
    with wave.open(str(QUESTION), "rb") as w:
        assert (w.getnchannels(), w.getsampwidth(), w.getframerate()) == (1, 2, RATE)
        return np.frombuffer(w.readframes(w.getnframes()), dtype="<i2")


def write_wav(path: Path, samples: np.ndarray) -> Path:
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(RATE)
        w.writeframes(samples.astype("<i2").tobytes())
    return path


def read_wav(path: Path) -> np.ndarray:
    with wave.open(str(path), "rb") as w:
        assert (w.getnchannels(), w.getsampwidth(), w.getframerate()) == (1, 2, RATE)
        return np.frombuffer(w.readframes(w.getnframes()), dtype="<i2")


def silence(seconds: float) -> np.ndarray:
    return np.zeros(int(RATE * seconds), dtype="<i2")


def write_profile(tmp_path: Path, *, input_file: Path, realtime_input: bool, speed: float, turns: str,
                  turn_detection: str = "{type: azure_semantic_vad, threshold: 0.3, silence_duration_ms: 300}") -> Path:
    scenario = tmp_path / "scenario.yaml"
    scenario.write_text(textwrap.dedent(turns))
    profile = tmp_path / "profile.yaml"
    profile.write_text(
        textwrap.dedent(
            f"""\
            connection:
              endpoint: emulator
              model: gpt-realtime
              emulator: {{scenario: {scenario}, speed: {speed}}}
            session:
              instructions: Answer briefly.
              modalities: [text, audio]
              voice: {{name: en-US-Ava:DragonHDLatestNeural, type: azure-standard}}
              input_audio_transcription: {{model: whisper-1}}
              turn_detection: {turn_detection}
            audio:
              chunk_ms: {CHUNK_MS}
              input: {{backend: wav, file: {input_file}, realtime: {str(realtime_input).lower()}, trailing_silence_ms: 1500}}
              output: {{backend: wav, file: "{{run_dir}}/output.wav"}}
            console: {{quiet: true}}
            metrics: {{table: false}}
            """
        )
    )
    return profile


def item_audio(result, item_id: str) -> np.ndarray:
    """Everything the client received for ``item_id``, in order."""
    deltas = [e["delta"] for e in result.server_events if e.get("type") == "response.audio.delta" and e.get("item_id") == item_id]
    return np.frombuffer(b"".join(base64.b64decode(d) for d in deltas), dtype="<i2")


def first_answer_item(result) -> str:
    return next(e["item_id"] for e in result.server_events if e.get("type") == "response.audio.delta")


def answer_start(timeline: np.ndarray, generated: np.ndarray) -> int:
    """Where the answer begins in the output file (the answer may itself begin with silence)."""
    return max(int(np.flatnonzero(timeline)[0]) - int(np.flatnonzero(generated)[0]), 0)


def played_extent(timeline: np.ndarray, start: int, generated: np.ndarray) -> tuple[int, int]:
    """How much of ``generated`` the output file holds from ``start`` on, allowing silent gaps the
    clock inserted while waiting for audio. Returns (low, high) sample counts: the file's zeros after
    the last matching non-zero sample could be the answer's own silence or the cut."""
    i, k, last_loud = start, 0, 0
    while i < len(timeline) and k < len(generated):
        if timeline[i] == generated[k]:
            if generated[k] != 0:
                last_loud = k + 1
            k += 1
        elif timeline[i] != 0:
            break  # something else plays here: the next answer
        i += 1
    run = 0
    while last_loud + run < len(generated) and generated[last_loud + run] == 0:
        run += 1
    return last_loud, last_loud + run


def test_a_spoken_turn_from_a_wav_file(voicepipe_run, tmp_path):
    turns = """\
        turns:
          - user: What is the largest lake in the world?
            assistant: The Caspian Sea.
        """
    profile = write_profile(tmp_path, input_file=QUESTION, realtime_input=False, speed=0, turns=turns)
    result = voicepipe_run(profile)

    assert result.exit_code == 0 and result.reason == "input_finished"
    appends = [base64.b64decode(e["audio"]) for e in result.client_events if e["type"] == "input_audio_buffer.append"]
    sent = np.frombuffer(b"".join(appends), dtype="<i2")
    question = question_samples()
    assert np.array_equal(sent[: len(question)], question)  # the file, unchanged
    assert len(sent) == len(question) + int(1.5 * RATE) and not sent[len(question):].any()  # + trailing silence
    chunk = RATE * CHUNK_MS // 1000 * 2
    # the start of the question chunk by chunk, then steady audio 100 ms at a time (voicepipe.audio.batching)
    sizes = [len(a) for a in appends]
    assert sizes[: int(ONSET_S * 1000 / CHUNK_MS)] == [chunk] * int(ONSET_S * 1000 / CHUNK_MS)
    assert 5 * chunk in sizes and all(size % chunk == 0 and size <= 6 * chunk for size in sizes[:-1])

    item = first_answer_item(result)
    generated = item_audio(result, item)
    playback = [p for p in result.playback if p["item_id"] == item]
    assert [p["type"] for p in playback] == ["playback.started", "playback.finished"]
    finished = playback[1]
    assert finished["generated_ms"] == pytest.approx(len(generated) / RATE * 1000, abs=0.1)
    assert finished["played_ms"] == finished["generated_ms"]
    assert "conversation.item.truncate" not in result.client_types()

    timeline = read_wav(result.run_dir / "output.wav")
    start = answer_start(timeline, generated)
    low, high = played_extent(timeline, start, generated)
    assert high == len(generated)  # the whole answer, as received
    assert not timeline[start + len(generated) + RATE // 10 :].any()  # then nothing more


@pytest.mark.parametrize("auto_truncate", [False, True], ids=["client-truncate", "auto-truncate"])
def test_barge_in_truncates_where_playback_stopped(voicepipe_run, tmp_path, auto_truncate):
    question = question_samples()
    interruption = question[int(0.3 * RATE) : int(1.8 * RATE)]
    spoken = np.concatenate([question, silence(1.5), interruption, silence(0.5)])
    input_file = write_wav(tmp_path / "conversation.wav", spoken)
    turns = f"""\
        turns:
          - user: What is the largest lake in the world?
            assistant: {LONG_ANSWER}
          - user: Thanks, that is enough.
            assistant: Okay.
        """
    detection = "{type: azure_semantic_vad, threshold: 0.3, silence_duration_ms: 300"
    detection += ", auto_truncate: true}" if auto_truncate else "}"
    # speed 2: the answer is generated twice as fast as it plays, so it is still being generated
    # when the user speaks (the service cancels it) and the output never waits for audio
    profile = write_profile(tmp_path, input_file=input_file, realtime_input=True, speed=2, turns=turns,
                            turn_detection=detection)
    result = voicepipe_run(profile, realtime=True)  # barge-in timing needs real pacing

    assert result.exit_code == 0 and result.reason == "input_finished"
    assert "error" not in result.server_types()
    assert "response.cancel" not in result.client_types()  # the service cancelled by itself
    item = first_answer_item(result)
    cancelled = [e for e in result.server_events if e.get("type") == "response.done"
                 and e["response"]["status"] == "cancelled"]
    assert cancelled, "the answer was still being generated at the barge-in"

    interrupted = [p for p in result.playback if p["type"] == "playback.interrupted"]
    assert [p["item_id"] for p in interrupted] == [item]
    played_ms = interrupted[0]["played_ms"]
    generated = item_audio(result, item)
    assert 300 < played_ms < len(generated) / RATE * 1000  # cut in the middle

    truncates = [e for e in result.client_events if e["type"] == "conversation.item.truncate"]
    if auto_truncate:
        assert truncates == [] and "conversation.item.delete" not in result.client_types()
    else:
        assert truncates == [{"type": "conversation.item.truncate", "item_id": item, "content_index": 0,
                              "audio_end_ms": int(played_ms)}]
        truncated = [e for e in result.server_events if e.get("type") == "conversation.item.truncated"]
        assert [(e["item_id"], e["audio_end_ms"]) for e in truncated] == [(item, int(played_ms))]

    # the output file holds the answer up to the cut, then silence: what the listener heard
    timeline = read_wav(result.run_dir / "output.wav")
    start = answer_start(timeline, generated)
    low, high = played_extent(timeline, start, generated)
    chunk = RATE * CHUNK_MS // 1000
    played_samples = played_ms / 1000 * RATE
    assert low - chunk <= played_samples <= high + chunk, (low, high, played_samples)
    loud_in_file = np.flatnonzero(timeline[start:])
    cut = start + int(loud_in_file[np.count_nonzero(generated[:low]) - 1]) + 1
    assert not timeline[cut : cut + RATE // 5].any()  # nothing of the interrupted answer after the cut
