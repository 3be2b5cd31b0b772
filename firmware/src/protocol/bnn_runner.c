/*
 * Command dispatch of the vector runner: checks every request's length before touching its
 * payload, answers with one reply (or a stream of items and a closing reply), and turns
 * every bad frame into an ERROR frame. No dynamic memory; the caller sizes the buffers.
 */
#include <string.h>

#include "bnn_model_api.h"
#include "bnn_port.h"
#include "bnn_protocol.h"

static uint32_t str_len(const char *s)
{
    uint32_t n = s ? (uint32_t)strlen(s) : 0u;
    return n > 255u ? 255u : n;
}

static void put_str(bnn_frame_writer_t *w, const char *s)
{
    uint8_t n = (uint8_t)str_len(s);
    bnn_frame_put(w, &n, 1u);
    if (n) {
        bnn_frame_put(w, s, n);
    }
}

static void put_scores(bnn_runner_t *r)
{
    uint16_t i;
    for (i = 0; i < r->model->num_classes; i++) {
        bnn_frame_put_u32(&r->tx, (uint32_t)r->model->scores[i]);
    }
}

/* ---- INFO / READY --------------------------------------------------------------------- */

static void send_info(bnn_runner_t *r, uint8_t type)
{
    const bnn_runner_model_t *m = r->model;
    bnn_frame_writer_t *w = &r->tx;
    uint8_t head[4];
    uint16_t i;

    head[0] = (uint8_t)BNN_PROTO_VERSION;
    head[1] = 0u;
    head[2] = (uint8_t)BNN_MODEL_ABI_VERSION;
    head[3] = (uint8_t)(BNN_MODEL_ABI_VERSION >> 8);
    bnn_frame_begin(w, type, r->seq);
    bnn_frame_put(w, head, 4u);
    bnn_frame_put(w, bnn_model_hash, 8u);
    bnn_frame_put_u32(w, bnn_port_clock_hz());
    bnn_frame_put_u32(w, bnn_port_counter_hz());
    bnn_frame_put_u32(w, m->input_bytes);
    bnn_frame_put_u16(w, m->in_h);
    bnn_frame_put_u16(w, m->in_w);
    bnn_frame_put_u16(w, m->in_c);
    bnn_frame_put_u16(w, m->num_classes);
    bnn_frame_put_u16(w, m->num_layers);
    bnn_frame_put_u16(w, 0u);
    bnn_frame_put_u32(w, m->arena_bytes);
    bnn_frame_put_u32(w, m->param_bytes);
    bnn_frame_put_u32(w, m->macs);
    bnn_frame_put_u32(w, bnn_port_stack_used());
    bnn_frame_put_u32(w, r->max_payload);
    bnn_frame_put_u32(w, bnn_port_bulk_base() ? bnn_port_bulk_size() : 0u);
    put_str(w, bnn_port_board());
    put_str(w, bnn_port_core());
    put_str(w, bnn_port_counter_unit());
    for (i = 0; i < m->num_layers; i++) {
        bnn_frame_put_u32(w, bnn_model_layers[i].out_bytes);
        bnn_frame_put_u32(w, bnn_model_layers[i].macs);
        put_str(w, bnn_model_layers[i].name);
        put_str(w, bnn_model_layers[i].op);
    }
    bnn_frame_end(w);
}

/* ---- RUN / TRACE / BENCH ---------------------------------------------------------------- */

static void send_result(bnn_runner_t *r, uint8_t type, int cls, uint32_t delta)
{
    bnn_frame_begin(&r->tx, type, r->seq);
    bnn_frame_put_u32(&r->tx, (uint32_t)cls);
    bnn_frame_put_u32(&r->tx, delta);
    put_scores(r);
    bnn_frame_end(&r->tx);
}

static int run_timed(bnn_runner_t *r, const uint8_t *input, uint32_t *delta)
{
    uint32_t t0 = bnn_port_counter();
    int cls = bnn_model_run(input, r->model->scores);
    *delta = bnn_port_counter() - t0;
    return cls;
}

static void trace_hook(void *ctx, uint32_t layer, const void *out, uint32_t out_bytes)
{
    bnn_runner_t *r = (bnn_runner_t *)ctx;
    bnn_frame_begin(&r->tx, (uint8_t)BNN_MSG_TRACE_LAYER, r->seq);
    bnn_frame_put_u16(&r->tx, (uint16_t)layer);
    bnn_frame_put_u16(&r->tx, r->model->num_layers);
    bnn_frame_put(&r->tx, out, out_bytes);
    bnn_frame_end(&r->tx);
}

