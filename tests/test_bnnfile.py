"""The .bnn format: round trip, hash, and clean errors on damaged or hostile files."""

import copy
import hashlib
import struct

import numpy as np
import pytest

from bnn_mcu import emulator
from bnn_mcu.errors import ModelError
from bnn_mcu.ir import bnnfile
from bnn_mcu.ir.synthetic import random_model


@pytest.fixture
def model():
    return random_model(7)


def test_round_trip_is_identical(model, tmp_path):
    path = tmp_path / "m.bnn"
    digest = bnnfile.save(model, path)
    again = bnnfile.load(path)
    assert bnnfile.serialize(again) == path.read_bytes()
    assert digest == bnnfile.model_hash(again)
    assert hashlib.sha256(path.read_bytes()[:-32]).digest() == path.read_bytes()[-32:]  # checksum
    x = np.random.default_rng(0).integers(0, 256, (20, 28, 28, 1), dtype=np.uint8)
    assert np.array_equal(emulator.run(model, x).scores, emulator.run(again, x).scores)


def test_model_hash_is_the_content_not_the_file_name(model):
    """meta (source file name, PyTorch node names) is not the model: same content, same hash;
    one weight bit or one threshold changes it."""
    renamed = copy.deepcopy(model)
    renamed.meta = {"name": "other.ckpt", "source": "other.ckpt", "trace": ["x"]}
    assert bnnfile.serialize(renamed) != bnnfile.serialize(model)  # the file keeps the names
    assert bnnfile.model_hash(renamed) == bnnfile.model_hash(model)
    flipped = copy.deepcopy(model)
    flipped.ops[2].weights[0, 0] ^= 1
    assert bnnfile.model_hash(flipped) != bnnfile.model_hash(model)
    moved = copy.deepcopy(model)
    moved.ops[0].out.thresholds[3] += 1
    assert bnnfile.model_hash(moved) != bnnfile.model_hash(model)


def test_every_flipped_byte_is_detected(model):
    data = bnnfile.serialize(model)
    rng = np.random.default_rng(1)
    for pos in list(range(0, 24)) + list(rng.integers(24, len(data), 200)):
        bad = bytearray(data)
        bad[pos] ^= 0x10
        with pytest.raises(ModelError):
            bnnfile.parse(bytes(bad), "m.bnn")


