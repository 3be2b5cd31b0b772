/*
 * bnn-mcu serial protocol, version 1: the bytes between the host (bnn_mcu/targets/link.py,
 * codec in bnn_mcu/targets/protocol.py) and the vector runner (firmware/app/main.c).
 *
 * Frame      0x00 | COBS( ver u8 | type u8 | seq u16 | payload | crc32 u32 ) | 0x00
 *            All integers little-endian. ver = BNN_PROTO_VERSION. crc32 is the IEEE 802.3
 *            CRC (reflected, poly 0xEDB88320, init and final xor 0xFFFFFFFF: zlib.crc32) over
 *            ver..payload. COBS removes every 0x00 from the frame, so 0x00 only delimits:
 *            a receiver resynchronizes at the next 0x00 after any garbage, and empty frames
 *            (0x00 0x00) are ignored. The leading 0x00 flushes junk left in the receiver.
 * Sequence   The host numbers its requests; every frame of a reply carries the request's seq.
 *            A retransmitted request keeps its seq (every command is idempotent), so the host
 *            drops the second answer; items inside a streamed reply carry their own index.
 * Types      request R (host -> device) is answered by R | BNN_MSG_REPLY, or by BNN_MSG_ERROR.
 *
 * Request payloads and replies (n = classes, L = layers, IN = input bytes):
 *   INFO   ()                              -> INFO|0x80 info block (below)
 *   RUN    (input[IN])                     -> RUN|0x80 (class i32, counter delta u32, scores i32[n])
 *   TRACE  (input[IN])                     -> L x TRACE_LAYER (layer u16, L u16, output bytes),
 *                                             then TRACE|0x80 (class i32, 0 u32, scores i32[n])
 *   BENCH  (repeats u32, input[IN])        -> BENCH|0x80 (class i32, repeats u32, total u32,
 *                                             layer u32[L]): counter deltas, minimum over repeats
 *   BULK   (first u32, count u32)          -> one BULK_RESULT per vector (index u32, class i32,
 *                                             delta u32, scores i32[n]), then BULK|0x80
 *                                             (first u32, count u32); count 0 = to the end
 *   EXIT   ()                              -> EXIT|0x80 (), then bnn_port_exit(0)
 *   after init, unasked: READY with the info block (seq 0)
 *   on any bad request: ERROR (code u8, request type u8, 0 u16, detail u32)
 *
 * Info block: proto u8, 0 u8, abi u16, hash u8[8], clock_hz u32, counter_hz u32, input_bytes u32,
 *   in_h u16, in_w u16, in_c u16, classes u16, layers u16, 0 u16, arena_bytes u32,
 *   param_bytes u32, macs u32, stack_used u32, max_payload u32, bulk_bytes u32,
 *   then strings (len u8 + bytes): board, core, counter unit,
 *   then per layer: out_bytes u32, macs u32, name (len u8 + bytes), op (len u8 + bytes).
 *
 * Bulk region (bnn_port_bulk_base/size): magic "BNNB", count u32, input_bytes u32,
 *   crc32 u32 of the vectors, then count vectors of input_bytes each, back to back.
 *
 * Bench markers for the QEMU instruction-counting plugin (bnn_port_mark ids), per repeat:
 *   BNN_MARK_BEGIN before the model runs, BNN_MARK_LAYER(i) after layer i's output is
 *   complete, BNN_MARK_END after the model returned (argmax included).
 */
#ifndef BNN_PROTOCOL_H
#define BNN_PROTOCOL_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define BNN_PROTO_VERSION 1u
#define BNN_PROTO_HEADER_BYTES 4u
#define BNN_PROTO_CRC_BYTES 4u
#define BNN_PROTO_OVERHEAD (BNN_PROTO_HEADER_BYTES + BNN_PROTO_CRC_BYTES)

