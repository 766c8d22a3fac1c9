/* alkaid_dnsq.c - alkaid-dnsq: one DNS question asked the way Alkaid asks it
 *
 *     alkaid-dnsq [--server IP[:PORT]] [--timeout SECONDS] [--tries N] TYPE NAME
 *     alkaid-dnsq [options] --route MX DOMAIN
 *
 * Prints the answer records one a line, dig-like ("example.test.  3600  IN  MX  10
 * mx1.example.test."), then a ";;" summary line with the status, the count, the time
 * taken and the servers asked. --route shows the mail route dns_resolve_mx() makes
 * (hosts by preference with their addresses, null MX, implicit MX). A new resolver is
 * made for each run, so nothing is remembered between runs. docs/dnsq.md is the manual.
 *
 * Exit codes: 0 answers (--route: some host has an address); 1 NXDOMAIN or NODATA
 * (--route: null MX, or no host with an address); 2 temporary failure; 64 usage error,
 * an invalid name included. Errors are one line on stderr starting with "alkaid-dnsq: ".
 *
 * SECURITY: everything printed from an answer (names, TXT strings) is escaped: bytes
 * outside printable ASCII are shown as \DDD, so an answer cannot send control sequences
 * to the terminal. Names from the command line are checked before a query is sent.
 */
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "dns.h"
#include "sbuf.h"
#include "xalloc.h"

#define PROG "alkaid-dnsq"

#define EXIT_ANSWER   0
#define EXIT_NOANSWER 1
#define EXIT_TEMPFAIL 2
#define EXIT_USAGE    64

#define TIMEOUT_DEFAULT_MS 5000
#define TIMEOUT_MAX_S      300
#define TRIES_DEFAULT      2
#define TRIES_MAX          10
#define SHOW_MAX           300 /* bytes of a name shown in a message */

struct opts {
    const char *server;
    int timeout_ms;
    int tries;
    bool route;
    bool help;
    const char *type;
    const char *name;
};

static const char usage_text[] =
    "usage: " PROG " [--server IP[:PORT]] [--timeout SECONDS] [--tries N] TYPE NAME\n"
    "       " PROG " [options] --route MX DOMAIN\n"
    "       " PROG " --help\n"
    "TYPE: MX, A, AAAA, TXT, PTR or NS (any case). PTR takes an IP address or a\n"
    "reverse name. --route shows the mail route Alkaid would use for DOMAIN.\n"
    "--server: IP[:PORT], [IPv6]:PORT, several separated by commas (default: the\n"
    "system's resolvers); --timeout: seconds per try (default 5); --tries: tries per\n"
    "server (default 2).\n"
    "Exit: 0 answers, 1 NXDOMAIN/NODATA, 2 temporary failure, 64 usage error.\n";

static int usage_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int usage_error(const char *fmt, ...)
{
    va_list ap;
    fputs(PROG ": ", stderr);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    fputs(usage_text, stderr);
    return EXIT_USAGE;
}

/* bytes made printable: \DDD for anything outside printable ASCII, and for '\' and the
 * quote character q (0 for none). */
static void escape(struct sbuf *out, const char *s, size_t len, char q)
{
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c < 0x20 || c >= 0x7f || c == '\\' || (q && c == (unsigned char)q))
            sbuf_printf(out, "\\%03u", c);
        else
            sbuf_putc(out, (char)c);
    }
}

/* A name from an answer or the command line, escaped, with a trailing dot. */
static void put_name(struct sbuf *out, const char *name)
{
    size_t len = strlen(name);
    if (len > SHOW_MAX) len = SHOW_MAX;
    escape(out, name, len, 0);
    sbuf_putc(out, '.');
}

static const char *shown(const char *s, struct sbuf *tmp)
{
    sbuf_reset(tmp);
    escape(tmp, s, strlen(s) > SHOW_MAX ? SHOW_MAX : strlen(s), 0);
    return sbuf_cstr(tmp);
}

static void print_rr(const struct dns_rr *rr)
{
    struct sbuf line = SBUF_INIT(SBUF_NO_MAX);
    put_name(&line, rr->name);
    sbuf_printf(&line, "  %u  IN  %s  ", (unsigned)rr->ttl, dns_type_name(rr->type));
    switch (rr->type) {
    case DNS_T_A:
    case DNS_T_AAAA: sbuf_appends(&line, rr->addr); break;
    case DNS_T_MX:
        sbuf_printf(&line, "%u ", (unsigned)rr->pref);
        if (rr->target[0] == '\0')
            sbuf_putc(&line, '.');
        else
            put_name(&line, rr->target);
        break;
    case DNS_T_TXT:
        sbuf_putc(&line, '"');
        escape(&line, rr->text, rr->text_len, '"');
        sbuf_putc(&line, '"');
        break;
    default: put_name(&line, rr->target); break;
    }
    puts(sbuf_cstr(&line));
    sbuf_free(&line);
}

