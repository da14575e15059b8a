"""Stage: agent (worldgen). Crafter 1.8.3's world generator, its noise computed in bulk.

    generate_world(world, player)   # the world stock crafter builds, about 30x faster

Pure computation on the world it is given (and its `world.random`); no I/O.

Stock `crafter.worldgen.generate_world` samples opensimplex 0.3's `noise3d` point by
point in pure Python: about 27,000 calls, four fifths of a reset's 0.14 s of CPU. This
module gives the same world, tile for tile, object for object, and leaves `world.random`
in the same state:

* The noise is opensimplex 0.3's 3D noise with the same floating-point operations in
  the same order, only on arrays, so every value is bit-for-bit the scalar one. Which
  lattice vertices a point sums over, their offsets and attenuations depend only on
  the point, never on the seed, and crafter samples the same points in every world:
  they are worked out once per process and world size (`_Plan`, about 0.1 s and
  15 MB); a world then costs a gradient lookup and a dot product per term, about
  4 ms in all.
* Crafter's thresholds are then applied to whole maps, and the tiles whose outcome
  needs a random draw (ore, trees, creatures) are visited in crafter's order, so the
  draws are the same ones, in the same order.

tests/test_worldgen.py compares every material, object and the RNG state of seeds
0-999, and the frames of 100 steps of 20 seeds, with digests of stock crafter worlds.
"""

from __future__ import annotations

import operator
import threading
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
from crafter import constants, objects

# opensimplex 0.3's 3D constants
_STRETCH = -1.0 / 6
_SQUISH = 1.0 / 3
_SQ2 = 2 * _SQUISH
_SQ3 = 3 * _SQUISH
_NORM = 103
_GRADIENTS = np.array(
    [
        *[(-11, 4, 4), (-4, 11, 4), (-4, 4, 11), (11, 4, 4), (4, 11, 4), (4, 4, 11)],
        *[(-11, -4, 4), (-4, -11, 4), (-4, -4, 11), (11, -4, 4), (4, -11, 4), (4, -4, 11)],
        *[(-11, 4, -4), (-4, 11, -4), (-4, 4, -11), (11, 4, -4), (4, 11, -4), (4, 4, -11)],
        *[(-11, -4, -4), (-4, -11, -4), (-4, -4, -11), (11, -4, -4), (4, -11, -4), (4, -4, -11)],
    ],
    dtype=np.float64,
)

# The noise terms crafter samples at tile (x, y): name -> (x', y', z, {size: weight}),
# each term being noise3d(x' / size, y' / size, z); a name's terms are summed by weight.
_Field = tuple[Callable[[np.ndarray], np.ndarray], Callable[[np.ndarray], np.ndarray], int, dict]
_FIELDS: dict[str, _Field] = {
    "start": (lambda x: x, lambda y: y, 8, {3: 1}),
    "water": (lambda x: x, lambda y: y, 3, {15: 1, 5: 0.15}),
    "mountain": (lambda x: x, lambda y: y, 0, {15: 1, 5: 0.3}),
    "cave": (lambda x: x, lambda y: y, 6, {7: 1}),
    "tunnel_x": (lambda x: 2 * x, lambda y: y / 5, 7, {3: 1}),
    "tunnel_y": (lambda x: x / 5, lambda y: 2 * y, 7, {3: 1}),
    "coal": (lambda x: x, lambda y: y, 1, {8: 1}),
    "iron": (lambda x: x, lambda y: y, 2, {6: 1}),
    "lava": (lambda x: x, lambda y: y, 6, {5: 1}),
    "sand": (lambda x: x, lambda y: y, 4, {9: 1}),
    "tree": (lambda x: x, lambda y: y, 5, {7: 1}),
}


