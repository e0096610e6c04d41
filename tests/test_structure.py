"""Code structure: no module of the library packages grows past the size limit.

The developers' guide keeps modules at or under ~400 lines (one job per module); a module that
grows past it is split by responsibility, keeping its public names importable from the old
module.
"""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("builder", "shards", "train", "common")
MAX_LINES = 400


def module_lines(root: Path = ROOT, packages: tuple[str, ...] = PACKAGES) -> dict[str, int]:
    """Line count of every ``.py`` file under ``packages`` (relative path -> lines)."""
    out: dict[str, int] = {}
    for package in packages:
        for path in sorted((root / package).rglob("*.py")):
            if "__pycache__" in path.parts:
                continue
            with path.open("rb") as fh:
                out[path.relative_to(root).as_posix()] = sum(1 for _ in fh)
    return out


def test_the_packages_are_found() -> None:
    lines = module_lines()
    for package in PACKAGES:
        assert any(p.startswith(f"{package}/") for p in lines), f"no module found in {package}/"
    assert lines["train/trainer.py"] > 0


def test_no_module_is_over_the_line_limit() -> None:
    over = {path: n for path, n in module_lines().items() if n > MAX_LINES}
    listing = ", ".join(f"{path} ({n} lines)" for path, n in sorted(over.items()))
    assert not over, f"modules over {MAX_LINES} lines (split them by job): {listing}"


def test_the_limit_check_sees_an_oversized_module(tmp_path: Path) -> None:
    (tmp_path / "pkg" / "sub").mkdir(parents=True)
    (tmp_path / "pkg" / "small.py").write_text("x = 1\n" * MAX_LINES)
    (tmp_path / "pkg" / "sub" / "big.py").write_text("x = 1\n" * (MAX_LINES + 1))
    lines = module_lines(tmp_path, ("pkg",))
    assert lines == {"pkg/small.py": MAX_LINES, "pkg/sub/big.py": MAX_LINES + 1}
