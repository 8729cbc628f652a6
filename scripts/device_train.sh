#!/usr/bin/env bash
# On a GPU machine lent by the `device` tool: train the speech and the sound prior from the
# packs that scripts/device_prep.py made, and put what must come back under $OUT.
#
#   bash scripts/device_train.sh [MINUTES_PER_PRIOR] [PRESET]      (defaults: 3, base)
#
# Installs the carried wheels (.whl/) into /tmp/site, then runs scripts/gpu_train.py for
# speech (--augment speech) and sfx (no augmentation: the bundled sfx lineage separated worse
# with it), each --balance 0.5, bf16, the largest batch that fits, the last 20 % of its steps
# cooled. $OUT/<kind>/ gets config.json, model.safetensors (EMA), README.md (card) and
# log.jsonl (loss curve): 8 files, within what a call brings back (8 files, 16 MiB each). The
# optimiser state stays behind (a base prior's is ~28 MiB): each run ends cooled.
# PACK (default pack), WORK (default /tmp/diffsep-runs), PYTHON (default python3) and
# GPU_TRAIN_ARGS (extra options, e.g. for a CPU test: --device cpu --steps 1) may be set.
set -euo pipefail
minutes=${1:-3} preset=${2:-base}
out=${OUT:?set OUT to the folder whose files come back}
here=$(cd "$(dirname "$0")/.." && pwd)
pack=${PACK:-pack} work=${WORK:-/tmp/diffsep-runs} python=${PYTHON:-python3}
if compgen -G ".whl/*.whl" >/dev/null; then
    "$python" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
        --target /tmp/site .whl/*.whl
    export PYTHONPATH=/tmp/site${PYTHONPATH:+:$PYTHONPATH}
fi
export PYTHONPATH=$here${PYTHONPATH:+:$PYTHONPATH} PYTHONUNBUFFERED=1
for kind in speech sfx; do
    augment=none
    [[ $kind == speech ]] && augment=speech
    # shellcheck disable=SC2086  # GPU_TRAIN_ARGS is a list of options
    "$python" "$here/scripts/gpu_train.py" "$pack/$kind" --valid "$pack/valid-$kind" \
        --minutes "$minutes" --preset "$preset" --augment "$augment" --balance 0.5 \
        --out "$work/$kind" ${GPU_TRAIN_ARGS:-}
    mkdir -p "$out/$kind"
    cp "$work/$kind"/{config.json,model.safetensors,README.md} "$out/$kind/"
    cp "$work/$kind/train/log.jsonl" "$out/$kind/"
done
