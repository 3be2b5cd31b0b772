/*
 * libFuzzer harness for the firmware's side of the serial protocol: the COBS decoder, the frame
 * reader and the vector runner's dispatcher (firmware/src/protocol/), built for the host
 * with AddressSanitizer and UndefinedBehaviorSanitizer (fuzz/Makefile).
 *
 * A fuzz input describes a bulk region and a stream of records:
 *
 *   flags u8        bit 0: the target has a bulk region
 *                   bit 1: its header carries the "BNNB" magic
 *                   bit 2: its input size is the model's
 *                   bit 3: its CRC is made to match the vectors
 *                   bit 4: its count is made plausible (at most one more than fits)
 *   [bulk]          count u32 (as claimed by the header), len u16 (mod 1025 + 4 inputs), then len
 *                   vector bytes: the region is malloc'ed at exactly 16 + len bytes, so ASan
 *                   sees any read past it
 *   records...      kind u8, then by kind & 7:
 *     0  raw        n u8, n bytes fed as they are (garbage, half frames, stray delimiters)
 *     1  frame      type u8, seq u16, n u16 (mod 2049), n payload bytes: a frame with a
 *                   right CRC, any type and length
 *     2  substitute as 1, plus where u16, value u8: one data byte of the encoded frame replaced
 *                   by another non-zero value
 *     3  damage     as 1, plus where u16, value u8, how u8: one byte replaced or XOR-ed
 *                   (0x00 included), the frame cut, or its closing delimiter left out
 *     4  version    as 1, plus version u8: a right CRC and any protocol version
 *     5..7 request  as 1, but the type is one of INFO..EXIT and the length the model's
 *
 * Oracles, besides the sanitizers:
 *   - every byte the firmware writes goes through an independent decoder (its own COBS and a
 *     bit-by-bit CRC-32): every frame well-formed, of a known type, with the exact payload
 *     length of its type; the stream never stops inside a frame;
 *   - a shadow receiver follows the input byte by byte and says what the runner must answer
 *     when a frame ends: nothing to an empty frame; exactly one ERROR with the right code, seq
 *     and detail to an over-long, cut, short, damaged (CRC) or foreign-version frame, an
 *     unknown type or a wrong length; to a valid request exactly its reply (INFO, RUN, TRACE
 *     layers + reply, BENCH, BULK results + reply or the region/range ERROR, EXIT) with class
 *     and scores recomputed here; nothing at all before a frame ends; EXIT obeyed only then;
 *   - a substituted data byte always gives a CRC error (CRC-32 detects every error burst of
 *     at most 32 bits), never a reply.
 * Any violation calls abort(), which libFuzzer reports as a crash with the input saved.
 *
 * BENCH repeats are reduced mod 65 in the frames this harness builds: a valid request may ask
 * for 2^32 repeats, which keeps the board busy by design (the host asks for what it wants).
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bnn_model.h"
#include "bnn_model_api.h"
#include "bnn_port.h"
#include "bnn_protocol.h"

#define IN_BYTES BNN_MODEL_INPUT_BYTES
#define CLASSES BNN_MODEL_NUM_CLASSES
#define LAYERS BNN_MODEL_NUM_LAYERS
#define RX_PAYLOAD (BNN_BENCH_REQ_FIXED_BYTES + IN_BYTES)
#define RX_BYTES (BNN_PROTO_OVERHEAD + RX_PAYLOAD)
#define MAX_REPEATS 64u
#define MAX_PAYLOAD 2048u
#define MAX_BODY (MAX_PAYLOAD + BNN_PROTO_OVERHEAD)
#define MAX_ENCODED (2u + MAX_BODY + MAX_BODY / 254u + 2u)
/* Longer than any frame the runner may send with the model (INFO: 60 bytes, 3 strings, and per
 * layer 8 bytes and two strings of at most 255; a trace layer; a result). */
#define OUT_FRAME_MAX (1024u + BNN_MODEL_MAX_LAYER_BYTES + 520u * LAYERS)
#define MAX_CAPTURED 128u
#define MAX_BULK_BYTES (1024u + 4u * IN_BYTES) /* < 127 vectors: every result is captured */

#define CHECK(cond, what)                                                                  \
    do {                                                                                   \
        if (!(cond)) {                                                                     \
            fprintf(stderr, "fuzz_runner: %s (%s:%d)\n", what, __FILE__, __LINE__);        \
            abort();                                                                       \
        }                                                                                  \
    } while (0)