def permutation(seed: int) -> list[int]:
    """opensimplex 0.3's `OpenSimplex(seed)._perm` (its LCG, wrapped to signed 64 bits)."""

    def step(s: int) -> int:
        s = (s * 6364136223846793005 + 1442695040888963407) & 0xFFFFFFFFFFFFFFFF
        return s - (1 << 64) if s >> 63 else s

    perm, source = [0] * 256, list(range(256))
    seed = step(step(step(seed)))
    for i in range(255, -1, -1):
        seed = step(seed)
        r = (seed + 31) % (i + 1)
        perm[i], source[r] = source[r], source[i]
    return perm


# A vertex: (xsv, ysv, zsv, dx, dy, dz), arrays over the points of one region.
def _region_low(xsb, ysb, zsb, dx0, dy0, dz0, xins, yins, zins, in_sum):
    """Points in the tetrahedron at (0,0,0): noise3d's first branch."""
    w = np.where
    a_score, b_score = xins, yins
    up_b = (a_score >= b_score) & (zins > b_score)
    up_a = ~up_b & (a_score < b_score) & (zins > a_score)
    b_score, b_point = w(up_b, zins, b_score), w(up_b, 4, 2)
    a_score, a_point = w(up_a, zins, a_score), w(up_a, 4, 1)
    wins = 1 - in_sum
    near = (wins > a_score) | (wins > b_score)
    # (0,0,0) is one of the two closest vertices
    c = w(b_score > a_score, b_point, a_point)
    cx, cy, cz = (c & 1) == 0, (c & 2) == 0, (c & 4) == 0
    one = [
        w(cx, xsb - 1, xsb + 1),
        w(cy, w(cx, ysb, ysb - 1), ysb + 1),
        w(cz, zsb, zsb + 1),
        w(cx, dx0 + 1, dx0 - 1),
        w(cy, w(cx, dy0, dy0 + 1), dy0 - 1),
        w(cz, dz0, dz0 - 1),
    ]
    two = [
        w(cx, xsb, xsb + 1),
        w(cy, w(cx, ysb - 1, ysb), ysb + 1),
        w(cz, zsb - 1, zsb + 1),
        w(cx, dx0, dx0 - 1),
        w(cy, w(cx, dy0 + 1, dy0), dy0 - 1),
        w(cz, dz0 + 1, dz0 - 1),
    ]
    # it is not: the two extra vertices follow from the two closest
    c = a_point | b_point
    cx, cy, cz = (c & 1) == 0, (c & 2) == 0, (c & 4) == 0
    one_far = [
        w(cx, xsb, xsb + 1),
        w(cy, ysb, ysb + 1),
        w(cz, zsb, zsb + 1),
        w(cx, dx0 - _SQ2, dx0 - 1 - _SQ2),
        w(cy, dy0 - _SQ2, dy0 - 1 - _SQ2),
        w(cz, dz0 - _SQ2, dz0 - 1 - _SQ2),
    ]
    two_far = [
        w(cx, xsb - 1, xsb + 1),
        w(cy, ysb - 1, ysb + 1),
        w(cz, zsb - 1, zsb + 1),
        w(cx, dx0 + 1 - _SQUISH, dx0 - 1 - _SQUISH),
        w(cy, dy0 + 1 - _SQUISH, dy0 - 1 - _SQUISH),
        w(cz, dz0 + 1 - _SQUISH, dz0 - 1 - _SQUISH),
    ]
    dx1, dy1, dz1 = dx0 - 1 - _SQUISH, dy0 - 0 - _SQUISH, dz0 - 0 - _SQUISH
    dx2, dy2 = dx0 - 0 - _SQUISH, dy0 - 1 - _SQUISH
    return [
        (xsb, ysb, zsb, dx0, dy0, dz0),
        (xsb + 1, ysb, zsb, dx1, dy1, dz1),
        (xsb, ysb + 1, zsb, dx2, dy2, dz1),
        (xsb, ysb, zsb + 1, dx2, dy1, dz0 - 1 - _SQUISH),
        tuple(w(near, a, b) for a, b in zip(one, one_far)),
        tuple(w(near, a, b) for a, b in zip(two, two_far)),
    ]


