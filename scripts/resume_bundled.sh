#!/usr/bin/env bash
# Resume training of a bundled prior from its committed state, in the background.
#
#   scripts/resume_bundled.sh KIND [TRAIN OPTIONS...]      KIND: speech | sfx
#
# checkpoints/KIND holds the last stable-lr state (online and EMA weights, optimiser, log;
# models/KIND may hold cooled-down weights, which are not resumed). With the config and card
# of models/KIND it becomes runs/lite-KIND, unless that run exists already (then it simply
# resumes), and `diffsep train --resume` goes on there with one CPU thread, logging to
# runs/lite-KIND.log. Extra options go to `diffsep train` (e.g. `--steps 12000 --cooldown 1000`,
# or `-d cuda` on a GPU). Needs data/ (scripts/build_data.py).
# Stop with `pkill -TERM -f "diffsep train"` (it checkpoints). Before a cooldown, save the
# stable state with scripts/snapshot_bundled.sh KIND; after it, bundle the cooled run:
#   python scripts/bundle_prior.py runs/lite-KIND KIND --kind KIND --quality q.json --history "..."
#   python scripts/update_registry.py
set -euo pipefail
kind=${1:?usage: scripts/resume_bundled.sh speech|sfx [train options]}
shift
run=runs/lite-$kind
[[ -d data/train/$kind ]] || { echo "no data/train/$kind: run scripts/build_data.py" >&2; exit 1; }
if [[ ! -f $run/train/state.pt ]]; then
    mkdir -p "$run/train"
    cp models/"$kind"/config.json models/"$kind"/README.md "$run"/
    cp checkpoints/"$kind"/ema.safetensors "$run"/model.safetensors
    cp checkpoints/"$kind"/{online.safetensors,state.pt,log.jsonl,train_config.json} "$run"/train/
fi
OMP_NUM_THREADS=${OMP_NUM_THREADS:-1} setsid nohup diffsep train "data/train/$kind" \
    --valid "data/valid/$kind" --out "$run" --resume --steps 200000 --lr 5e-4 --min-snr 5 \
    --checkpoint-every 250 --compile -q "$@" > "$run.log" 2>&1 &
echo "training $kind in the background (pid $!): tail -f $run/train/log.jsonl"
