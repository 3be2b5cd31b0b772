"""Static activation arena: where each layer's output lives, planned at generation time.

The model is a chain, so layer i only needs its input (layer i-1's output) and its output at
the same time. Outputs alternate between the two ends of one arena: even layers at offset 0,
odd layers flush against the end. The arena is then max(out[i-1] + out[i]) bytes, never more
than two ping-pong buffers. The last layer writes its int32 scores to the caller's array.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ArenaPlan:
    size: int  # bytes, a multiple of 4
    offsets: tuple  # byte offset of each layer's output (None for the scores layer)

    @property
    def words(self) -> int:
        return self.size // 4


def plan_arena(model) -> ArenaPlan:
    sizes = [op.out_bytes for op in model.ops[:-1]]  # the last layer writes the scores
    size = max([sizes[0]] if sizes else [0])
    for a, b in zip(sizes, sizes[1:]):
        size = max(size, a + b)
    offsets = tuple(0 if i % 2 == 0 else size - s for i, s in enumerate(sizes)) + (None,)
    return ArenaPlan(size, offsets)
