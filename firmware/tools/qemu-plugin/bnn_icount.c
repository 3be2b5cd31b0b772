/*
 * bnn_icount: exact executed-instruction counts for bnn-mcu, as a QEMU TCG plugin.
 *
 *   qemu-system-arm ... -plugin bnn_icount.so,mark=0x1234,out=counts.txt
 *
 * Every guest instruction adds 1 to a counter (an inline add per instruction, not per
 * translation block: a block cut short, e.g. by an I/O access under -icount, would otherwise
 * be counted whole). Each time the instruction at `mark` (the first instruction of
 * bnn_port_mark, Thumb bit cleared) is about to execute, the count of instructions executed
 * before it is recorded. At exit, `out` receives "total N" and one "mark N" line per hit.
 *
 * Built on demand with the host compiler (bnn_mcu/targets/qemu.py):
 *   gcc -shared -fPIC -O2 -o bnn_icount.so bnn_icount.c
 * Debian's QEMU ships no qemu-plugin.h, so the few declarations needed are written below from
 * the public plugin API documentation (API version 1, QEMU 4.2 to 8.x).
 */
#define _POSIX_C_SOURCE 200809L /* strdup */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- QEMU plugin API, version 1: the subset used here ------------------------------------ */
typedef uint64_t qemu_plugin_id_t;
typedef struct qemu_info_t qemu_info_t; /* not read by this plugin */
struct qemu_plugin_tb;
struct qemu_plugin_insn;

enum qemu_plugin_cb_flags { QEMU_PLUGIN_CB_NO_REGS, QEMU_PLUGIN_CB_R_REGS, QEMU_PLUGIN_CB_RW_REGS };
enum qemu_plugin_op { QEMU_PLUGIN_INLINE_ADD_U64 };

typedef void (*qemu_plugin_udata_cb_t)(qemu_plugin_id_t id, void *userdata);
typedef void (*qemu_plugin_vcpu_udata_cb_t)(unsigned int vcpu_index, void *userdata);
typedef void (*qemu_plugin_vcpu_tb_trans_cb_t)(qemu_plugin_id_t id, struct qemu_plugin_tb *tb);

void qemu_plugin_register_vcpu_tb_trans_cb(qemu_plugin_id_t id, qemu_plugin_vcpu_tb_trans_cb_t cb);
void qemu_plugin_register_atexit_cb(qemu_plugin_id_t id, qemu_plugin_udata_cb_t cb,
                                    void *userdata);
size_t qemu_plugin_tb_n_insns(const struct qemu_plugin_tb *tb);
struct qemu_plugin_insn *qemu_plugin_tb_get_insn(const struct qemu_plugin_tb *tb, size_t idx);
uint64_t qemu_plugin_insn_vaddr(const struct qemu_plugin_insn *insn);
void qemu_plugin_register_vcpu_insn_exec_inline(struct qemu_plugin_insn *insn,
                                                enum qemu_plugin_op op, void *ptr, uint64_t imm);
void qemu_plugin_register_vcpu_insn_exec_cb(struct qemu_plugin_insn *insn,
                                            qemu_plugin_vcpu_udata_cb_t cb,
                                            enum qemu_plugin_cb_flags flags, void *userdata);
void qemu_plugin_outs(const char *string);

#define QEMU_PLUGIN_EXPORT __attribute__((visibility("default")))
/* ------------------------------------------------------------------------------------------ */

QEMU_PLUGIN_EXPORT int qemu_plugin_version = 1;

static uint64_t count; /* instructions executed so far (one vCPU on every bnn-mcu board) */
static uint64_t mark_addr;
static bool have_mark;
static uint64_t *hits;
static size_t n_hits, cap_hits;
static char *out_path;
static bool out_of_memory;

/* Runs just before the marked instruction: record, then count that instruction itself. */
static void on_mark(unsigned int vcpu_index, void *userdata)
{
    (void)vcpu_index;
    (void)userdata;
    if (n_hits == cap_hits) {
        size_t cap = cap_hits ? 2 * cap_hits : 1024;
        uint64_t *grown = realloc(hits, cap * sizeof *hits);
        if (grown == NULL) {
            out_of_memory = true;
            count += 1;
            return;
        }
        hits = grown;
        cap_hits = cap;
    }
    hits[n_hits++] = count;
    count += 1;
}

static void on_translate(qemu_plugin_id_t id, struct qemu_plugin_tb *tb)
{
    size_t i, n = qemu_plugin_tb_n_insns(tb);
    (void)id;
    for (i = 0; i < n; ++i) {
        struct qemu_plugin_insn *insn = qemu_plugin_tb_get_insn(tb, i);
        if (have_mark && qemu_plugin_insn_vaddr(insn) == mark_addr) {
            qemu_plugin_register_vcpu_insn_exec_cb(insn, on_mark, QEMU_PLUGIN_CB_NO_REGS, NULL);
        } else {
            qemu_plugin_register_vcpu_insn_exec_inline(insn, QEMU_PLUGIN_INLINE_ADD_U64, &count, 1);
        }
    }
}

static void write_counts(qemu_plugin_id_t id, void *userdata)
{
    char tmp[4096];
    FILE *f;
    size_t i;
    (void)id;
    (void)userdata;
    if (snprintf(tmp, sizeof tmp, "%s.tmp", out_path) >= (int)sizeof tmp ||
        (f = fopen(tmp, "w")) == NULL) {
        qemu_plugin_outs("bnn_icount: cannot write the counts file\n");
        return;
    }
    fprintf(f, "total %llu\n", (unsigned long long)count);
    for (i = 0; i < n_hits; ++i) {
        fprintf(f, "mark %llu\n", (unsigned long long)hits[i]);
    }
    if (out_of_memory) {
        fputs("error out of memory: marks missing\n", f);
    }
    /* Renamed only when complete: a reader never sees half a file. */
    if (fclose(f) != 0 || rename(tmp, out_path) != 0) {
        qemu_plugin_outs("bnn_icount: cannot write the counts file\n");
    }
}

QEMU_PLUGIN_EXPORT int qemu_plugin_install(qemu_plugin_id_t id, const qemu_info_t *info,
                                           int argc, char **argv)
{
    int i;
    (void)info;
    for (i = 0; i < argc; ++i) {
        if (strncmp(argv[i], "mark=", 5) == 0) {
            char *end;
            mark_addr = strtoull(argv[i] + 5, &end, 0);
            if (*end != '\0') {
                qemu_plugin_outs("bnn_icount: mark= wants an address\n");
                return -1;
            }
            have_mark = true;
        } else if (strncmp(argv[i], "out=", 4) == 0) {
            out_path = argv[i] + 4;
        } else {
            qemu_plugin_outs("bnn_icount: arguments are mark=ADDRESS and out=FILE\n");
            return -1;
        }
    }
    if (out_path == NULL) {
        qemu_plugin_outs("bnn_icount: out=FILE is required\n");
        return -1;
    }
    out_path = strdup(out_path);
    qemu_plugin_register_vcpu_tb_trans_cb(id, on_translate);
    qemu_plugin_register_atexit_cb(id, write_counts, NULL);
    return 0;
}
