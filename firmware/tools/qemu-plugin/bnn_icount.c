/*
 * bnn_icount: exact executed-instruction counts for bnn-mcu, and a cycle estimate, as a QEMU
 * TCG plugin.
 *
 *   qemu-system-arm ... -plugin bnn_icount.so,mark=0x1234,core=cortex-m4,out=counts.txt
 *
 * Instructions: every guest instruction adds 1 to a counter (an inline add per instruction,
 * not per translation block: a block cut short, e.g. by an I/O access under -icount, would
 * otherwise be counted whole). Exact.
 *
 * Cycles (an estimate, not a measurement): each instruction is classified from its Thumb /
 * Thumb-2 encoding when it is translated and adds the weight the core's Technical Reference
 * Manual gives for that class (table `timings` below; sources and limits in
 * docs/performance.md). Taken branches add a pipeline-refill penalty: a branch always ends a
 * translation block in QEMU, so the next executed block's start address tells taken (it is not
 * the branch's fall-through address) from not taken. Single loads followed by a load or store
 * in the same block pipeline (Cortex-M3/M4: the second costs one cycle less); a load or store
 * whose address register the previous instruction computed stalls one cycle (Cortex-M3/M4: no
 * forwarding path to address generation). Not modelled: wait states, M7 dual issue, branch
 * predictors beyond one fixed
 * penalty per kind, MVE beat overlap. The estimate is deterministic: the same run gives the same
 * cycles.
 *
 * Each time the instruction at `mark` (the first instruction of bnn_port_mark, Thumb bit
 * cleared) is about to execute, the instruction and cycle counts before it are recorded. At
 * exit, `out` receives "total N C" and one "mark N C" line per hit (N instructions, C cycles).
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
void qemu_plugin_register_vcpu_tb_exec_cb(struct qemu_plugin_tb *tb,
                                          qemu_plugin_vcpu_udata_cb_t cb,
                                          enum qemu_plugin_cb_flags flags, void *userdata);
size_t qemu_plugin_tb_n_insns(const struct qemu_plugin_tb *tb);
uint64_t qemu_plugin_tb_vaddr(const struct qemu_plugin_tb *tb);
struct qemu_plugin_insn *qemu_plugin_tb_get_insn(const struct qemu_plugin_tb *tb, size_t idx);
const void *qemu_plugin_insn_data(const struct qemu_plugin_insn *insn);
size_t qemu_plugin_insn_size(const struct qemu_plugin_insn *insn);
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

/* ---- cycle weights per core (docs/performance.md lists them with their sources) ---------- */
struct timing {
    const char *core;
    uint8_t alu;        /* data processing, moves, compares, shifts, extends, SIMD ALU, IT, hints */
    uint8_t load;       /* LDR/LDRB/LDRH/LDRSB/LDRSH, any addressing */
    uint8_t store_imm;  /* STR/STRB/STRH with an immediate offset */
    uint8_t store_reg;  /* ... with a register offset */
    uint8_t load_pipe;  /* saved by a single load/store right after a single load */
    uint8_t multiple;   /* LDM/STM/PUSH/POP: multiple + N registers */
    uint8_t dual;       /* LDRD/STRD */
    uint8_t mul;        /* MUL, 32-bit result */
    uint8_t mla;        /* MLA/MLS, DSP multiplies (SMLAD, SMUAD, USADA8, ...) */
    uint8_t mull;       /* SMULL/UMULL */
    uint8_t mlal;       /* SMLAL/UMLAL and friends */
    uint8_t div;        /* SDIV/UDIV (data dependent on the core: a fixed middle value) */
    uint8_t fp;         /* FPU data processing */
    uint8_t fp_load;    /* VLDR/VSTR (VLDM/VSTM: multiple + N) */
    uint8_t vec;        /* MVE (Helium) vector instruction; 0: the core has no MVE */
    /* penalties added when a branch is taken (the branch itself costs `alu` or its load) */
    uint8_t taken_cond; /* B<cond>, CBZ/CBNZ */
    uint8_t taken_b;    /* B */
    uint8_t taken_bl;   /* BL (its base cost is alu) */
    uint8_t taken_reg;  /* BX, BLX, MOV/ADD PC */
    uint8_t taken_load; /* POP {..,PC}, LDR PC, LDM {..,PC}, TBB/TBH */
    uint8_t agu_stall;  /* a load/store whose address uses the previous data-processing result */
};