/* ---- reading the fuzz input ------------------------------------------------------------ */

typedef struct {
    const uint8_t *p;
    size_t n;
} src_t;

static uint8_t take8(src_t *s)
{
    if (s->n == 0u) {
        return 0u;
    }
    s->n--;
    return *s->p++;
}

static uint16_t take16(src_t *s)
{
    uint16_t lo = take8(s);
    return (uint16_t)(lo | ((uint16_t)take8(s) << 8));
}

static uint32_t take32(src_t *s)
{
    uint32_t lo = take16(s);
    return lo | ((uint32_t)take16(s) << 16);
}

static size_t take_bytes(src_t *s, uint8_t *out, size_t n)
{
    size_t k = n < s->n ? n : s->n;
    memcpy(out, s->p, k);
    s->p += k;
    s->n -= k;
    return k;
}

/* ---- an independent decoder of what the firmware writes --------------------------------- */

static uint32_t ref_crc32(const uint8_t *p, size_t n)
{
    uint32_t crc = 0xFFFFFFFFu;
    size_t i;
    int b;
    for (i = 0; i < n; i++) {
        crc ^= p[i];
        for (b = 0; b < 8; b++) {
            crc = (crc >> 1) ^ (0xEDB88320u & (0u - (crc & 1u)));
        }
    }
    return ~crc;
}

static uint32_t le32(const uint8_t *p)
{
    return (uint32_t)p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16) | ((uint32_t)p[3] << 24);
}

typedef struct {
    uint8_t type;
    uint16_t seq;
    uint32_t len;
    uint8_t payload[OUT_FRAME_MAX];
} out_frame_t;

static uint8_t out_raw[2u * OUT_FRAME_MAX];
static size_t out_raw_len;
static out_frame_t captured[MAX_CAPTURED];
static size_t n_captured;
static size_t n_seen; /* frames sent since the last byte was fed (captured or not) */

static uint32_t info_len(const uint8_t *p, uint32_t n)
{
    /* fixed part, three strings, then per layer 8 bytes and two strings */
    uint32_t pos = BNN_INFO_FIXED_BYTES, i, s;
    for (s = 0; s < 3u; s++) {
        CHECK(pos < n, "info: string length missing");
        pos += 1u + p[pos];
    }
    for (i = 0; i < LAYERS; i++) {
        pos += 8u;
        for (s = 0; s < 2u; s++) {
            CHECK(pos < n, "info: layer string length missing");
            pos += 1u + p[pos];
        }
    }
    return pos;
}

static void check_frame(const out_frame_t *f)
{
    uint32_t n = f->len;
    switch (f->type) {
    case BNN_MSG_READY:
    case BNN_MSG_INFO | BNN_MSG_REPLY:
        CHECK(n >= BNN_INFO_FIXED_BYTES && info_len(f->payload, n) == n, "info: wrong length");
        CHECK(f->payload[0] == BNN_PROTO_VERSION, "info: protocol version");
        CHECK(le32(f->payload + 20) == IN_BYTES, "info: input bytes");
        CHECK(le32(f->payload + 52) == RX_PAYLOAD, "info: max payload");
        break;
    case BNN_MSG_RUN | BNN_MSG_REPLY:
    case BNN_MSG_TRACE | BNN_MSG_REPLY:
        CHECK(n == BNN_RUN_REPLY_FIXED_BYTES + 4u * CLASSES, "run/trace reply: wrong length");
        break;
    case BNN_MSG_BENCH | BNN_MSG_REPLY:
        CHECK(n == 12u + 4u * LAYERS, "bench reply: wrong length");
        break;
    case BNN_MSG_BULK | BNN_MSG_REPLY:
        CHECK(n == 8u, "bulk reply: wrong length");
        break;
    case BNN_MSG_EXIT | BNN_MSG_REPLY:
        CHECK(n == 0u, "exit reply: wrong length");
        break;
    case BNN_MSG_TRACE_LAYER:
        CHECK(n >= 4u, "trace layer: cut short");
        {
            uint16_t layer = (uint16_t)(f->payload[0] | (f->payload[1] << 8));
            uint16_t count = (uint16_t)(f->payload[2] | (f->payload[3] << 8));
            CHECK(count == LAYERS && layer < LAYERS, "trace layer: bad index");
            CHECK(n == 4u + bnn_model_layers[layer].out_bytes, "trace layer: wrong length");
        }
        break;
    case BNN_MSG_BULK_RESULT:
        CHECK(n == 4u + BNN_RUN_REPLY_FIXED_BYTES + 4u * CLASSES, "bulk result: wrong length");
        break;
    case BNN_MSG_ERROR:
        CHECK(n == 8u, "error: wrong length");
        CHECK(f->payload[0] >= BNN_ERR_CRC && f->payload[0] <= BNN_ERR_RANGE, "error: bad code");
        CHECK(f->payload[2] == 0u && f->payload[3] == 0u, "error: reserved bytes");
        break;
    default:
        CHECK(0, "the firmware sent a frame of an unknown type");
    }
}