def _region_high(xsb, ysb, zsb, dx0, dy0, dz0, xins, yins, zins, in_sum):
    """Points in the tetrahedron at (1,1,1): noise3d's second branch."""
    w = np.where
    a_score, b_score = xins, yins
    up_b = (a_score <= b_score) & (zins < b_score)
    up_a = ~up_b & (a_score > b_score) & (zins < a_score)
    b_score, b_point = w(up_b, zins, b_score), w(up_b, 3, 5)
    a_score, a_point = w(up_a, zins, a_score), w(up_a, 3, 6)
    wins = 3 - in_sum
    near = (wins < a_score) | (wins < b_score)
    # (1,1,1) is one of the two closest vertices
    c = w(b_score < a_score, b_point, a_point)
    cx, cy, cz = (c & 1) != 0, (c & 2) != 0, (c & 4) != 0
    dy_a = dy0 - 1 - _SQ3
    one = [
        w(cx, xsb + 2, xsb),
        w(cy, w(cx, ysb + 1, ysb + 2), ysb),
        w(cz, zsb + 1, zsb),
        w(cx, dx0 - 2 - _SQ3, dx0 - _SQ3),
        w(cy, w(cx, dy_a, dy_a - 1), dy0 - _SQ3),
        w(cz, dz0 - 1 - _SQ3, dz0 - _SQ3),
    ]
    two = [
        w(cx, xsb + 1, xsb),
        w(cy, w(cx, ysb + 2, ysb + 1), ysb),
        w(cz, zsb + 2, zsb),
        w(cx, dx0 - 1 - _SQ3, dx0 - _SQ3),
        w(cy, w(cx, dy_a - 1, dy_a), dy0 - _SQ3),
        w(cz, dz0 - 2 - _SQ3, dz0 - _SQ3),
    ]
    # it is not
    c = a_point & b_point
    cx, cy, cz = (c & 1) != 0, (c & 2) != 0, (c & 4) != 0
    one_far = [
        w(cx, xsb + 1, xsb),
        w(cy, ysb + 1, ysb),
        w(cz, zsb + 1, zsb),
        w(cx, dx0 - 1 - _SQUISH, dx0 - _SQUISH),
        w(cy, dy0 - 1 - _SQUISH, dy0 - _SQUISH),
        w(cz, dz0 - 1 - _SQUISH, dz0 - _SQUISH),
    ]
    two_far = [
        w(cx, xsb + 2, xsb),
        w(cy, ysb + 2, ysb),
        w(cz, zsb + 2, zsb),
        w(cx, dx0 - 2 - _SQ2, dx0 - _SQ2),
        w(cy, dy0 - 2 - _SQ2, dy0 - _SQ2),
        w(cz, dz0 - 2 - _SQ2, dz0 - _SQ2),
    ]
    dx3, dy3, dz3 = dx0 - 1 - _SQ2, dy0 - 1 - _SQ2, dz0 - 0 - _SQ2
    dz2 = dz0 - 1 - _SQ2
    return [
        (xsb + 1, ysb + 1, zsb, dx3, dy3, dz3),
        (xsb + 1, ysb, zsb + 1, dx3, dy0 - 0 - _SQ2, dz2),
        (xsb, ysb + 1, zsb + 1, dx0 - 0 - _SQ2, dy3, dz2),
        (xsb + 1, ysb + 1, zsb + 1, dx0 - 1 - _SQ3, dy0 - 1 - _SQ3, dz0 - 1 - _SQ3),
        tuple(w(near, a, b) for a, b in zip(one, one_far)),
        tuple(w(near, a, b) for a, b in zip(two, two_far)),
    ]


