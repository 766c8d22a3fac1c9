/* fuzz_imap_search.c - libFuzzer harness for IMAP SEARCH programs (and FETCH attributes)
 *
 * Each input is the text after "t SEARCH " of one command line: it goes through the
 * real command parser (imap_parser.c, with LITERAL+ so literals need no continuation),
 * then imap_search_parse(), imap_search_bind() and imap_search_match() against two small
 * messages (one multipart with encoded words, one that is "gone"). The invariants of
 * the result are checked: a parsed program is within IMAP_SEARCH_MAX_KEYS and has a
 * tree whose depth is bounded; a refused one says why. The same arguments are also
 * given to imap_fetch_parse() as FETCH attributes, and a parsed plan is rendered for
 * the multipart message, checking that every literal's announced length is exact.
 *
 * Run: cmake -DALKAID_FUZZ=ON -DCMAKE_C_COMPILER=clang ...; build/fuzz/fuzz_imap_search
 *
 * SECURITY: ASan (with -fsanitize=fuzzer,address) sees any read past the input; the
 * command text is in an exactly-sized copy.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "imap_fetch.h"
#include "imap_parser.h"
#include "imap_search.h"
#include "sbuf.h"

static const char message[] = "From: =?UTF-8?B?w4RsaWNl?= <alice@example.test>\r\n"
                              "Subject: =?ISO-8859-1?Q?Gr=FC=DFe?=\r\n"
                              "Date: Sun, 1 Mar 2026 01:30:00 +0200\r\n"
                              "Content-Type: multipart/mixed; boundary=b\r\n"
                              "\r\n"
                              "--b\r\n"
                              "Content-Type: text/plain; charset=utf-8\r\n"
                              "Content-Transfer-Encoding: base64\r\n"
                              "\r\n"
                              "SGVsbG8gV8OWUkxE\r\n"
                              "--b\r\n"
                              "Content-Type: message/rfc822\r\n"
                              "\r\n"
                              "Subject: inner\r\n"
                              "\r\n"
                              "inner =E4 text\r\n"
                              "--b--\r\n";

static int load_ok(void *ctx, const char **data_r, size_t *len_r)
{
    (void)ctx;
    *data_r = message;
    *len_r = sizeof(message) - 1;
    return 0;
}

static int load_gone(void *ctx, const char **data_r, size_t *len_r)
{
    (void)ctx;
    (void)data_r;
    (void)len_r;
    return -1;
}

static size_t depth_of(const struct imap_search_key *k)
{
    size_t d = 0;
    for (size_t i = 0; i < k->nchildren; i++) {
        size_t c = depth_of(&k->children[i]);
        if (c > d) d = c;
    }
    return d + 1;
}

/* Checks that a rendered response's literals are followed by exactly their octets. */
struct render_check {
    struct sbuf out;
};

static void collect(void *ctx, const void *data, size_t len)
{
    struct render_check *c = ctx;
    if (sbuf_append(&c->out, data, len) < 0) abort();
}

static void check_literals(const struct sbuf *out)
{
    const char *p = out->data, *end = out->data + out->len;
    if (out->len < 2 || end[-2] != '\r' || end[-1] != '\n') abort();
    while (p < end) {
        const char *brace = memchr(p, '{', (size_t)(end - p));
        if (brace == NULL) break;
        char *after;
        unsigned long long n = strtoull(brace + 1, &after, 10);
        if (after < end && *after == '}' && after + 2 < end && after[1] == '\r' &&
            after[2] == '\n') {
            p = after + 3;
            if ((unsigned long long)(end - p) < n + 3) abort(); /* ")\r\n" at least */
            p += n;
        } else {
            p = brace + 1;
        }
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const char prefix[] = "t SEARCH ";
    size_t len = sizeof(prefix) - 1 + size + 2;
    char *line = malloc(len);
    if (line == NULL) return 0;
    memcpy(line, prefix, sizeof(prefix) - 1);
    memcpy(line + sizeof(prefix) - 1, data, size);
    memcpy(line + len - 2, "\r\n", 2);

    struct imap_limits limits = {65536, 65536, 0, 16, 10000};
    struct imap_parser *p = imap_parser_new(&limits);
    size_t off = 0;
    enum imap_parse_status st = IMAP_PARSE_MORE;
    while (off < len) {
        size_t used = 0;
        st = imap_parser_feed(p, line + off, len - off, &used);
        off += used;
        if (st == IMAP_PARSE_DONE || st == IMAP_PARSE_ERROR) break;
        if (used == 0 && st == IMAP_PARSE_MORE) break;
    }
    if (st == IMAP_PARSE_DONE) {
        const struct imap_command *cmd = imap_parser_command(p);
        struct imap_search_program *prog = NULL;
        const char *error = NULL;
        enum imap_search_result r = imap_search_parse(cmd->args, cmd->nargs, &prog, &error);
        if (r == IMAP_SEARCH_OK) {
            if (prog == NULL || error != NULL) abort();
            if (prog->nkeys > IMAP_SEARCH_MAX_KEYS) abort();
            if (depth_of(&prog->root) > 2 * IMAP_SEARCH_MAX_DEPTH + 2) abort();
            const char *const kw[] = {"$Forwarded", "Junk"};
            if (imap_search_bind(prog, kw, 2, 5) == 0) {
                struct folder_msg msg = {7,          FOLDER_SEEN, 1, 100, sizeof(message) - 1,
                                         1772321400, NULL};
                for (int gone = 0; gone <= 1; gone++) {
                    struct imap_search_msg m;
                    memset(&m, 0, sizeof(m));
                    m.msg = &msg;
                    m.seq = 3;
                    m.recent = gone;
                    m.max_seq = 5;
                    m.max_uid = 9;
                    m.load = gone ? load_gone : load_ok;
                    (void)imap_search_match(prog, &m);
                    imap_search_msg_done(&m);
                }
            }
            imap_search_free(&prog);
        } else {
            if (prog != NULL || error == NULL) abort();
        }

        /* the same arguments as FETCH attributes (and modifiers) */
        for (size_t i = 0; i < cmd->nargs && i < 4; i++) {
            struct imap_fetch_plan plan;
            const char *ferr = NULL;
            const struct imap_arg *mod = i + 1 < cmd->nargs ? &cmd->args[i + 1] : NULL;
            if (imap_fetch_parse(&cmd->args[i], mod, &plan, &ferr) == 0) {
                struct folder_msg msg = {7, 0, 0, 1, sizeof(message) - 1, 0, NULL};
                struct render_check c = {SBUF_INIT(SBUF_NO_MAX)};
                struct imap_fetch_writer w = {collect, &c};
                struct imap_fetch_msg fm = {1,    &msg,    "FLAGS ()",         true,
                                            true, message, sizeof(message) - 1};
                imap_fetch_render(&plan, &fm, &w);
                check_literals(&c.out);
                sbuf_free(&c.out);
                imap_fetch_plan_free(&plan);
            } else if (ferr == NULL) {
                abort();
            }
        }
    }
    imap_parser_free(&p);
    free(line);
    return 0;
}