/* One complete frame (COBS bytes between delimiters) from the firmware. */
static void out_frame_done(void)
{
    static out_frame_t f;
    static uint8_t body[sizeof out_raw];
    size_t i = 0, n = 0;

    while (i < out_raw_len) {
        uint8_t code = out_raw[i++];
        uint8_t k;
        CHECK(code != 0u, "COBS code 0 inside a frame");
        CHECK(i + code - 1u <= out_raw_len, "COBS block cut short in the firmware's output");
        for (k = 1; k < code; k++) {
            body[n++] = out_raw[i++];
        }
        if (code < 0xFFu && i < out_raw_len) {
            body[n++] = 0u;
        }
    }
    CHECK(n >= BNN_PROTO_OVERHEAD, "frame shorter than header + CRC");
    CHECK(n - BNN_PROTO_OVERHEAD <= OUT_FRAME_MAX, "the firmware sent an over-long frame");
    CHECK(ref_crc32(body, n - 4u) == le32(body + n - 4u), "the firmware sent a bad CRC");
    CHECK(body[0] == BNN_PROTO_VERSION, "the firmware sent another protocol version");
    f.type = body[1];
    f.seq = (uint16_t)(body[2] | (body[3] << 8));
    f.len = (uint32_t)(n - BNN_PROTO_OVERHEAD);
    memcpy(f.payload, body + BNN_PROTO_HEADER_BYTES, f.len);
    check_frame(&f);
    if (n_captured < MAX_CAPTURED) {
        captured[n_captured++] = f;
    }
    n_seen++;
}

static void out_push(uint8_t byte)
{
    if (byte == 0u) {
        if (out_raw_len) {
            out_frame_done();
        }
        out_raw_len = 0;
        return;
    }
    CHECK(out_raw_len < sizeof out_raw, "the firmware sent an over-long frame");
    out_raw[out_raw_len++] = byte;
}

/* ---- the port, as the runner sees it ---------------------------------------------------- */

static uint8_t *bulk_region;
static uint32_t bulk_region_size;
static uint32_t fake_counter;

void bnn_port_init(void)
{
}

void bnn_port_write(const uint8_t *buf, uint32_t n)
{
    uint32_t i;
    for (i = 0; i < n; i++) {
        out_push(buf[i]);
    }
}

int bnn_port_read_byte(void)
{
    abort(); /* the harness feeds bytes itself */
}

uint32_t bnn_port_counter(void)
{
    fake_counter += 0x9E3779B9u; /* wraps, like a real counter */
    return fake_counter;
}

const char *bnn_port_counter_unit(void)
{
    return "ticks";
}

uint32_t bnn_port_counter_hz(void)
{
    return 1000000u;
}

const char *bnn_port_board(void)
{
    return "fuzz";
}

const char *bnn_port_core(void)
{
    return "host";
}

uint32_t bnn_port_clock_hz(void)
{
    return 0u;
}

const uint8_t *bnn_port_bulk_base(void)
{
    return bulk_region;
}

uint32_t bnn_port_bulk_size(void)
{
    return bulk_region_size;
}

uint32_t bnn_port_stack_used(void)
{
    return 0u;
}

void bnn_port_mark(uint32_t id)
{
    (void)id;
}

void bnn_port_exit(int code)
{
    (void)code;
    abort(); /* the runner itself never exits: main.c does */
}

/* ---- building frames -------------------------------------------------------------------- */

typedef struct {
    uint8_t bytes[MAX_ENCODED];
    uint8_t is_code[MAX_ENCODED]; /* COBS code bytes and delimiters */
    size_t n;
} encoded_t;

