/* admin_client.c - the client side of the remote administration protocol
 *
 * Resolves the host, connects (conn_connect), starts TLS at once (implicit TLS), checks
 * the certificate, and then speaks one line at a time; see admin_client.h.
 *
 * SECURITY: replies are bounded (ADMIN_REPLY_MAX) and parsed with json.c (depth-capped);
 * nothing in a reply is trusted to be printable.
 */
#include "admin_client.h"

#include <arpa/inet.h>
#include <inttypes.h>
#include <netdb.h>
#include <openssl/ssl.h>
#include <signal.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>

#include "conn.h"
#include "sbuf.h"
#include "store.h"
#include "tls.h"
#include "xalloc.h"

struct admin_client {
    struct conn *conn;
    SSL_CTX *ctx;
    int timeout_ms;
    struct json *greeting;
};

static int64_t deadline(const struct admin_client *ac)
{
    return conn_now_ms() + ac->timeout_ms;
}

/* Reads one reply line and splits it into *r. 0, or -1 with error set. */
static int read_reply(struct admin_client *ac, struct admin_reply *r, char *error,
                      size_t error_size)
{
    memset(r, 0, sizeof(*r));
    struct sbuf line = SBUF_INIT(ADMIN_REPLY_MAX);
    enum conn_status st = conn_read_line(ac->conn, &line, ADMIN_REPLY_MAX, deadline(ac));
    int ret = -1;
    if (st != CONN_OK) {
        snprintf(error, error_size, "%s",
                 st == CONN_EOF       ? "the server closed the connection"
                 : st == CONN_TIMEOUT ? "no reply from the server in time"
                 : st == CONN_TOOLONG ? "the server's reply is too long"
                                      : "the connection to the server failed");
        goto out;
    }
    if (line.len > 0 && line.data[line.len - 1] == '\r') sbuf_truncate(&line, line.len - 1);
    const char *s = sbuf_cstr(&line);
    if (strlen(s) != line.len) {
        snprintf(error, error_size, "the server's reply contains a NUL byte");
        goto out;
    }
    if (strncmp(s, "+OK", 3) == 0 && (s[3] == ' ' || s[3] == '\0')) {
        const char *text = s[3] == ' ' ? s + 4 : s + 3;
        const char *why = NULL;
        r->json = json_parse(text, strlen(text), &why);
        if (r->json == NULL) {
            snprintf(error, error_size, "the server's reply is not valid JSON: %s", why);
            goto out;
        }
        r->ok = true;
        r->text = xstrdup(text);
        ret = 0;
    } else if (strncmp(s, "-ERR", 4) == 0 && (s[4] == ' ' || s[4] == '\0')) {
        const char *p = s[4] == ' ' ? s + 5 : s + 4;
        size_t n = strcspn(p, " ");
        if (n >= sizeof(r->code)) n = sizeof(r->code) - 1;
        memcpy(r->code, p, n);
        r->code[n] = '\0';
        p += strcspn(p, " ");
        if (*p == ' ') p++;
        r->text = xstrdup(p);
        ret = 0;
    } else {
        snprintf(error, error_size, "the server's reply is neither +OK nor -ERR");
    }
out:
    sbuf_free(&line);
    if (ret < 0) admin_reply_clear(r);
    return ret;
}

