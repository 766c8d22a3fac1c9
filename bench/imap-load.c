/* imap-load.c - IMAP load generator for bench/imap (plain sockets, no TLS, pthreads)
 *
 *   imap-load load  [options]   N clients, each looping for the duration over one cycle:
 *                                 connect, LOGIN, SELECT INBOX, FETCH 1:* (UID FLAGS),
 *                                 FETCH <last 20> (BODY.PEEK[HEADER]),
 *                                 FETCH <5 random> (BODY.PEEK[]),
 *                                 UID STORE <5 random> +FLAGS (\Seen),
 *                                 UID STORE <5 random> -FLAGS (\Seen),
 *                                 APPEND INBOX {n} (synchronizing literal),
 *                                 UID STORE <oldest> +FLAGS (\Deleted), EXPUNGE, LOGOUT
 *                               so each cycle adds one message and removes the oldest: the
 *                               mailbox keeps its size. Every command answered with a
 *                               tagged OK is one operation.
 *   imap-load idle  [options]   opens -k connections (LOGIN + SELECT INBOX on each), prints
 *                               "READY <n>" and holds them idle until SIGTERM or SIGINT.
 *   imap-load probe [options]   one connection: greeting, LOGIN, SELECT, LOGOUT; says what
 *                               failed (exit 1) or "OK <greeting>".
 *   imap-load gen DIR COUNT SIZE alkaid|maildir
 *                               writes COUNT messages of about SIZE bytes (CRLF) into DIR,
 *                               named "<seconds>.M<usec>P<pid>Q<n>.bench.eml" (alkaid) or
 *                               "<same id>,S=<size>:2," (maildir); the same content for the
 *                               same arguments, the file times one minute apart.
 *
 * Options: -h HOST (127.0.0.1)  -p PORT (143)  -u USER pattern, "%d" is replaced by
 *          1..-n (user%d@bench.test)  -n USERS (20)  -U FILE (one user name per line,
 *          instead of -u/-n)  -w PASSWORD  -c CLIENTS (20)  -t SECONDS (30)
 *          -k CONNECTIONS (idle: 1000)  -s APPEND_SIZE (4096)  -q (no progress)
 * Client i logs in as user (i mod USERS); give at least as many users as clients so that
 * each client has its own mailbox.
 *
 * Output of load: a summary, then "RESULT ops=<n> seconds=<s> ops_per_sec=<r> cycles=<n>
 * no=<n> bad=<n> errors=<n>". Exit status 1 if any command got NO or BAD or any error
 * happened (connection refused or closed, timeout, malformed or incomplete answer).
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/types.h>
#include <time.h>
#include <unistd.h>

#define IO_TIMEOUT_S 60
#define RBUF 65536
#define LINE_KEEP 2048
#define MAX_MSGS 100000

enum cmd {
    C_LOGIN, C_SELECT, C_FETCH_FLAGS, C_FETCH_HDR, C_FETCH_BODY, C_STORE_SEEN, C_STORE_UNSEEN,
    C_APPEND, C_STORE_DEL, C_EXPUNGE, C_LOGOUT, C_COUNT
};
static const char *cmd_names[C_COUNT] = {
    "LOGIN", "SELECT", "FETCH flags", "FETCH headers", "FETCH bodies", "STORE +Seen",
    "STORE -Seen", "APPEND", "STORE +Deleted", "EXPUNGE", "LOGOUT",
};

/* options */
static const char *opt_host = "127.0.0.1";
static int opt_port = 143;
static const char *opt_user = "user%d@bench.test";
static int opt_users = 20;
static const char *opt_users_file;
static const char *opt_pass = "";
static int opt_clients = 20;
static int opt_seconds = 30;
static int opt_idle = 1000;
static int opt_append_size = 4096;
static int opt_quiet;

static char **users;
static int nusers;
static struct sockaddr_storage server_addr;
static socklen_t server_addr_len;

/* run state */
static atomic_int stopping;  /* set at the deadline: finish the cycle, count no more */
static atomic_long total_ops;
static atomic_long total_cycles;
static atomic_long total_no, total_bad, total_errors;
static atomic_long cmd_ops[C_COUNT];
static atomic_llong cmd_usec[C_COUNT];
static atomic_llong bytes_in;
static pthread_mutex_t err_lock = PTHREAD_MUTEX_INITIALIZER;
static int err_printed;

