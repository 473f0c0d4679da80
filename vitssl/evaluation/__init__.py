"""Judging pre-trained encoders: k-NN, linear probes, few-shot, on frozen cached features; export."""