def _region_mid(xsb, ysb, zsb, dx0, dy0, dz0, xins, yins, zins, in_sum):
    """Points in the octahedron between: noise3d's third branch."""
    w = np.where
    p1, p2, p3 = xins + yins, xins + zins, yins + zins
    a_score, a_point, a_far = w(p1 > 1, p1 - 1, 1 - p1), w(p1 > 1, 3, 4), p1 > 1
    b_score, b_point, b_far = w(p2 > 1, p2 - 1, 1 - p2), w(p2 > 1, 5, 2), p2 > 1
    score = w(p3 > 1, p3 - 1, 1 - p3)
    swap_a = (a_score <= b_score) & (a_score < score)
    swap_b = ~swap_a & (a_score > b_score) & (b_score < score)
    a_point, a_far = w(swap_a, w(p3 > 1, 6, 1), a_point), w(swap_a, p3 > 1, a_far)
    b_point, b_far = w(swap_b, w(p3 > 1, 6, 1), b_point), w(swap_b, p3 > 1, b_far)

    def permuted_110(c):
        # the vertex (-1,1,1), (1,-1,1) or (1,1,-1) given by the first zero bit of c
        gx = (c & 1) == 0
        gy = ~gx & ((c & 2) == 0)
        gz = ~gx & ~gy
        return [
            w(gx, xsb - 1, xsb + 1),
            w(gy, ysb - 1, ysb + 1),
            w(gz, zsb - 1, zsb + 1),
            w(gx, dx0 + 1 - _SQUISH, dx0 - 1 - _SQUISH),
            w(gy, dy0 + 1 - _SQUISH, dy0 - 1 - _SQUISH),
            w(gz, dz0 + 1 - _SQUISH, dz0 - 1 - _SQUISH),
        ]

    # both closest on the (1,1,1) side: (1,1,1) and one by the shared axis
    c = a_point & b_point
    fx = (c & 1) != 0
    fy = ~fx & ((c & 2) != 0)
    fz = ~fx & ~fy
    far_one = [xsb + 1, ysb + 1, zsb + 1, dx0 - 1 - _SQ3, dy0 - 1 - _SQ3, dz0 - 1 - _SQ3]
    far_two = [
        w(fx, xsb + 2, xsb),
        w(fy, ysb + 2, ysb),
        w(fz, zsb + 2, zsb),
        w(fx, dx0 - 2 - _SQ2, dx0 - _SQ2),
        w(fy, dy0 - 2 - _SQ2, dy0 - _SQ2),
        w(fz, dz0 - 2 - _SQ2, dz0 - _SQ2),
    ]
    # both on the (0,0,0) side: (0,0,0) and one by the omitted axis
    near_one = [xsb, ysb, zsb, dx0, dy0, dz0]
    near_two = permuted_110(a_point | b_point)
    # one on each side
    c1, c2 = w(a_far, a_point, b_point), w(a_far, b_point, a_point)
    hx = (c2 & 1) != 0
    hy = ~hx & ((c2 & 2) != 0)
    hz = ~hx & ~hy
    split_one = permuted_110(c1)
    split_two = [
        w(hx, xsb + 2, xsb),
        w(hy, ysb + 2, ysb),
        w(hz, zsb + 2, zsb),
        w(hx, (dx0 - _SQ2) - 2, dx0 - _SQ2),
        w(hy, (dy0 - _SQ2) - 2, dy0 - _SQ2),
        w(hz, (dz0 - _SQ2) - 2, dz0 - _SQ2),
    ]
    same = a_far == b_far
    one = tuple(w(same, w(a_far, f, n), s) for f, n, s in zip(far_one, near_one, split_one))
    two = tuple(w(same, w(a_far, f, n), s) for f, n, s in zip(far_two, near_two, split_two))
    dx1, dy1, dz1 = dx0 - 1 - _SQUISH, dy0 - 0 - _SQUISH, dz0 - 0 - _SQUISH
    dx2, dy2 = dx0 - 0 - _SQUISH, dy0 - 1 - _SQUISH
    dx4, dy4, dz4 = dx0 - 1 - _SQ2, dy0 - 1 - _SQ2, dz0 - 0 - _SQ2
    dz5 = dz0 - 1 - _SQ2
    return [
        (xsb + 1, ysb, zsb, dx1, dy1, dz1),
        (xsb, ysb + 1, zsb, dx2, dy2, dz1),
        (xsb, ysb, zsb + 1, dx2, dy1, dz0 - 1 - _SQUISH),
        (xsb + 1, ysb + 1, zsb, dx4, dy4, dz4),
        (xsb + 1, ysb, zsb + 1, dx4, dy0 - 0 - _SQ2, dz5),
        (xsb, ysb + 1, zsb + 1, dx0 - 0 - _SQ2, dy4, dz5),
        one,
        two,
    ]


