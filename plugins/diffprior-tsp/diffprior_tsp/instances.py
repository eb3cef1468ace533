"""TSP instances: the standard one-line text format, a uniform generator, tour lengths and
the LKH reference solver (elkai). NumPy only.

Format, one instance per line (the TSP-50 test set of the learned-solver literature)::

    x1 y1 x2 y2 ... xN yN output t1 t2 ... tN t1

with 1-based city indices; the tour repeats its first city at the end. The ``output``
part is optional when reading (instances without a tour).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np

from diffprior import UsageError


class InstanceError(UsageError):
    """A malformed instance file or line; the message names the file and line."""


@dataclass
class Instances:
    """A batch of M instances of N cities: ``coords`` [M, N, 2]; ``tours`` [M, N] (0-based, no
    repeated first city) or None when the file had no tours."""

    coords: np.ndarray
    tours: np.ndarray | None = None

    def __len__(self) -> int:
        return self.coords.shape[0]

    @property
    def size(self) -> int:
        return self.coords.shape[1]

    def head(self, limit: int | None) -> "Instances":
        if limit is None:
            return self
        return Instances(self.coords[:limit], None if self.tours is None else self.tours[:limit])


def parse_line(line: str, where: str = "line") -> tuple[np.ndarray, np.ndarray | None]:
    """One instance line → (coords [N, 2], 0-based tour [N] or None). ``where`` names the line in errors."""
    tokens = line.split()
    if "output" in tokens:
        cut = tokens.index("output")
        coord_tokens, tour_tokens = tokens[:cut], tokens[cut + 1:]
    else:
        coord_tokens, tour_tokens = tokens, None
    if len(coord_tokens) % 2:
        raise InstanceError(f"{where}: {len(coord_tokens)} coordinate values; expected pairs 'x y' per city")
    try:
        coords = np.array([float(v) for v in coord_tokens], dtype=np.float64).reshape(-1, 2)
    except ValueError as exc:
        raise InstanceError(f"{where}: a coordinate is not a number ({exc})") from None
    n = coords.shape[0]
    if n < 4:
        raise InstanceError(f"{where}: {n} cities; an instance needs at least 4")
    if not np.isfinite(coords).all() or coords.min() < 0 or coords.max() > 1:
        raise InstanceError(f"{where}: coordinates must lie in the unit square [0, 1]²")
    unique = np.unique(coords, axis=0)
    if unique.shape[0] != n:
        dup = _first_duplicate(coords)
        x, y = coords[dup[0]]
        raise InstanceError(f"{where}: cities {dup[0] + 1} and {dup[1] + 1} are duplicates (both at x={x:g}, y={y:g})")
    if tour_tokens is None:
        return coords, None
    try:
        tour = np.array([int(v) for v in tour_tokens], dtype=np.int64)
    except ValueError as exc:
        raise InstanceError(f"{where}: a tour index is not an integer ({exc})") from None
    if tour.shape[0] != n + 1 or tour[0] != tour[-1]:
        raise InstanceError(
            f"{where}: the tour after 'output' has {tour.shape[0]} indices; expected {n + 1} "
            f"(all {n} cities, 1-based, then the first city again)"
        )
    tour = tour[:-1] - 1
    if sorted(tour.tolist()) != list(range(n)):
        raise InstanceError(f"{where}: the tour must visit each of the cities 1..{n} exactly once")
    return coords, tour


def _first_duplicate(coords: np.ndarray) -> tuple[int, int]:
    seen: dict[tuple[float, float], int] = {}
    for i, c in enumerate(map(tuple, coords)):
        if c in seen:
            return seen[c], i
        seen[c] = i
    raise AssertionError("no duplicate")


def read_instances(path: Path | str, limit: int | None = None) -> Instances:
    """Read up to ``limit`` instances; all must have the same number of cities and all or none a tour."""
    path = Path(path)
    if not path.is_file():
        raise InstanceError(f"instance file not found: {path}")
    coords, tours = [], []
    with path.open() as fh:
        for number, line in enumerate(fh, start=1):
            if not line.strip() or line.lstrip().startswith("#"):
                continue
            if limit is not None and len(coords) >= limit:
                break
            where = f"{path}:{number}"
            c, t = parse_line(line, where)
            if coords and c.shape[0] != coords[0].shape[0]:
                raise InstanceError(
                    f"{where}: {c.shape[0]} cities, but the first instance has {coords[0].shape[0]}; "
                    "instances are solved in batches, so a file holds one size"
                )
            if coords and (t is None) != (tours[0] is None):
                raise InstanceError(f"{where}: either every instance has an 'output' tour or none does")
            coords.append(c)
            tours.append(t)
    if not coords:
        raise InstanceError(f"{path}: no instances (expected lines 'x1 y1 ... xN yN output t1 ... tN t1')")
    has_tours = tours[0] is not None
    return Instances(np.stack(coords), np.stack(tours) if has_tours else None)


def format_instance(coords: np.ndarray, tour: np.ndarray | None = None) -> str:
    """The one-line format (1-based tour with the first city repeated)."""
    text = " ".join(f"{v:.17g}" for v in np.asarray(coords, dtype=np.float64).reshape(-1))
    if tour is None:
        return text
    tour = np.asarray(tour, dtype=np.int64)
    return text + " output " + " ".join(str(int(i) + 1) for i in np.append(tour, tour[0]))


def write_instances(path: Path | str, coords: np.ndarray, tours: Iterable[np.ndarray] | None = None) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tours = list(tours) if tours is not None else [None] * len(coords)
    path.write_text("".join(format_instance(c, t) + "\n" for c, t in zip(coords, tours)))


def random_instances(count: int, size: int, seed: int) -> np.ndarray:
    """``count`` instances of ``size`` cities uniform in the unit square: [count, size, 2]."""
    return np.random.default_rng(seed).random((count, size, 2))


def tour_lengths(coords: np.ndarray, tours: np.ndarray) -> np.ndarray:
    """Closed-tour lengths [M] for coords [M, N, 2] and tours [M, N] (0-based city orders)."""
    coords, tours = np.asarray(coords), np.asarray(tours)
    ordered = np.take_along_axis(coords, tours[..., None], axis=1)
    return np.linalg.norm(ordered - np.roll(ordered, -1, axis=1), axis=-1).sum(-1)


def is_tour(tour: Sequence[int], size: int) -> bool:
    return len(tour) == size and sorted(int(i) for i in tour) == list(range(size))


# elkai's EUC_2D rounds distances to integers: scale so the rounding is below 1e-6
_ELKAI_SCALE = 1e6


def solve_reference(coords: np.ndarray, runs: int = 3) -> np.ndarray:
    """A (near-)optimal tour of one instance [N, 2] with LKH through elkai, 0-based [N]."""
    import elkai

    cities = {i: (float(x * _ELKAI_SCALE), float(y * _ELKAI_SCALE)) for i, (x, y) in enumerate(coords)}
    tour = elkai.Coordinates2D(cities).solve_tsp(runs=runs)
    return np.asarray(tour[:-1], dtype=np.int64)