struct admin_client *admin_connect(const struct admin_options *o, int *exit_r, char *error,
                                   size_t error_size)
{
    *exit_r = ADMIN_EXIT_CONNECT;
    /* a server that goes away mid-command is an error to report (and a terminal to
     * restore in top), not a SIGPIPE that kills the client */
    signal(SIGPIPE, SIG_IGN);
    const char *why = NULL;
    SSL_CTX *ctx = tls_admin_client_ctx_new(o->ca_file, &why);
    if (ctx == NULL) {
        snprintf(error, error_size, "%s", why);
        return NULL;
    }
    int timeout_ms = (o->timeout_s > 0 ? o->timeout_s : 30) * 1000;
    int64_t until = conn_now_ms() + timeout_ms;

    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM};
    struct addrinfo *res = NULL;
    int gai = getaddrinfo(o->host, NULL, &hints, &res);
    if (gai != 0) {
        snprintf(error, error_size, "cannot resolve %s: %s", o->host, gai_strerror(gai));
        SSL_CTX_free(ctx);
        return NULL;
    }
    struct conn *conn = NULL;
    char last[256] = "no address";
    for (struct addrinfo *ai = res; ai != NULL && conn == NULL; ai = ai->ai_next) {
        char ip[INET6_ADDRSTRLEN];
        const void *addr = ai->ai_family == AF_INET
                               ? (const void *)&((struct sockaddr_in *)ai->ai_addr)->sin_addr
                               : (const void *)&((struct sockaddr_in6 *)ai->ai_addr)->sin6_addr;
        if ((ai->ai_family != AF_INET && ai->ai_family != AF_INET6) ||
            inet_ntop(ai->ai_family, addr, ip, sizeof(ip)) == NULL)
            continue;
        conn = conn_connect(ip, o->port, until, NULL, last, sizeof(last));
    }
    freeaddrinfo(res);
    if (conn == NULL) {
        snprintf(error, error_size, "cannot connect to %s port %d: %s", o->host, o->port, last);
        SSL_CTX_free(ctx);
        return NULL;
    }
    struct admin_client *ac = xcalloc(1, sizeof(*ac));
    ac->conn = conn;
    ac->ctx = ctx;
    ac->timeout_ms = timeout_ms;
    if (conn_starttls_client(conn, ctx, o->host, until, &why) != CONN_OK) {
        snprintf(error, error_size, "TLS with %s port %d failed: %s", o->host, o->port, why);
        goto fail;
    }
    if (!o->insecure && !conn_tls_verified(conn, &why)) {
        snprintf(error, error_size,
                 "the certificate of %s does not verify: %s (trust it with --ca FILE, or skip"
                 " the check with --insecure)",
                 o->host, why);
        goto fail;
    }
    struct admin_reply r;
    if (read_reply(ac, &r, error, error_size) < 0) goto fail;
    if (!r.ok) {
        *exit_r = admin_exit_code(r.code);
        snprintf(error, error_size, "%s %s", r.code, r.text);
        admin_reply_clear(&r);
        goto fail;
    }
    ac->greeting = r.json;
    r.json = NULL;
    admin_reply_clear(&r);
    *exit_r = 0;
    return ac;
fail:
    conn_free(&ac->conn);
    SSL_CTX_free(ac->ctx);
    free(ac);
    return NULL;
}

const struct json *admin_greeting(const struct admin_client *ac)
{
    return ac->greeting;
}

void admin_close(struct admin_client **acp)
{
    struct admin_client *ac = *acp;
    if (ac == NULL) return;
    if (!ac->conn->write_failed) {
        conn_puts(ac->conn, "QUIT\r\n");
        if (conn_flush(ac->conn, conn_now_ms() + 1000) == CONN_OK) {
            struct sbuf line = SBUF_INIT(4096);
            conn_read_line(ac->conn, &line, 4096, conn_now_ms() + 1000);
            sbuf_free(&line);
        }
    }
    conn_free(&ac->conn);
    SSL_CTX_free(ac->ctx);
    json_free(&ac->greeting);
    free(ac);
    *acp = NULL;
}

static bool is_atom_char(unsigned char c)
{
    return c > 0x20 && c < 0x7f && c != '"' && c != '\\';
}

int admin_quote(struct sbuf *out, const char *arg, const char **error_r)
{
    bool atom = arg[0] != '\0';
    for (const unsigned char *p = (const unsigned char *)arg; *p; p++) {
        if ((*p < 0x20 && *p != '\t') || *p == 0x7f) {
            *error_r = *p == '\r' || *p == '\n' ? "a line break cannot be sent"
                                                : "a control character cannot be sent";
            return -1;
        }
        if (!is_atom_char(*p)) atom = false;
    }
    if (atom) return sbuf_appends(out, arg);
    size_t mark = out->len;
    int r = sbuf_putc(out, '"');
    for (const char *p = arg; *p && r == 0; p++) {
        if (*p == '"' || *p == '\\') r = sbuf_putc(out, '\\');
        if (r == 0) r = sbuf_putc(out, *p);
    }
    if (r == 0) r = sbuf_putc(out, '"');
    if (r < 0) {
        sbuf_truncate(out, mark);
        *error_r = "too long";
    }
    return r;
}

int admin_format(struct sbuf *out, const char *const *args, size_t nargs, char *error,
                 size_t error_size)
{
    sbuf_reset(out);
    for (size_t i = 0; i < nargs; i++) {
        const char *why = NULL;
        if (i > 0) sbuf_putc(out, ' ');
        if (admin_quote(out, args[i], &why) < 0) {
            snprintf(error, error_size, "argument %zu: %s", i, why);
            return -1;
        }
    }
    if (out->len + 2 > ADMIN_LINE_MAX) {
        snprintf(error, error_size, "the command is too long (%zu bytes; at most %d)", out->len,
                 ADMIN_LINE_MAX - 2);
        return -1;
    }
    return 0;
}

