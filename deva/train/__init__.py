"""Training the propagation network (spec §7): data, losses, unroll, loop, checkpoints."""
