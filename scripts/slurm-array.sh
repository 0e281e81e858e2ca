#!/usr/bin/env bash
# Example SLURM array job: every array task runs one ratpose worker against the shared database.
# Workers coordinate through DataJoint's jobs tables, so any number of tasks (on any nodes) can run
# at once; each key is computed once. Submit with:   sbatch --array=1-16 scripts/slurm-array.sh
# GPU tasks (DeepLabCut):  sbatch --gres=gpu:1 --array=1-4 scripts/slurm-array.sh --tables Pose2D --device cuda
# The nodes need no shared folder: docs/deployment.md (data roots where a node mounts the data, the store's
# copies where it does not).
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
# The lab's object store, the same on every machine: an S3 bucket (https://HOST[:PORT]/BUCKET[/PREFIX], keys in
# AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY or ~/.aws/credentials) or a folder every node sees.
export RATPOSE_STORE="${RATPOSE_STORE:?set RATPOSE_STORE to the lab object store (S3 URL or shared folder)}"
# Data roots this node mounts, e.g. RATPOSE_ROOT_RAW=/scratch/lab/raw (several paths separated by ':'), come from
# the submitting shell; sessions under roots a node lacks are read from the store's copies (uploaded with
# `ratpose ingest --upload`) or left to other workers.
# Copies fetched from the store: node-local scratch, verified by sha256 before use.
export RATPOSE_CACHE="${RATPOSE_CACHE:-${TMPDIR:-/tmp}/ratpose-cache-$USER}"
# One thread pool per task: numpy/OpenCV/torch should not use more cores than SLURM gave us.
export OMP_NUM_THREADS="${SLURM_CPUS_PER_TASK:-1}"

# Activate the environment ratpose is installed in (adapt the path).
source "${RATPOSE_VENV:-$HOME/ratpose/.venv}/bin/activate"

# --orphan-timeout: reclaim reservations of tasks whose node vanished without closing its connection
# (a killed task's connection closes at once and is reclaimed without waiting).
# Exit status is non-zero when jobs remain in error: `ratpose status` lists them, and
# `ratpose worker --retry-errors` tries them again after the cause is fixed.
srun ratpose worker --processes 1 --poll 30 --orphan-timeout 86400 "$@"