int admin_command(struct admin_client *ac, const char *const *args, size_t nargs,
                  struct admin_reply *r, int *exit_r, char *error, size_t error_size)
{
    memset(r, 0, sizeof(*r));
    struct sbuf line = SBUF_INIT(SBUF_NO_MAX);
    if (admin_format(&line, args, nargs, error, error_size) < 0) {
        explicit_bzero(line.data, line.cap);
        sbuf_free(&line);
        *exit_r = ADMIN_EXIT_USAGE;
        return -1;
    }
    sbuf_append(&line, "\r\n", 2);
    conn_write(ac->conn, line.data, line.len);
    explicit_bzero(line.data, line.cap); /* it may hold a password */
    sbuf_free(&line);
    if (conn_flush(ac->conn, deadline(ac)) != CONN_OK) {
        snprintf(error, error_size, "the connection to the server failed");
        *exit_r = ADMIN_EXIT_TEMPFAIL;
        return -1;
    }
    if (read_reply(ac, r, error, error_size) < 0) {
        *exit_r = ADMIN_EXIT_TEMPFAIL;
        return -1;
    }
    *exit_r = r->ok ? 0 : admin_exit_code(r->code);
    return 0;
}

int admin_login(struct admin_client *ac, const char *user, const char *password, char *error,
                size_t error_size)
{
    const char *args[] = {"LOGIN", user, password};
    struct admin_reply r;
    int code;
    if (admin_command(ac, args, 3, &r, &code, error, error_size) < 0) return code;
    if (!r.ok) {
        code = strcmp(r.code, "DENIED") == 0 ? ADMIN_EXIT_AUTH : admin_exit_code(r.code);
        snprintf(error, error_size, "login as %s refused: %s %s", user, r.code, r.text);
    }
    admin_reply_clear(&r);
    return code;
}

void admin_reply_clear(struct admin_reply *r)
{
    free(r->text);
    json_free(&r->json);
    memset(r, 0, sizeof(*r));
}

int admin_exit_code(const char *code)
{
    static const struct {
        const char *code;
        int exit;
    } map[] = {
        {"AUTH", ADMIN_EXIT_AUTH},        {"LOCKED", ADMIN_EXIT_AUTH},
        {"DENIED", ADMIN_EXIT_REFUSED},   {"SYNTAX", ADMIN_EXIT_USAGE},
        {"LINE", ADMIN_EXIT_USAGE},       {"NOTFOUND", ADMIN_EXIT_REFUSED},
        {"EXISTS", ADMIN_EXIT_REFUSED},   {"INVALID", ADMIN_EXIT_REFUSED},
        {"BUSY", ADMIN_EXIT_TEMPFAIL},    {"UNAVAILABLE", ADMIN_EXIT_TEMPFAIL},
        {"TIMEOUT", ADMIN_EXIT_TEMPFAIL}, {"INTERNAL", ADMIN_EXIT_TEMPFAIL},
    };
    for (size_t i = 0; i < sizeof(map) / sizeof(map[0]); i++)
        if (strcasecmp(map[i].code, code) == 0) return map[i].exit;
    return ADMIN_EXIT_REFUSED;
}

/* The length of the well-formed UTF-8 sequence at p (2-4), or 0. */
static size_t utf8_seq(const unsigned char *p)
{
    size_t n;
    if (p[0] >= 0xc2 && p[0] <= 0xdf)
        n = 2;
    else if (p[0] >= 0xe0 && p[0] <= 0xef)
        n = 3;
    else if (p[0] >= 0xf0 && p[0] <= 0xf4)
        n = 4;
    else
        return 0;
    /* the string's NUL ends a short sequence: it is not a continuation byte */
    for (size_t i = 1; i < n; i++)
        if ((p[i] & 0xc0) != 0x80) return 0;
    if (n == 3 && ((p[0] == 0xe0 && p[1] < 0xa0) || (p[0] == 0xed && p[1] > 0x9f))) return 0;
    if (n == 4 && ((p[0] == 0xf0 && p[1] < 0x90) || (p[0] == 0xf4 && p[1] > 0x8f))) return 0;
    return n;
}

void admin_fputs_safe(FILE *f, const char *s)
{
    const unsigned char *p = (const unsigned char *)s;
    while (*p) {
        if (*p < 0x20 || *p == 0x7f) {
            fprintf(f, "\\x%02x", *p++);
            continue;
        }
        if (*p < 0x80) {
            fputc(*p++, f);
            continue;
        }
        size_t n = utf8_seq(p);
        if (n == 0) { /* not UTF-8: a lone 0x9b is CSI on an 8-bit terminal */
            fprintf(f, "\\x%02x", *p++);
        } else if (n == 2 && p[0] == 0xc2 && p[1] <= 0x9f) { /* a C1 control in UTF-8 */
            fprintf(f, "\\x%02x", p[1]);
            p += 2;
        } else {
            fwrite(p, 1, n, f);
            p += n;
        }
    }
}