static const struct timing timings[] = {
    /*            core           alu ld sti str pipe mul dual mul mla mull mlal div fp fpld vec  tc tb tbl treg tld agu */
    {"cortex-m0",                  1, 2, 2,  2,  0,  1,  3,   1,  1,  1,   1,   1,  1, 2,   0,  2, 2, 3,  2,   3, 0},
    {"cortex-m0plus",              1, 2, 2,  2,  0,  1,  3,   1,  1,  1,   1,   1,  1, 2,   0,  1, 1, 2,  1,   2, 0},
    {"cortex-m3",                  1, 2, 1,  2,  1,  1,  3,   1,  2,  4,   5,   7,  1, 2,   0,  2, 2, 2,  2,   3, 1},
    {"cortex-m4",                  1, 2, 1,  2,  1,  1,  3,   1,  1,  1,   1,   7,  1, 2,   0,  2, 2, 2,  2,   3, 1},
    {"cortex-m7",                  1, 1, 1,  1,  0,  1,  2,   1,  1,  1,   1,   7,  1, 1,   0,  1, 1, 1,  2,   3, 0},
    {"cortex-m33",                 1, 2, 1,  2,  1,  1,  3,   1,  1,  1,   1,   7,  1, 2,   0,  2, 2, 2,  2,   3, 1},
    {"cortex-m55",                 1, 2, 1,  2,  1,  1,  3,   1,  1,  1,   1,   7,  1, 2,   2,  2, 2, 2,  2,   3, 1},
};
static const struct timing *T = &timings[3];

/* What one instruction costs, decided at translation time. */
struct cost {
    uint32_t base;     /* cycles whether or not it branches */
    uint32_t taken;    /* extra cycles when control does not fall through */
    bool branch;       /* may change control flow */
    bool single_load;  /* a single LDR* (for load pipelining) */
    bool single_mem;   /* a single LDR* or STR* */
    uint16_t writes;   /* registers a data-processing or multiply instruction writes */
    uint16_t addr;     /* registers a load/store forms its address from */
    uint16_t loaded;   /* the register a single load writes */
};

#define R(n) ((uint16_t)(1u << (n)))

static unsigned popcount16(unsigned v)
{
    unsigned n = 0;
    for (; v; v &= v - 1) {
        ++n;
    }
    return n;
}

/* 16-bit Thumb (ARMv6-M / ARMv7-M encodings). */
static struct cost classify16(unsigned h)
{
    struct cost c = {T->alu, 0, false, false, false, 0, 0, 0};
    if (h < 0x2000 || (h & 0xf000) == 0x3000 || (h & 0xf800) == 0x2000) {
        /* shifts, ADD/SUB register or imm3 (Rd = bits 2:0); MOV/ADD/SUB imm8 (Rd = 10:8) */
        c.writes = h < 0x2000 ? R(h & 7) : R((h >> 8) & 7);
    } else if ((h & 0xfc00) == 0x4000) { /* data processing: TST, CMP, CMN write nothing */
        unsigned op = (h >> 6) & 0xf;
        c.writes = (op == 8 || op == 0xa || op == 0xb) ? 0 : R(h & 7);
    } else if ((h & 0xf000) == 0xa000) { /* ADR, ADD Rd, SP, #imm */
        c.writes = R((h >> 8) & 7);
    } else if ((h & 0xff00) == 0xb000) { /* ADD/SUB SP, SP, #imm */
        c.writes = R(13);
    } else if ((h & 0xff00) == 0xb200 || (h & 0xff00) == 0xba00) { /* extend, REV */
        c.writes = R(h & 7);
    }
    if ((h & 0xff00) == 0x4700) { /* BX / BLX register */
        c.branch = true;
        c.taken = T->taken_reg;
    } else if ((h & 0xfc00) == 0x4400) { /* ADD/CMP/MOV with high registers */
        unsigned rd = ((h >> 4) & 8) | (h & 7);
        if ((h & 0x0300) != 0x0100 && rd == 15) {
            c.branch = true;
            c.taken = T->taken_reg;
        } else if ((h & 0x0300) != 0x0100) {
            c.writes = R(rd);
        }
    } else if ((h & 0xffc0) == 0x4340) { /* MULS */
        c.base = T->mul;
    } else if ((h & 0xf800) == 0x4800) { /* LDR literal */
        c.base = T->load;
        c.single_load = c.single_mem = true;
        c.loaded = R((h >> 8) & 7);
    } else if ((h & 0xf000) == 0x5000) { /* load/store, register offset */
        unsigned op = (h >> 9) & 7;
        c.single_mem = true;
        c.addr = R((h >> 3) & 7) | R((h >> 6) & 7);
        if (op < 3) {
            c.base = T->store_reg;
        } else {
            c.base = T->load;
            c.single_load = true;
            c.loaded = R(h & 7);
        }
    } else if ((h & 0xe000) == 0x6000 || (h & 0xe000) == 0x8000) {
        /* LDR/STR(B) immediate, LDRH/STRH immediate, LDR/STR SP-relative: bit 11 = load */
        c.single_mem = true;
        c.addr = (h & 0xf000) == 0x9000 ? R(13) : R((h >> 3) & 7);
        if (h & 0x0800) {
            c.base = T->load;
            c.single_load = true;
            c.loaded = (h & 0xf000) == 0x9000 ? R((h >> 8) & 7) : R(h & 7);
        } else {
            c.base = T->store_imm;
        }
    }
    if ((h & 0xf000) == 0xb000) { /* miscellaneous */
        if ((h & 0xfe00) == 0xb400) { /* PUSH */
            c.base = T->multiple + popcount16(h & 0x1ff);
            c.addr = R(13);
        } else if ((h & 0xfe00) == 0xbc00) { /* POP */
            c.base = T->multiple + popcount16(h & 0x1ff);
            c.addr = R(13);
            if (h & 0x0100) {
                c.branch = true;
                c.taken = T->taken_load;
            }
        } else if ((h & 0xf500) == 0xb100) { /* CBZ / CBNZ */
            c.branch = true;
            c.taken = T->taken_cond;
        }
    } else if ((h & 0xf000) == 0xc000) { /* LDM / STM */
        c.base = T->multiple + popcount16(h & 0xff);
        c.addr = R((h >> 8) & 7);
    } else if ((h & 0xf000) == 0xd000 && (h & 0x0e00) != 0x0e00) { /* B<cond> */
        c.branch = true;
        c.taken = T->taken_cond;
    } else if ((h & 0xf800) == 0xe000) { /* B */
        c.branch = true;
        c.taken = T->taken_b;
    }
    return c;
}

