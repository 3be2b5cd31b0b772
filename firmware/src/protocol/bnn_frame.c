/*
 * Frames: a streaming writer (header, payload and CRC are COBS-encoded on the fly through a
 * 255-byte block, so replies of any size cost no RAM) and a checking reader on top of the
 * COBS decoder.
 */
#include "bnn_protocol.h"

/* block[0] holds the leading delimiter (sent with the first block of a frame), block[1] the
 * COBS code byte, block[2..255] the data, block[256] room for the trailing delimiter: a short
 * frame goes out in one write. */
static void cobs_flush(bnn_frame_writer_t *w, int last)
{
    uint32_t from = w->lead ? 0u : 1u, n = w->n + 2u;
    w->block[1] = (uint8_t)(w->n + 1u);
    if (last) {
        w->block[n++] = 0u;
    }
    w->write(w->block + from, n - from);
    w->n = 0;
    w->lead = 0;
}

static void cobs_put(bnn_frame_writer_t *w, uint8_t byte)
{
    if (byte == 0u) {
        cobs_flush(w, 0);
        return;
    }
    w->block[2u + w->n++] = byte;
    if (w->n == 254u) {
        cobs_flush(w, 0); /* code 0xFF: 254 data bytes, no implied 0x00 */
    }
}

static void put_raw(bnn_frame_writer_t *w, const uint8_t *p, uint32_t n)
{
    uint32_t i;
    for (i = 0; i < n; i++) {
        cobs_put(w, p[i]);
    }
}

void bnn_frame_writer_init(bnn_frame_writer_t *w, bnn_write_fn write)
{
    w->write = write;
    w->crc = 0;
    w->n = 0;
    w->lead = 0;
    w->block[0] = 0u;
}

void bnn_frame_begin(bnn_frame_writer_t *w, uint8_t type, uint16_t seq)
{
    w->crc = 0;
    w->n = 0;
    w->lead = 1;
    bnn_frame_put_u16(w, (uint16_t)(BNN_PROTO_VERSION | ((uint16_t)type << 8)));
    bnn_frame_put_u16(w, seq);
}

void bnn_frame_put(bnn_frame_writer_t *w, const void *data, uint32_t n)
{
    const uint8_t *p = (const uint8_t *)data;
    w->crc = bnn_crc32(w->crc, p, n);
    put_raw(w, p, n);
}

void bnn_frame_put_u16(bnn_frame_writer_t *w, uint16_t v)
{
    uint8_t b[2];
    b[0] = (uint8_t)v;
    b[1] = (uint8_t)(v >> 8);
    bnn_frame_put(w, b, 2u);
}

void bnn_frame_put_u32(bnn_frame_writer_t *w, uint32_t v)
{
    uint8_t b[4];
    bnn_put_le32(b, v);
    bnn_frame_put(w, b, 4u);
}

void bnn_frame_end(bnn_frame_writer_t *w)
{
    uint8_t b[4];
    bnn_put_le32(b, w->crc);
    put_raw(w, b, 4u);
    cobs_flush(w, 1); /* the last block; its implied 0x00 is the delimiter's */
}

void bnn_frame_error(bnn_frame_writer_t *w, uint16_t seq, uint8_t code, uint8_t req_type,
                     uint32_t detail)
{
    uint8_t head[4];
    head[0] = code;
    head[1] = req_type;
    head[2] = 0u;
    head[3] = 0u;
    bnn_frame_begin(w, (uint8_t)BNN_MSG_ERROR, seq);
    bnn_frame_put(w, head, 4u);
    bnn_frame_put_u32(w, detail);
    bnn_frame_end(w);
}

void bnn_frame_reader_init(bnn_frame_reader_t *r, uint8_t *buf, uint32_t cap)
{
    bnn_cobs_decoder_init(&r->cobs, buf, cap);
}

int bnn_frame_reader_push(bnn_frame_reader_t *r, uint8_t byte, bnn_frame_t *frame, uint8_t *err,
                          uint32_t *detail)
{
    const uint8_t *b = r->cobs.buf;
    uint32_t len, body;
    int st = bnn_cobs_decoder_push(&r->cobs, byte);

    if (st == BNN_COBS_MORE) {
        return BNN_RX_MORE;
    }
    len = r->cobs.len;
    frame->type = 0;
    frame->seq = 0xFFFFu;
    frame->payload = b + BNN_PROTO_HEADER_BYTES;
    frame->len = 0;
    *detail = 0;
    if (st == BNN_COBS_OVERFLOW) {
        /* the header is in the buffer (cap > 4), but unchecked: report its seq as a hint */
        frame->type = b[1];
        frame->seq = (uint16_t)(b[2] | (b[3] << 8));
        *err = (uint8_t)BNN_ERR_OVERFLOW;
        *detail = r->cobs.cap - BNN_PROTO_OVERHEAD;
        return BNN_RX_ERROR;
    }
    if (st == BNN_COBS_CUT || len < BNN_PROTO_OVERHEAD) {
        *err = (uint8_t)BNN_ERR_FRAMING;
        return BNN_RX_ERROR;
    }
    body = len - BNN_PROTO_CRC_BYTES;
    frame->type = b[1];
    frame->seq = (uint16_t)(b[2] | (b[3] << 8));
    if (bnn_crc32(0, b, body) != bnn_get_le32(b + body)) {
        *err = (uint8_t)BNN_ERR_CRC;
        *detail = bnn_get_le32(b + body);
        return BNN_RX_ERROR;
    }
    if (b[0] != BNN_PROTO_VERSION) {
        *err = (uint8_t)BNN_ERR_VERSION;
        *detail = b[0];
        return BNN_RX_ERROR;
    }
    frame->len = body - BNN_PROTO_HEADER_BYTES;
    return BNN_RX_FRAME;
}
