#!/usr/bin/env bash
# Speech + sound quality of a prior pair at the default solver, on the devset and the split.
#
#   benchmarks/pair_eval.sh SPEECH_PRIOR SFX_PRIOR TAG [CONFIG]
#
# Builds (once) two 36-mixture speech + sfx sets, 4 s, seed 2: runs/eval/dev from
# ../shared/devset (measure only, never train on it) and runs/eval/split from data/test (whole
# packages and speakers no training clip comes from; needs scripts/build_data.py). Then runs
# benchmarks/solver_sweep.py on both with one thread, the same seeds for every pair, into
# runs/eval/{dev,split}_TAG.json. Compare two pairs, paired, pooled over both sets or per set:
#   cd benchmarks && python compare_sweeps.py ../runs/eval/dev_A.json:CONFIG ../runs/eval/dev_B.json:CONFIG
# CONFIG defaults to the CLI's default solver (dirac:25:0:split::snr); SETS=dev runs one set.
# ~10 s per mixture on one thread.
set -euo pipefail
speech=${1:?usage: pair_eval.sh SPEECH SFX TAG [CONFIG]} sfx=${2:?} tag=${3:?}
config=${4:-dirac:25:0:split::snr}
declare -A srcs=([dev]="../shared/devset/speech ../shared/devset/sfx"
    [split]="data/test/speech data/test/sfx")
for set in ${SETS:-dev split}; do
    dir=runs/eval/$set/speech_sfx
    if [[ ! -d $dir ]]; then
        # shellcheck disable=SC2086
        diffsep make-mixtures ${srcs[$set]} -s speech,sfx -n 36 --seed 2 -o "$dir" -q
    fi
    OMP_NUM_THREADS=${OMP_NUM_THREADS:-1} python benchmarks/solver_sweep.py "$dir" \
        -s "$speech,$sfx" --config "$config" --reference "$config" --limit 36 \
        --out "runs/eval/${set}_$tag.json"
done