/* 32-bit Thumb-2 (ARMv7-M, ARMv8-M, ARMv8.1-M encodings). */
static struct cost classify32(unsigned h1, unsigned h2)
{
    struct cost c = {T->alu, 0, false, false, false, 0, 0, 0};
    unsigned rd = (h2 >> 8) & 0xf; /* data processing and multiplies: Rd */
    if ((h1 & 0xfe40) == 0xe800) { /* load/store multiple (incl. PUSH.W / POP.W) */
        c.base = T->multiple + popcount16(h2);
        c.addr = R(h1 & 0xf);
        if ((h1 & 0x0010) && (h2 & 0x8000)) {
            c.branch = true;
            c.taken = T->taken_load;
        }
    } else if ((h1 & 0xfe40) == 0xe840) { /* dual, exclusive, table branch */
        c.addr = R(h1 & 0xf);
        if ((h1 & 0xfff0) == 0xe8d0 && (h2 & 0xffe0) == 0xf000) { /* TBB / TBH */
            c.base = T->load + T->alu;
            c.branch = true;
            c.taken = T->taken_load;
        } else if ((h1 & 0x0120) == 0 && (h1 & 0x0080) == 0) { /* LDREX / STREX */
            c.base = (h1 & 0x0010) ? T->load : T->store_reg;
        } else if ((h1 & 0xffe0) == 0xe8c0) { /* LDREXB/H, STREXB/H */
            c.base = (h1 & 0x0010) ? T->load : T->store_reg;
        } else { /* LDRD / STRD */
            c.base = T->dual;
        }
    } else if ((h1 & 0xfe00) == 0xea00) { /* data processing, shifted register */
        c.base = T->alu;
        c.writes = rd == 15 ? 0 : R(rd); /* Rd = PC: TST/TEQ/CMP/CMN */
    } else if ((h1 & 0xec00) == 0xec00) { /* coprocessor space: FPU, MVE */
        unsigned cp = (h2 >> 8) & 0xf;
        bool vfp = cp == 10 || cp == 11;
        if (T->vec != 0 && (!vfp || (h1 & 0xef00) == 0xef00)) {
            c.base = T->vec; /* MVE: vector data processing or a Q-register load/store */
        } else if ((h1 & 0xfe00) == 0xec00) { /* 0xec00-0xedff */
            if ((h1 & 0xff20) == 0xed00) { /* VLDR / VSTR */
                c.base = T->fp_load;
            } else if ((h1 & 0xffe0) == 0xec40) { /* VMOV of two core registers */
                c.base = T->fp;
            } else { /* VLDM / VSTM / VPUSH / VPOP: imm8 words */
                c.base = T->multiple + ((h2 & 0xff) >> (cp == 11 ? 1 : 0));
            }
        } else {
            c.base = T->fp;
        }
    } else if ((h1 & 0xf800) == 0xf000 && (h2 & 0x8000)) { /* branches, misc control */
        unsigned op = (h2 >> 12) & 5;
        if ((h1 & 0xffc0) == 0xf000 && (h2 & 0xd001) == 0xc001) {
            /* Armv8.1-M LE / LETP: the loop end, no refill once the loop is cached */
            c.branch = true;
            c.taken = 0;
        } else if (op == 0 && (h1 & 0x0380) != 0x0380) { /* B<cond>.W */
            c.branch = true;
            c.taken = T->taken_cond;
        } else if (op == 1) { /* B.W */
            c.branch = true;
            c.taken = T->taken_b;
        } else if (op == 5) { /* BL */
            c.branch = true;
            c.taken = T->taken_bl;
        } else if ((h1 & 0xfff0) == 0xf040 && (h2 & 0xf001) == 0xc001) { /* WLS: may skip */
            c.branch = true;
            c.taken = T->taken_cond;
        }
    } else if ((h1 & 0xf800) == 0xf000) { /* data processing, immediate */
        c.base = T->alu;
        c.writes = rd == 15 ? 0 : R(rd);
    } else if ((h1 & 0xfe00) == 0xf800) { /* load/store single */
        bool load = (h1 & 0x0010) != 0;
        unsigned rt = h2 >> 12;
        bool reg_offset = (h1 & 0x0080) == 0 && (h2 & 0x0fc0) == 0 && (h1 & 0x000f) != 0xf;
        c.single_mem = true;
        c.addr = ((h1 & 0xf) == 15 ? 0 : R(h1 & 0xf)) | (reg_offset ? R(h2 & 0xf) : 0);
        if (load) {
            c.base = T->load;
            c.single_load = true;
            c.loaded = R(rt);
            if (rt == 15 && (h1 & 0x0060) == 0x0040) { /* LDR PC */
                c.branch = true;
                c.taken = T->taken_load;
            }
        } else {
            c.base = reg_offset ? T->store_reg : T->store_imm;
        }
    } else if ((h1 & 0xff00) == 0xfa00) { /* data processing register, parallel add/sub */
        c.base = T->alu;
        c.writes = R(rd);
    } else if ((h1 & 0xff80) == 0xfb00) { /* multiply, multiply-accumulate, USAD8/USADA8 */
        unsigned op1 = (h1 >> 4) & 7, ra = h2 >> 12;
        c.base = (op1 == 0 && ra == 15 && (h2 & 0x00f0) == 0) ? T->mul : T->mla;
        c.writes = R(rd);
    } else if ((h1 & 0xff80) == 0xfb80) { /* long multiply, divide */
        unsigned op1 = (h1 >> 4) & 7;
        if (op1 == 1 || op1 == 3) {
            c.base = T->div;
        } else if (op1 == 0 || op1 == 2) {
            c.base = T->mull;
        } else {
            c.base = T->mlal;
        }
        if (op1 != 1 && op1 != 3) {
            c.writes = R(h2 >> 12) | R(rd); /* RdLo, RdHi */
        } else {
            c.writes = R(rd);
        }
    }
    return c;
}