/* Requests (host -> device). */
#define BNN_MSG_INFO 0x01u
#define BNN_MSG_RUN 0x02u
#define BNN_MSG_TRACE 0x03u
#define BNN_MSG_BENCH 0x04u
#define BNN_MSG_BULK 0x05u
#define BNN_MSG_EXIT 0x06u
/* Device -> host. */
#define BNN_MSG_REPLY 0x80u /* OR-ed into the request type */
#define BNN_MSG_READY 0xC0u
#define BNN_MSG_TRACE_LAYER 0xC1u
#define BNN_MSG_BULK_RESULT 0xC2u
#define BNN_MSG_ERROR 0xFFu

/* ERROR codes; detail in brackets. */
#define BNN_ERR_CRC 1u      /* frame CRC mismatch [received crc] */
#define BNN_ERR_VERSION 2u  /* unsupported protocol version [its version] */
#define BNN_ERR_TYPE 3u     /* unknown request type [0] */
#define BNN_ERR_LENGTH 4u   /* payload length wrong for the request [expected length] */
#define BNN_ERR_OVERFLOW 5u /* frame longer than the receive buffer [max payload] */
#define BNN_ERR_FRAMING 6u  /* COBS block cut short, or frame shorter than 8 bytes [0] */
#define BNN_ERR_BULK 7u     /* bulk region unusable [BNN_BULK_ERR_*] */
#define BNN_ERR_RANGE 8u    /* bulk vector range beyond the region's count [count] */

#define BNN_BULK_ERR_NONE 1u   /* the target has no bulk region */
#define BNN_BULK_ERR_MAGIC 2u  /* no "BNNB" header */
#define BNN_BULK_ERR_INPUT 3u  /* input size differs from the model's */
#define BNN_BULK_ERR_SIZE 4u   /* count vectors do not fit in the region */
#define BNN_BULK_ERR_CRC 5u    /* vector data CRC mismatch */

#define BNN_BULK_MAGIC 0x424E4E42u /* "BNNB" read as a little-endian u32 */
#define BNN_BULK_HEADER_BYTES 16u

#define BNN_MARK_BEGIN 0u
#define BNN_MARK_LAYER(i) ((uint32_t)(i) + 1u)
#define BNN_MARK_END 0xFFFFFFFFu

#define BNN_INFO_FIXED_BYTES 60u
#define BNN_RUN_REPLY_FIXED_BYTES 8u
#define BNN_BENCH_REQ_FIXED_BYTES 4u
#define BNN_BULK_REQ_BYTES 8u

/* Little-endian 32-bit load and store, independent of the core's byte order and alignment. */
static inline uint32_t bnn_get_le32(const uint8_t *p)
{
    return (uint32_t)p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16) | ((uint32_t)p[3] << 24);
}

static inline void bnn_put_le32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
    p[2] = (uint8_t)(v >> 16);
    p[3] = (uint8_t)(v >> 24);
}

/* ---- CRC-32 ----------------------------------------------------------------------------- */

/* Chainable like zlib.crc32: start with crc = 0, pass the previous result to continue. */
uint32_t bnn_crc32(uint32_t crc, const uint8_t *data, uint32_t n);

/* ---- COBS decoding, one byte at a time ------------------------------------------------- */

#define BNN_COBS_MORE 0     /* frame not complete yet (or an empty frame was skipped) */
#define BNN_COBS_FRAME 1    /* a frame is in buf[0..len) until the next push */
#define BNN_COBS_OVERFLOW 2 /* the frame ended but did not fit in buf: dropped */
#define BNN_COBS_CUT 3      /* the delimiter came inside a COBS block: dropped */

typedef struct {
    uint8_t *buf;
    uint32_t cap;
    uint32_t len;
    uint8_t left;         /* data bytes still due in the current block */
    uint8_t zero_pending; /* the current block ended with an implied 0x00 */
    uint8_t long_block;   /* the current block's code is 0xFF (no implied 0x00) */
    uint8_t state;        /* idle, collecting, or overflowed */
} bnn_cobs_decoder_t;

void bnn_cobs_decoder_init(bnn_cobs_decoder_t *d, uint8_t *buf, uint32_t cap);
int bnn_cobs_decoder_push(bnn_cobs_decoder_t *d, uint8_t byte);

/* ---- Frames ----------------------------------------------------------------------------- */

