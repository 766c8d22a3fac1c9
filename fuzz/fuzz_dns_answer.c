/* fuzz_dns_answer.c - libFuzzer harness for the DNS answer parser and the DSN stuffer
 *
 * The first byte picks the query type; the rest is a DNS message as a resolver could
 * send it: dns_parse_answer() on an exactly sized copy. Invariants: a malformed answer
 * keeps no records; every record kept has an owner name, and the fields its type uses
 * are set and NUL-terminated. The same bytes also go through the outbound SMTP client's
 * dot-stuffer in two chunks, whose output must have only CRLF line ends and no line
 * starting with a single '.' followed by CRLF.
 *
 * SECURITY: ASan sees any read past the input (the copy is exactly sized).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "dns.h"
#include "sbuf.h"
#include "smtp_client.h"

static const enum dns_type types[] = {DNS_T_A,   DNS_T_AAAA, DNS_T_MX,   DNS_T_TXT,
                                      DNS_T_PTR, DNS_T_NS,   DNS_T_CNAME};

static void check_stuffed(const struct sbuf *out)
{
    const char *p = out->data ? out->data : "";
    size_t n = out->len;
    bool line_start = true;
    for (size_t i = 0; i < n; i++) {
        if (p[i] == '\n' && (i == 0 || p[i - 1] != '\r')) abort();
        if (p[i] == '\r' && (i + 1 >= n || p[i + 1] != '\n')) abort();
        /* a line that is just "." would end the message early */
        if (line_start && p[i] == '.' && i + 2 < n && p[i + 1] == '\r' && p[i + 2] == '\n') abort();
        line_start = p[i] == '\n';
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1) return 0;
    enum dns_type t = types[data[0] % (sizeof(types) / sizeof(types[0]))];
    unsigned char *copy = malloc(size - 1 ? size - 1 : 1);
    memcpy(copy, data + 1, size - 1);
    struct dns_answer ans;
    int r = dns_parse_answer(copy, size - 1, t, &ans);
    if (r < 0 && ans.n != 0) abort();
    for (size_t i = 0; i < ans.n; i++) {
        const struct dns_rr *rr = &ans.rrs[i];
        if (rr->name == NULL) abort();
        (void)strlen(rr->name);
        if ((rr->type == DNS_T_MX || rr->type == DNS_T_NS || rr->type == DNS_T_PTR ||
             rr->type == DNS_T_CNAME) &&
            rr->target == NULL)
            abort();
        if (rr->type == DNS_T_TXT && rr->text == NULL) abort();
        if ((rr->type == DNS_T_A || rr->type == DNS_T_AAAA) &&
            memchr(rr->addr, '\0', sizeof(rr->addr)) == NULL)
            abort();
    }
    dns_answer_clear(&ans);

    struct sbuf out = SBUF_INIT(SBUF_NO_MAX);
    int state = 0;
    size_t half = (size - 1) / 2;
    smtp_client_stuff((const char *)copy, half, &state, &out);
    smtp_client_stuff((const char *)copy + half, size - 1 - half, &state, &out);
    smtp_client_stuff_end(&state, &out);
    check_stuffed(&out);
    sbuf_free(&out);
    free(copy);
    return 0;
}