static struct cost classify(const struct qemu_plugin_insn *insn)
{
    const uint8_t *d = qemu_plugin_insn_data(insn);
    size_t n = qemu_plugin_insn_size(insn);
    unsigned h1 = d[0] | (unsigned)d[1] << 8;
    if (n >= 4) {
        return classify32(h1, d[2] | (unsigned)d[3] << 8);
    }
    return classify16(h1);
}

/* ---- counting ----------------------------------------------------------------------------- */
static uint64_t count;  /* instructions executed so far (one vCPU on every bnn-mcu board) */
static uint64_t cycles; /* estimated cycles so far */
static uint64_t mark_addr;
static bool have_mark;
static uint64_t (*hits)[2];
static size_t n_hits, cap_hits;
static char *out_path;
static bool out_of_memory;

/* A translated block's exit: where a branch would fall through, and what taking it costs. */
struct block_exit {
    uint64_t start;
    uint64_t fallthrough;
    uint32_t taken;
    bool branch;
};
static const struct block_exit *pending; /* the previous block, if it ended with a branch */

/* Runs as a block starts: the previous block's branch was taken unless we are at its
 * fall-through address. */
static void on_block(unsigned int vcpu_index, void *userdata)
{
    const struct block_exit *b = userdata;
    (void)vcpu_index;
    if (pending != NULL && b->start != pending->fallthrough) {
        cycles += pending->taken;
    }
    pending = b->branch ? b : NULL;
}

