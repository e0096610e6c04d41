"""Small helpers shared by builder/, shards/ and train/: config loading, atomic writes, checksums."""