void admin_print_domain_list(FILE *f, const struct json *reply)
{
    const struct json *d = json_get(reply, "domains");
    const struct json *types = json_get(reply, "types");
    const struct json *accounts = json_get(reply, "accounts");
    const struct json *catchalls = json_get(reply, "catchalls");
    for (size_t i = 0; d != NULL && d->type == JSON_ARRAY && i < d->n; i++) {
        const char *name = json_str(d->items[i], "?");
        size_t len = strlen(name);
        admin_fputs_safe(f, name);
        fprintf(f, "%*s %6" PRId64 " ", len < 40 ? (int)(40 - len) : 0, "",
                json_int(json_get(accounts, name), 0));
        admin_fputs_safe(f, json_str(json_get(catchalls, name), "-"));
        fputc(' ', f);
        admin_fputs_safe(f, json_str(json_get(types, name), "local"));
        fputc('\n', f);
    }
}

const char *admin_time_str(int64_t t, char *buf, size_t size)
{
    if (t <= 0) return "now";
    time_t tt = (time_t)t;
    struct tm tm;
    localtime_r(&tt, &tm);
    strftime(buf, size, "%Y-%m-%d %H:%M:%S", &tm);
    return buf;
}

void admin_print_queue_list(FILE *f, const struct json *reply)
{
    const struct json *m = json_get(reply, "messages");
    size_t n = m != NULL && m->type == JSON_ARRAY ? m->n : 0;
    for (size_t i = 0; i < n; i++) {
        const struct json *e = m->items[i];
        char next[40];
        admin_fputs_safe(f, json_str(json_get(e, "id"), "?"));
        const char *state = json_str(json_get(e, "state"), "?");
        fputs("  ", f);
        admin_fputs_safe(f, state);
        fprintf(f, "%*s  %8" PRId64 "  attempts %" PRId64 "  next %s  <",
                strlen(state) < 7 ? (int)(7 - strlen(state)) : 0, "",
                json_int(json_get(e, "size"), 0), json_int(json_get(e, "attempts"), 0),
                admin_time_str(json_int(json_get(e, "next_try"), 0), next, sizeof(next)));
        admin_fputs_safe(f, json_str(json_get(e, "sender"), ""));
        fputs("> ->", f);
        const struct json *rc = json_get(e, "recipients"), *er = json_get(e, "errors");
        size_t nr = rc != NULL && rc->type == JSON_ARRAY ? rc->n : 0;
        for (size_t k = 0; k < nr; k++) {
            fputs(" <", f);
            admin_fputs_safe(f, json_str(rc->items[k], "?"));
            fputc('>', f);
        }
        fputc('\n', f);
        for (size_t k = 0; k < nr && er != NULL && er->type == JSON_ARRAY && k < er->n; k++) {
            if (er->items[k]->type != JSON_STRING) continue;
            fputs("    <", f);
            admin_fputs_safe(f, json_str(rc->items[k], "?"));
            fputs(">: ", f);
            admin_fputs_safe(f, er->items[k]->str);
            fputc('\n', f);
        }
    }
    if (n == 0)
        fprintf(f, "The queue is empty.\n");
    else
        fprintf(f, "%zu message%s.\n", n, n == 1 ? "" : "s");
}

