"""The loader: exactly-once over ranks and workers, seeding, batch content, refusals."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import numpy as np
import pytest
import torch
import webdataset as wds

from common.configio import ConfigError, from_mapping
from shards.manifest import Manifest, ShardEntry
from shards.reader import ShardFormatError, iter_tar_samples
from shards.schema import SAFE_MODEL_METADATA, index_name
from shards.writer import TAR_MTIME, Sample, build_index, encode_sample
from tests.datasets import make_tiny_dataset
from train.accounting import count_keys
from train.data import DataConfig, make_loader
from train.errors import LoaderError
from train.preprocess import dihedral, normalize

GRID = [(1, 1), (1, 3), (2, 2), (3, 2)]
SIZES = {
    "divides_evenly": {"train": (4,) * 12},  # 12 shards: a multiple of 1, 3, 4 and 6 slots
    "does_not_divide": {"train": (4,) * 7},
    "different_sizes": {"train": (6, 6, 4, 9, 2, 5, 1)},
}
ENV = ("RANK", "WORLD_SIZE", "WORKER", "NUM_WORKERS")


@pytest.fixture(autouse=True)
def _no_inherited_world(monkeypatch):
    for var in ENV:
        monkeypatch.delenv(var, raising=False)


@pytest.fixture(scope="module")
def datasets(tmp_path_factory) -> dict[str, Path]:
    roots = {}
    for name, sizes in SIZES.items():
        roots[name] = tmp_path_factory.mktemp(name)
        make_tiny_dataset(roots[name], sizes, seed=len(roots))
    return roots


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("tiny")
    make_tiny_dataset(root)  # train (6, 6, 4), val (5, 3), test (4,)
    return root


def manifest_keys(root: Path, split: str) -> list[str]:
    m = Manifest.load(root)
    return [s["__key__"] for e in m.shards_for(split) for s in iter_tar_samples(str(root / e.path))]


def raw_samples(root: Path, split: str) -> dict[str, dict]:
    m = Manifest.load(root)
    return {
        s["__key__"]: s for e in m.shards_for(split) for s in iter_tar_samples(str(root / e.path))
    }


def simulate_epoch(monkeypatch, root, world, workers, epoch=0, training=True, batch_size=3):
    """Every (rank, worker) slot run in this process through webdataset's env variables."""
    cfg = DataConfig(batch_size=batch_size, num_workers=workers, shuffle_buffer=5, seed=11)
    keys, lens, real_steps = [], [], []
    monkeypatch.setenv("WORLD_SIZE", str(world))
    monkeypatch.setenv("NUM_WORKERS", str(workers))
    for rank in range(world):
        monkeypatch.setenv("RANK", str(rank))
        loader = make_loader(
            root, "train", cfg, epoch=epoch, rank=rank, world_size=world, training=training
        )
        lens.append(len(loader))
        rank_keys, n_batches = [], 0
        for worker in range(workers):
            monkeypatch.setenv("WORKER", str(worker))
            for batch in loader.dataset:
                rank_keys += batch["key"]
                n_batches += 1
        assert n_batches == loader.real_steps <= len(loader)
        keys.append(rank_keys)
        real_steps.append(n_batches)
    return keys, lens, real_steps


# ------------------------------------------------------------------ exactly once


@pytest.mark.parametrize("world,workers", GRID)
@pytest.mark.parametrize("name", sorted(SIZES))
def test_exactly_once_over_simulated_ranks_and_workers(monkeypatch, datasets, name, world, workers):
    root = datasets[name]
    expected = manifest_keys(root, "train")
    keys, lens, _ = simulate_epoch(monkeypatch, root, world, workers)
    flat = [k for rank_keys in keys for k in rank_keys]
    assert sorted(flat) == sorted(expected)
    assert len(set(flat)) == len(flat) == Manifest.load(root).expected("train")
    assert len(set(lens)) == 1, f"ranks disagree on the number of steps: {lens}"
    assert count_keys(keys) == {"samples_seen": len(expected), "unique_samples": len(expected)}


def test_explicit_ranks_without_environment_split_the_same(monkeypatch, datasets):
    root = datasets["different_sizes"]
    cfg = DataConfig(batch_size=4, shuffle_buffer=0)
    via_env, _, _ = simulate_epoch(monkeypatch, root, 3, 1, training=False, batch_size=4)
    for var in ENV:
        monkeypatch.delenv(var)
    for rank in range(3):
        loader = make_loader(root, "train", cfg, epoch=0, rank=rank, world_size=3, training=False)
        assert [k for b in loader.dataset for k in b["key"]] == via_env[rank]