static void encode(encoded_t *e, uint8_t version, uint8_t type, uint16_t seq,
                   const uint8_t *payload, size_t len)
{
    static uint8_t body[MAX_BODY];
    size_t n = 0, i, code_at;
    uint32_t crc;

    body[n++] = version;
    body[n++] = type;
    body[n++] = (uint8_t)seq;
    body[n++] = (uint8_t)(seq >> 8);
    memcpy(body + n, payload, len);
    n += len;
    crc = ref_crc32(body, n);
    bnn_put_le32(body + n, crc);
    n += 4u;

    memset(e->is_code, 0, sizeof e->is_code);
    e->n = 0;
    e->is_code[e->n] = 1;
    e->bytes[e->n++] = 0u;
    code_at = e->n++;
    e->is_code[code_at] = 1;
    for (i = 0; i < n; i++) {
        if (body[i] == 0u) {
            e->bytes[code_at] = (uint8_t)(e->n - code_at);
            code_at = e->n++;
            e->is_code[code_at] = 1;
            continue;
        }
        e->bytes[e->n++] = body[i];
        if (e->n - code_at == 0xFFu) {
            e->bytes[code_at] = 0xFFu;
            code_at = e->n++;
            e->is_code[code_at] = 1;
        }
    }
    e->bytes[code_at] = (uint8_t)(e->n - code_at);
    e->is_code[e->n] = 1;
    e->bytes[e->n++] = 0u;
}

/* ---- the expected answers --------------------------------------------------------------- */

static uint32_t expected_len(uint8_t type)
{
    switch (type) {
    case BNN_MSG_RUN:
    case BNN_MSG_TRACE:
        return IN_BYTES;
    case BNN_MSG_BENCH:
        return BNN_BENCH_REQ_FIXED_BYTES + IN_BYTES;
    case BNN_MSG_BULK:
        return BNN_BULK_REQ_BYTES;
    default:
        return 0u;
    }
}

static void expect_error(uint16_t seq, uint8_t code, uint8_t req, uint32_t detail)
{
    const out_frame_t *f = &captured[0];
    CHECK(n_seen == 1u, "a bad frame must get exactly one reply");
    CHECK(f->type == BNN_MSG_ERROR, "a bad frame must get an ERROR");
    CHECK(f->payload[0] == code, "ERROR with the wrong code");
    CHECK(f->seq == seq, "ERROR with the wrong seq");
    CHECK(f->payload[1] == req, "ERROR names the wrong request type");
    CHECK(le32(f->payload + 4) == detail, "ERROR with the wrong detail");
}

static void expect_result(const out_frame_t *f, uint8_t type, uint16_t seq, uint32_t skip,
                          const uint8_t *input)
{
    int32_t scores[CLASSES];
    int cls = bnn_model_run(input, scores);
    uint32_t c;
    CHECK(f->type == type && f->seq == seq, "reply of the wrong type or seq");
    CHECK((int32_t)le32(f->payload + skip) == cls, "reply with the wrong class");
    for (c = 0; c < CLASSES; c++) {
        CHECK((int32_t)le32(f->payload + skip + 8u + 4u * c) == scores[c],
              "reply with wrong scores");
    }
}

/* Whether the runner must find the bulk region usable (checked independently). */
static int bulk_usable(uint32_t *count)
{
    if (!bulk_region || bulk_region_size < BNN_BULK_HEADER_BYTES) {
        return 0;
    }
    *count = le32(bulk_region + 4);
    return le32(bulk_region) == BNN_BULK_MAGIC && le32(bulk_region + 8) == IN_BYTES &&
           *count <= (bulk_region_size - BNN_BULK_HEADER_BYTES) / IN_BYTES &&
           ref_crc32(bulk_region + BNN_BULK_HEADER_BYTES, (size_t)*count * IN_BYTES) ==
               le32(bulk_region + 12);
}

