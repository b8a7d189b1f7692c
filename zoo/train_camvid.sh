#!/usr/bin/env bash
# Trains, evaluates and publishes the zoo entry `camvid`: FCN-32s -> FCN-16s -> FCN-8s (staged, as in the
# paper) on CamVid train at full 360x480 resolution, MobileNet (alpha 0.25) backbone from its ImageNet weights,
# then FCN-8s fine-tuned on the focal loss; each stage selected on CamVid val (best validation mean IU) and
# started from the previous stage's best model.
#
#   bash zoo/train_camvid.sh DATA_ROOT BACKBONE_WEIGHTS RUN_DIR [TRAIN_OPTION...]
#
# DATA_ROOT holds train/ and val/ (images/ and masks/, see keras_fcn.data.camvid); BACKBONE_WEIGHTS is the Keras
# Applications file mobilenet_2_5_224_tf_no_top.h5 (MobileNet alpha 0.25, ImageNet, no top). The runs, their
# logs and each stage's validation figures (val-fcn32s.json, ...) go to RUN_DIR. Interrupted? Run it again: each
# stage resumes after its last finished epoch, and finished stages are not trained again. The last step writes
# the weights into keras_fcn/zoo/weights/ and their entry into keras_fcn/zoo/manifest.json. Any TRAIN_OPTION
# (e.g. --class-weights median_frequency) is passed to every stage and recorded in the manifest's command.
# On a 2-core CPU an epoch takes 65 to 80 s (float32): about two hours in all.
set -euo pipefail
if [ $# -lt 3 ]; then
    echo "usage: bash zoo/train_camvid.sh DATA_ROOT BACKBONE_WEIGHTS RUN_DIR [TRAIN_OPTION...]" >&2
    exit 2
fi
data_root=$1 backbone_weights=$2 run_dir=$3
shift 3
options=("$@")
common=(camvid --data-root "$data_root" --backbone mobilenet --backbone-kwargs alpha=0.25
        --crop-size 360x480 --batch-size 8 --seed 1 --verbose 2 "${options[@]}")

keras-fcn train "${common[@]}" --model fcn32s --backbone-weights "$backbone_weights" --epochs 30 \
    --output-dir "$run_dir/fcn32s"
keras-fcn train "${common[@]}" --model fcn16s --init-from "$run_dir/fcn32s/best.keras" --epochs 20 \
    --learning-rate 3e-4 --output-dir "$run_dir/fcn16s"
keras-fcn train "${common[@]}" --model fcn8s --init-from "$run_dir/fcn16s/best.keras" --epochs 30 \
    --learning-rate 3e-4 --output-dir "$run_dir/fcn8s"
# Fine-tuning FCN-8s on the focal loss (gamma 2: well-classified pixels count less) lifts the small classes.
keras-fcn train "${common[@]}" --model fcn8s --weights "$run_dir/fcn8s/best.keras" --loss focal --epochs 12 \
    --learning-rate 3e-4 --output-dir "$run_dir/fcn8s-focal"

for stage in fcn32s fcn16s fcn8s fcn8s-focal; do
    keras-fcn evaluate "$run_dir/$stage/best.keras" camvid --data-root "$data_root" --json "$run_dir/val-$stage.json"
done

python "$(dirname "$0")/publish.py" "$run_dir/fcn8s-focal/best.keras" --name camvid --replace --architecture fcn8s_mobilenet \
    --backbone-kwargs alpha=0.25 --classes camvid --palette camvid --bundle \
    --dataset "CamVid train (367 images, 360x480, 11 classes; SegNet release)" \
    --metrics-json "$run_dir/val-fcn8s-focal.json" --metrics-split "CamVid val (101 images)" \
    --licence "CC-BY-NC-4.0 (trained on CamVid, whose licence is CC BY-NC 4.0)" \
    --training-command "bash zoo/train_camvid.sh DATA_ROOT mobilenet_2_5_224_tf_no_top.h5 RUN_DIR${options[*]:+ ${options[*]}}"