void admin_print_queue_show(FILE *f, const struct json *e, const char *id)
{
    char buf[40];
    fputs("ID: ", f);
    admin_fputs_safe(f, json_str(json_get(e, "id"), id));
    fputs("\nState: ", f);
    admin_fputs_safe(f, json_str(json_get(e, "state"), "?"));
    fprintf(f, "\nArrived: %s\n",
            admin_time_str(json_int(json_get(e, "created"), 0), buf, sizeof(buf)));
    fprintf(f, "Next try: %s\nAttempts: %" PRId64 "\nSize: %" PRId64 "\nFrom: <",
            admin_time_str(json_int(json_get(e, "next_try"), 0), buf, sizeof(buf)),
            json_int(json_get(e, "attempts"), 0), json_int(json_get(e, "size"), 0));
    admin_fputs_safe(f, json_str(json_get(e, "sender"), ""));
    fputs(">\n", f);
    const struct json *rc = json_get(e, "recipients"), *er = json_get(e, "errors");
    for (size_t k = 0; rc != NULL && rc->type == JSON_ARRAY && k < rc->n; k++) {
        fputs("To: <", f);
        admin_fputs_safe(f, json_str(rc->items[k], "?"));
        fputc('>', f);
        if (er != NULL && er->type == JSON_ARRAY && k < er->n &&
            er->items[k]->type == JSON_STRING) {
            fputs("  (last: ", f);
            admin_fputs_safe(f, er->items[k]->str);
            fputc(')', f);
        }
        fputc('\n', f);
    }
    const char *headers = json_str(json_get(e, "headers"), NULL);
    if (headers == NULL) return;
    fputc('\n', f);
    /* header lines keep their line ends; other control characters are escaped */
    for (const char *p = headers; *p;) {
        size_t n = strcspn(p, "\r\n");
        char *l = xstrndup(p, n);
        admin_fputs_safe(f, l);
        free(l);
        fputc('\n', f);
        p += n;
        if (*p == '\r') p++;
        if (*p == '\n') p++;
    }
}

void admin_print_list(FILE *f, const struct json *a)
{
    if (a == NULL || a->type != JSON_ARRAY || a->n == 0) {
        fputs("none", f);
        return;
    }
    for (size_t i = 0; i < a->n; i++) {
        if (i) fputc(' ', f);
        admin_fputs_safe(f, json_str(a->items[i], "?"));
    }
}

/* A quota from a reply; missing or negative is unlimited (0). */
static uint64_t quota_of(const struct json *v)
{
    int64_t q = json_int(v, 0);
    return q > 0 ? (uint64_t)q : 0;
}

void admin_print_user_list(FILE *f, const struct json *reply)
{
    const struct json *u = json_get(reply, "users");
    for (size_t i = 0; u != NULL && u->type == JSON_ARRAY && i < u->n; i++) {
        const struct json *e = u->items[i];
        const char *addr = json_str(json_get(e, "address"), "?");
        const char *type = json_str(json_get(e, "type"), "?");
        admin_fputs_safe(f, addr);
        fprintf(f, "%*s ", strlen(addr) < 40 ? (int)(40 - strlen(addr)) : 0, "");
        admin_fputs_safe(f, type);
        if (strcmp(type, "alias") == 0) {
            fputs(" -   -\n", f);
        } else {
            char q[32];
            fprintf(f, "%*s %-3s %s\n", strlen(type) < 5 ? (int)(5 - strlen(type)) : 0, "",
                    json_bool(json_get(e, "admin"), false) ? "yes" : "no",
                    store_quota_format(quota_of(json_get(e, "quota")), q, sizeof(q)));
        }
    }
}

void admin_print_user_show(FILE *f, const struct json *v, const char *address)
{
    const char *type = json_str(json_get(v, "type"), "user");
    const struct json *targets = json_get(v, "targets");
    fputs("address: ", f);
    admin_fputs_safe(f, json_str(json_get(v, "address"), address));
    fputs("\ntype: ", f);
    admin_fputs_safe(f, type);
    if (strcmp(type, "alias") == 0) {
        fputs("\nmembers: ", f);
        admin_print_list(f, targets);
        fputc('\n', f);
        return;
    }
    char q[32];
    fprintf(f, "\nadmin: %s\nquota: %s\nforward: ",
            json_bool(json_get(v, "admin"), false) ? "yes" : "no",
            store_quota_format(quota_of(json_get(v, "quota")), q, sizeof(q)));
    admin_print_list(f, targets);
    bool has = targets != NULL && targets->type == JSON_ARRAY && targets->n > 0;
    fprintf(f, "\nkeep-copy: %s\n", !has || json_bool(json_get(v, "keep"), false) ? "yes" : "no");
    fprintf(f, "size: %" PRId64 " bytes\n", json_int(json_get(v, "used"), 0));
}

const char **admin_words(const char *w1, const char *w2, char *const *args, size_t nargs,
                         const char *last, size_t *n_r)
{
    const char **req = xcalloc(nargs + 4, sizeof(*req));
    size_t n = 0;
    req[n++] = w1;
    if (w2) req[n++] = w2;
    for (size_t i = 0; i < nargs; i++)
        req[n++] = args[i];
    if (last) req[n++] = last;
    *n_r = n;
    return req;
}

char *admin_joined(char *const *args, size_t n)
{
    struct sbuf sb = SBUF_INIT(SBUF_NO_MAX);
    for (size_t i = 0; i < n; i++)
        sbuf_printf(&sb, "%s%s", i ? " " : "", args[i]);
    return sbuf_steal(&sb);
}