/* Kept short and identical for every layer: its cost lands in the next layer's count. */
static void bench_hook(void *ctx, uint32_t layer, const void *out, uint32_t out_bytes)
{
    bnn_runner_t *r = (bnn_runner_t *)ctx;
    uint32_t now = bnn_port_counter();
    (void)out;
    (void)out_bytes;
    bnn_port_mark(BNN_MARK_LAYER(layer));
    if (layer < r->model->num_layers) {
        r->model->layer_counts[layer] = now - r->bench_prev;
    }
    r->bench_prev = now;
}

static void do_bench(bnn_runner_t *r, const uint8_t *payload)
{
    const bnn_runner_model_t *m = r->model;
    uint32_t repeats = bnn_get_le32(payload), rep, total_min = 0xFFFFFFFFu;
    uint16_t i;
    int cls = 0;

    if (repeats == 0u) {
        repeats = 1u;
    }
    for (i = 0; i < m->num_layers; i++) {
        m->layer_min[i] = 0xFFFFFFFFu;
    }
    for (rep = 0; rep < repeats; rep++) {
        uint32_t t0, total;
        bnn_port_mark(BNN_MARK_BEGIN);
        t0 = bnn_port_counter();
        r->bench_prev = t0;
        cls = bnn_model_run_hooked(payload + BNN_BENCH_REQ_FIXED_BYTES, m->scores, bench_hook, r);
        total = bnn_port_counter() - t0;
        bnn_port_mark(BNN_MARK_END);
        if (total < total_min) {
            total_min = total;
        }
        for (i = 0; i < m->num_layers; i++) {
            if (m->layer_counts[i] < m->layer_min[i]) {
                m->layer_min[i] = m->layer_counts[i];
            }
        }
    }
    bnn_frame_begin(&r->tx, (uint8_t)(BNN_MSG_BENCH | BNN_MSG_REPLY), r->seq);
    bnn_frame_put_u32(&r->tx, (uint32_t)cls);
    bnn_frame_put_u32(&r->tx, repeats);
    bnn_frame_put_u32(&r->tx, total_min);
    for (i = 0; i < m->num_layers; i++) {
        bnn_frame_put_u32(&r->tx, m->layer_min[i]);
    }
    bnn_frame_end(&r->tx);
}

/* ---- BULK ------------------------------------------------------------------------------- */

/* Checks the region once (it is constant): 0xFF when usable, else a BNN_BULK_ERR_* code. */
static uint8_t bulk_check(bnn_runner_t *r)
{
    const uint8_t *base = bnn_port_bulk_base();
    uint32_t size = bnn_port_bulk_size(), count;

    if (r->bulk_checked) {
        return r->bulk_checked;
    }
    if (!base || size < BNN_BULK_HEADER_BYTES) {
        r->bulk_checked = (uint8_t)BNN_BULK_ERR_NONE;
    } else if (bnn_get_le32(base) != BNN_BULK_MAGIC) {
        r->bulk_checked = (uint8_t)BNN_BULK_ERR_MAGIC;
    } else if (bnn_get_le32(base + 8) != r->model->input_bytes) {
        r->bulk_checked = (uint8_t)BNN_BULK_ERR_INPUT;
    } else {
        count = bnn_get_le32(base + 4);
        if (count > (size - BNN_BULK_HEADER_BYTES) / r->model->input_bytes) {
            r->bulk_checked = (uint8_t)BNN_BULK_ERR_SIZE;
        } else if (bnn_crc32(0, base + BNN_BULK_HEADER_BYTES, count * r->model->input_bytes) !=
                   bnn_get_le32(base + 12)) {
            r->bulk_checked = (uint8_t)BNN_BULK_ERR_CRC;
        } else {
            r->bulk_checked = 0xFFu;
        }
    }
    return r->bulk_checked;
}

