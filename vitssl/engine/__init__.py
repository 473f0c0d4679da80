"""What training and evaluation share, below both: the training loop, optimiser and schedules,
checkpoint I/O, run logs and locks, plots and pictures, frozen features, k-NN and linear probes.

Nothing here knows a method: a task is an nn.Module that turns a batch into losses."""
