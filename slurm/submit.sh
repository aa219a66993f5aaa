#!/usr/bin/env bash
# Submit a search and, to run after it succeeds, the verification of its top-K blocks.
#
#   bash slurm/submit.sh jobs/cifar100_paper.toml $SCRATCH/bqnn-c100 100
#   SBATCH_ARGS="--ntasks=9 --nodes=1" bash slurm/submit.sh JOB OUT 10
#
# Prints the two job ids. The verification array (slurm/verify.sbatch, --array=1-K) depends on the
# search with afterok, so it starts only when the search has completed; a search that stops at its
# time limit must be resubmitted (slurm/search.sbatch) before the array runs.
#
# Arguments and variables read:
#   $1                the job file for the search
#   $2                the search's output directory
#   $3                K, how many top blocks to verify (default 10)
#   SBATCH_ARGS       extra sbatch options for the search job (space-separated)
#   VERIFY_SBATCH_ARGS  extra sbatch options for the verification array (space-separated)
#   PROTOCOL, BQNN_PYTHON, BQNN_SET (search), BQNN_TRAIN_SET (verification), BQNN_SRUN_ARGS
#                     passed on to the jobs in the environment (see their headers)
set -euo pipefail

if [ "$#" -lt 2 ]; then
  echo "usage: $0 JOB_FILE OUT_DIR [K]" >&2
  exit 2
fi
config="$1"
out="$2"
k="${3:-10}"
here="$(cd "$(dirname "$0")" && pwd)"
read -r -a search_args <<< "${SBATCH_ARGS:-}"
read -r -a verify_args <<< "${VERIFY_SBATCH_ARGS:-}"

search_id="$(sbatch --parsable "${search_args[@]}" "$here/search.sbatch" "$config" "$out")"
search_id="${search_id%%;*}"
verify_id="$(sbatch --parsable --dependency="afterok:$search_id" --array="1-$k" "${verify_args[@]}" \
  "$here/verify.sbatch" "$out")"
verify_id="${verify_id%%;*}"
echo "search job $search_id: $config -> $out"
echo "verification array $verify_id (top $k, after $search_id succeeds): results in $out/verify/"