static void do_bulk(bnn_runner_t *r, const uint8_t *payload)
{
    const uint8_t *base = bnn_port_bulk_base();
    uint32_t first = bnn_get_le32(payload), count = bnn_get_le32(payload + 4), total, i;
    uint8_t ok = bulk_check(r);

    if (ok != 0xFFu) {
        bnn_frame_error(&r->tx, r->seq, (uint8_t)BNN_ERR_BULK, (uint8_t)BNN_MSG_BULK, ok);
        return;
    }
    total = bnn_get_le32(base + 4);
    if (first > total || (count != 0u && count > total - first)) {
        bnn_frame_error(&r->tx, r->seq, (uint8_t)BNN_ERR_RANGE, (uint8_t)BNN_MSG_BULK, total);
        return;
    }
    if (count == 0u) {
        count = total - first;
    }
    for (i = first; i < first + count; i++) {
        uint32_t delta;
        int cls = run_timed(r, base + BNN_BULK_HEADER_BYTES + (size_t)i * r->model->input_bytes,
                            &delta);
        bnn_frame_begin(&r->tx, (uint8_t)BNN_MSG_BULK_RESULT, r->seq);
        bnn_frame_put_u32(&r->tx, i);
        bnn_frame_put_u32(&r->tx, (uint32_t)cls);
        bnn_frame_put_u32(&r->tx, delta);
        put_scores(r);
        bnn_frame_end(&r->tx);
    }
    bnn_frame_begin(&r->tx, (uint8_t)(BNN_MSG_BULK | BNN_MSG_REPLY), r->seq);
    bnn_frame_put_u32(&r->tx, first);
    bnn_frame_put_u32(&r->tx, count);
    bnn_frame_end(&r->tx);
}

/* ---- dispatch --------------------------------------------------------------------------- */

/* Payload length each request must have. */
static uint32_t expected_len(const bnn_runner_t *r, uint8_t type)
{
    switch (type) {
    case BNN_MSG_RUN:
    case BNN_MSG_TRACE:
        return r->model->input_bytes;
    case BNN_MSG_BENCH:
        return BNN_BENCH_REQ_FIXED_BYTES + r->model->input_bytes;
    case BNN_MSG_BULK:
        return BNN_BULK_REQ_BYTES;
    default:
        return 0u; /* INFO, EXIT */
    }
}

static int dispatch(bnn_runner_t *r, const bnn_frame_t *f)
{
    uint32_t delta;
    int cls;

    r->seq = f->seq;
    if (f->type < BNN_MSG_INFO || f->type > BNN_MSG_EXIT) {
        bnn_frame_error(&r->tx, f->seq, (uint8_t)BNN_ERR_TYPE, f->type, 0u);
        return 0;
    }
    if (f->len != expected_len(r, f->type)) {
        bnn_frame_error(&r->tx, f->seq, (uint8_t)BNN_ERR_LENGTH, f->type, expected_len(r, f->type));
        return 0;
    }
    switch (f->type) {
    case BNN_MSG_INFO:
        send_info(r, (uint8_t)(BNN_MSG_INFO | BNN_MSG_REPLY));
        break;
    case BNN_MSG_RUN:
        cls = run_timed(r, f->payload, &delta);
        send_result(r, (uint8_t)(BNN_MSG_RUN | BNN_MSG_REPLY), cls, delta);
        break;
    case BNN_MSG_TRACE:
        cls = bnn_model_run_hooked(f->payload, r->model->scores, trace_hook, r);
        send_result(r, (uint8_t)(BNN_MSG_TRACE | BNN_MSG_REPLY), cls, 0u);
        break;
    case BNN_MSG_BENCH:
        do_bench(r, f->payload);
        break;
    case BNN_MSG_BULK:
        do_bulk(r, f->payload);
        break;
    default: /* BNN_MSG_EXIT */
        bnn_frame_begin(&r->tx, (uint8_t)(BNN_MSG_EXIT | BNN_MSG_REPLY), f->seq);
        bnn_frame_end(&r->tx);
        return 1;
    }
    return 0;
}

void bnn_runner_init(bnn_runner_t *r, const bnn_runner_model_t *model, uint32_t *rx_buf,
                     uint32_t rx_bytes, bnn_write_fn write)
{
    r->model = model;
    r->max_payload = rx_bytes - BNN_PROTO_OVERHEAD;
    r->seq = 0;
    r->bulk_checked = 0;
    r->bench_prev = 0;
    bnn_frame_writer_init(&r->tx, write);
    bnn_frame_reader_init(&r->rx, (uint8_t *)rx_buf, rx_bytes);
}

void bnn_runner_send_ready(bnn_runner_t *r)
{
    r->seq = 0;
    send_info(r, (uint8_t)BNN_MSG_READY);
}

int bnn_runner_feed(bnn_runner_t *r, uint8_t byte)
{
    bnn_frame_t f;
    uint8_t err = 0;
    uint32_t detail = 0;
    int st = bnn_frame_reader_push(&r->rx, byte, &f, &err, &detail);

    if (st == BNN_RX_FRAME) {
        return dispatch(r, &f);
    }
    if (st == BNN_RX_ERROR) {
        bnn_frame_error(&r->tx, f.seq, err, f.type, detail);
    }
    return 0;
}