def test_real_dataloader_workers_cover_every_key_once(datasets):
    root = datasets["different_sizes"]
    cfg = DataConfig(batch_size=4, num_workers=2, shuffle_buffer=8, seed=3)
    keys, lens = [], []
    for rank in range(2):
        loader = make_loader(root, "train", cfg, epoch=1, rank=rank, world_size=2, training=True)
        lens.append(len(loader))
        batches = list(loader)
        assert len(batches) == len(loader)
        keys.append([k for b in batches for k in b["key"]])
        n_real = sum(int(b["weight"].sum()) for b in batches)
        assert n_real == loader.n_samples
    assert lens[0] == lens[1]
    expected = manifest_keys(root, "train")
    assert count_keys(keys) == {"samples_seen": len(expected), "unique_samples": len(expected)}
    assert sorted(k for ks in keys for k in ks if k) == sorted(expected)


def test_short_ranks_get_zero_weight_padding(tiny):
    # val holds 8 samples: over 3 ranks with batch 2 the slots hold 3, 3, 2 -> 2, 2, 1 steps.
    cfg = DataConfig(batch_size=2)
    loaders = [
        make_loader(tiny, "val", cfg, epoch=0, rank=r, world_size=3, training=False)
        for r in range(3)
    ]
    assert [len(ld) for ld in loaders] == [2, 2, 2]
    assert [ld.real_steps for ld in loaders] == [2, 2, 1]
    assert all(ld.expected == 8 for ld in loaders)
    last = list(loaders[2])
    assert len(last) == 2
    real, pad = last
    assert pad["weight"].tolist() == [0.0] * len(pad["key"]) and set(pad["key"]) == {""}
    assert real["weight"].tolist() == [1.0, 1.0]
    assert pad["image"].shape == real["image"].shape  # realistic inputs for BatchNorm
    keys = [[k for b in ld for k in b["key"]] for ld in loaders]
    assert count_keys(keys) == {"samples_seen": 8, "unique_samples": 8}


# ------------------------------------------------------------------ seeding and content


def epoch_batches(root, epoch, training, seed=0):
    cfg = DataConfig(batch_size=4, shuffle_buffer=16, seed=seed)
    loader = make_loader(root, "train", cfg, epoch=epoch, rank=0, world_size=1, training=training)
    return list(loader)


def test_training_order_changes_per_epoch_and_is_reproducible(datasets):
    root = datasets["divides_evenly"]
    order = {e: [k for b in epoch_batches(root, e, True) for k in b["key"]] for e in (0, 1)}
    assert sorted(order[0]) == sorted(order[1]) and order[0] != order[1]
    again = epoch_batches(root, 1, True)
    assert [k for b in again for k in b["key"]] == order[1]
    for a, b in zip(again, epoch_batches(root, 1, True), strict=True):
        torch.testing.assert_close(a["image"], b["image"], rtol=0, atol=0)
    other_seed = [k for b in epoch_batches(root, 1, True, seed=1) for k in b["key"]]
    assert other_seed != order[1]


def test_evaluation_is_manifest_order_without_augmentation(tiny):
    raw = raw_samples(tiny, "train")
    batches = epoch_batches(tiny, 5, training=False)
    assert [k for b in batches for k in b["key"]] == list(raw)  # manifest/shard order
    for b in batches:
        images = np.stack([raw[k]["image"] for k in b["key"]])
        np.testing.assert_allclose(b["image"].numpy(), normalize(images), atol=1e-6)


def test_batch_content(tiny):
    raw = raw_samples(tiny, "train")
    batches = epoch_batches(tiny, 0, training=True)
    assert sum(len(b["key"]) for b in batches) == 16
    n_augmented = 0
    for b in batches:
        n = len(b["key"])
        assert b["image"].dtype == torch.float32 and b["image"].shape == (n, 3, 64, 64)
        for name, shape in (("label", (n,)), ("weight", (n,)), ("meta", (n, 6))):
            assert b[name].dtype == torch.float32 and b[name].shape == shape
        assert b["weight"].tolist() == [1.0] * n
        for i, key in enumerate(b["key"]):
            meta = raw[key]["meta"]
            assert b["galaxy_id"][i] == meta["galaxy_id"]
            assert b["label"][i].item() == raw[key]["label"] == meta["label"]
            expected_meta = np.array([meta[f] for f in SAFE_MODEL_METADATA], dtype=np.float32)
            np.testing.assert_array_equal(b["meta"][i].numpy(), expected_meta)
            # The image is the normalised stamp under one of the 8 symmetries.
            norm = normalize(raw[key]["image"][None])
            matches = [
                k
                for k in range(8)
                if np.allclose(b["image"][i].numpy(), dihedral(norm, k)[0], atol=1e-6)
            ]
            assert matches, f"{key}: image is no symmetry of its normalised stamp"
            n_augmented += matches != [0]
    assert n_augmented > 0, "training batches were never augmented"


