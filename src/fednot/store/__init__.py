"""What fednot keeps on disk: the model cache, checkpoints, and the seals that check them."""
