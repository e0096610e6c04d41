"""The on-disk format shared by the builder and the trainer.

Shards are plain POSIX tar files written with webdataset's ``TarWriter``; each sample is three
members ``KEY.npy`` (float32 (3, 64, 64) g, r, z in nanomaggies), ``KEY.json`` (metadata) and
``KEY.cls`` (``1`` or ``0``). See ``docs/shard-format.md``.
"""

from shards.schema import SCHEMA_VERSION

__all__ = ["SCHEMA_VERSION"]
