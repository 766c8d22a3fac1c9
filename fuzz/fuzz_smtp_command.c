/* fuzz_smtp_command.c - libFuzzer target for the SMTP command parsers (smtp_parse.c)
 *
 * The input is one command line: smtp_parse_command() splits it, and the argument goes
 * to smtp_parse_mail(), smtp_parse_rcpt(), smtp_parse_bdat() and smtp_helo_valid()
 * whatever the verb; the whole input is also tried as a MAIL/RCPT argument directly.
 * Accepted paths are checked: limits hold, address/domain contain no control or 8-bit
 * octets, the domain is lower-case, keywords are upper-case, and the address sent back
 * as "<address>" parses to the same address, local part and domain.
 *
 * SECURITY: a failed check aborts, which libFuzzer reports with the input. The line is
 * copied into an exactly-sized buffer so that ASan sees a read past its NUL.
 */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "smtp_parse.h"

#define CHECK(c)                                                                                   \
    do {                                                                                           \
        if (!(c)) {                                                                                \
            fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #c);                  \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_path(const struct smtp_path *p, bool mail)
{
    size_t al = strlen(p->address), ll = strlen(p->localpart), dl = strlen(p->domain);
    CHECK(al <= 256);
    CHECK(ll <= 64);
    CHECK(dl <= 255);
    CHECK(p->nparams <= SMTP_MAX_PARAMS);
    for (const char *c = p->address; *c; c++)
        CHECK((unsigned char)*c >= 32 && (unsigned char)*c < 127);
    for (const char *c = p->localpart; *c; c++)
        CHECK((unsigned char)*c >= 32 && (unsigned char)*c < 127);
    for (const char *c = p->domain; *c; c++)
        CHECK(!(*c >= 'A' && *c <= 'Z') && (unsigned char)*c > 32 && (unsigned char)*c < 127);
    if (al == 0) {
        CHECK(mail && ll == 0 && dl == 0);
    } else if (dl == 0) {
        CHECK(!mail && strcasecmp(p->address, "postmaster") == 0);
    } else {
        CHECK(ll > 0);
        CHECK(al > dl + 1 && p->address[al - dl - 1] == '@');
        CHECK(strcmp(p->address + al - dl, p->domain) == 0);
    }
    for (size_t k = 0; k < p->nparams; k++) {
        const char *kw = p->params[k].keyword;
        CHECK(kw != NULL && *kw != '\0');
        for (const char *c = kw; *c; c++)
            CHECK((*c >= 'A' && *c <= 'Z') || (*c >= '0' && *c <= '9') || *c == '-');
        if (p->params[k].value) CHECK(*p->params[k].value != '\0');
        CHECK(smtp_path_param(p, kw, NULL) != NULL);
    }

    /* round trip: the canonical address parses to itself */
    size_t n = al + 16;
    char *again = malloc(n);
    CHECK(again != NULL);
    snprintf(again, n, "%s<%s>", mail ? "FROM:" : "TO:", p->address);
    struct smtp_path q;
    const char *err;
    int r = mail ? smtp_parse_mail(again, &q, &err) : smtp_parse_rcpt(again, &q, &err);
    CHECK(r == 0);
    CHECK(strcmp(q.address, p->address) == 0);
    CHECK(strcmp(q.localpart, p->localpart) == 0);
    CHECK(strcmp(q.domain, p->domain) == 0);
    smtp_path_clear(&q);
    free(again);
}

static void try_paths(const char *arg)
{
    struct smtp_path p;
    const char *err = NULL;

    if (smtp_parse_mail(arg, &p, &err) == 0) {
        check_path(&p, true);
        smtp_path_clear(&p);
    } else {
        CHECK(err != NULL && strlen(err) > 10 && (err[0] == '5'));
        CHECK(p.address == NULL && p.nparams == 0);
    }
    err = NULL;
    if (smtp_parse_rcpt(arg, &p, &err) == 0) {
        check_path(&p, false);
        smtp_path_clear(&p);
    } else {
        CHECK(err != NULL && strlen(err) > 10 && (err[0] == '5'));
        CHECK(p.address == NULL && p.nparams == 0);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *line = malloc(size + 1);
    if (line == NULL) return 0;
    if (size) memcpy(line, data, size);
    line[size] = '\0';

    struct smtp_command cmd;
    if (smtp_parse_command(line, size, &cmd) == 0) {
        CHECK(cmd.verb != SMTP_CMD_UNKNOWN);
        CHECK(cmd.arg >= line && cmd.arg + cmd.arg_len == line + size);
        CHECK(cmd.arg == line + size || cmd.arg[-1] == ' ');
        try_paths(cmd.arg);
        unsigned long long n;
        bool last;
        if (smtp_parse_bdat(cmd.arg, &n, &last) == 0) CHECK(n <= (1ULL << 53));
        (void)smtp_helo_valid(cmd.arg);
    } else {
        CHECK(cmd.verb == SMTP_CMD_UNKNOWN && cmd.arg_len == 0 && *cmd.arg == '\0');
    }
    try_paths(line);
    free(line);
    return 0;
}
