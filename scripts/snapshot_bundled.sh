#!/usr/bin/env bash
# Save a bundled prior's training run as its resume state in checkpoints/KIND.
#
#   scripts/snapshot_bundled.sh KIND      KIND: speech | sfx
#
# Copies the last checkpoint of runs/lite-KIND (stop it first: `pkill -TERM -f "diffsep train"`)
# into checkpoints/KIND: EMA weights as ema.safetensors, online weights, optimiser state, log
# and recipe. Take it at the stable learning rate, before a cooldown, so that
# scripts/resume_bundled.sh goes on from there.
set -euo pipefail
kind=${1:?usage: scripts/snapshot_bundled.sh speech|sfx}
run=runs/lite-$kind
[[ -f $run/train/state.pt ]] || { echo "no training run in $run" >&2; exit 1; }
if pgrep -f "diffsep train data/train/$kind " >/dev/null; then
    echo "$run is still training: stop it first (pkill -TERM -f 'diffsep train')" >&2
    exit 1
fi
mkdir -p checkpoints/"$kind"
cp "$run"/model.safetensors checkpoints/"$kind"/ema.safetensors
cp "$run"/train/{online.safetensors,state.pt,log.jsonl,train_config.json} checkpoints/"$kind"/
echo "checkpoints/$kind now holds $run"
