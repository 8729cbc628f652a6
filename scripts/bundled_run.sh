#!/usr/bin/env bash
# Continue training a bundled prior, and save its run back as the committed resume state.
#
#   scripts/bundled_run.sh resume KIND [TRAIN OPTIONS...]     KIND: speech | sfx | sfx-cond
#   scripts/bundled_run.sh snapshot KIND
#
# sfx-cond is the class-conditional sound prior (classes: the folders of
# data/train/sfx-families; its own config.json and card live in checkpoints/sfx-cond).
#
# checkpoints/KIND holds the last stable-lr state: ema.safetensors plus the run's train/ files
# (online weights, optimiser state, log, recipe). models/KIND may hold cooled-down weights,
# which are never resumed.
# resume: unless runs/lite-KIND exists already (then it simply resumes), builds it from
#   checkpoints/KIND with the config and card of models/KIND; then `diffsep train --resume`
#   goes on there in the background with one CPU thread, logging to runs/lite-KIND.log. Extra
#   options go to `diffsep train` (e.g. `--steps 12000 --cooldown 1000`, or `-d cuda`).
#   Needs data/ (scripts/build_data.py). Stop with `pkill -TERM -f "diffsep train"` (it
#   checkpoints).
# snapshot: copies the stopped run's last checkpoint into checkpoints/KIND. Take it at the
#   stable lr, before a cooldown; after the cooldown, bundle the cooled run:
#   python scripts/bundle_prior.py runs/lite-KIND KIND --kind KIND --quality q.json --history "..."
#   python scripts/update_registry.py
#   and move the cooled run away (mv runs/lite-KIND runs/cooled-KIND): resume would otherwise
#   go on from it, re-warming the cooled branch instead of the stable state.
set -euo pipefail
usage="usage: scripts/bundled_run.sh resume|snapshot speech|sfx|sfx-cond [train options]"
mode=${1:?$usage} kind=${2:?$usage}
shift 2
run=runs/lite-$kind ckpt=checkpoints/$kind
state=(online.safetensors state.pt log.jsonl train_config.json)  # the run's train/ files
data=data/train/$kind valid=data/valid/$kind card=models/$kind labels=()
if [[ $kind == sfx-cond ]]; then
    data=data/train/sfx-families valid=data/valid/sfx card=$ckpt labels=(--labels-from-folders)
fi

case $mode in
resume)
    [[ -d $data ]] || { echo "no $data: run scripts/build_data.py" >&2; exit 1; }
    if [[ ! -f $run/train/state.pt ]]; then
        mkdir -p "$run/train"
        cp "$card"/config.json "$card"/README.md "$run"/
        cp "$ckpt"/ema.safetensors "$run"/model.safetensors
        for f in "${state[@]}"; do cp "$ckpt/$f" "$run/train/"; done
    fi
    OMP_NUM_THREADS=${OMP_NUM_THREADS:-1} setsid nohup diffsep train "$data" "${labels[@]}" \
        --valid "$valid" --out "$run" --resume --steps 200000 --lr 5e-4 --min-snr 5 \
        --checkpoint-every 250 --compile -q "$@" > "$run.log" 2>&1 &
    echo "training $kind in the background (pid $!): tail -f $run/train/log.jsonl"
    ;;
snapshot)
    [[ -f $run/train/state.pt ]] || { echo "no training run in $run" >&2; exit 1; }
    if pgrep -f "diffsep train $data " >/dev/null; then
        echo "$run is still training: stop it first (pkill -TERM -f 'diffsep train')" >&2
        exit 1
    fi
    mkdir -p "$ckpt"
    cp "$run"/model.safetensors "$ckpt"/ema.safetensors
    [[ $card == "$ckpt" ]] && cp "$run"/config.json "$run"/README.md "$ckpt"/
    for f in "${state[@]}"; do cp "$run/train/$f" "$ckpt/"; done
    echo "$ckpt now holds $run"
    ;;
*) echo "$usage" >&2; exit 2 ;;
esac
