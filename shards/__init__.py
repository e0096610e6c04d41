"""The on-disk format shared by the builder and the trainer.

Shards are plain POSIX tar files written with webdataset's ``TarWriter``; each sample's members
are the rows of the member table :data:`shards.schema.MEMBERS` (``KEY.npy`` (3, 64, 64) g, r, z
in nanomaggies, ``KEY.json`` metadata, ``KEY.cls`` ``1`` or ``0``, optional ``KEY.arc.npy``).
See ``docs/shard-format.md``.
"""

from shards.schema import SCHEMA_VERSION

__all__ = ["SCHEMA_VERSION"]