/* Runs just before the marked instruction: record, then count that instruction itself. */
static void on_mark(unsigned int vcpu_index, void *userdata)
{
    (void)vcpu_index;
    if (n_hits == cap_hits) {
        size_t cap = cap_hits ? 2 * cap_hits : 1024;
        uint64_t(*grown)[2] = realloc(hits, cap * sizeof *hits);
        if (grown == NULL) {
            out_of_memory = true;
            count += 1;
            cycles += (uintptr_t)userdata;
            return;
        }
        hits = grown;
        cap_hits = cap;
    }
    hits[n_hits][0] = count;
    hits[n_hits][1] = cycles;
    ++n_hits;
    count += 1;
    cycles += (uintptr_t)userdata;
}

static void on_translate(qemu_plugin_id_t id, struct qemu_plugin_tb *tb)
{
    size_t i, n = qemu_plugin_tb_n_insns(tb);
    struct block_exit *exit_info = calloc(1, sizeof *exit_info);
    bool prev_load = false;
    uint16_t prev_writes = 0, prev_loaded = 0;
    (void)id;
    if (exit_info == NULL) {
        out_of_memory = true;
        return;
    }
    exit_info->start = qemu_plugin_tb_vaddr(tb);
    /* Registered before the instructions' own callbacks: runs first when the block starts. */
    qemu_plugin_register_vcpu_tb_exec_cb(tb, on_block, QEMU_PLUGIN_CB_NO_REGS, exit_info);
    for (i = 0; i < n; ++i) {
        struct qemu_plugin_insn *insn = qemu_plugin_tb_get_insn(tb, i);
        struct cost c = classify(insn);
        uint64_t base = c.base;
        if (prev_load && c.single_mem && base > 1 && !(c.addr & prev_loaded)) {
            base -= T->load_pipe; /* LDR; LDR/STR: the address phases overlap */
        }
        if (c.addr & prev_writes) {
            base += T->agu_stall; /* no forwarding to address generation (M3/M4 TRM) */
        }
        prev_load = c.single_load;
        prev_writes = c.writes;
        prev_loaded = c.loaded;
        if (i + 1 == n && c.branch) {
            exit_info->branch = true;
            exit_info->taken = c.taken;
            exit_info->fallthrough = qemu_plugin_insn_vaddr(insn) + qemu_plugin_insn_size(insn);
        }
        if (have_mark && qemu_plugin_insn_vaddr(insn) == mark_addr) {
            qemu_plugin_register_vcpu_insn_exec_cb(insn, on_mark, QEMU_PLUGIN_CB_NO_REGS,
                                                   (void *)(uintptr_t)base);
        } else {
            qemu_plugin_register_vcpu_insn_exec_inline(insn, QEMU_PLUGIN_INLINE_ADD_U64, &count, 1);
            qemu_plugin_register_vcpu_insn_exec_inline(insn, QEMU_PLUGIN_INLINE_ADD_U64, &cycles,
                                                       base);
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
    fprintf(f, "core %s\n", T->core);
    fprintf(f, "total %llu %llu\n", (unsigned long long)count, (unsigned long long)cycles);
    for (i = 0; i < n_hits; ++i) {
        fprintf(f, "mark %llu %llu\n", (unsigned long long)hits[i][0],
                (unsigned long long)hits[i][1]);
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
    size_t k;
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
        } else if (strncmp(argv[i], "core=", 5) == 0) {
            for (k = 0; k < sizeof timings / sizeof timings[0]; ++k) {
                if (strcmp(argv[i] + 5, timings[k].core) == 0) {
                    break;
                }
            }
            if (k == sizeof timings / sizeof timings[0]) {
                qemu_plugin_outs("bnn_icount: core= wants cortex-m0, cortex-m0plus, cortex-m3, "
                                 "cortex-m4, cortex-m7, cortex-m33 or cortex-m55\n");
                return -1;
            }
            T = &timings[k];
        } else {
            qemu_plugin_outs("bnn_icount: arguments are mark=ADDRESS, core=NAME and out=FILE\n");
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