typedef void (*bnn_write_fn)(const uint8_t *buf, uint32_t n);

/* Streaming frame writer: COBS-encodes as it goes, so a reply of any size needs 257 bytes. */
typedef struct {
    bnn_write_fn write;
    uint32_t crc;
    uint32_t n;          /* data bytes in the current COBS block */
    uint8_t lead;        /* the frame's leading 0x00 is still to be sent */
    uint8_t block[257];  /* 0x00, code byte, up to 254 data bytes, 0x00 */
} bnn_frame_writer_t;

void bnn_frame_writer_init(bnn_frame_writer_t *w, bnn_write_fn write);
void bnn_frame_begin(bnn_frame_writer_t *w, uint8_t type, uint16_t seq);
void bnn_frame_put(bnn_frame_writer_t *w, const void *data, uint32_t n);
void bnn_frame_put_u16(bnn_frame_writer_t *w, uint16_t v);
void bnn_frame_put_u32(bnn_frame_writer_t *w, uint32_t v);
void bnn_frame_end(bnn_frame_writer_t *w);

/* A whole ERROR frame. */
void bnn_frame_error(bnn_frame_writer_t *w, uint16_t seq, uint8_t code, uint8_t req_type,
                     uint32_t detail);

typedef struct {
    uint8_t type;
    uint16_t seq;
    const uint8_t *payload; /* 4-byte aligned when the reader's buffer is */
    uint32_t len;
} bnn_frame_t;

#define BNN_RX_MORE 0  /* nothing complete yet */
#define BNN_RX_FRAME 1 /* *frame holds a checked frame */
#define BNN_RX_ERROR 2 /* a bad frame was dropped: *frame has its seq (0xFFFF if unknown) and
                          *err the BNN_ERR_* code, *detail its detail */

typedef struct {
    bnn_cobs_decoder_t cobs;
} bnn_frame_reader_t;

/* buf: room for the largest frame (BNN_PROTO_OVERHEAD + max payload). */
void bnn_frame_reader_init(bnn_frame_reader_t *r, uint8_t *buf, uint32_t cap);
int bnn_frame_reader_push(bnn_frame_reader_t *r, uint8_t byte, bnn_frame_t *frame, uint8_t *err,
                          uint32_t *detail);

/* ---- The vector runner's command dispatch --------------------------------------------- */

/* What the runner knows of the model (from bnn_model.h) and the buffers it may use, sized by
 * the caller from the BNN_MODEL_* constants. */
typedef struct {
    uint32_t input_bytes;
    uint16_t in_h, in_w, in_c;
    uint16_t num_classes;
    uint16_t num_layers;
    uint32_t arena_bytes;
    uint32_t param_bytes;
    uint32_t macs;
    int32_t *scores;        /* [num_classes] */
    uint32_t *layer_counts; /* [num_layers] */
    uint32_t *layer_min;    /* [num_layers] */
} bnn_runner_model_t;

typedef struct {
    const bnn_runner_model_t *model;
    bnn_frame_writer_t tx;
    bnn_frame_reader_t rx;
    uint32_t max_payload;
    uint16_t seq;         /* of the request being served */
    uint8_t bulk_checked; /* 0 not yet, else BNN_BULK_ERR_* or 0xFF when the region is good */
    uint32_t bench_prev;  /* counter at the previous layer boundary */
} bnn_runner_t;

/* rx_buf: BNN_PROTO_OVERHEAD + max payload bytes, 4-byte aligned; max payload must hold
 * BNN_BENCH_REQ_FIXED_BYTES + input_bytes. */
void bnn_runner_init(bnn_runner_t *r, const bnn_runner_model_t *model, uint32_t *rx_buf,
                     uint32_t rx_bytes, bnn_write_fn write);
void bnn_runner_send_ready(bnn_runner_t *r);
/* Feed one received byte; returns 1 once an EXIT request has been answered, else 0. */
int bnn_runner_feed(bnn_runner_t *r, uint8_t byte);

#ifdef __cplusplus
}
#endif

#endif /* BNN_PROTOCOL_H */
