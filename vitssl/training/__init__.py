"""Pre-training: a method and its data on the engine's loop (pretrain.py), and the online k-NN monitor."""
