"""Static activation arena: where each layer's output lives, planned at generation time.

The model is a chain, so layer i only needs its input (layer i-1's output) and its output at
the same time. Outputs alternate between the two ends of one arena: even layers at offset 0,
odd layers flush against the end. The arena is then max(out[i-1] + out[i]) bytes, never more
than two ping-pong buffers. The last layer writes its int32 scores to the caller's array.

A uint8 dense layer also has a static scratch of its own (its subset-sum tables), whose size
depends on the core: the generated C sizes it with BNN_DENSE_U8_SCRATCH_WORDS, mirrored here
for the RAM figures.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..ir.ops import DenseU8


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


# -- the uint8 dense layers' scratch (bnn_kernels.h: Scratch, BNN_DENSE_U8_SCRATCH_WORDS) -----

#: Subset-sum tables per pass of bnn_dense_u8_* (BNN_U8_TABLES), by kernel path: v6-M and v8-M
#: baseline cores 4, the host's portable path none (no scratch: one word is declared), Thumb-2
#: cores 7.
U8_TABLES = {"cortex-m0": 4, "cortex-m0plus": 4, "cortex-m23": 4, "host": 0}
U8_TABLES_THUMB2 = 7
#: Most channels per pass (BNN_U8_BATCH): one int32 sum each.
U8_BATCH = 256


def dense_u8_scratch_words(in_features: int, out_ch: int, core: str) -> int:
    """BNN_DENSE_U8_SCRATCH_WORDS(in_features, out_ch) as the C compiler evaluates it for
    `core` (a cores.py name) with the default build macros."""
    tables = U8_TABLES.get(core, U8_TABLES_THUMB2)
    if tables == 0:
        return 1
    return 128 * min(tables, (in_features + 7) // 8) + min(U8_BATCH, out_ch)


def scratch_bytes(model, core: str | None = None) -> int:
    """Static scratch of the model's uint8 dense layers on `core`; None: the largest over the
    Arm cores (what any of them may need)."""
    cores = [core] if core else ["cortex-m0", "cortex-m4"]  # the two classes of Arm cores
    return max(sum(4 * dense_u8_scratch_words(op.in_features, op.out_channels, c)
                   for op in model.ops if isinstance(op, DenseU8)) for c in cores)
