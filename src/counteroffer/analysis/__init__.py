"""What a set of episodes or a training run shows: the paper's tables, training phases, offer trajectories."""
