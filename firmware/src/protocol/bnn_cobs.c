/*
 * COBS decoding as a byte-at-a-time state machine. A block is a code byte c (1..255) then
 * c-1 data bytes; a block with c < 255 stands for its data followed by 0x00, except that the
 * last 0x00 of a frame is not part of it. So the 0x00 is only emitted when the next block
 * starts ("zero_pending"), and dropped at the delimiter.
 */
#include "bnn_protocol.h"

enum { COBS_IDLE = 0, COBS_COLLECT = 1, COBS_OVERFLOWED = 2 };

void bnn_cobs_decoder_init(bnn_cobs_decoder_t *d, uint8_t *buf, uint32_t cap)
{
    d->buf = buf;
    d->cap = cap;
    d->len = 0;
    d->left = 0;
    d->zero_pending = 0;
    d->long_block = 0;
    d->state = COBS_IDLE;
}

static void cobs_append(bnn_cobs_decoder_t *d, uint8_t byte)
{
    if (d->len < d->cap) {
        d->buf[d->len++] = byte;
    } else {
        d->state = COBS_OVERFLOWED;
    }
}

int bnn_cobs_decoder_push(bnn_cobs_decoder_t *d, uint8_t byte)
{
    if (byte == 0u) {
        int result;
        if (d->state == COBS_IDLE) {
            return BNN_COBS_MORE; /* empty frame: a lone delimiter */
        }
        if (d->state == COBS_OVERFLOWED) {
            result = BNN_COBS_OVERFLOW;
        } else if (d->left != 0u) {
            result = BNN_COBS_CUT;
        } else {
            result = BNN_COBS_FRAME;
        }
        d->state = COBS_IDLE;
        d->left = 0;
        d->zero_pending = 0;
        return result;
    }
    if (d->state == COBS_IDLE) {
        d->state = COBS_COLLECT;
        d->len = 0;
    }
    if (d->left == 0u) { /* a code byte starts the next block */
        if (d->zero_pending) {
            cobs_append(d, 0u);
        }
        d->left = (uint8_t)(byte - 1u);
        d->long_block = (uint8_t)(byte == 0xFFu);
    } else {
        cobs_append(d, byte);
        d->left--;
    }
    d->zero_pending = (uint8_t)(d->left == 0u && !d->long_block);
    return BNN_COBS_MORE;
}