def vertices(x, y, z):
    """For each point, the up to 8 lattice vertices noise3d(x, y, z) sums, in its order.

    Returns int64 vertex coordinates (3, 8, N), offsets (3, 8, N) and attenuation^4
    (8, N), zero where the vertex adds nothing (opensimplex skips it; adding +0.0 leaves
    a sum unchanged).
    """
    x, y = np.asarray(x, np.float64), np.asarray(y, np.float64)
    z = np.broadcast_to(np.asarray(z, np.float64), x.shape)
    stretch = (x + y + z) * _STRETCH
    xs, ys, zs = x + stretch, y + stretch, z + stretch
    xsb, ysb, zsb = np.floor(xs), np.floor(ys), np.floor(zs)
    squish = (xsb + ysb + zsb) * _SQUISH
    xins, yins, zins = xs - xsb, ys - ysb, zs - zsb
    in_sum = xins + yins + zins
    inputs = [
        *(v.astype(np.int64) for v in (xsb, ysb, zsb)),
        x - (xsb + squish),
        y - (ysb + squish),
        z - (zsb + squish),
        xins,
        yins,
        zins,
        in_sum,
    ]
    coords = np.zeros((3, 8, x.size), np.int64)
    offsets = np.zeros((3, 8, x.size))
    weights = np.zeros((8, x.size))
    low = in_sum <= 1
    high = ~low & (in_sum >= 2)
    for region, where in (
        (_region_low, low),
        (_region_high, high),
        (_region_mid, ~low & ~high),
    ):
        if not where.any():
            continue
        for k, (xv, yv, zv, dx, dy, dz) in enumerate(region(*(v[where] for v in inputs))):
            attn = 2 - dx * dx - dy * dy - dz * dz
            attn2 = attn * attn
            weights[k, where] = np.where(attn > 0, attn2 * attn2, 0.0)
            for j, (vertex, offset) in enumerate(((xv, dx), (yv, dy), (zv, dz))):
                coords[j, k, where] = vertex
                offsets[j, k, where] = offset
    return coords, offsets, weights


