/*
 * Host port: the firmware as a Linux program, for parity runs without an emulator.
 *
 *   host.elf --port PORT [--bulk FILE]   serve the byte stream on 127.0.0.1:PORT (accepts one
 *                                        connection, like QEMU's -serial tcp:...,server=on)
 *   host.elf --stdio [--bulk FILE]       the byte stream on stdin/stdout
 *
 * The application's main() is compiled as bnn_app_main() (the Makefile renames it) and runs
 * on a thread whose stack is painted, so bnn_port_stack_used() works as on the boards.
 * A crash (SIGSEGV, SIGBUS, SIGILL, SIGFPE) writes one "BNN-FAULT ..." line to the link and
 * to stderr and exits with BNN_FAULT_EXIT_CODE.
 */
#define _DEFAULT_SOURCE /* MAP_ANONYMOUS */
#define _XOPEN_SOURCE 700 /* SA_ONSTACK, sigaltstack */

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "bnn_port_common.h"

#define HOST_STACK_BYTES (1024u * 1024u)
#define ACCEPT_TIMEOUT_MS 60000
#define EXIT_USAGE 2
#define EXIT_SETUP 3

extern int bnn_app_main(void);

static int link_in = -1;
static int link_out = -1;
static int link_is_socket;
static uint8_t *bulk;
static uint32_t bulk_size;
static uint32_t *stack_lo;
static uint32_t *stack_hi;

static void die(const char *what, const char *detail)
{
    fprintf(stderr, "BNN-HOST: %s%s%s\n", what, detail ? ": " : "", detail ? detail : "");
    exit(EXIT_SETUP);
}

static void usage(void)
{
    fputs("usage: host.elf (--port PORT | --stdio) [--bulk FILE]\n", stderr);
    exit(EXIT_USAGE);
}

static void load_bulk(const char *path)
{
    FILE *f = fopen(path, "rb");
    long n;
    if (f == NULL || fseek(f, 0, SEEK_END) != 0 || (n = ftell(f)) < 0 || n > 0x7FFFFFFFL) {
        die("cannot read bulk file", path);
    }
    rewind(f);
    bulk = (uint8_t *)malloc(n > 0 ? (size_t)n : 1u);
    if (bulk == NULL || fread(bulk, 1, (size_t)n, f) != (size_t)n) {
        die("cannot read bulk file", path);
    }
    fclose(f);
    bulk_size = (uint32_t)n;
}

