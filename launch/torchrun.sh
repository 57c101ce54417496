#!/usr/bin/env bash
# Multi-node launch with torchrun: run this script once on every node.
#
#   NNODES=2 NODE_RANK=0 MASTER_ADDR=node0 GPUS_PER_NODE=8 \
#     launch/torchrun.sh model=model_1B.yaml data=/data/dclm launch=1x8_tp8 trainer.num_nodes=2
#
# torchrun starts GPUS_PER_NODE processes per node (one per GPU) and sets RANK/LOCAL_RANK/WORLD_SIZE;
# Lightning picks them up (TorchElasticEnvironment). trainer.num_nodes × trainer.devices
# must equal NNODES × GPUS_PER_NODE (both are set from them below). CPU smoke test: GPUS_PER_NODE=2 … trainer.accelerator=cpu.
set -euo pipefail
NNODES=${NNODES:-1}
NODE_RANK=${NODE_RANK:-0}
GPUS_PER_NODE=${GPUS_PER_NODE:-8}
MASTER_ADDR=${MASTER_ADDR:-127.0.0.1}
# Every node must use the same port: derive it from a job id shared by all nodes (JOB_ID, or
# SLURM_JOB_ID inside an allocation) so concurrent jobs on one master node do not collide.
JOB_ID=${JOB_ID:-${SLURM_JOB_ID:-}}
if [[ -n "$JOB_ID" ]]; then DEFAULT_PORT=$((10000 + JOB_ID % 50000)); else DEFAULT_PORT=29500; fi
MASTER_PORT=${MASTER_PORT:-$DEFAULT_PORT}
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}
export TORCH_NCCL_ASYNC_ERROR_HANDLING=${TORCH_NCCL_ASYNC_ERROR_HANDLING:-1}  # fail fast on a broken collective
export CUDA_DEVICE_MAX_CONNECTIONS=${CUDA_DEVICE_MAX_CONNECTIONS:-1}  # megatron TP comm/compute overlap

exec python -m torch.distributed.run \
  --nnodes "$NNODES" --node_rank "$NODE_RANK" --nproc_per_node "$GPUS_PER_NODE" \
  --master_addr "$MASTER_ADDR" --master_port "$MASTER_PORT" \
  -m composer_automl train \
  trainer.num_nodes="$NNODES" trainer.devices="$GPUS_PER_NODE" "$@"