/* The answer to an intact frame of protocol version 1 that fits the receive buffer. */
static void check_reply(uint8_t type, uint16_t seq, const uint8_t *payload, uint32_t len)
{
    const out_frame_t *last = &captured[n_captured ? n_captured - 1u : 0u];
    uint32_t i;

    if (type < BNN_MSG_INFO || type > BNN_MSG_EXIT) {
        expect_error(seq, BNN_ERR_TYPE, type, 0u);
        return;
    }
    if (len != expected_len(type)) {
        expect_error(seq, BNN_ERR_LENGTH, type, expected_len(type));
        return;
    }
    CHECK(n_seen >= 1u, "a valid request got no reply");
    switch (type) {
    case BNN_MSG_INFO:
    case BNN_MSG_EXIT:
        CHECK(n_seen == 1u && last->type == (type | BNN_MSG_REPLY) && last->seq == seq,
              "INFO/EXIT reply");
        break;
    case BNN_MSG_RUN:
        CHECK(n_seen == 1u, "RUN: one reply");
        expect_result(last, BNN_MSG_RUN | BNN_MSG_REPLY, seq, 0u, payload);
        break;
    case BNN_MSG_TRACE:
        CHECK(n_seen == LAYERS + 1u, "TRACE: one frame per layer, then the reply");
        for (i = 0; i < LAYERS; i++) {
            CHECK(captured[i].type == BNN_MSG_TRACE_LAYER && captured[i].seq == seq &&
                      captured[i].payload[0] == i,
                  "TRACE: layers in order");
        }
        expect_result(last, BNN_MSG_TRACE | BNN_MSG_REPLY, seq, 0u, payload);
        CHECK(memcmp(captured[LAYERS - 1u].payload + 4, last->payload + 8, 4u * CLASSES) == 0,
              "TRACE: the last layer's output is the scores");
        break;
    case BNN_MSG_BENCH: {
        uint32_t reps = le32(payload);
        int32_t scores[CLASSES];
        CHECK(n_seen == 1u && last->type == (BNN_MSG_BENCH | BNN_MSG_REPLY) && last->seq == seq,
              "BENCH reply");
        CHECK(le32(last->payload + 4) == (reps ? reps : 1u), "BENCH: repeats");
        CHECK((int32_t)le32(last->payload) == bnn_model_run(payload + 4, scores), "BENCH: class");
        break;
    }
    case BNN_MSG_BULK: {
        uint32_t first = le32(payload), count = le32(payload + 4), total = 0;
        if (!bulk_usable(&total)) {
            CHECK(n_seen == 1u && last->type == BNN_MSG_ERROR && last->payload[0] == BNN_ERR_BULK,
                  "BULK on an unusable region: ERROR BULK");
            break;
        }
        if (first > total || (count != 0u && count > total - first)) {
            expect_error(seq, BNN_ERR_RANGE, BNN_MSG_BULK, total);
            break;
        }
        if (count == 0u) {
            count = total - first;
        }
        CHECK(n_seen == count + 1u, "BULK: one result per vector, then the reply");
        CHECK(last->type == (BNN_MSG_BULK | BNN_MSG_REPLY) && last->seq == seq &&
                  le32(last->payload) == first && le32(last->payload + 4) == count,
              "BULK: closing reply");
        for (i = 0; i + 1u < n_captured; i++) {
            const uint8_t *x = bulk_region + BNN_BULK_HEADER_BYTES + (size_t)(first + i) * IN_BYTES;
            CHECK(le32(captured[i].payload) == first + i, "BULK: results in order");
            expect_result(&captured[i], BNN_MSG_BULK_RESULT, seq, 4u, x);
        }
        break;
    }
    default:
        break;
    }
}

/* ---- a shadow receiver: what the runner must answer to every byte ----------------------- */

#define SHADOW_MAX (4u * RX_BYTES + 1024u)

static uint8_t shadow[SHADOW_MAX]; /* the bytes since the last delimiter */
static size_t shadow_len;
static int shadow_long; /* more than SHADOW_MAX bytes: the runner must have overflowed */

/* Checks the runner's answer to a frame that just ended (`raw`: its COBS bytes). Returns 1
 * when the frame was a valid EXIT request (the runner must stop). */