class _Plan:
    """The seed-independent part of every noise term crafter samples on a world."""

    def __init__(self, area: tuple[int, int]) -> None:
        x, y = np.meshgrid(np.arange(area[0]), np.arange(area[1]), indexing="ij")
        self.x, self.y = x.ravel(), y.ravel()
        self.terms = [
            (name, size, weight)
            for name, (_, _, _, sizes) in _FIELDS.items()
            for size, weight in sizes.items()
        ]
        n, count = self.x.size, len(self.terms)
        keys = np.empty((count, 8, n), np.int32)
        self.offsets = np.empty((count, 3, 8, n))
        self.weights = np.empty((count, 8, n))
        for t, (name, size, _) in enumerate(self.terms):
            fx, fy, z, _ = _FIELDS[name]
            coords, self.offsets[t], self.weights[t] = vertices(
                fx(self.x) / size, fy(self.y) / size, z
            )
            if np.abs(coords).max() >= 2**9:
                raise ValueError(f"world area {area} is too large for worldgen's vertex ids")
            # a vertex's coordinates packed into one int
            keys[t] = ((coords[0] + 2**9) << 20) | ((coords[1] + 2**9) << 10) | (coords[2] + 2**9)
        # one id per distinct lattice vertex: a world looks its gradient up once
        unique, ids = np.unique(keys, return_inverse=True)
        self.vertex_id = ids.reshape(keys.shape).astype(np.int32)
        self.vx, self.vy, self.vz = (((unique >> s) & 1023) - 2**9 for s in (20, 10, 0))

    def noise(self, seed: int) -> dict[str, np.ndarray]:
        """Crafter's `_simplex(...)` sums by field name, unnormalised, for one seed."""
        gradients = _gradients(seed, self.vx, self.vy, self.vz)
        fields: dict[str, np.ndarray] = {}
        buffers = [np.empty(self.weights.shape[1:]) for _ in range(2)]
        for t, (name, _, weight) in enumerate(self.terms):
            noise = _sum(gradients, self.vertex_id[t], self.offsets[t], self.weights[t], buffers)
            fields[name] = fields.get(name, 0) + weight * noise
        return fields


def _gradients(seed: int, x, y, z) -> np.ndarray:
    """The gradients (3, N) opensimplex 0.3 gives lattice vertices (x, y, z)."""
    perm = np.array(permutation(seed), np.int64)
    index = (perm[(perm[x & 255] + y) & 255] + z) & 255
    return np.ascontiguousarray(_GRADIENTS[perm[index] % 24].T)


def _sum(gradients, ids, offsets, weights, buffers=None) -> np.ndarray:
    """noise3d's sum over its vertices (gradient `ids`), slot by slot in its order."""
    terms, part = buffers or (np.empty(weights.shape), np.empty(weights.shape))
    np.take(gradients[0], ids, out=terms)
    terms *= offsets[0]
    for k in (1, 2):
        np.take(gradients[k], ids, out=part)
        part *= offsets[k]
        terms += part
    terms *= weights
    value = terms[0] + terms[1]
    for k in range(2, terms.shape[0]):
        value += terms[k]
    value /= _NORM
    return value


def noise3d(seed: int, x, y, z) -> np.ndarray:
    """`opensimplex.OpenSimplex(seed).noise3d` (0.3) at many points at once, bit for bit."""
    (vx, vy, vz), offsets, weights = vertices(x, y, z)
    ids = np.arange(vx.size).reshape(vx.shape)
    return _sum(_gradients(seed, vx.ravel(), vy.ravel(), vz.ravel()), ids, offsets, weights)


_PLANS: dict[tuple[int, int], _Plan] = {}
_PLANS_LOCK = threading.Lock()  # episodes on threads reset at once: one plan, made once


def _plan(area: tuple[int, int]) -> _Plan:
    plan = _PLANS.get(area)
    if plan is None:
        with _PLANS_LOCK:
            plan = _PLANS.get(area)
            if plan is None:
                plan = _PLANS[area] = _Plan(area)
    return plan