def test_flipped_payload_byte_message(model):
    bad = bytearray(bnnfile.serialize(model))
    bad[len(bad) // 2] ^= 1
    with pytest.raises(ModelError, match=r"^m.bnn: corrupt .bnn file \(content hash mismatch\)$"):
        bnnfile.parse(bytes(bad), "m.bnn")


def test_truncated(model):
    data = bnnfile.serialize(model)
    for n in (0, 10, 30, len(data) - 1):
        with pytest.raises(ModelError, match="bad magic|truncated or corrupt"):
            bnnfile.parse(data[:n], "m.bnn")


def test_unknown_version(model):
    data = bytearray(bnnfile.serialize(model))
    data[8:12] = struct.pack("<I", 99)
    with pytest.raises(ModelError, match="format version 99 is not supported"):
        bnnfile.parse(bytes(data), "m.bnn")


def test_huge_claimed_sizes_allocate_nothing(model):
    data = bytearray(bnnfile.serialize(model))
    data[12:24] = struct.pack("<IQ", 2**31, 2**62)  # header and blob lengths
    with pytest.raises(ModelError, match="sizes in the header do not match"):
        bnnfile.parse(bytes(data), "m.bnn")


def test_hostile_tensor_entries_rejected_even_with_valid_hash():
    """A well-hashed file whose header lies about a tensor: the reader still refuses it."""
    import hashlib
    import json
    m = random_model(3)
    data = bnnfile.serialize(m)
    _, ver, hlen, blen = struct.unpack_from("<8sIIQ", data)
    header = json.loads(data[24:24 + hlen])
    header["ops"][0]["weights"]["shape"] = [2**30, 2**30]
    hb = json.dumps(header, sort_keys=True).encode()
    body = struct.pack("<8sIIQ", bnnfile.MAGIC, ver, len(hb), blen) + hb + data[24 + hlen:-32]
    with pytest.raises(ModelError, match="tensor lies outside the file"):
        bnnfile.parse(body + hashlib.sha256(body).digest(), "evil.bnn")


# The bytes of random_model(7) (conv, pool, conv, pool, dense, dense) as version 1 wrote them,
# before later fields existed: a model that uses no later field must keep them, and its hash.
V1_FILE_SHA256 = "395ce6b181c5f49fab7918516d17764bb128b51a957d98e6de19c86c10f76ca8"
V1_MODEL_HASH = "944fd5018cb74512e446510b8f13eba944586ad3aa3e2f98bfa77f01ae800648"


def _header(data: bytes) -> tuple[int, dict]:
    import json
    _, version, hlen, _ = struct.unpack_from("<8sIIQ", data)
    return version, json.loads(data[24:24 + hlen])


def test_models_without_later_fields_keep_their_version_1_bytes(model):
    data = bnnfile.serialize(model)
    version, header = _header(data)
    assert version == 1
    assert [set(op) & {"padding"} for op in header["ops"] if op["kind"] == "maxpool2d"] == [set()] * 2
    assert "half_zero_point" not in header["ops"][0]
    assert hashlib.sha256(data).hexdigest() == V1_FILE_SHA256
    assert bnnfile.model_hash(model) == V1_MODEL_HASH


def _padded_pool_model():
    return random_model(5, input_shape=(13, 11, 3), layers=[
        ("conv", dict(out=20, k=3)), ("pool", dict(k=3, stride=2, pad=(1, 1, 2, 1))),
        ("conv", dict(out=33, k=2)), ("pool", dict(k=2, pad=(0, 0, 1, 1))),
        ("dense", dict(out=10))])


def test_padded_pool_round_trips_as_version_2(tmp_path):
    m = _padded_pool_model()
    path = tmp_path / "p.bnn"
    digest = bnnfile.save(m, path)
    data = path.read_bytes()
    version, header = _header(data)
    assert version == 2
    assert [op.get("padding") for op in header["ops"] if op["kind"] == "maxpool2d"] == \
        [[1, 1, 2, 1], [0, 0, 1, 1]]
    again = bnnfile.load(path)
    assert [op.padding for op in again.ops[1::2]] == [(1, 1, 2, 1), (0, 0, 1, 1)]
    assert [op.out_shape for op in again.ops] == [op.out_shape for op in m.ops]
    assert bnnfile.serialize(again) == data and bnnfile.model_hash(again) == digest
    x = np.random.default_rng(0).integers(0, 256, (20, 13, 11, 3), dtype=np.uint8)
    assert np.array_equal(emulator.run(m, x).scores, emulator.run(again, x).scores)
    unpadded = copy.deepcopy(m)
    unpadded.ops[3].padding = (0, 0, 0, 0)  # 6x5 -> 3x2 instead of 4x3: another model
    assert bnnfile.model_hash(unpadded) != digest


def _rehash(header: dict, data: bytes, version: int) -> bytes:
    import json
    _, _, hlen, blen = struct.unpack_from("<8sIIQ", data)
    hb = json.dumps(header, sort_keys=True, separators=(",", ":")).encode()
    body = struct.pack("<8sIIQ", bnnfile.MAGIC, version, len(hb), blen) + hb + data[24 + hlen:-32]
    return body + hashlib.sha256(body).digest()


def test_bad_pool_padding_is_a_clean_error():
    data = bnnfile.serialize(_padded_pool_model())
    _, header = _header(data)
    with pytest.raises(ModelError, match=r"^p\.bnn: op 1: maxpool2d field 'padding' in a version 1 file$"):
        bnnfile.parse(_rehash(header, data, 1), "p.bnn")
    header["ops"][1]["padding"] = [1, 1, 3, 1]  # as large as the 3x3 kernel: an empty window
    with pytest.raises(ModelError, match=r"layer 1 \(maxpool2d 'pool1'\): pool padding \(1, 1, 3, 1\) "
                                         r"must be smaller than the kernel \(3, 3\)$"):
        bnnfile.parse(_rehash(header, data, 2), "p.bnn")
    header["ops"][1]["padding"] = [1, 1, 1]
    with pytest.raises(ModelError, match=r"^p\.bnn: op 1.padding: expected 4 integers"):
        bnnfile.parse(_rehash(header, data, 2), "p.bnn")


def test_missing_file(tmp_path):
    with pytest.raises(ModelError, match="no such file"):
        bnnfile.load(tmp_path / "none.bnn")


HALF_LAYERS = [("conv", dict(out=8, k=3, pad=1, zero_point=127, half_zero_point=True)),
               ("pool", dict(k=2)), ("conv", dict(out=16, k=3, pad=1, pad_value=0)),
               ("pool", dict(k=2)), ("dense", dict(out=40)), ("dense", dict(out=10))]


def _with_hash(data: bytes) -> bytes:
    """The bytes with their checksum recomputed (an edit that a damaged file would not have)."""
    body = data[:-32]
    return body + hashlib.sha256(body).digest()


def test_half_zero_point_round_trip_is_version_2(tmp_path):
    half = random_model(7, layers=HALF_LAYERS)
    path = tmp_path / "half.bnn"
    digest = bnnfile.save(half, path)
    data = path.read_bytes()
    assert struct.unpack_from("<I", data, 8)[0] == bnnfile.LATER_VERSION == 2
    again = bnnfile.load(path)
    assert again.ops[0].half_zero_point is True and again.ops[0].zero_point == 127
    assert bnnfile.serialize(again) == data and digest == bnnfile.model_hash(again)
    x = np.random.default_rng(0).integers(0, 256, (20, 28, 28, 1), dtype=np.uint8)
    assert np.array_equal(emulator.run(half, x).scores, emulator.run(again, x).scores)
    integral = copy.deepcopy(half)
    integral.ops[0].half_zero_point = False
    assert bnnfile.model_hash(integral) != digest
    assert struct.unpack_from("<I", bnnfile.serialize(integral), 8)[0] == 1
    # the field is read: the first layer's bits are not those of zero point 127
    assert not np.array_equal(emulator.run(again, x, trace=True).layers[0],
                              emulator.run(integral, x, trace=True).layers[0])


def test_half_zero_point_refused_in_version_1_files_and_as_a_non_bool():
    data = bnnfile.serialize(random_model(7, layers=HALF_LAYERS))
    old = bytearray(data)
    old[8:12] = struct.pack("<I", 1)
    with pytest.raises(ModelError, match=r"^m\.bnn: op 0: conv2d_u8 field 'half_zero_point' in a version 1 "
                                         r"file$"):
        bnnfile.parse(_with_hash(bytes(old)), "m.bnn")
    one = data.replace(b'"half_zero_point":true', b'"half_zero_point":1   ')
    assert one != data
    with pytest.raises(ModelError, match=r"^m\.bnn: op 0.half_zero_point: expected true or false$"):
        bnnfile.parse(_with_hash(one), "m.bnn")