def test_augmentation_can_be_switched_off(tiny):
    cfg = DataConfig(batch_size=16, augment=False, shuffle_buffer=0)
    (batch,) = make_loader(tiny, "train", cfg, epoch=0, rank=0, world_size=1, training=True)
    raw = raw_samples(tiny, "train")
    images = np.stack([raw[k]["image"] for k in batch["key"]])
    np.testing.assert_allclose(batch["image"].numpy(), normalize(images), atol=1e-6)


def test_count_keys_ignores_padding_and_counts_repeats():
    assert count_keys([["a", "b", ""], ["a", "c"]]) == {"samples_seen": 4, "unique_samples": 3}


# ------------------------------------------------------------------ errors


def add_hand_written_shard(root: Path, members: list[dict]) -> Path:
    """Append a shard written with webdataset's TarWriter (plus its index) to the manifest."""
    manifest = Manifest.load(root)
    index = len(manifest.shards_for("train"))
    rel = f"train/train-{index:06d}.tar"
    # An integer mtime keeps webdataset's TarWriter from adding PAX headers (float mtime).
    with wds.TarWriter(str(root / rel), encoder=False, mtime=TAR_MTIME) as tw:
        for sample in members:
            tw.write(sample)
    sha = hashlib.sha256((root / rel).read_bytes()).hexdigest()
    Path(index_name(str(root / rel))).write_text(json.dumps(build_index(root / rel, sha)))
    manifest.shards.append(
        ShardEntry(
            path=rel,
            split="train",
            index=index,
            n_samples=len(members),
            n_pos=0,
            n_neg=len(members),
            sha256=sha,
            bytes=(root / rel).stat().st_size,
        )
    )
    manifest.recompute_splits()
    manifest.save(root)
    return root / rel


def good_members(root: Path, n: int) -> list[dict]:
    out = []
    for s in list(raw_samples(root, "train").values())[:n]:
        meta = dict(s["meta"], galaxy_id=f"copy{s['meta']['galaxy_id']}")
        out.append(encode_sample(Sample(f"gcopy{s['__key__']}", s["image"], meta, s["label"])))
    return out


def test_pickle_member_is_refused_naming_shard_and_member(tmp_path):
    make_tiny_dataset(tmp_path, {"train": (4,)})
    members = good_members(tmp_path, 2)
    members[1]["pickle"] = b"\x80\x04K\x01."  # pickle.dumps(1): never to be unpickled
    shard = add_hand_written_shard(tmp_path, members)
    loader = make_loader(
        tmp_path, "train", DataConfig(batch_size=2), epoch=0, rank=0, world_size=1, training=True
    )
    with pytest.raises(ShardFormatError) as err:
        list(loader)
    assert str(shard) in str(err.value)
    assert f"{members[1]['__key__']}.pickle" in str(err.value)


@pytest.mark.parametrize(
    "json_bytes,message",
    [(b'{"galaxy_id": "x"', "invalid JSON"), (b'{"galaxy_id": "x"}', "catalog field")],
)
def test_bad_metadata_names_the_member(tmp_path, json_bytes, message):
    make_tiny_dataset(tmp_path, {"train": (3,)})
    members = good_members(tmp_path, 3)
    members[2]["json"] = json_bytes
    shard = add_hand_written_shard(tmp_path, members)
    cfg = DataConfig(batch_size=8)
    loader = make_loader(tmp_path, "train", cfg, epoch=0, rank=0, world_size=1, training=False)
    with pytest.raises(ShardFormatError, match=message) as err:
        list(loader)
    assert f"{shard}: {members[2]['__key__']}.json" in str(err.value)


