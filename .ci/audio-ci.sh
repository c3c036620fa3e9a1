#!/usr/bin/env bash
# Headless real-audio harness for CI (Debian 12, root, no sound card, no systemd/dbus, no TTY/stdin).
# Starts a private PulseAudio with a null sink whose monitor is the default input, so PortAudio
# (PyAudio, python-sounddevice) sees working "default" input+output devices, runs the given
# command, then stops the server by PID.
# Usage: bash audio-ci.sh <command...>      e.g. bash audio-ci.sh python -m pytest -q
set -euo pipefail

need_pkgs=()
for p in portaudio19-dev pulseaudio pulseaudio-utils; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || need_pkgs+=("$p")
done
if ((${#need_pkgs[@]})); then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -q >/dev/null
  apt-get install -y -q --no-install-recommends "${need_pkgs[@]}" >/dev/null
fi

AUDIO_DIR=$(mktemp -d /tmp/ci-audio.XXXXXX)          # 0700, becomes XDG_RUNTIME_DIR
export XDG_RUNTIME_DIR=$AUDIO_DIR
export PULSE_STATE_PATH=$AUDIO_DIR/state              # keep PA state out of ~/.config/pulse
export PULSE_SERVER=unix:$AUDIO_DIR/pulse/native      # clients (libpulse, ALSA pulse plugin) go here
export PULSE_COOKIE=$AUDIO_DIR/cookie                  # clients would otherwise create ~/.config/pulse/cookie
export ALSA_CONFIG_PATH=$AUDIO_DIR/asound.conf        # ALSA sees only default/pulse -> no ALSA probe noise
export REQUIRE_AUDIO=1                                # tests must not skip for lack of devices

cat > "$AUDIO_DIR/asound.conf" <<'ALSA'
pcm.!default { type pulse hint { show on description "Default ALSA Output (PulseAudio)" } }
ctl.!default { type pulse }
pcm.pulse { type pulse hint { show on description "PulseAudio Sound Server" } }
ctl.pulse { type pulse }
ALSA

cat > "$AUDIO_DIR/ci.pa" <<'PA'
load-module module-native-protocol-unix auth-anonymous=1 auth-cookie-enabled=0
load-module module-null-sink sink_name=ci_sink sink_properties=device.description=CI_Null_Sink
# keep-alive reader: without a low-latency client the null sink sleeps up to 2 s between renders,
# and every new stream then stalls ~1-2 s (and full-duplex PortAudio streams break)
load-module module-null-sink sink_name=ka_sink sink_properties=device.description=KeepAlive_Sink
load-module module-loopback source=ci_sink.monitor sink=ka_sink latency_msec=20 source_dont_move=true sink_dont_move=true
set-default-sink ci_sink
set-default-source ci_sink.monitor
# restart the sink clock so the low latency applies now, not after the first 2 s block
suspend-sink ci_sink 1
suspend-sink ci_sink 0
PA

t0=$(date +%s%N)
pulseaudio -n -F "$AUDIO_DIR/ci.pa" --daemonize=no --exit-idle-time=-1 \
  --log-target=file:"$AUDIO_DIR/pulseaudio.log" </dev/null >/dev/null 2>&1 &
PA_PID=$!

audio_stop() {
  local t_stop; t_stop=$(date +%s%N)
  if kill -0 "$PA_PID" 2>/dev/null; then
    kill -TERM "$PA_PID"
    for _ in $(seq 50); do kill -0 "$PA_PID" 2>/dev/null || break; sleep 0.1; done
    kill -0 "$PA_PID" 2>/dev/null && kill -KILL "$PA_PID"
  fi
  wait "$PA_PID" 2>/dev/null || true
  rm -rf "$AUDIO_DIR"
  echo "audio-ci: pulseaudio pid $PA_PID stopped in $(( ($(date +%s%N) - t_stop) / 1000000 )) ms" >&2
}
trap audio_stop EXIT
trap 'exit 143' TERM
trap 'exit 130' INT

for _ in $(seq 100); do pactl info >/dev/null 2>&1 && break; sleep 0.05; done
if ! pactl info >/dev/null 2>&1; then
  echo "audio-ci: PulseAudio did not come up; log:" >&2; cat "$AUDIO_DIR/pulseaudio.log" >&2; exit 1
fi
echo "audio-ci: pulseaudio pid $PA_PID ready in $(( ($(date +%s%N) - t0) / 1000000 )) ms; default sink/source: $(pactl get-default-sink)/$(pactl get-default-source)"

"$@"