static void die(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("imap-load: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    exit(2);
}

static void report(const char *fmt, ...)
{
    /* the first few problems are printed, the rest only counted */
    pthread_mutex_lock(&err_lock);
    if (err_printed++ < 10) {
        va_list ap;
        va_start(ap, fmt);
        fputs("imap-load: ", stderr);
        vfprintf(stderr, fmt, ap);
        fputc('\n', stderr);
        va_end(ap);
    }
    pthread_mutex_unlock(&err_lock);
}

static long long now_usec(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

/* ---- random numbers (per thread, deterministic) ---------------------------------- */

static uint64_t rnd(uint64_t *s)
{
    uint64_t x = *s;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    return *s = x;
}

/* ---- messages ------------------------------------------------------------------- */

static const char *words[] = {
    "the", "meeting", "report", "quarter", "budget", "review", "please", "attached",
    "schedule", "project", "update", "thanks", "regards", "team", "customer", "release",
    "server", "deadline", "draft", "agenda", "notes", "follow", "up", "on", "with", "for",
    "and", "we", "will", "should", "could", "discuss", "next", "week", "monday", "friday",
    "numbers", "final", "version", "changes", "comments", "before", "after", "call",
};
static const char *names[] = {
    "Alice Martin", "Bob Keller", "Carol Nguyen", "David Osei", "Eva Lindqvist",
    "Frank Moreau", "Grace Hopper", "Hiro Tanaka", "Ines Duarte", "Jan Novak",
};

/* A realistic message: headers (about 1 KiB) and a body of about `size` bytes, CRLF line
 * ends, into buf (cap >= size + 2048). Returns its length. */
static size_t make_message(char *buf, size_t cap, uint64_t *seed, time_t when, const char *to,
                           size_t size, unsigned long serial)
{
    char date[64];
    struct tm tm;
    gmtime_r(&when, &tm);
    strftime(date, sizeof date, "%a, %d %b %Y %H:%M:%S +0000", &tm);
    const char *from = names[rnd(seed) % 10];
    char from_addr[64];
    snprintf(from_addr, sizeof from_addr, "%.*s@example.org", (int)strcspn(from, " "), from);
    for (char *p = from_addr; *p; p++)
        if (*p >= 'A' && *p <= 'Z') *p += 32;
    size_t n = (size_t)snprintf(
        buf, cap,
        "Return-Path: <%s>\r\n"
        "Received: from mx.example.org (mx.example.org [192.0.2.25])\r\n"
        "\tby mail.bench.test with ESMTPS id %08lx\r\n"
        "\tfor <%s>; %s\r\n"
        "Received: from [10.1.2.3] (workstation.example.org [10.1.2.3])\r\n"
        "\tby mx.example.org with ESMTPSA id %08lx; %s\r\n"
        "DKIM-Signature: v=1; a=rsa-sha256; c=relaxed/relaxed; d=example.org; s=mail;\r\n"
        "\th=from:to:subject:date:message-id; bh=47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=;\r\n"
        "\tb=dGhpcyBpcyBub3QgYSByZWFsIHNpZ25hdHVyZSBidXQgaXQgaGFzIHRoZSByaWdodCBzaGFwZQ==\r\n"
        "Message-ID: <%lu.%08lx@example.org>\r\n"
        "Date: %s\r\n"
        "From: %s <%s>\r\n"
        "To: <%s>\r\n"
        "Subject: %s %s %s (%lu)\r\n"
        "MIME-Version: 1.0\r\n"
        "Content-Type: text/plain; charset=utf-8; format=flowed\r\n"
        "Content-Transfer-Encoding: 8bit\r\n"
        "\r\n",
        from_addr, (unsigned long)rnd(seed) & 0xffffffffUL, to, date,
        (unsigned long)rnd(seed) & 0xffffffffUL, date, serial,
        (unsigned long)rnd(seed) & 0xffffffffUL, date, from, from_addr, to,
        words[rnd(seed) % 44], words[rnd(seed) % 44], words[rnd(seed) % 44], serial);
    if (n >= cap) n = cap - 1;
    size_t line = 0;
    while (n + 80 < cap && n < size) {
        const char *w = words[rnd(seed) % 44];
        size_t wl = strlen(w);
        if (line + wl + 1 > 72) {
            memcpy(buf + n, "\r\n", 2);
            n += 2;
            line = 0;
            if (rnd(seed) % 8 == 0) { /* paragraph */
                memcpy(buf + n, "\r\n", 2);
                n += 2;
            }
        } else if (line > 0) {
            buf[n++] = ' ';
            line++;
        }
        memcpy(buf + n, w, wl);
        n += wl;
        line += wl;
    }
    memcpy(buf + n, "\r\n", 2);
    n += 2;
    return n;
}

static int gen_main(int argc, char **argv)
{
    if (argc != 6) die("usage: imap-load gen DIR COUNT SIZE alkaid|maildir");
    const char *dir = argv[2];
    long count = atol(argv[3]), size = atol(argv[4]);
    int maildir = strcmp(argv[5], "maildir") == 0;
    if (!maildir && strcmp(argv[5], "alkaid") != 0) die("gen: format is alkaid or maildir");
    if (count < 1 || count > MAX_MSGS || size < 256 || size > 10 * 1024 * 1024)
        die("gen: bad COUNT or SIZE");
    size_t cap = (size_t)size * 2 + 4096;
    char *buf = malloc(cap);
    if (!buf) die("out of memory");
    uint64_t seed = 0x9e3779b97f4a7c15ULL;
    time_t start = 1767225600 - count * 60; /* ends 2026-01-01 */
    for (long i = 1; i <= count; i++) {
        time_t when = start + i * 60;
        /* vary the size +-50% around SIZE, the same sequence every time */
        size_t sz = (size_t)size / 2 + rnd(&seed) % (size_t)size;
        size_t len = make_message(buf, cap, &seed, when, "user@bench.test", sz,
                                  (unsigned long)i);
        char id[128], path[4096];
        snprintf(id, sizeof id, "%010ld.M%06ldP4242Q%ld.bench", (long)when, i % 1000000, i);
        if (maildir)
            snprintf(path, sizeof path, "%s/%s,S=%zu:2,", dir, id, len);
        else
            snprintf(path, sizeof path, "%s/%s.eml", dir, id);
        FILE *f = fopen(path, "wb");
        if (!f || fwrite(buf, 1, len, f) != len || fclose(f) != 0)
            die("gen: %s: %s", path, strerror(errno));
        struct timeval tv[2] = {{when, 0}, {when, 0}};
        utimes(path, tv);
    }
    free(buf);
    return 0;
}

/* ---- connections ------------------------------------------------------------------ */

struct conn {
    int fd;
    size_t start, end;
    char buf[RBUF];
    char line[LINE_KEEP]; /* the first part of the last response line (before a literal) */
    int literals;         /* literals in the last response line */
    long long literal_bytes;
    const char *why;      /* what went wrong */
};

static int conn_open(struct conn *c)
{
    c->start = c->end = 0;
    c->why = NULL;
    c->fd = socket(server_addr.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (c->fd < 0) {
        c->why = "socket() failed";
        return -1;
    }
    struct timeval tv = {IO_TIMEOUT_S, 0};
    setsockopt(c->fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    setsockopt(c->fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    int one = 1;
    setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    if (connect(c->fd, (struct sockaddr *)&server_addr, server_addr_len) < 0) {
        c->why = errno == ECONNREFUSED ? "connection refused" : "connect() failed";
        close(c->fd);
        c->fd = -1;
        return -1;
    }
    return 0;
}

static void conn_close(struct conn *c)
{
    if (c->fd >= 0) close(c->fd);
    c->fd = -1;
}

static int conn_fill(struct conn *c)
{
    if (c->start > 0 && c->start == c->end) c->start = c->end = 0;
    if (c->end == sizeof c->buf) {
        if (c->start == 0) {
            c->why = "response line too long";
            return -1;
        }
        memmove(c->buf, c->buf + c->start, c->end - c->start);
        c->end -= c->start;
        c->start = 0;
    }
    ssize_t n;
    do n = read(c->fd, c->buf + c->end, sizeof c->buf - c->end);
    while (n < 0 && errno == EINTR);
    if (n == 0) {
        c->why = "connection closed by the server";
        return -1;
    }
    if (n < 0) {
        c->why = (errno == EAGAIN || errno == EWOULDBLOCK) ? "timed out" : "read error";
        return -1;
    }
    c->end += (size_t)n;
    atomic_fetch_add_explicit(&bytes_in, n, memory_order_relaxed);
    return 0;
}

static int conn_send(struct conn *c, const char *data, size_t len)
{
    while (len > 0) {
        ssize_t n = write(c->fd, data, len);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) {
            c->why = (n < 0 && errno == EAGAIN) ? "timed out writing" : "write error";
            return -1;
        }
        data += n;
        len -= (size_t)n;
    }
    return 0;
}

/* Reads one response line, following literals ("{n}" at the end of a physical line: n
 * octets, then the line goes on). c->line gets the text up to the first literal (cut at
 * LINE_KEEP - 1), c->literals and c->literal_bytes what followed. */
static int read_response_line(struct conn *c)
{
    size_t kept = 0;
    int first = 1;
    c->literals = 0;
    c->literal_bytes = 0;
    c->line[0] = '\0';
    for (;;) {
        char *eol;
        while ((eol = memmem(c->buf + c->start, c->end - c->start, "\r\n", 2)) == NULL)
            if (conn_fill(c) < 0) return -1;
        char *p = c->buf + c->start;
        size_t len = (size_t)(eol - p);
        if (first) {
            kept = len < LINE_KEEP - 1 ? len : LINE_KEEP - 1;
            memcpy(c->line, p, kept);
            c->line[kept] = '\0';
        }
        c->start += len + 2;
        /* a literal? "{123}" or "{123+}" at the end */
        long long lit = -1;
        if (len >= 3 && p[len - 1] == '}') {
            size_t i = len - 2;
            if (p[i] == '+') i--;
            size_t digits_end = i + 1;
            while (i > 0 && p[i] >= '0' && p[i] <= '9') i--;
            if (p[i] == '{' && i + 1 < digits_end) lit = strtoll(p + i + 1, NULL, 10);
        }
        if (lit < 0) return 0;
        first = 0;
        c->literals++;
        c->literal_bytes += lit;
        while (lit > 0) {
            if (c->start == c->end && conn_fill(c) < 0) return -1;
            size_t have = c->end - c->start;
            size_t take = (size_t)lit < have ? (size_t)lit : have;
            c->start += take;
            lit -= (long long)take;
        }
    }
}

/* ---- one command ------------------------------------------------------------------- */

struct cmd_result {
    long exists;      /* from "* N EXISTS", -1 if none */
    int fetches;      /* untagged FETCH lines */
    int literals;     /* literals in untagged FETCH lines */
    int expunges;
    int bye;
    uint32_t *uids;   /* for FETCH (UID FLAGS): uids[seq - 1], seq <= uids_cap */
    uint8_t *seen;
    long uids_cap;
};

enum { RES_OK, RES_NO, RES_BAD, RES_ERR };

/* Reads until the tagged answer to `tag`; untagged lines are noted in r. */
static int read_until_tagged(struct conn *c, const char *tag, struct cmd_result *r)
{
    size_t tl = strlen(tag);
    for (;;) {
        if (read_response_line(c) < 0) return RES_ERR;
        const char *l = c->line;
        if (l[0] == '*' && l[1] == ' ') {
            char *end;
            long n = strtol(l + 2, &end, 10);
            if (end != l + 2 && *end == ' ') {
                if (strncmp(end, " EXISTS", 7) == 0) {
                    r->exists = n;
                } else if (strncmp(end, " EXPUNGE", 8) == 0) {
                    r->expunges++;
                } else if (strncmp(end, " FETCH ", 7) == 0) {
                    r->fetches++;
                    r->literals += c->literals;
                    if (r->uids && n >= 1 && n <= r->uids_cap) {
                        const char *u = strstr(end, "UID ");
                        if (u) r->uids[n - 1] = (uint32_t)strtoul(u + 4, NULL, 10);
                        const char *f = strstr(end, "FLAGS (");
                        if (f) r->seen[n - 1] = strstr(f, "\\Seen") != NULL;
                    }
                }
            } else if (strncmp(l + 2, "BYE", 3) == 0) {
                r->bye = 1;
            }
            continue;
        }
        if (l[0] == '+') {
            c->why = "unexpected continuation request";
            return RES_ERR;
        }
        if (strncmp(l, tag, tl) == 0 && l[tl] == ' ') {
            const char *s = l + tl + 1;
            if (strncasecmp(s, "OK", 2) == 0) return RES_OK;
            if (strncasecmp(s, "NO", 2) == 0) return RES_NO;
            if (strncasecmp(s, "BAD", 3) == 0) return RES_BAD;
        }
        c->why = "malformed response line";
        return RES_ERR;
    }
}

struct client {
    int id;
    const char *user;
    struct conn *c;
    int tagn;
    uint64_t seed;
    char *msg;          /* APPEND buffer */
    size_t msg_cap;
    uint32_t *uids;
    uint8_t *seen;
    char last_line[256];
};

static void note_result(struct client *cl, enum cmd which, int rc, long long usec)
{
    if (rc == RES_OK) {
        if (!atomic_load_explicit(&stopping, memory_order_relaxed)) {
            atomic_fetch_add_explicit(&total_ops, 1, memory_order_relaxed);
            atomic_fetch_add_explicit(&cmd_ops[which], 1, memory_order_relaxed);
            atomic_fetch_add_explicit(&cmd_usec[which], usec, memory_order_relaxed);
        }
        return;
    }
    if (rc == RES_NO) atomic_fetch_add(&total_no, 1);
    else if (rc == RES_BAD) atomic_fetch_add(&total_bad, 1);
    else atomic_fetch_add(&total_errors, 1);
    report("client %d (%s): %s: %s%s%s", cl->id, cl->user, cmd_names[which],
           rc == RES_NO ? "NO" : rc == RES_BAD ? "BAD" : (cl->c->why ? cl->c->why : "error"),
           rc == RES_NO || rc == RES_BAD ? ": " : "",
           rc == RES_NO || rc == RES_BAD ? cl->c->line : "");
}

/* Sends "<tag> <text>\r\n" and reads the answer. Returns RES_*. */
static int command(struct client *cl, enum cmd which, struct cmd_result *r, const char *fmt, ...)
{
    char tag[16], line[8192];
    snprintf(tag, sizeof tag, "a%d", ++cl->tagn);
    int n = snprintf(line, sizeof line, "%s ", tag);
    va_list ap;
    va_start(ap, fmt);
    n += vsnprintf(line + n, sizeof line - (size_t)n - 2, fmt, ap);
    va_end(ap);
    if (n > (int)sizeof line - 3) n = (int)sizeof line - 3;
    memcpy(line + n, "\r\n", 2);
    n += 2;
    long long t0 = now_usec();
    memset(r, 0, sizeof *r);
    r->exists = -1;
    if (which == C_FETCH_FLAGS) {
        r->uids = cl->uids;
        r->seen = cl->seen;
        r->uids_cap = MAX_MSGS;
    }
    int rc = conn_send(cl->c, line, (size_t)n) < 0 ? RES_ERR : read_until_tagged(cl->c, tag, r);
    note_result(cl, which, rc, now_usec() - t0);
    return rc;
}

/* APPEND with a synchronizing literal: wait for "+ " before sending the message. */
static int append(struct client *cl, struct cmd_result *r)
{
    static atomic_ulong serial = 1000000;
    /* the same spread of sizes as the preloaded messages (imap-load gen) */
    size_t sz = (size_t)opt_append_size / 2 + rnd(&cl->seed) % (size_t)opt_append_size;
    size_t len = make_message(cl->msg, cl->msg_cap, &cl->seed, time(NULL), cl->user, sz,
                              atomic_fetch_add(&serial, 1));
    char tag[16], line[256];
    snprintf(tag, sizeof tag, "a%d", ++cl->tagn);
    int n = snprintf(line, sizeof line, "%s APPEND INBOX {%zu}\r\n", tag, len);
    long long t0 = now_usec();
    memset(r, 0, sizeof *r);
    r->exists = -1;
    struct conn *c = cl->c;
    int rc = RES_ERR;
    if (conn_send(c, line, (size_t)n) < 0) goto out;
    for (;;) { /* untagged lines may come before the continuation request */
        if (read_response_line(c) < 0) goto out;
        if (c->line[0] == '+') break;
        if (c->line[0] == '*') continue;
        size_t tl = strlen(tag);
        if (strncmp(c->line, tag, tl) == 0 && c->line[tl] == ' ') {
            rc = strncasecmp(c->line + tl + 1, "NO", 2) == 0 ? RES_NO : RES_BAD;
            goto out;
        }
        c->why = "malformed response to APPEND";
        goto out;
    }
    if (conn_send(c, cl->msg, len) < 0 || conn_send(c, "\r\n", 2) < 0) goto out;
    rc = read_until_tagged(c, tag, r);
out:
    note_result(cl, C_APPEND, rc, now_usec() - t0);
    return rc;
}

/* a comma-separated set of k distinct random UIDs out of uids[0..n-1] */
static void random_uid_set(struct client *cl, long n, int k, char *out, size_t cap)
{
    long pick[16];
    int got = 0;
    if (k > n) k = (int)n;
    while (got < k) {
        long s = (long)(rnd(&cl->seed) % (uint64_t)n);
        int dup = 0;
        for (int i = 0; i < got; i++) dup |= pick[i] == s;
        if (!dup) pick[got++] = s;
    }
    size_t o = 0;
    out[0] = '\0';
    for (int i = 0; i < got && o + 16 < cap; i++)
        o += (size_t)snprintf(out + o, cap - o, "%s%u", i ? "," : "", cl->uids[pick[i]]);
}

static int greeting(struct conn *c)
{
    if (read_response_line(c) < 0) return -1;
    if (strncmp(c->line, "* OK", 4) != 0) {
        c->why = "no \"* OK\" greeting";
        return -1;
    }
    return 0;
}

/* One connect ... LOGOUT cycle. Returns 0, or -1 after a failure (already counted). */
static int cycle(struct client *cl)
{
    struct conn *c = cl->c;
    struct cmd_result r;
    cl->tagn = 0;
    if (conn_open(c) < 0 || greeting(c) < 0) {
        atomic_fetch_add(&total_errors, 1);
        report("client %d: connecting: %s", cl->id, c->why);
        conn_close(c);
        return -1;
    }
    int rc;
#define CHECK(x)                                                                          \
    do {                                                                                  \
        if ((rc = (x)) != RES_OK) goto fail;                                                \
    } while (0)
    CHECK(command(cl, C_LOGIN, &r, "LOGIN \"%s\" \"%s\"", cl->user, opt_pass));
    CHECK(command(cl, C_SELECT, &r, "SELECT INBOX"));
    long n = r.exists;
    if (n < 0) {
        c->why = "SELECT gave no EXISTS";
        goto error;
    }
    if (n > MAX_MSGS) n = MAX_MSGS;
    if (n > 0) {
        memset(cl->uids, 0, (size_t)n * sizeof *cl->uids);
        CHECK(command(cl, C_FETCH_FLAGS, &r, "FETCH 1:* (UID FLAGS)"));
        if (r.fetches < n) {
            c->why = "FETCH 1:* (UID FLAGS) returned fewer messages than EXISTS";
            goto error;
        }
        for (long i = 0; i < n; i++)
            if (cl->uids[i] == 0) {
                c->why = "FETCH 1:* (UID FLAGS) left a message without its UID";
                goto error;
            }
        long first = n > 20 ? n - 19 : 1;
        CHECK(command(cl, C_FETCH_HDR, &r, "FETCH %ld:%ld (BODY.PEEK[HEADER])", first, n));
        if (r.literals < n - first + 1) {
            c->why = "FETCH (BODY.PEEK[HEADER]) returned fewer literals than messages";
            goto error;
        }
        char set[256];
        /* five random messages, by sequence number */
        long pick[5];
        int k = n < 5 ? (int)n : 5, got = 0;
        while (got < k) {
            long s = 1 + (long)(rnd(&cl->seed) % (uint64_t)n);
            int dup = 0;
            for (int i = 0; i < got; i++) dup |= pick[i] == s;
            if (!dup) pick[got++] = s;
        }
        size_t o = 0;
        for (int i = 0; i < got; i++)
            o += (size_t)snprintf(set + o, sizeof set - o, "%s%ld", i ? "," : "", pick[i]);
        CHECK(command(cl, C_FETCH_BODY, &r, "FETCH %s (BODY.PEEK[])", set));
        if (r.literals < got) {
            c->why = "FETCH (BODY.PEEK[]) returned fewer literals than messages";
            goto error;
        }
        random_uid_set(cl, n, 5, set, sizeof set);
        CHECK(command(cl, C_STORE_SEEN, &r, "UID STORE %s +FLAGS (\\Seen)", set));
        random_uid_set(cl, n, 5, set, sizeof set);
        CHECK(command(cl, C_STORE_UNSEEN, &r, "UID STORE %s -FLAGS (\\Seen)", set));
    }
    CHECK(append(cl, &r));
    if (n > 0) {
        /* the oldest message goes: the mailbox keeps its size */
        CHECK(command(cl, C_STORE_DEL, &r, "UID STORE %u +FLAGS (\\Deleted)", cl->uids[0]));
        CHECK(command(cl, C_EXPUNGE, &r, "EXPUNGE"));
        if (r.expunges < 1) {
            c->why = "EXPUNGE removed nothing";
            goto error;
        }
    }
    CHECK(command(cl, C_LOGOUT, &r, "LOGOUT"));
    conn_close(c);
    if (!atomic_load_explicit(&stopping, memory_order_relaxed))
        atomic_fetch_add(&total_cycles, 1);
    return 0;
#undef CHECK
error:
    atomic_fetch_add(&total_errors, 1);
    report("client %d (%s): %s", cl->id, cl->user, c->why);
fail:
    conn_close(c);
    return -1;
}

static struct client *client_new(int id)
{
    struct client *cl = calloc(1, sizeof *cl);
    if (!cl) die("out of memory");
    cl->id = id;
    cl->user = users[id % nusers];
    cl->c = malloc(sizeof *cl->c);
    cl->c->fd = -1;
    cl->seed = 0x2545f4914f6cdd1dULL ^ ((uint64_t)(id + 1) * 0x9e3779b97f4a7c15ULL);
    cl->msg_cap = (size_t)opt_append_size * 2 + 4096;
    cl->msg = malloc(cl->msg_cap);
    cl->uids = calloc(MAX_MSGS, sizeof *cl->uids);
    cl->seen = calloc(MAX_MSGS, 1);
    if (!cl->c || !cl->msg || !cl->uids || !cl->seen) die("out of memory");
    return cl;
}

static void client_free(struct client *cl)
{
    free(cl->c);
    free(cl->msg);
    free(cl->uids);
    free(cl->seen);
    free(cl);
}

static void *load_thread(void *arg)
{
    struct client *cl = arg;
    while (!atomic_load(&stopping)) {
        if (cycle(cl) < 0) usleep(100000); /* do not spin on a dead server */
    }
    return NULL;
}

static int load_main(void)
{
    pthread_t *th = calloc((size_t)opt_clients, sizeof *th);
    struct client **cls = calloc((size_t)opt_clients, sizeof *cls);
    if (!th || !cls) die("out of memory");
    if (opt_clients > nusers)
        fprintf(stderr, "imap-load: warning: %d clients share %d mailboxes\n", opt_clients,
                nusers);
    long long t0 = now_usec();
    for (int i = 0; i < opt_clients; i++) {
        cls[i] = client_new(i);
        if (pthread_create(&th[i], NULL, load_thread, cls[i]) != 0) die("pthread_create");
    }
    long long deadline = t0 + (long long)opt_seconds * 1000000;
    long last_ops = 0;
    for (;;) {
        long long now = now_usec();
        if (now >= deadline) break;
        long long step = deadline - now < 5000000 ? deadline - now : 5000000;
        usleep((useconds_t)step);
        if (!opt_quiet && now_usec() < deadline) {
            long ops = atomic_load(&total_ops);
            fprintf(stderr, "  %3.0f s: %ld ops (%ld/s)\n", (now_usec() - t0) / 1e6, ops,
                    (long)((ops - last_ops) / (step / 1e6)));
            last_ops = ops;
        }
    }
    atomic_store(&stopping, 1);
    long long t1 = now_usec();
    for (int i = 0; i < opt_clients; i++) {
        pthread_join(th[i], NULL);
        client_free(cls[i]);
    }
    double secs = (t1 - t0) / 1e6;
    long ops = atomic_load(&total_ops);
    printf("%-15s %10s %10s %10s\n", "command", "ops", "ops/s", "mean ms");
    for (int i = 0; i < C_COUNT; i++) {
        long n = atomic_load(&cmd_ops[i]);
        printf("%-15s %10ld %10.1f %10.2f\n", cmd_names[i], n, n / secs,
               n ? atomic_load(&cmd_usec[i]) / 1000.0 / n : 0.0);
    }
    printf("%-15s %10ld %10.1f   (%.1f MB/s received)\n", "total", ops, ops / secs,
           atomic_load(&bytes_in) / secs / 1e6);
    long no = atomic_load(&total_no), bad = atomic_load(&total_bad),
         errs = atomic_load(&total_errors);
    printf("RESULT ops=%ld seconds=%.3f ops_per_sec=%.1f cycles=%ld no=%ld bad=%ld errors=%ld\n",
           ops, secs, ops / secs, atomic_load(&total_cycles), no, bad, errs);
    free(th);
    free(cls);
    return (no || bad || errs || ops == 0) ? 1 : 0;
}

/* ---- idle ------------------------------------------------------------------------ */

static struct conn **idle_conns;
static atomic_int idle_next, idle_ok;

static void *idle_thread(void *arg)
{
    (void)arg;
    for (;;) {
        int i = atomic_fetch_add(&idle_next, 1);
        if (i >= opt_idle) break;
        struct client *cl = client_new(i);
        struct cmd_result r;
        int ok = 0;
        if (conn_open(cl->c) < 0 || greeting(cl->c) < 0) {
            atomic_fetch_add(&total_errors, 1);
            report("idle connection %d: connecting: %s", i, cl->c->why);
        } else if (command(cl, C_LOGIN, &r, "LOGIN \"%s\" \"%s\"", cl->user, opt_pass) == RES_OK &&
                   command(cl, C_SELECT, &r, "SELECT INBOX") == RES_OK) {
            ok = 1;
        }
        if (ok) {
            idle_conns[i] = cl->c;
            cl->c = NULL;
            atomic_fetch_add(&idle_ok, 1);
        } else {
            conn_close(cl->c);
        }
        client_free(cl);
    }
    return NULL;
}

static int idle_main(void)
{
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGUSR1);
    pthread_sigmask(SIG_BLOCK, &set, NULL); /* the threads inherit it */
    idle_conns = calloc((size_t)opt_idle, sizeof *idle_conns);
    int nth = opt_clients < opt_idle ? opt_clients : opt_idle;
    pthread_t *th = calloc((size_t)nth, sizeof *th);
    if (!idle_conns || !th) die("out of memory");
    long long t0 = now_usec();
    for (int i = 0; i < nth; i++)
        if (pthread_create(&th[i], NULL, idle_thread, NULL) != 0) die("pthread_create");
    for (int i = 0; i < nth; i++) pthread_join(th[i], NULL);
    int ok = atomic_load(&idle_ok);
    long errs = atomic_load(&total_errors) + atomic_load(&total_no) + atomic_load(&total_bad);
    printf("READY %d of %d logged in (%.1f s), %ld failed\n", ok, opt_idle,
           (now_usec() - t0) / 1e6, errs);
    fflush(stdout);
    int sig;
    sigwait(&set, &sig);
    for (int i = 0; i < opt_idle; i++)
        if (idle_conns[i]) {
            conn_close(idle_conns[i]);
            free(idle_conns[i]);
        }
    free(idle_conns);
    free(th);
    return ok == opt_idle && errs == 0 ? 0 : 1;
}

/* ---- probe ------------------------------------------------------------------------ */

static int probe_main(void)
{
    struct client *cl = client_new(0);
    struct cmd_result r;
    int rc = 1;
    err_printed = 1000; /* say it here, once */
    if (conn_open(cl->c) < 0) {
        printf("no IMAP server at %s port %d: %s\n", opt_host, opt_port, cl->c->why);
    } else if (greeting(cl->c) < 0) {
        printf("no IMAP greeting at %s port %d (%s): \"%.200s\"\n", opt_host, opt_port,
               cl->c->why, cl->c->line);
    } else {
        char greet[LINE_KEEP];
        snprintf(greet, sizeof greet, "%s", cl->c->line);
        int x = command(cl, C_LOGIN, &r, "LOGIN \"%s\" \"%s\"", cl->user, opt_pass);
        if (x != RES_OK) {
            printf("LOGIN as %s failed: %s\n", cl->user,
                   x == RES_ERR ? cl->c->why : cl->c->line);
        } else if ((x = command(cl, C_SELECT, &r, "SELECT INBOX")) != RES_OK || r.exists < 0) {
            printf("SELECT INBOX failed: %s\n", x == RES_ERR ? cl->c->why : cl->c->line);
        } else if ((x = command(cl, C_LOGOUT, &r, "LOGOUT")) != RES_OK) {
            printf("LOGOUT failed: %s\n", x == RES_ERR ? cl->c->why : cl->c->line);
        } else {
            printf("OK %ld messages; greeting: %.200s\n", r.exists >= 0 ? r.exists : 0L, greet);
            rc = 0;
        }
    }
    conn_close(cl->c);
    client_free(cl);
    return rc;
}

/* ---- main ------------------------------------------------------------------------- */

static void load_users(void)
{
    if (opt_users_file) {
        FILE *f = fopen(opt_users_file, "r");
        if (!f) die("%s: %s", opt_users_file, strerror(errno));
        char line[512];
        int cap = 0;
        while (fgets(line, sizeof line, f)) {
            line[strcspn(line, " \t\r\n")] = '\0';
            if (!line[0] || line[0] == '#') continue;
            if (nusers == cap) {
                cap = cap ? cap * 2 : 64;
                users = realloc(users, (size_t)cap * sizeof *users);
                if (!users) die("out of memory");
            }
            users[nusers++] = strdup(line);
        }
        fclose(f);
        if (nusers == 0) die("%s: no users", opt_users_file);
        return;
    }
    if (opt_users < 1) die("-n must be at least 1");
    users = calloc((size_t)opt_users, sizeof *users);
    if (!users) die("out of memory");
    const char *pct = strstr(opt_user, "%d");
    for (int i = 0; i < opt_users; i++) {
        char buf[512];
        if (pct)
            snprintf(buf, sizeof buf, "%.*s%d%s", (int)(pct - opt_user), opt_user, i + 1,
                     pct + 2);
        else
            snprintf(buf, sizeof buf, "%s", opt_user);
        users[i] = strdup(buf);
    }
    nusers = opt_users;
}

static void resolve(void)
{
    struct addrinfo hints = {.ai_socktype = SOCK_STREAM}, *ai;
    char port[16];
    snprintf(port, sizeof port, "%d", opt_port);
    int e = getaddrinfo(opt_host, port, &hints, &ai);
    if (e != 0) die("%s: %s", opt_host, gai_strerror(e));
    memcpy(&server_addr, ai->ai_addr, ai->ai_addrlen);
    server_addr_len = ai->ai_addrlen;
    freeaddrinfo(ai);
}

int main(int argc, char **argv)
{
    if (argc < 2) die("usage: imap-load load|idle|probe [options] | gen DIR COUNT SIZE FORMAT");
    const char *mode = argv[1];
    if (strcmp(mode, "gen") == 0) return gen_main(argc, argv);
    int o;
    optind = 2;
    while ((o = getopt(argc, argv, "h:p:u:n:U:w:c:t:k:s:q")) != -1) {
        switch (o) {
        case 'h': opt_host = optarg; break;
        case 'p': opt_port = atoi(optarg); break;
        case 'u': opt_user = optarg; break;
        case 'n': opt_users = atoi(optarg); break;
        case 'U': opt_users_file = optarg; break;
        case 'w': opt_pass = optarg; break;
        case 'c': opt_clients = atoi(optarg); break;
        case 't': opt_seconds = atoi(optarg); break;
        case 'k': opt_idle = atoi(optarg); break;
        case 's': opt_append_size = atoi(optarg); break;
        case 'q': opt_quiet = 1; break;
        default: die("unknown option (see the comment at the top of bench/imap-load.c)");
        }
    }
    if (opt_clients < 1 || opt_seconds < 1 || opt_idle < 1 || opt_append_size < 256)
        die("bad -c, -t, -k or -s");
    if (strchr(opt_pass, '"') || strchr(opt_pass, '\\')) die("password with \" or \\");
    signal(SIGPIPE, SIG_IGN);
    load_users();
    resolve();
    if (strcmp(mode, "load") == 0) return load_main();
    if (strcmp(mode, "idle") == 0) return idle_main();
    if (strcmp(mode, "probe") == 0) return probe_main();
    die("unknown mode '%s'", mode);
    return 2;
}
