#!/usr/bin/env bash
# Separation quality of a prior pair at the default solver: three tasks, three test sets.
#
#   benchmarks/pair_eval.sh SPEECH_PRIOR SFX_PRIOR TAG [CONFIG]
#
# Builds (once) 36 mixtures, 4 s, seed 2, per task (speech_sfx, sfx_sfx, speech_speech, or any
# list of kinds joined by _, e.g. speech_sfx_sfx, sfx_sfx_sfx) and set:
# runs/eval/dev from ../shared/devset (measure only, never train on it), runs/eval/split from
# data/test (whole packages and speakers no training clip comes from; needs
# scripts/build_data.py) and runs/eval/mg from the split's MegaGlest voices and sounds only: the
# one test package that no lineage of the priors has trained on (the bundled priors' earliest
# data held Hedgewars voices and sounds, LMMS and OpenSFX, the split's other test packages).
# Then runs benchmarks/solver_sweep.py with one thread, the same seeds for every pair, into
# runs/eval/SET_TASK_TAG.json. Compare two pairs, paired (FILE1,FILE2:CONFIG pools sets):
#   cd benchmarks && python compare_sweeps.py ../runs/eval/dev_speech_sfx_A.json:CONFIG ../runs/eval/dev_speech_sfx_B.json:CONFIG
# CONFIG defaults to the CLI's default solver (dirac:25::split::snr: eta per task, 0 for two
# priors, 1 for two sources of one prior). SETS="dev mg" and TASKS="speech_sfx sfx_sfx"
# choose (default: every set, TASKS=speech_sfx); CLASSIFIER=FOLDER measures another classifier
# for class guidance (default auto: the bundled one, which guides only priors named speech and
# sfx: train candidates with --name, or solver_sweep.py warns that guidance is off). ~5-10 s
# per mixture.
set -euo pipefail
speech=${1:?usage: pair_eval.sh SPEECH SFX TAG [CONFIG]} sfx=${2:?} tag=${3:?}
config=${4:-dirac:25::split::snr}
declare -A speech_dir=([dev]=../shared/devset/speech [split]=data/test/speech
    [mg]=runs/eval/mg_src/speech)
declare -A sfx_dir=([dev]=../shared/devset/sfx [split]=data/test/sfx [mg]=runs/eval/mg_src/sfx)
sets=${SETS:-dev split mg}
if [[ " $sets " == *" mg "* && ! -d runs/eval/mg_src ]]; then  # hard links, not symlinks
    # (make-mixtures skips symlinked folders)
    mkdir -p runs/eval/mg_src/speech
    cp -rl data/test/speech/megaglest-* runs/eval/mg_src/speech/
    python3 - <<'PY'  # sound classes: MegaGlest's factions (two sounds come from two of them)
import os, pathlib
for f in sorted(pathlib.Path("data/test/sfx/megaglest").iterdir()):
    part = f.name.split("__")
    group = part[3] if part[2] == "factions" else f"{part[0]}-{part[2]}"
    (dest := pathlib.Path("runs/eval/mg_src/sfx", group)).mkdir(parents=True, exist_ok=True)
    os.link(f, dest / f.name)
PY
fi
for set in $sets; do
    for task in ${TASKS:-speech_sfx}; do
        dirs=() priors=()
        for kind in ${task//_/ }; do
            if [[ $kind == speech ]]; then
                dirs+=("${speech_dir[$set]}") priors+=("$speech")
            else
                dirs+=("${sfx_dir[$set]}") priors+=("$sfx")
            fi
        done
        dir=runs/eval/$set/$task
        if [[ ! -d $dir ]]; then
            diffsep make-mixtures "${dirs[@]}" -s "${task//_/,}" -n 36 --seed 2 -o "$dir" -q
        fi
        OMP_NUM_THREADS=${OMP_NUM_THREADS:-1} python benchmarks/solver_sweep.py "$dir" \
            -s "$(IFS=,; echo "${priors[*]}")" --config "$config" --reference "$config" \
            --limit 36 --classifier "${CLASSIFIER:-auto}" --out "runs/eval/${set}_${task}_$tag.json"
    done
done
