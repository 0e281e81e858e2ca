#!/usr/bin/env bash
# Example SLURM array job: every array task runs one ratpose worker against the shared database.
# Workers coordinate through DataJoint's jobs tables, so any number of tasks (on any nodes) can run
# at once; each key is computed once. Submit with:   sbatch --array=1-16 scripts/slurm-array.sh
#
#SBATCH --job-name=ratpose-worker
#SBATCH --cpus-per-task=2
#SBATCH --mem=8G
#SBATCH --time=04:00:00
#SBATCH --output=ratpose-worker-%A_%a.log
#SBATCH --signal=TERM@120          # SIGTERM to the job step 2 min before the time limit: the worker releases its job
set -euo pipefail

# Connection (DataJoint's own variables). Never put the password in this file: export DJ_PASS in
# your shell before sbatch (SLURM passes the environment on), or keep it in .secrets/database.password
# next to a datajoint.json written by `ratpose db config --write` (mode 0600).
export DJ_HOST="${DJ_HOST:?set DJ_HOST to the lab database server}"
export DJ_USER="${DJ_USER:?set DJ_USER to a worker account (ratpose db grant --worker USER)}"
# Schemas <prefix>_raw, _sync, ... : the same prefix as the lab's pipeline.
export RATPOSE_DB_PREFIX="${RATPOSE_DB_PREFIX:-ratpose}"
# Object store and DeepLabCut models: folders every node sees (NFS/SMB), same as on the lab PCs.
export RATPOSE_STORE="${RATPOSE_STORE:?set RATPOSE_STORE to the shared object store folder}"
export RATPOSE_MODELS="${RATPOSE_MODELS:?set RATPOSE_MODELS to the shared models folder}"
# One thread pool per task: numpy/OpenCV/torch should not use more cores than SLURM gave us.
export OMP_NUM_THREADS="${SLURM_CPUS_PER_TASK:-1}"

# Activate the environment ratpose is installed in (adapt the path).
source "${RATPOSE_VENV:-$HOME/ratpose/.venv}/bin/activate"

# --orphan-timeout: reclaim reservations of tasks whose node vanished without closing its connection
# (a killed task's connection closes at once and is reclaimed without waiting).
# Exit status is non-zero when jobs remain in error: `ratpose status` lists them, and
# `ratpose worker --retry-errors` tries them again after the cause is fixed.
srun ratpose worker --processes 1 --poll 30 --orphan-timeout 86400 "$@"