static void serve(long port)
{
    struct sockaddr_in addr;
    struct pollfd pfd;
    int one = 1;
    int srv = socket(AF_INET, SOCK_STREAM, 0);
    if (srv < 0) {
        die("socket", strerror(errno));
    }
    setsockopt(srv, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    memset(&addr, 0, sizeof addr);
    addr.sin_family = AF_INET;
    addr.sin_port = htons((uint16_t)port);
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (bind(srv, (struct sockaddr *)&addr, sizeof addr) != 0 || listen(srv, 1) != 0) {
        die("cannot listen on 127.0.0.1", strerror(errno));
    }
    pfd.fd = srv;
    pfd.events = POLLIN;
    if (poll(&pfd, 1, ACCEPT_TIMEOUT_MS) != 1) {
        die("nobody connected", "timeout");
    }
    link_in = accept(srv, NULL, NULL);
    if (link_in < 0) {
        die("accept", strerror(errno));
    }
    close(srv);
    setsockopt(link_in, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    link_out = link_in;
    link_is_socket = 1;
}

static void write_all(int fd, const uint8_t *buf, size_t n)
{
    while (n > 0u) {
        ssize_t k = write(fd, buf, n);
        if (k < 0 && errno == EINTR) {
            continue;
        }
        if (k <= 0) {
            return; /* the host went away: nothing left to tell it */
        }
        buf += k;
        n -= (size_t)k;
    }
}

static void text_hex64(bnn_text_t *t, uint64_t v)
{
    char low[11];
    bnn_text_t lt = {low, low + sizeof low - 1};
    if ((v >> 32) == 0u) {
        bnn_text_hex(t, (uint32_t)v);
        return;
    }
    bnn_text_hex(t, (uint32_t)(v >> 32));
    bnn_text_hex(&lt, (uint32_t)v);
    *lt.p = '\0';
    bnn_text_str(t, low + 2); /* the low word's digits, without its "0x" */
}

static void on_fault(int sig, siginfo_t *info, void *uctx)
{
    char line[160];
    bnn_text_t t;
    (void)uctx;
    t.p = line;
    t.end = line + sizeof line;
    bnn_text_str(&t, "\r\nBNN-FAULT signal=");
    bnn_text_dec(&t, (uint32_t)sig);
    bnn_text_str(&t, sig == SIGSEGV ? " (SIGSEGV)" : sig == SIGBUS ? " (SIGBUS)"
                     : sig == SIGILL ? " (SIGILL)" : " (SIGFPE)");
    bnn_text_str(&t, " addr=");
    text_hex64(&t, (uint64_t)(uintptr_t)info->si_addr);
    bnn_text_str(&t, "\r\n");
    write_all(link_out, (const uint8_t *)line, (size_t)(t.p - line));
    write_all(2, (const uint8_t *)line + 2, (size_t)(t.p - line - 2));
    _exit(BNN_FAULT_EXIT_CODE);
}

static void install_fault_handlers(void)
{
    static const int sigs[] = {SIGSEGV, SIGBUS, SIGILL, SIGFPE};
    struct sigaction sa;
    size_t i;
    memset(&sa, 0, sizeof sa);
    sa.sa_sigaction = on_fault;
    sa.sa_flags = SA_SIGINFO | SA_ONSTACK;
    sigemptyset(&sa.sa_mask);
    for (i = 0; i < sizeof sigs / sizeof sigs[0]; ++i) {
        sigaction(sigs[i], &sa, NULL);
    }
    signal(SIGPIPE, SIG_IGN);
}

static void *app_thread(void *arg)
{
    static uint8_t alt_stack[64 * 1024];
    stack_t ss;
    (void)arg;
    ss.ss_sp = alt_stack;
    ss.ss_size = sizeof alt_stack;
    ss.ss_flags = 0;
    sigaltstack(&ss, NULL); /* so a stack overflow still reports */
    bnn_port_exit(bnn_app_main());
    return NULL;
}

/* The app's stack: painted, with an inaccessible guard page below it. */
static void run_app(void)
{
    size_t page = (size_t)sysconf(_SC_PAGESIZE);
    size_t total = HOST_STACK_BYTES + page;
    pthread_attr_t attr;
    pthread_t th;
    uint8_t *mem = (uint8_t *)mmap(NULL, total, PROT_READ | PROT_WRITE,
                                   MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    uint32_t *p;
    if (mem == (uint8_t *)MAP_FAILED || mprotect(mem, page, PROT_NONE) != 0) {
        die("cannot map the app stack", strerror(errno));
    }
    stack_lo = (uint32_t *)(void *)(mem + page);
    stack_hi = (uint32_t *)(void *)(mem + total);
    for (p = stack_lo; p < stack_hi; ++p) {
        *p = (uint32_t)BNN_STACK_PAINT;
    }
    if (pthread_attr_init(&attr) != 0 ||
        pthread_attr_setstack(&attr, stack_lo, HOST_STACK_BYTES) != 0 ||
        pthread_create(&th, &attr, app_thread, NULL) != 0) {
        die("cannot start the app thread", NULL);
    }
    pthread_join(th, NULL);
}

int main(int argc, char **argv)
{
    long port = -1;
    int use_stdio = 0;
    int i;
    for (i = 1; i < argc; ++i) {
        if (strcmp(argv[i], "--port") == 0 && i + 1 < argc) {
            char *end;
            port = strtol(argv[++i], &end, 10);
            if (*end != '\0' || port < 0 || port > 65535) {
                usage();
            }
        } else if (strcmp(argv[i], "--stdio") == 0) {
            use_stdio = 1;
        } else if (strcmp(argv[i], "--bulk") == 0 && i + 1 < argc) {
            load_bulk(argv[++i]);
        } else {
            usage();
        }
    }
    if ((port < 0) == !use_stdio) {
        usage();
    }
    install_fault_handlers();
    if (use_stdio) {
        link_in = 0;
        link_out = 1;
    } else {
        serve(port);
    }
    run_app();
    return 0;
}

void bnn_port_init(void)
{
}

void bnn_port_write(const uint8_t *buf, uint32_t n)
{
    write_all(link_out, buf, n);
}

int bnn_port_read_byte(void)
{
    uint8_t c;
    for (;;) {
        ssize_t k = read(link_in, &c, 1);
        if (k == 1) {
            return c;
        }
        if (k < 0 && errno == EINTR) {
            continue;
        }
        return -1;
    }
}

uint32_t bnn_port_counter(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint32_t)((uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec);
}

const char *bnn_port_counter_unit(void)
{
    return "ticks";
}

uint32_t bnn_port_counter_hz(void)
{
    return BNN_COUNTER_HZ;
}

const char *bnn_port_board(void)
{
    return BNN_BOARD_NAME;
}

const char *bnn_port_core(void)
{
#if defined(__x86_64__)
    return "x86_64";
#elif defined(__aarch64__)
    return "aarch64";
#else
    return BNN_BOARD_CORE;
#endif
}

uint32_t bnn_port_clock_hz(void)
{
    return 0u;
}

const uint8_t *bnn_port_bulk_base(void)
{
    return bulk;
}

uint32_t bnn_port_bulk_size(void)
{
    return bulk_size;
}

uint32_t bnn_port_stack_used(void)
{
    return stack_lo ? bnn_stack_high_water(stack_lo, stack_hi) : 0u;
}

/* Deliver everything written, then end: shut the write side (FIN after the data) and drop
 * unread input, so closing does not reset the connection under the host's last read. */
void bnn_port_exit(int code)
{
    if (link_is_socket) {
        uint8_t sink[256];
        shutdown(link_out, SHUT_WR);
        fcntl(link_in, F_SETFL, fcntl(link_in, F_GETFL) | O_NONBLOCK);
        while (read(link_in, sink, sizeof sink) > 0) {
        }
        close(link_in);
    }
    fflush(NULL);
    exit(code);
}
