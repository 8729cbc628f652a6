#!/usr/bin/env bash
# Separation quality of a speech and an sfx prior on the held-out test split, three tasks.
#
#   scripts/eval_priors.sh SPEECH_PRIOR SFX_PRIOR OUT_DIR [MIXTURES] [-- EXTRA BENCH OPTIONS]
#
# Needs data/ from scripts/build_data.py. Builds the test mixtures once (4 s, seeded:
# speech+sfx seed 1, sfx+sfx seed 2, speech+speech seed 3; no file shared with training),
# then writes OUT_DIR/<task>.json with diffsep and the mixture / oracle-IRM / NMF baselines.
# Tasks run one after another; run several copies with --threads 1 to use more cores.
set -euo pipefail
speech=$1 sfx=$2 out=$3 n=${4:-8}
shift $(($# < 4 ? $# : 4))
[[ ${1:-} == "--" ]] && shift
mkdir -p "$out"
declare -A dirs=(
    [speech_sfx]="data/test/speech data/test/sfx"
    [sfx_sfx]="data/test/sfx data/test/sfx"
    [speech_speech]="data/test/speech data/test/speech"
)
declare -A seeds=([speech_sfx]=1 [sfx_sfx]=2 [speech_speech]=3)
declare -A kinds=([speech_sfx]="speech,sfx" [sfx_sfx]="sfx,sfx" [speech_speech]="speech,speech")
for task in speech_sfx sfx_sfx speech_speech; do
    set_dir=data/mixtures/$task
    if [[ ! -d $set_dir ]]; then
        # shellcheck disable=SC2086
        diffsep make-mixtures ${dirs[$task]} -o "$set_dir" -s "${kinds[$task]}" -n 12 \
            --seed "${seeds[$task]}" -q
    fi
    priors=""
    IFS=, read -ra parts <<< "${kinds[$task]}"
    for kind in "${parts[@]}"; do
        [[ $kind == speech ]] && prior=$speech || prior=$sfx
        priors+="${priors:+,}$prior"
    done
    diffsep bench "$set_dir" -s "$priors" --limit "$n" --baselines mixture,oracle-irm,nmf \
        --nmf-train "$(basename "$speech")=data/train/speech,$(basename "$sfx")=data/train/sfx" \
        --json -q "$@" \
        > "$out/$task.json"
    python3 - "$out/$task.json" <<'EOF'
import json, sys
doc = json.load(open(sys.argv[1]))
for row in doc["summary"]:
    ci = row["si_sdri"]
    band = f"[{ci['lo']:+.2f}, {ci['hi']:+.2f}]" if ci["lo"] is not None else ""
    print(f"{row['task']:>16} {row['system']:>10}: SI-SDRi {ci['mean']:+6.2f} dB {band} (n={ci['n']})")
EOF
done
