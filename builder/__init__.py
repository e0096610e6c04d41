"""Builds unpaired WebDataset shards of DR10-like cutouts with lenstronomy arc injection."""