static int64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ---- arguments ---- */

static int parse_timeout(const char *s, int *ms_r)
{
    char *end;
    double v = strtod(s, &end);
    if (end == s || *end != '\0' || !(v >= 0.001 && v <= TIMEOUT_MAX_S)) return -1;
    *ms_r = (int)(v * 1000 + 0.5);
    if (*ms_r < 1) *ms_r = 1;
    return 0;
}

static int parse_tries(const char *s, int *n_r)
{
    char *end;
    long v = strtol(s, &end, 10);
    if (end == s || *end != '\0' || v < 1 || v > TRIES_MAX) return -1;
    *n_r = (int)v;
    return 0;
}

/* The value of --opt VALUE or --opt=VALUE; advances *i. NULL if missing. */
static const char *opt_value(int argc, char **argv, int *i, const char *arg, size_t optlen)
{
    if (arg[optlen] == '=') return arg + optlen + 1;
    if (arg[optlen] != '\0' || *i + 1 >= argc) return NULL;
    return argv[++*i];
}

static bool is_opt(const char *arg, const char *name, size_t *len_r)
{
    size_t n = strlen(name);
    *len_r = n;
    return strncmp(arg, name, n) == 0 && (arg[n] == '\0' || arg[n] == '=');
}

static int parse_option(int argc, char **argv, int *i, struct opts *o)
{
    const char *arg = argv[*i], *v;
    size_t n;
    if (strcmp(arg, "--help") == 0 || strcmp(arg, "-h") == 0) {
        o->help = true;
    } else if (strcmp(arg, "--route") == 0) {
        o->route = true;
    } else if (is_opt(arg, "--server", &n)) {
        if ((v = opt_value(argc, argv, i, arg, n)) == NULL || *v == '\0')
            return usage_error("--server needs IP[:PORT]");
        o->server = v;
    } else if (is_opt(arg, "--timeout", &n)) {
        if ((v = opt_value(argc, argv, i, arg, n)) == NULL || parse_timeout(v, &o->timeout_ms) < 0)
            return usage_error("--timeout needs a number of seconds (up to %d)", TIMEOUT_MAX_S);
    } else if (is_opt(arg, "--tries", &n)) {
        if ((v = opt_value(argc, argv, i, arg, n)) == NULL || parse_tries(v, &o->tries) < 0)
            return usage_error("--tries needs a number from 1 to %d", TRIES_MAX);
    } else {
        struct sbuf tmp = SBUF_INIT(SBUF_NO_MAX);
        int code = usage_error("unknown option %s", shown(arg, &tmp));
        sbuf_free(&tmp);
        return code;
    }
    return 0;
}

static int parse_args(int argc, char **argv, struct opts *o)
{
    const char *pos[2];
    int npos = 0;
    bool options_done = false;
    for (int i = 1; i < argc; i++) {
        const char *arg = argv[i];
        if (!options_done && strcmp(arg, "--") == 0) {
            options_done = true;
        } else if (!options_done && arg[0] == '-' && arg[1] != '\0') {
            int code = parse_option(argc, argv, &i, o);
            if (code != 0) return code;
        } else {
            if (npos == 2) return usage_error("too many arguments");
            pos[npos++] = arg;
        }
    }
    if (o->help) return 0;
    if (npos < 2) return usage_error(npos == 0 ? "TYPE and NAME are missing" : "NAME is missing");
    o->type = pos[0];
    o->name = pos[1];
    return 0;
}

/* ---- the two modes ---- */

static void summary(const char *status, size_t n, const char *what, int64_t ms,
                    const struct dns_resolver *r)
{
    printf(";; %s, %zu %s%s, %lld ms, server %s\n", status, n, what, n == 1 ? "" : "s",
           (long long)ms, dns_resolver_servers(r));
}

static int run_query(struct dns_resolver *r, enum dns_type type, const char *name)
{
    struct dns_answer ans;
    int64_t t0 = mono_ms();
    enum dns_status st = dns_query(r, name, type, &ans, NULL);
    int64_t ms = mono_ms() - t0;
    int code = EXIT_ANSWER;
    for (size_t i = 0; i < ans.n; i++)
        print_rr(&ans.rrs[i]);
    switch (st) {
    case DNS_OK: summary("NOERROR", ans.n, "record", ms, r); break;
    case DNS_NODATA:
        summary("NODATA", ans.n, "record", ms, r);
        code = EXIT_NOANSWER;
        break;
    case DNS_NXDOMAIN:
        summary("NXDOMAIN", ans.n, "record", ms, r);
        code = EXIT_NOANSWER;
        break;
    case DNS_TEMPFAIL:
        printf(";; TEMPFAIL: %s, %lld ms\n", ans.error, (long long)ms);
        code = EXIT_TEMPFAIL;
        break;
    case DNS_BADNAME: {
        struct sbuf tmp = SBUF_INIT(SBUF_NO_MAX);
        fprintf(stderr, PROG ": invalid name: %s\n", shown(name, &tmp));
        sbuf_free(&tmp);
        code = EXIT_USAGE;
        break;
    }
    }
    dns_answer_clear(&ans);
    return code;
}