static int check_frame_answer(const uint8_t *raw, size_t n)
{
    static uint8_t body[SHADOW_MAX];
    size_t i = 0, len = 0;
    int cut = 0;

    if (n == 0u && !shadow_long) {
        CHECK(n_seen == 0u, "an empty frame was answered");
        return 0;
    }
    /* decode the way the protocol defines it, counting what a receiver would store */
    while (i < n) {
        uint8_t code = raw[i++];
        uint8_t k;
        for (k = 1; k < code; k++) {
            if (i >= n) {
                cut = 1;
                break;
            }
            body[len++] = raw[i++];
        }
        if (cut) {
            break;
        }
        if (code < 0xFFu && i < n) {
            body[len++] = 0u;
        }
    }
    if (shadow_long || len > RX_BYTES) {
        /* seq and type as read from the unchecked header: a hint only */
        CHECK(n_seen == 1u && captured[0].type == BNN_MSG_ERROR &&
                  captured[0].payload[0] == BNN_ERR_OVERFLOW &&
                  le32(captured[0].payload + 4) == RX_PAYLOAD,
              "an over-long frame: one OVERFLOW error");
        if (!shadow_long) {
            CHECK(captured[0].payload[1] == body[1] &&
                      captured[0].seq == (uint16_t)(body[2] | (body[3] << 8)),
                  "OVERFLOW error: header hint");
        }
        return 0;
    }
    if (cut || len < BNN_PROTO_OVERHEAD) {
        expect_error(0xFFFFu, BNN_ERR_FRAMING, 0u, 0u);
        return 0;
    }
    {
        uint8_t type = body[1];
        uint16_t seq = (uint16_t)(body[2] | (body[3] << 8));
        uint32_t crc = le32(body + len - 4u);
        if (ref_crc32(body, len - 4u) != crc) {
            expect_error(seq, BNN_ERR_CRC, type, crc);
            return 0;
        }
        if (body[0] != BNN_PROTO_VERSION) {
            expect_error(seq, BNN_ERR_VERSION, type, body[0]);
            return 0;
        }
        check_reply(type, seq, body + BNN_PROTO_HEADER_BYTES,
                    (uint32_t)(len - BNN_PROTO_OVERHEAD));
        return type == BNN_MSG_EXIT && len == BNN_PROTO_OVERHEAD;
    }
}

/* ---- one fuzz input --------------------------------------------------------------------- */

static bnn_runner_t runner;
static int32_t scores_buf[CLASSES];
static uint32_t layer_counts[LAYERS];
static uint32_t layer_min[LAYERS];
static const bnn_runner_model_t model = {
    IN_BYTES,          BNN_MODEL_INPUT_H,     BNN_MODEL_INPUT_W,
    BNN_MODEL_INPUT_C, CLASSES,               LAYERS,
    BNN_MODEL_ARENA_BYTES, BNN_MODEL_PARAM_BYTES, BNN_MODEL_MACS,
    scores_buf,        layer_counts,          layer_min,
};

/* Feed bytes one at a time, checking the answer to each; returns 1 once the runner answered
 * EXIT (the app stops reading then). */
static int feed(const uint8_t *p, size_t n)
{
    size_t i;
    for (i = 0; i < n; i++) {
        int done, expect_exit = 0;
        n_captured = 0;
        n_seen = 0;
        done = bnn_runner_feed(&runner, p[i]);
        if (p[i] == 0u) {
            expect_exit = check_frame_answer(shadow, shadow_len);
            shadow_len = 0;
            shadow_long = 0;
        } else {
            CHECK(n_seen == 0u, "the runner answered before a frame ended");
            if (shadow_len < SHADOW_MAX) {
                shadow[shadow_len++] = p[i];
            } else {
                shadow_long = 1;
            }
        }
        CHECK(done == expect_exit, "EXIT obeyed when it should not be, or not obeyed");
        if (done) {
            return 1;
        }
    }
    return 0;
}