def test_truncated_shard_error_propagates_from_workers(tmp_path):
    make_tiny_dataset(tmp_path, {"train": (6, 6, 4)})
    victim = tmp_path / "train" / "train-000001.tar"
    os.truncate(victim, victim.stat().st_size // 2)
    cfg = DataConfig(batch_size=4, num_workers=2)
    loader = make_loader(tmp_path, "train", cfg, epoch=0, rank=0, world_size=1, training=True)
    with pytest.raises(ShardFormatError, match="truncated") as err:
        list(loader)
    assert str(victim) in str(err.value)


def test_shard_shorter_than_manifest_is_an_error(tmp_path):
    make_tiny_dataset(tmp_path, {"train": (6, 4)})
    manifest = Manifest.load(tmp_path)
    manifest.shards[0].n_samples = 9  # the index (and tar) hold only 6
    manifest.save(tmp_path)
    loader = make_loader(
        tmp_path, "train", DataConfig(batch_size=4), epoch=0, rank=0, world_size=1, training=False
    )
    with pytest.raises(ShardFormatError, match="holds 6 samples"):
        list(loader)


def test_explicit_world_wins_over_the_environment(monkeypatch, tiny):
    # Rank 0 of a 2-rank DDP job evaluating the whole split alone.
    monkeypatch.setenv("RANK", "0")
    monkeypatch.setenv("WORLD_SIZE", "2")
    cfg = DataConfig(batch_size=3)
    loader = make_loader(tiny, "val", cfg, epoch=0, rank=0, world_size=1, training=False)
    assert [k for b in loader for k in b["key"]] == manifest_keys(tiny, "val")


def test_worker_count_other_than_planned_is_refused(monkeypatch, tiny):
    monkeypatch.setenv("WORKER", "0")
    monkeypatch.setenv("NUM_WORKERS", "3")
    cfg = DataConfig(num_workers=2)
    loader = make_loader(tiny, "train", cfg, epoch=0, rank=0, world_size=1, training=True)
    with pytest.raises(LoaderError, match="planned for 2 worker"):
        list(loader.dataset)


@pytest.mark.parametrize(
    "data,key",
    [
        ({"batch_size": 0}, "data.batch_size"),
        ({"num_workers": -1}, "data.num_workers"),
        ({"seed": -3}, "data.seed"),
        ({"prefetch_factor": 0}, "data.prefetch_factor"),
        ({"preprocess": {"clip": 0}}, "data.preprocess.clip"),
        ({"shuffle": True}, "data.shuffle"),
    ],
)
def test_invalid_data_config_names_the_key(data, key):
    with pytest.raises(ConfigError) as err:
        from_mapping(DataConfig, data, "data")
    assert err.value.key == key


def test_rank_outside_world_is_refused(tiny):
    with pytest.raises(ValueError, match="outside"):
        make_loader(tiny, "train", DataConfig(), epoch=0, rank=2, world_size=2, training=True)


def _tiny_with_manifest(root: Path, **changes: str) -> None:
    """A tiny dataset whose manifest fields are then set to ``changes``."""
    from shards.manifest import Manifest

    make_tiny_dataset(root, {"train": (3,), "val": (2,), "test": (1,)})
    m = Manifest.load(root)
    for name, value in changes.items():
        setattr(m, name, value)
    m.save(root)


def _train_loader(root: Path):
    return make_loader(
        root, "train", DataConfig(batch_size=2), epoch=0, rank=0, world_size=1, training=True
    )


def test_loader_refuses_unfinished_or_aborted_dataset(tmp_path):
    from shards.manifest import ManifestError

    for status in ("building", "aborted"):
        _tiny_with_manifest(tmp_path / status, status=status)
        with pytest.raises(ManifestError, match=status):
            _train_loader(tmp_path / status)


def test_float16_shards_load_as_float32(tmp_path):
    make_tiny_dataset(tmp_path, {"train": (4, 3), "val": (2,), "test": (1,)}, dtype="float16")
    loader = make_loader(
        tmp_path, "train", DataConfig(batch_size=4), epoch=0, rank=0, world_size=1, training=False
    )
    batches = list(loader)
    assert sum(len(b["key"]) for b in batches) == 7
    assert all(
        b["image"].dtype == torch.float32 and torch.isfinite(b["image"]).all() for b in batches
    )


def test_paired_ablation_dataset_warns(tmp_path):
    _tiny_with_manifest(tmp_path, controls="paired")
    with pytest.warns(UserWarning, match="ABLATION"):
        _train_loader(tmp_path)
