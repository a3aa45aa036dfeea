"""Self-supervised pretraining: truncated ResNet backbones, AdCo, SimCLR, augmentations, DDP."""