static void print_host(const struct dns_mx_host *h)
{
    struct sbuf line = SBUF_INIT(SBUF_NO_MAX);
    sbuf_printf(&line, "%u  ", (unsigned)h->pref);
    put_name(&line, h->name);
    for (size_t i = 0; i < h->naddrs; i++)
        sbuf_printf(&line, "  %s", h->addrs[i]);
    if (h->naddrs == 0) sbuf_printf(&line, "  (no address: %s)", dns_status_name(h->addr_status));
    puts(sbuf_cstr(&line));
    sbuf_free(&line);
}

/* The exit code for a route: 0 if some host can be tried, 2 if one may later, else 1. */
static int route_code(const struct dns_mx *mx)
{
    bool tempfail = false;
    for (size_t i = 0; i < mx->nhosts; i++) {
        if (mx->hosts[i].naddrs > 0) return EXIT_ANSWER;
        if (mx->hosts[i].addr_status == DNS_TEMPFAIL) tempfail = true;
    }
    return tempfail ? EXIT_TEMPFAIL : EXIT_NOANSWER;
}

static int run_route(struct dns_resolver *r, const char *domain)
{
    struct dns_mx mx;
    struct sbuf tmp = SBUF_INIT(SBUF_NO_MAX);
    int64_t t0 = mono_ms();
    enum dns_status st = dns_resolve_mx(r, domain, &mx);
    int64_t ms = mono_ms() - t0;
    const char *d = shown(domain, &tmp);
    int code;
    if (st == DNS_BADNAME) {
        fprintf(stderr, PROG ": invalid domain: %s\n", d);
        code = EXIT_USAGE;
    } else if (st == DNS_TEMPFAIL) {
        for (size_t i = 0; i < mx.nhosts; i++)
            print_host(&mx.hosts[i]);
        printf(";; TEMPFAIL: %s, %lld ms\n", mx.error, (long long)ms);
        code = EXIT_TEMPFAIL;
    } else if (st != DNS_OK) {
        printf(";; route for %s: %s\n", d,
               st == DNS_NXDOMAIN ? "no such domain" : "neither MX nor address records");
        summary(st == DNS_NXDOMAIN ? "NXDOMAIN" : "NODATA", 0, "host", ms, r);
        code = EXIT_NOANSWER;
    } else if (mx.null_mx) {
        printf(";; route for %s: null MX (RFC 7505): the domain accepts no mail\n", d);
        summary("NULL MX", 0, "host", ms, r);
        code = EXIT_NOANSWER;
    } else {
        printf(";; route for %s: %s\n", d,
               mx.implicit ? "no MX records, implicit MX (the domain's own addresses)"
                           : "MX hosts by preference");
        for (size_t i = 0; i < mx.nhosts; i++)
            print_host(&mx.hosts[i]);
        code = route_code(&mx);
        summary(code == EXIT_ANSWER     ? "OK"
                : code == EXIT_TEMPFAIL ? "TEMPFAIL"
                                        : "NO ADDRESS",
                mx.nhosts, "host", ms, r);
    }
    sbuf_free(&tmp);
    dns_mx_clear(&mx);
    return code;
}

int main(int argc, char **argv)
{
    struct opts o = {.timeout_ms = TIMEOUT_DEFAULT_MS, .tries = TRIES_DEFAULT};
    int code = parse_args(argc, argv, &o);
    if (code != 0) return code;
    if (o.help) {
        fputs(usage_text, stdout);
        return 0;
    }
    int type = dns_type_from_name(o.type);
    struct sbuf tmp = SBUF_INIT(SBUF_NO_MAX);
    if (type < 0 || type == DNS_T_CNAME) {
        code = usage_error("unknown TYPE %s (MX, A, AAAA, TXT, PTR or NS)", shown(o.type, &tmp));
        sbuf_free(&tmp);
        return code;
    }
    sbuf_free(&tmp);
    if (o.route && type != DNS_T_MX) return usage_error("--route goes with MX");
    char rev[80];
    const char *name = o.name;
    if (type == DNS_T_PTR && dns_reverse_name(o.name, rev, sizeof(rev)) == 0) name = rev;

    const char *error = NULL;
    struct dns_resolver *r = dns_resolver_new(o.server, o.timeout_ms, o.tries, &error);
    if (r == NULL) {
        if (o.server) {
            code = usage_error("--server %s: %s", shown(o.server, &tmp), error);
            sbuf_free(&tmp);
            return code;
        }
        fprintf(stderr, PROG ": cannot set up the resolver: %s\n", error);
        return EXIT_TEMPFAIL;
    }
    code = o.route ? run_route(r, name) : run_query(r, (enum dns_type)type, name);
    dns_resolver_free(&r);
    return code;
}
