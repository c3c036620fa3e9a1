"""What each profile key means and what happens when it is not set, keyed by its path.

The specs in :mod:`voicepipe.profile.schema` say what a key accepts; this table says what it does.
Paths are dotted; ``[]`` stands for every item of a list (``session.tools[].name``). A key that
several variants share (``session.voice.name`` for every voice type) has one entry. Each entry is
``(default, meaning)``: the default is what voicepipe does with the key absent, in words ("not
set" when nothing is sent or done; keys under ``session:`` that are not set are left to the
service, whose documented default the meaning gives where it is known).

``tests/test_profile_reference.py`` fails for a key the schema knows and this table does not (and
for an entry no key has), and checks the defaults here against the constants the code applies.
:mod:`voicepipe.profile.reference` turns the table into ``docs/profile-reference.md`` and the
descriptions of ``voicepipe schema``.
"""

from __future__ import annotations

NOT_SET = "not set"

#: keys handled before validation (not in the schema's sections)
TOP_LEVEL: dict[str, tuple[str, str]] = {
    "extends": (NOT_SET, "A profile (or a list of them) this one is laid over: later keys win, lists are "
                         "replaced. A path relative to this file, or `builtin:NAME` for a shipped profile."),
}

DOCS: dict[str, tuple[str, str]] = {
    # -- connection --------------------------------------------------------------------------------
    "connection": (NOT_SET, "Where and how to connect. Keys and tokens are never written here: they come "
                            "from the environment (`AZURE_VOICELIVE_API_KEY`) or Entra ID."),
    "connection.endpoint": (NOT_SET, "The Voice Live resource URL (`https://<resource>.services.ai.azure.com/`), "
                                     "a local emulator's URL, or `emulator` for the embedded local emulator. "
                                     "Not set is an error when a session starts."),
    "connection.model": (NOT_SET, "The realtime model to connect to (`gpt-realtime`, `gpt-4o-mini-realtime-preview`, "
                                  "...). A session needs a model or an agent, not both."),
    "connection.api_version": (NOT_SET, "The API version to ask for; the SDK's default when not set."),
    "connection.auth": ("`api-key` when AZURE_VOICELIVE_API_KEY is set or the endpoint is local, else `entra`",
                        "How to authenticate: `api-key` (the key from AZURE_VOICELIVE_API_KEY) or `entra` "
                        "(Entra ID through azure-identity: `az login`, a managed identity, ...)."),
    "connection.credential_scopes": ("the SDK's scope (`https://ai.azure.com/.default`)",
                                     "Entra ID token scopes, for `auth: entra`."),
    "connection.agent": (NOT_SET, "Connect to an Azure AI Foundry agent instead of a model: the agent owns its "
                                  "model, instructions and tools."),
    "connection.agent.name": (NOT_SET, "The agent's name (required)."),
    "connection.agent.project": (NOT_SET, "The Foundry project that holds the agent (required)."),
    "connection.agent.version": (NOT_SET, "The agent version; the latest when not set."),
    "connection.agent.conversation_id": (NOT_SET, "Continue an existing agent conversation (thread)."),
    "connection.agent.authentication_identity_client_id": (NOT_SET, "The client id of the managed identity the "
                                                                    "service uses to call the agent."),
    "connection.agent.foundry_resource_override": (NOT_SET, "The Foundry resource that holds the agent, when it "
                                                            "is not the Voice Live resource."),
    "connection.connect_timeout_s": ("15", "Seconds to wait for the connection to open."),
    "connection.session_timeout_s": ("15", "Seconds to wait for the answer (`session.updated`) to the "
                                           "`session.update` voicepipe sends when connected."),
    "connection.reconnect": (NOT_SET, "What to do when the connection drops (any close but a normal one): connect "
                                      "again with exponential backoff and jitter, send the session again and "
                                      "re-seed the conversation."),
    "connection.reconnect.attempts": ("5", "Connection attempts within `window_s` before the session fails "
                                           "(exit code 1); 0 turns reconnecting off."),
    "connection.reconnect.window_s": ("300", "Seconds an attempt counts against `attempts`: a connection that "
                                             "keeps failing soon after it is configured still runs out of attempts, "
                                             "and the backoff grows with each attempt in the window."),
    "connection.response_timeout_s": ("30", "A response in progress from which no server event arrives for this "
                                            "many seconds is taken for a lost connection (a stalled server that "
                                            "still answers pings)."),
    "connection.reconnect.initial_delay_s": ("0.5", "Seconds before the first attempt; the delay doubles each "
                                                    "attempt up to `max_delay_s`, drawn from its upper half."),
    "connection.reconnect.max_delay_s": ("15", "The longest delay between two attempts, in seconds."),
    "connection.reconnect.history_items": ("20", "The newest transcript turns re-sent to a new connection "
                                                 "(0: none)."),
    "connection.reconnect.history_chars": ("8000", "At most this many characters of transcript are re-sent."),
    "connection.reconnect.buffer_audio_s": ("0", "Seconds of microphone audio from the gap kept and sent once "
                                                 "connected again (the newest; the rest is dropped)."),
    "connection.emulator": (NOT_SET, "Settings of the embedded emulator (`endpoint: emulator`)."),
    "connection.emulator.scenario": ("the emulator's built-in answers",
                                     "A scenario file (turns, tool calls, faults) the emulator follows, "
                                     "relative to the profile."),
    "connection.emulator.speed": ("4 (after the burst)", "How fast answers are generated, times real time; 0 "
                                                        "unpaced. Set alone (no `burst_ms`) it is the older mode: "
                                                        "the whole conversation N times faster, no burst."),
    "connection.emulator.burst_ms": ("1000", "Milliseconds of each answer sent at once before `speed` applies, "
                                             "like the service."),
    # -- session -------------------------------------------------------------------------------------
    "session": (NOT_SET, "The session configuration, sent as `session.update` (the SDK's `RequestSession`). "
                         "Keys not set are left out, never sent as null: the service's defaults apply."),
    "session.model": (NOT_SET, "The model, for services that take it in the session (usually "
                               "`connection.model` is what counts)."),
    "session.instructions": (NOT_SET, "The system instructions: how the assistant behaves."),
    "session.modalities": (NOT_SET, "What the assistant answers with (the service's default: text and audio)."),
    "session.voice": (NOT_SET, "The voice that speaks the answers: an OpenAI voice name, or a mapping with a "
                               "`type` (`azure-standard` for Azure voices such as "
                               "`en-US-Ava:DragonHDLatestNeural`)."),
    "session.voice.type": (NOT_SET, "The kind of voice; it decides which other keys apply (required in a "
                                    "mapping)."),
    "session.voice.name": (NOT_SET, "The voice's name (required except for `avatar-voice-sync`)."),
    "session.voice.endpoint_id": (NOT_SET, "The custom voice's deployment id (required for `azure-custom`)."),
    "session.voice.model": (NOT_SET, "The personal voice model (required for `azure-personal` and "
                                     "`avatar-voice-sync`)."),
    "session.voice.temperature": (NOT_SET, "How varied the HD voice's delivery is, 0 to 1."),
    "session.voice.custom_lexicon_url": (NOT_SET, "The URL of a custom lexicon file (pronunciations)."),
    "session.voice.custom_text_normalization_url": (NOT_SET, "The URL of custom text normalization rules."),
    "session.voice.prefer_locales": (NOT_SET, "Preferred locales (BCP-47), which change the accent of languages."),
    "session.voice.locale": (NOT_SET, "The locale the voice speaks in (BCP-47)."),
    "session.voice.style": (NOT_SET, "A speaking style of the voice (`cheerful`, ...)."),
    "session.voice.pitch": (NOT_SET, "Pitch, as SSML takes it (`+5%`, `high`, ...)."),
    "session.voice.rate": (NOT_SET, "Speaking rate, as SSML takes it (`1.2`, `fast`, ...)."),
    "session.voice.volume": (NOT_SET, "Volume, as SSML takes it (`+10%`, `loud`, ...)."),
    "session.input_audio_format": (NOT_SET, "The format of the audio voicepipe sends (the service's default: "
                                            "pcm16)."),
    "session.input_audio_sampling_rate": (NOT_SET, "The input sample rate in Hz (the service's default: 24000; "
                                                   "G.711 is 8000)."),
    "session.output_audio_format": (NOT_SET, "The format of the answers' audio (the service's default: pcm16, "
                                             "24 kHz)."),
    "session.turn_detection": (NOT_SET, "How the service decides the user has finished speaking (the service's "
                                        "default: server_vad). null: manual turns, committed by the client."),
    "session.turn_detection.type": (NOT_SET, "The detector (required): `server_vad` (energy), "
                                             "`azure_semantic_vad` and its `_en` / `_multilingual` variants."),
    "session.turn_detection.threshold": (NOT_SET, "Speech probability needed to count as speech, 0 to 1 (the "
                                                  "service's default: 0.5)."),
    "session.turn_detection.prefix_padding_ms": (NOT_SET, "Audio before the detected speech kept in the turn "
                                                          "(the service's default: 400 for server_vad, 420 for "
                                                          "Azure semantic VAD)."),
    "session.turn_detection.silence_duration_ms": (NOT_SET, "Silence that ends a turn, in milliseconds (the "
                                                            "service's default: 500)."),
    "session.turn_detection.speech_duration_ms": (NOT_SET, "Speech needed before a turn starts, in milliseconds "
                                                           "(the service's default: 200 for server_vad, 80 for "
                                                           "Azure semantic VAD)."),
    "session.turn_detection.end_of_utterance_detection": (NOT_SET, "A semantic end-of-utterance model that waits "
                                                                   "when the words so far do not end a sentence."),
    "session.turn_detection.end_of_utterance_detection.model": (NOT_SET, "The end-of-utterance model (required)."),
    "session.turn_detection.end_of_utterance_detection.threshold_level": (NOT_SET, "How sure the model must be "
                                                                                   "(the service's default: "
                                                                                   "`default`)."),
    "session.turn_detection.end_of_utterance_detection.timeout_ms": (NOT_SET, "The longest wait for the end of an "
                                                                              "utterance, in milliseconds (the "
                                                                              "service's default: 1000)."),
    "session.turn_detection.end_of_utterance_detection.threshold": (NOT_SET, "The quickstart's threshold, 0 to 1 "
                                                                             "(a service field the SDK lacks)."),
    "session.turn_detection.end_of_utterance_detection.timeout": (NOT_SET, "The quickstart's timeout in seconds (a "
                                                                           "service field the SDK lacks)."),
    "session.turn_detection.remove_filler_words": (NOT_SET, "Ignore filler words (um, uh) when detecting turns "
                                                            "(the service's default: false)."),
    "session.turn_detection.languages": (NOT_SET, "Languages the semantic detector listens for (multilingual "
                                                  "detectors: en, es, fr, it, de, ja, pt, zh, ko, hi)."),
    "session.turn_detection.auto_truncate": (NOT_SET, "The service truncates an interrupted answer itself (the "
                                                      "service's default: false); voicepipe then does not send "
                                                      "its own truncation."),
    "session.turn_detection.create_response": (NOT_SET, "Answer automatically at the end of a turn (the service's "
                                                        "default: true)."),
    "session.turn_detection.interrupt_response": (NOT_SET, "The user's speech interrupts an answer (the service's "
                                                           "default: true); when false voicepipe cancels the "
                                                           "response itself on barge-in."),
    "session.turn_detection.idle_timeout_ms": (NOT_SET, "Milliseconds of silence after which the service asks for "
                                                        "an answer anyway (a service field the SDK lacks)."),
    "session.turn_detection.eagerness": (NOT_SET, "How quickly semantic detection ends a turn (a service field the "
                                                  "SDK lacks)."),
    "session.turn_detection.neg_threshold": (NOT_SET, "The probability below which audio counts as silence again "
                                                      "(a service field the SDK lacks)."),
    "session.turn_detection.window_size": (NOT_SET, "The detector's window, in frames (a service field the SDK "
                                                    "lacks)."),
    "session.turn_detection.speech_duration_assistant_speaking_ms": (NOT_SET, "Speech needed to interrupt while "
                                                                              "the assistant speaks, in "
                                                                              "milliseconds (a service field the "
                                                                              "SDK lacks)."),
    "session.turn_detection.profile": (NOT_SET, "A detector profile name (a service field the SDK lacks)."),
    "session.turn_detection.distinct_ci_phones": (NOT_SET, "Distinct phones needed to count as speech (a service "
                                                           "field the SDK lacks)."),
    "session.turn_detection.require_vowel": (NOT_SET, "Count only speech with a vowel (a service field the SDK "
                                                      "lacks)."),
    "session.turn_detection.require_vowel_assistant_speaking": (NOT_SET, "The same while the assistant speaks (a "
                                                                         "service field the SDK lacks)."),
    "session.turn_detection.appended_text_after_truncation": (NOT_SET, "Text the service appends to a truncated "
                                                                       "answer (a service field the SDK lacks)."),
    "session.turn_detection.extra": (NOT_SET, "Turn detection fields voicepipe does not know yet, sent verbatim "
                                              "(a known field here is an error: set it in its own place)."),
    "session.input_audio_noise_reduction": (NOT_SET, "Noise suppression on the input (null: off)."),
    "session.input_audio_noise_reduction.type": (NOT_SET, "`azure_deep_noise_suppression`, or the OpenAI-style "
                                                          "`near_field` / `far_field` (required)."),
    "session.input_audio_echo_cancellation": (NOT_SET, "Server echo cancellation: removes the assistant's voice "
                                                       "from the microphone signal (null: off)."),
    "session.input_audio_echo_cancellation.type": (NOT_SET, "`server_echo_cancellation`."),
    "session.input_audio_echo_cancellation.reference_source": (NOT_SET, "Where the echo reference comes from: the "
                                                                        "audio the server sent (the service's "
                                                                        "default: `server`) or a second input "
                                                                        "channel (`client`)."),
    "session.input_audio_echo_cancellation.channels": (NOT_SET, "Input channels: 2 carries the played signal on "
                                                                "the second (needs `reference_source: client` and "
                                                                "pcm16; `audio.echo_reference: true` sets this up)."),
    "session.input_audio_transcription": (NOT_SET, "Transcribe the user's speech (the transcript and console then "
                                                   "show the user's words); null: off."),
    "session.input_audio_transcription.model": (NOT_SET, "The transcription model (required)."),
    "session.input_audio_transcription.language": (NOT_SET, "The spoken language (`en-US`, `en`, or `en,zh` to "
                                                            "detect among several)."),
    "session.input_audio_transcription.phrase_list": (NOT_SET, "Phrases to bias recognition towards."),
    "session.input_audio_transcription.custom_speech": (NOT_SET, "Custom speech models by locale "
                                                                 "(`{en-US: <endpoint id>}`)."),
    "session.input_audio_transcription.prompt": (NOT_SET, "A prompt for the OpenAI transcription models."),
    "session.output_audio_timestamp_types": (NOT_SET, "Timestamps sent with the answers' audio (`word`)."),
    "session.tools": (NOT_SET, "Tools the model may call: functions (run by voicepipe, see `tools:`) and MCP "
                               "servers (run by the service)."),
    "session.tools[].type": (NOT_SET, "`function` or `mcp` (required)."),
    "session.tools[].name": (NOT_SET, "The function's name (required for a function)."),
    "session.tools[].description": (NOT_SET, "What the function does, for the model."),
    "session.tools[].parameters": (NOT_SET, "The function's arguments as a JSON schema (checked at validation)."),
    "session.tools[].server_label": (NOT_SET, "The MCP server's label (required for mcp)."),
    "session.tools[].server_url": (NOT_SET, "The MCP server's URL (required for mcp)."),
    "session.tools[].authorization": (NOT_SET, "The MCP server's authorization header value; use `${VAR}` so it "
                                               "stays out of the file."),
    "session.tools[].headers": (NOT_SET, "Extra HTTP headers for the MCP server."),
    "session.tools[].allowed_tools": (NOT_SET, "The MCP server's tools the model may call (all when not set)."),
    "session.tools[].require_approval": (NOT_SET, "Whether MCP calls need the client's approval: `never`, "
                                                  "`always`, or per tool."),
    "session.tools[].require_approval.never": (NOT_SET, "MCP tools that never need approval."),
    "session.tools[].require_approval.always": (NOT_SET, "MCP tools that always need approval."),
    "session.tool_choice": (NOT_SET, "Which tools the model may call: `auto`, `none`, `required`, or one function "
                                     "(the service's default: auto)."),
    "session.tool_choice.type": (NOT_SET, "`function`."),
    "session.tool_choice.name": (NOT_SET, "The function the model must call."),
    "session.parallel_tool_calls": (NOT_SET, "Whether the model may call several tools in one response."),
    "session.temperature": (NOT_SET, "The model's sampling temperature (the service's default: 0.7)."),
    "session.max_response_output_tokens": (NOT_SET, "The most tokens an answer may have (the service's default: "
                                                    "`inf`)."),
    "session.reasoning_effort": (NOT_SET, "How much reasoning models reason (check the model's documentation)."),
    "session.interim_response": (NOT_SET, "Something to say while the answer or a tool call takes long."),
    "session.interim_response.type": (NOT_SET, "`static_interim_response` (fixed texts) or "
                                               "`llm_interim_response` (generated)."),
    "session.interim_response.triggers": (NOT_SET, "What triggers it: `latency`, `tool` (any of them)."),
    "session.interim_response.latency_threshold_ms": (NOT_SET, "Milliseconds of waiting before it triggers (the "
                                                               "service's default: 2000)."),
    "session.interim_response.texts": (NOT_SET, "The texts to say (static)."),
    "session.interim_response.model": (NOT_SET, "The model that writes it (generated; the service's default: "
                                                "gpt-4.1-mini)."),
    "session.interim_response.instructions": (NOT_SET, "Instructions for writing it (generated)."),
    "session.interim_response.max_completion_tokens": (NOT_SET, "The most tokens it may have (generated)."),
    "session.include": (NOT_SET, "Extra data in the service's events (transcription logprobs or phrases, file "
                                 "search results)."),
    "session.metadata": (NOT_SET, "Up to 16 key-value strings attached to the session (in the Foundry resource "
                                  "logs; keys up to 64 characters, values up to 512)."),
    "session.animation": (NOT_SET, "Animation output (blend shapes, viseme ids) for an avatar of your own."),
    "session.animation.model_name": (NOT_SET, "The animation model."),
    "session.animation.outputs": (NOT_SET, "What to send: `blendshapes`, `viseme_id`."),
    "session.avatar": (NOT_SET, "A talking avatar streamed by the service."),
    "session.avatar.type": (NOT_SET, "`video-avatar` or `photo-avatar`."),
    "session.avatar.character": (NOT_SET, "The avatar character's name or id (required)."),
    "session.avatar.style": (NOT_SET, "The avatar's style."),
    "session.avatar.model": (NOT_SET, "The base model (photo avatars: `vasa-1`)."),
    "session.avatar.customized": (NOT_SET, "Whether the avatar is a custom one."),
    "session.avatar.ice_servers": (NOT_SET, "ICE servers for the WebRTC connection."),
    "session.avatar.ice_servers[].urls": (NOT_SET, "The server's URL or URLs (required)."),
    "session.avatar.ice_servers[].username": (NOT_SET, "The server's user name."),
    "session.avatar.ice_servers[].credential": (NOT_SET, "The server's credential; use `${VAR}`."),
    "session.avatar.video": (NOT_SET, "The avatar's video stream."),
    "session.avatar.video.bitrate": (NOT_SET, "Bits per second."),
    "session.avatar.video.codec": (NOT_SET, "`h264`."),
    "session.avatar.video.crop": (NOT_SET, "The part of the frame to send."),
    "session.avatar.video.crop.top_left": (NOT_SET, "The crop's top-left corner, `[x, y]` in pixels."),
    "session.avatar.video.crop.bottom_right": (NOT_SET, "The crop's bottom-right corner, `[x, y]` in pixels."),
    "session.avatar.video.resolution": (NOT_SET, "The frame size."),
    "session.avatar.video.resolution.width": (NOT_SET, "Width in pixels."),
    "session.avatar.video.resolution.height": (NOT_SET, "Height in pixels."),
    "session.avatar.video.background": (NOT_SET, "The background behind the avatar."),
    "session.avatar.video.background.color": (NOT_SET, "A color (`#00FF00FF`)."),
    "session.avatar.video.background.image_url": (NOT_SET, "An image's URL."),
    "session.avatar.video.gop_size": (NOT_SET, "Frames between two key frames."),
    "session.avatar.scene": (NOT_SET, "The avatar's zoom, position, rotation and movement (photo avatars)."),
    "session.avatar.scene.zoom": (NOT_SET, "Zoom."),
    "session.avatar.scene.position_x": (NOT_SET, "Horizontal position."),
    "session.avatar.scene.position_y": (NOT_SET, "Vertical position."),
    "session.avatar.scene.rotation_x": (NOT_SET, "Rotation about the x axis."),
    "session.avatar.scene.rotation_y": (NOT_SET, "Rotation about the y axis."),
    "session.avatar.scene.rotation_z": (NOT_SET, "Rotation about the z axis."),
    "session.avatar.scene.amplitude": (NOT_SET, "How much the avatar moves."),
    "session.avatar.output_protocol": (NOT_SET, "How the avatar is streamed (the service's default: `webrtc`)."),
    "session.avatar.output_audit_audio": (NOT_SET, "Also send the avatar's audio over the WebSocket, for review."),
    "session.extra": (NOT_SET, "Session fields voicepipe does not know yet, sent verbatim (a known field here is "
                               "an error: set it in its own place)."),
    # -- audio ---------------------------------------------------------------------------------------
    "audio": (NOT_SET, "Where the user's audio comes from and the answers go (the built-in `audio` plugin)."),
    "audio.chunk_ms": ("20", "The length of each input chunk sent, in milliseconds."),
    "audio.batch_ms": ("100", "Steady input is sent in appends this long (milliseconds) instead of one per "
                              "chunk: a silence after its first second, a sound after its first half second "
                              "unless an answer is in progress. The rest leaves chunk by chunk, with what "
                              "waited before it. 0 (or no more than `chunk_ms`) sends every chunk as it comes."),
    "audio.quiet_dbfs": ("-50", "What counts as silence for `batch_ms`: no sample louder than this level "
                                "(dBFS, 0 is full scale)."),
    "audio.truncate": ("true, unless `session.turn_detection.auto_truncate` is on",
                       "On barge-in, tell the service how much of the interrupted answer was heard "
                       "(`conversation.item.truncate`)."),
    "audio.echo_reference": ("false", "Send stereo input, the microphone and what the output played, and ask "
                                      "the service for a client echo reference."),
    "audio.input": ("null (no input)", "The input backend: `{backend: NAME, option: value...}`, a bare backend "
                                       "name, or null."),
    "audio.input.backend": ("null", "`pyaudio`, `sounddevice` (microphone), `wav` (a file), `null` (silence), "
                                    "`web` / `acs` / `twilio` (a caller under `voicepipe serve`), or a plugin's "
                                    "backend (which then takes any options)."),
    "audio.input.device": ("`default`", "The microphone: `default`, an index or part of its name "
                                        "(`voicepipe devices` lists them)."),
    "audio.input.latency": ("PortAudio's default", "The device latency: `low`, `high` or seconds."),
    "audio.input.file": (NOT_SET, "The WAV file to send (required for `wav`; relative to the profile; any "
                                  "rate or format the wav backend reads)."),
    "audio.input.realtime": ("true", "Send the file paced like a microphone; false: as fast as the connection "
                                     "takes it. The null input is always paced (unpaced silence would flood the "
                                     "connection), so it ignores this key."),
    "audio.input.trailing_silence_ms": ("0", "Silence sent after the file, in milliseconds, so the detector "
                                             "hears the end of the turn."),
    "audio.input.answer_timeout_s": ("15", "Once a finite input (a file) has ended, seconds to wait for the "
                                           "service to react before the session ends without an answer."),
    "audio.output": ("null (no output)", "The output backend: `{backend: NAME, option: value...}`, a bare "
                                         "backend name, or null."),
    "audio.output.backend": ("null", "`pyaudio`, `sounddevice` (speakers), `wav` (a file), `null` (a virtual "
                                     "clock that plays nothing), `web` / `acs` / `twilio` (a caller under "
                                     "`voicepipe serve`), or a plugin's backend (which then takes any options)."),
    "audio.output.device": ("`default`", "The speakers: `default`, an index or part of its name "
                                         "(`voicepipe devices` lists them)."),
    "audio.output.latency": ("PortAudio's default", "The device latency: `low`, `high` or seconds."),
    "audio.output.fade_ms": ("5", "The fade-out on barge-in, in milliseconds (avoids a click)."),
    "audio.output.file": (NOT_SET, "The WAV file to write (required for `wav`); `{run_dir}` is the run folder. "
                                   "It holds what a listener would have heard, cut at barge-ins."),
    "audio.output.realtime": ("true", "Play on a real-time clock; false: every write plays at once (fast tests)."),
    # -- plugins and the built-ins -----------------------------------------------------------------------
    "plugins": (NOT_SET, "Plugins to load after the built-ins: built-in names, dotted modules, or `.py` paths "
                         "(relative to the profile, then the working directory). A plugin's settings live in a "
                         "top-level section named after it."),
    "disable": (NOT_SET, "Built-in plugins to turn off."),
    "logging": (NOT_SET, "The run folder and the technical log."),
    "logging.dir": ("`logs`", "The folder run folders go into (`--log-dir` overrides it)."),
    "logging.level": ("WARNING", "The lowest level of technical lines printed on the console (`-v` shows INFO, "
                                 "`-vv` DEBUG)."),
    "logging.file_level": ("DEBUG", "The lowest level written to the run folder's `voicepipe.log`."),
    "logging.azure_level": ("WARNING", "The lowest level of the Azure SDK's and other libraries' log lines (their "
                                       "DEBUG dumps every frame)."),
    "logging.run_name": ("the profile's file name", "The name in the run folder's name "
                                                    "(`logs/<date>_<time>_<run_name>`)."),
    "runtime": (NOT_SET, "How the session runs."),
    "runtime.duration_s": ("not set (until stopped)", "End the session after this many seconds (`--duration` "
                                                      "overrides it)."),
    "runtime.slow_hook_ms": ("50", "A plugin hook slower than this many milliseconds is logged."),
    "runtime.max_plugin_errors": ("20", "A plugin that raises this many times is disabled with a warning."),
    "runtime.hook_timeout_s": ("5", "An awaitable a hook returns is cancelled after this many seconds and counted "
                                    "as its plugin's error (do slow work with `ctx.spawn`)."),
    "report": (NOT_SET, "`report.html` in the run folder at the end of `voicepipe run`: the conversation's "
                        "timeline, latency and transcript."),
    "report.enabled": ("true", "false writes no `report.html` (`voicepipe report RUN_FOLDER` makes one later)."),
    "serve": (NOT_SET, "How `voicepipe serve` offers this profile to callers."),
    "serve.max_sessions": ("20", "This profile's sessions at once in one process; a caller beyond it is refused "
                                 "with 503 (`--max-sessions` caps the whole process)."),
    "serve.drain_timeout_s": ("30", "On SIGTERM, how long sessions in progress may go on before they are ended "
                                    "(with complete files)."),
    "serve.allowed_origins": ("the server's own origin only", "Origins of browser pages allowed to open a media "
                                                              "connection besides the server's own; `*` allows any."),
    "serve.auth": ("`token`", "`token`: callers present the token held in `token_env`; `none`: anyone may start a "
                              "session (a paid endpoint then costs whatever strangers use)."),
    "serve.token_env": ("`VOICEPIPE_SERVE_TOKEN`", "The environment variable holding the callers' token (the token "
                                                   "itself is never written in a profile)."),
    "serve.max_message_rate": ("200", "WebSocket messages a second a caller may send (bursts of up to 2 s of it); "
                                      "beyond it the connection is closed."),
    "serve.max_message_bytes": ("262144", "The largest WebSocket message a caller may send; a larger one closes "
                                          "the connection."),
    "serve.metrics_token_env": ("not set: `/metrics` is open", "The environment variable holding the token "
                                "`/metrics` requires as a bearer token in the `Authorization` header (a "
                                "Prometheus scrape job's `authorization.credentials_file`); the variable must be set. `/healthz` "
                                "and `/readyz` stay open."),
    "console": (NOT_SET, "The built-in console plugin: the conversation in the terminal."),
    "console.quiet": ("false", "Print only each turn's final words (`--quiet` sets it)."),
    "transcript": (NOT_SET, "The built-in transcript plugin: `transcript.txt` and `transcript.jsonl`."),
    "transcript.enabled": ("true", "false turns the transcript off, as `disable: [transcript]` does (a reconnect "
                                   "then has no history to re-seed)."),
    "recorder": (NOT_SET, "The built-in recorder plugin: every event to `events.jsonl`."),
    "recorder.enabled": ("true", "false turns the recording off, as `disable: [recorder]` does (no "
                                 "`voicepipe replay` of the run then)."),
    "recorder.audio": ("false", "Keep the audio payloads in `events.jsonl` (otherwise each is replaced by its "
                                "length, `{\"bytes\": n}`)."),
    "metrics": (NOT_SET, "The built-in metrics plugin: latency and tokens per turn, `metrics.json`."),
    "metrics.table": ("true", "Print the metrics table at the end of the session."),
    "metrics.prometheus_port": ("not set (no exporter)", "Serve Prometheus metrics on `127.0.0.1:<port>/metrics` "
                                                         "(needs the `prometheus` extra: "
                                                         "`pip install voicepipe-live[prometheus]`)."),
    "metrics.otel": ("false", "Record OpenTelemetry metrics through the global meter provider (needs the `otel` "
                              "extra: `pip install voicepipe-live[otel]`)."),
    "tools": (NOT_SET, "How function tools declared in `session.tools` run."),
    "tools.timeout_s": ("10", "Seconds a tool call may take; then its output is an error the model is told."),
    "tools.handlers": (NOT_SET, "Function tool names bound to a Python function: `module:function` or "
                                "`path/file.py:function` (relative to the profile)."),
}


def doc(path: str) -> tuple[str, str]:
    """(default, meaning) of a key path; a :class:`KeyError` for a key without documentation."""
    return DOCS[path] if path in DOCS else TOP_LEVEL[path]