static void setup_bulk(src_t *s, uint8_t flags)
{
    uint32_t count = take32(s);
    uint32_t len = take16(s) % (MAX_BULK_BYTES + 1u);
    bulk_region_size = BNN_BULK_HEADER_BYTES + len;
    bulk_region = (uint8_t *)malloc(bulk_region_size);
    CHECK(bulk_region != NULL, "malloc");
    memset(bulk_region, 0, bulk_region_size);
    take_bytes(s, bulk_region + BNN_BULK_HEADER_BYTES, len);
    if (flags & 0x10u) {
        count %= (uint32_t)(len / IN_BYTES + 2u); /* mostly plausible counts */
    }
    bnn_put_le32(bulk_region, (flags & 2u) ? BNN_BULK_MAGIC : BNN_BULK_MAGIC ^ (count | 1u));
    bnn_put_le32(bulk_region + 4, count);
    bnn_put_le32(bulk_region + 8, (flags & 4u) ? IN_BYTES : IN_BYTES + 1u + (count & 0xFFu));
    if ((flags & 8u) && count <= len / IN_BYTES) {
        bnn_put_le32(bulk_region + 12,
                     ref_crc32(bulk_region + BNN_BULK_HEADER_BYTES, (size_t)count * IN_BYTES));
    } else {
        bnn_put_le32(bulk_region + 12, ~count);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static uint8_t payload[MAX_PAYLOAD];
    static encoded_t enc;
    uint32_t *rx;
    src_t s = {data, size};
    uint8_t flags = take8(&s);
    int exited = 0;

    bulk_region = NULL;
    bulk_region_size = 0;
    if (flags & 1u) {
        setup_bulk(&s, flags);
    }
    rx = (uint32_t *)malloc(RX_BYTES); /* exactly: ASan flags one byte too far */
    CHECK(rx != NULL, "malloc");
    out_raw_len = 0;
    shadow_len = 0;
    shadow_long = 0;
    fake_counter = 0;
    bnn_runner_init(&runner, &model, rx, RX_BYTES, bnn_port_write);
    bnn_runner_send_ready(&runner);

    while (s.n > 0u && !exited) {
        uint8_t kind = take8(&s), type, version = BNN_PROTO_VERSION;
        uint16_t seq, len;

        if ((kind & 7u) == 0u) {
            uint8_t raw[255];
            size_t n = take_bytes(&s, raw, take8(&s));
            exited = feed(raw, n);
            continue;
        }
        type = take8(&s);
        seq = take16(&s);
        len = (uint16_t)(take16(&s) % (MAX_PAYLOAD + 1u));
        if ((kind & 7u) >= 5u) { /* a request with the model's lengths */
            type = (uint8_t)(BNN_MSG_INFO + type % 6u);
            len = (uint16_t)expected_len(type);
        }
        memset(payload, 0, len);
        take_bytes(&s, payload, len);
        if (type == BNN_MSG_BENCH && len >= 4u) {
            bnn_put_le32(payload, le32(payload) % (MAX_REPEATS + 1u));
        }
        if ((kind & 7u) == 4u) {
            version = take8(&s);
        }
        encode(&enc, version, type, seq, payload, len);

        if ((kind & 7u) == 2u) { /* one data byte substituted: the CRC must see it */
            uint16_t where = take16(&s);
            uint8_t value = take8(&s);
            size_t data_bytes = 0, i, k;
            for (i = 0; i < enc.n; i++) {
                data_bytes += !enc.is_code[i];
            }
            k = where % data_bytes;
            for (i = 0; i < enc.n; i++) {
                if (!enc.is_code[i] && k-- == 0u) {
                    break;
                }
            }
            if (value == 0u || value == enc.bytes[i]) {
                value = (uint8_t)(enc.bytes[i] ^ 0x5Au);
                value = value ? value : 1u;
            }
            enc.bytes[i] = value;
            exited = feed(enc.bytes, enc.n);
            /* (an EXIT can only be one that an earlier record left open and this record's
             * leading delimiter completed: feed() checked it against the shadow receiver) */
            CHECK(exited || (n_seen == 1u && captured[0].type == BNN_MSG_ERROR &&
                             captured[0].payload[0] == (BNN_PROTO_OVERHEAD + len > RX_BYTES
                                                            ? BNN_ERR_OVERFLOW
                                                            : BNN_ERR_CRC)),
                  "a substituted byte: exactly one CRC (or OVERFLOW) error");
        } else if ((kind & 7u) == 3u) { /* any damage; the shadow receiver knows the answer */
            uint16_t where = take16(&s);
            uint8_t value = take8(&s), how = take8(&s);
            size_t i = where % enc.n, n = enc.n;
            if ((how & 3u) == 0u) {
                enc.bytes[i] = value;
            } else if ((how & 3u) == 1u) {
                n = i + 1u; /* cut: the rest never arrives */
            } else if ((how & 3u) == 2u) {
                n = enc.n - 1u; /* no closing delimiter: merges with what follows */
            } else {
                enc.bytes[i] ^= value;
            }
            exited = feed(enc.bytes, n);
        } else {
            exited = feed(enc.bytes, enc.n);
        }
    }
    CHECK(out_raw_len == 0u, "the firmware's output stopped inside a frame");
    free(rx);
    free(bulk_region);
    bulk_region = NULL;
    return 0;
}
