#!/usr/bin/env bash
# Multi-node launch with torchrun: run this script once on every node.
#
#   NNODES=2 NODE_RANK=0 MASTER_ADDR=node0 GPUS_PER_NODE=8 \
#     launch/torchrun.sh model=model_1B.yaml data=/data/dclm launch=1x8_tp8 trainer.num_nodes=2
#
# torchrun starts GPUS_PER_NODE processes per node and sets RANK/LOCAL_RANK/WORLD_SIZE;
# Lightning picks them up (TorchElasticEnvironment). trainer.num_nodes × trainer.devices
# must equal NNODES × GPUS_PER_NODE. CPU smoke test: GPUS_PER_NODE=2 … trainer.accelerator=cpu.
set -euo pipefail
NNODES=${NNODES:-1}
NODE_RANK=${NODE_RANK:-0}
GPUS_PER_NODE=${GPUS_PER_NODE:-8}
MASTER_ADDR=${MASTER_ADDR:-127.0.0.1}
MASTER_PORT=${MASTER_PORT:-29500}
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}
export CUDA_DEVICE_MAX_CONNECTIONS=${CUDA_DEVICE_MAX_CONNECTIONS:-1}  # megatron TP comm/compute overlap

exec python -m torch.distributed.run \
  --nnodes "$NNODES" --node_rank "$NODE_RANK" --nproc_per_node "$GPUS_PER_NODE" \
  --master_addr "$MASTER_ADDR" --master_port "$MASTER_PORT" \
  -m composer_automl train \
  trainer.num_nodes="$NNODES" trainer.devices="$GPUS_PER_NODE" "$@"