def generate_world(world, player) -> None:
    """Fill `world` (just reset, the player added) as `crafter.worldgen.generate_world`."""
    area = (int(world.area[0]), int(world.area[1]))
    plan = _plan(area)
    noise = plan.noise(world.random.randint(0, 2**31 - 1))

    def field(name: str):
        return noise[name] / sum(_FIELDS[name][3].values())

    x, y = plan.x, plan.y
    dist = np.sqrt((x - player.pos[0]) ** 2 + (y - player.pos[1]) ** 2)
    start = 4 - dist
    start += 2 * field("start")
    start = 1 / (1 + np.exp(-start))
    water = noise["water"] + 0.1
    water -= 2 * start
    mountain = field("mountain")
    mountain -= 4 * start + 0.3 * water

    # materials that need no random draw
    ids = world._mat_ids
    grass = start > 0.5
    mount = ~grass & (mountain > 0.15)
    cave = mount & (field("cave") > 0.15) & (mountain > 0.3)
    tunnel_x = mount & ~cave & (field("tunnel_x") > 0.4)
    tunnel_y = mount & ~cave & ~tunnel_x & (field("tunnel_y") > 0.4)
    tunnels = tunnel_x | tunnel_y
    rock = mount & ~cave & ~tunnels  # coal, iron, diamond, lava or stone
    low = ~grass & ~mount
    sand = low & (water > 0.25) & (water <= 0.35) & (field("sand") > -0.2)
    lake = low & ~sand & (water > 0.3)
    land = low & ~sand & ~lake
    material = np.full(x.size, ids["stone"], np.uint8)
    material[grass | land] = ids["grass"]
    material[cave | tunnels] = ids["path"]
    material[sand] = ids["sand"]
    material[lake] = ids["water"]
    lava = (mountain > 0.3) & (field("lava") > 0.35)

    # the tiles that draw, in crafter's order (x, then y)
    draws = _Draws(world.random)
    coal, iron = (field("coal") > 0).tolist(), (field("iron") > 0.4).tolist()
    deep, lava_ok = (mountain > 0.18).tolist(), lava.tolist()
    tree_ok = land & (field("tree") > 0)
    todo = np.flatnonzero(rock | tree_ok)
    draws.reserve(3 * todo.size)
    chosen = {}
    for i, is_rock in zip(todo.tolist(), rock[todo].tolist()):
        if not is_rock:
            if draws.next() > 0.8:
                chosen[i] = "tree"
        elif coal[i] and draws.next() > 0.85:
            chosen[i] = "coal"
        elif iron[i] and draws.next() > 0.75:
            chosen[i] = "iron"
        elif deep[i] and draws.next() > 0.994:
            chosen[i] = "diamond"
        elif lava_ok[i]:
            chosen[i] = "lava"
    for i, name in chosen.items():
        material[i] = ids[name]
    world._mat_map[...] = material.reshape(area)

    # creatures
    walkable = np.isin(material, [ids[name] for name in constants.walkable])
    is_path = material == ids["path"]
    cow_ok = walkable & (material == ids["grass"]) & (dist > 3)
    zombie_ok = walkable & (dist > 10)
    skeleton_ok = walkable & is_path & tunnels
    todo = np.flatnonzero(cow_ok | zombie_ok | skeleton_ok)
    draws.reserve(2 * todo.size)
    cow, zombie, skeleton = cow_ok.tolist(), zombie_ok.tolist(), skeleton_ok.tolist()
    height = area[1]
    for i in todo.tolist():
        pos = (i // height, i % height)
        if cow[i] and draws.next() > 0.985:
            world.add(objects.Cow(world, pos))
        elif zombie[i] and draws.next() > 0.993:
            world.add(objects.Zombie(world, pos, player))
        elif skeleton[i] and draws.next() > 0.95:
            world.add(objects.Skeleton(world, pos, player))
    draws.close()


class _Draws:
    """`random.uniform()` values in sequence (`next()`), drawn in blocks; `close` leaves
    the RandomState exactly as that many single `uniform()` calls would."""

    def __init__(self, random: np.random.RandomState) -> None:
        self._random = random
        self._state: Any = None
        self._size = 0
        self._values: Iterator[float] = iter(())
        self.next: Callable[[], float] = self._values.__next__

    def reserve(self, count: int) -> None:
        """Make at least `count` more values ready."""
        self.close()
        self._state, self._size = self._random.get_state(), count
        self._values = iter(self._random.random_sample(count).tolist())
        self.next = self._values.__next__

    def close(self) -> None:
        if self._state is not None:
            used = self._size - operator.length_hint(self._values)
            self._random.set_state(self._state)
            self._random.random_sample(used)
            self._state = None
