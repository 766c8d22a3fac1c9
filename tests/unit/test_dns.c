/* test_dns.c - unit tests for dns.c without a network
 *
 * The answer parser (dns_parse_answer) on answers built here byte by byte: every record
 * type with its TTL, compressed names, CNAME chains, NODATA, NXDOMAIN and SERVFAIL, the
 * null MX target, records of other types and classes skipped, a TTL with the top bit set;
 * and malformed answers: every truncation of a valid one, compression loops, pointers past
 * the end, rdata of the wrong length, TXT strings past their record, a question, not an
 * answer. Also dns_reverse_name(), the type names, dns_name_valid(), the server list
 * parser of dns_resolver_new(), and what needs no query: invalid names (DNS_BADNAME) and
 * domain literals. Last, the cache and the channel pool against a tiny UDP responder in a
 * thread: answers come from the cache with their TTLs aged, NXDOMAIN is cached, SERVFAIL
 * is not, and threads querying at once each get their answer.
 *
 * SECURITY: the malformed cases are the ones a hostile name server can send.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>

#include "dns.h"
#include "xalloc.h"

/* ---- building answers ---- */

struct msg {
    unsigned char b[2048];
    size_t len;
};

static void put(struct msg *m, const void *p, size_t n)
{
    assert_true(m->len + n <= sizeof(m->b));
    memcpy(m->b + m->len, p, n);
    m->len += n;
}

static void put8(struct msg *m, unsigned v)
{
    unsigned char c = (unsigned char)v;
    put(m, &c, 1);
}

static void put16(struct msg *m, unsigned v)
{
    put8(m, v >> 8);
    put8(m, v & 0xff);
}

static void put32(struct msg *m, uint32_t v)
{
    put16(m, v >> 16);
    put16(m, v & 0xffff);
}

/* "a.b" as labels with the terminating zero. */
static void put_name(struct msg *m, const char *name)
{
    while (*name) {
        const char *dot = strchr(name, '.');
        size_t n = dot ? (size_t)(dot - name) : strlen(name);
        put8(m, (unsigned)n);
        put(m, name, n);
        name += n + (dot ? 1 : 0);
    }
    put8(m, 0);
}

/* Header (a response, RD RA) and the question; the name starts at offset 12. */
static void start(struct msg *m, unsigned rcode, unsigned ancount, const char *qname,
                  unsigned qtype)
{
    m->len = 0;
    put16(m, 0x1234);
    put16(m, 0x8180 | rcode);
    put16(m, 1);
    put16(m, ancount);
    put16(m, 0);
    put16(m, 0);
    put_name(m, qname);
    put16(m, qtype);
    put16(m, 1);
}

/* An RR header owned by the question's name (a pointer to offset 12). */
static void rr_head(struct msg *m, unsigned type, uint32_t ttl, unsigned rdlen)
{
    put16(m, 0xc00c);
    put16(m, type);
    put16(m, 1);
    put32(m, ttl);
    put16(m, rdlen);
}

static void build_mx(struct msg *m)
{
    start(m, 0, 2, "example.test", DNS_T_MX);
    /* 10 mx1.example.test: "mx1" then a pointer to "example.test" at 12 */
    rr_head(m, DNS_T_MX, 3600, 2 + 4 + 2);
    put16(m, 10);
    put8(m, 3);
    put(m, "mx1", 3);
    put16(m, 0xc00c);
    /* 20 mx2.other.test, uncompressed */
    rr_head(m, DNS_T_MX, 600, 2 + 16);
    put16(m, 20);
    put_name(m, "mx2.other.test");
}

/* ---- the parser ---- */

static void test_parse_mx(void **state)
{
    (void)state;
    struct msg m;
    build_mx(&m);
    struct dns_answer a;
    assert_int_equal(dns_parse_answer(m.b, m.len, DNS_T_MX, &a), 0);
    assert_int_equal(a.status, DNS_OK);
    assert_int_equal(a.n, 2);
    assert_string_equal(a.rrs[0].name, "example.test");
    assert_int_equal(a.rrs[0].type, DNS_T_MX);
    assert_int_equal(a.rrs[0].ttl, 3600);
    assert_int_equal(a.rrs[0].pref, 10);
    assert_string_equal(a.rrs[0].target, "mx1.example.test");
    assert_int_equal(a.rrs[1].ttl, 600);
    assert_int_equal(a.rrs[1].pref, 20);
    assert_string_equal(a.rrs[1].target, "mx2.other.test");
    dns_answer_clear(&a);
    assert_int_equal(a.n, 0);
    assert_null(a.rrs);
}

static void test_parse_addresses(void **state)
{
    (void)state;
    struct msg m;
    start(&m, 0, 2, "h.test", DNS_T_AAAA);
    rr_head(&m, DNS_T_AAAA, 60, 16);
    put(&m, "\x20\x01\x0d\xb8\0\0\0\0\0\0\0\0\0\0\0\x01", 16);
    rr_head(&m, DNS_T_A, 0x80000000u, 4); /* top bit: a TTL of 0 (RFC 2181) */
    put(&m, "\xc0\x00\x02\x07", 4);
    struct dns_answer a;
    assert_int_equal(dns_parse_answer(m.b, m.len, DNS_T_AAAA, &a), 0);
    assert_int_equal(a.status, DNS_OK);
    assert_int_equal(a.n, 2);
    assert_string_equal(a.rrs[0].addr, "2001:db8::1");
    assert_int_equal(a.rrs[0].ttl, 60);
    assert_string_equal(a.rrs[1].addr, "192.0.2.7");
    assert_int_equal(a.rrs[1].ttl, 0);
    dns_answer_clear(&a);

    /* the same answer to a question for A: an A record is there too */
    assert_int_equal(dns_parse_answer(m.b, m.len, DNS_T_A, &a), 0);
    assert_int_equal(a.status, DNS_OK);
    dns_answer_clear(&a);
}

static void test_parse_txt(void **state)
{
    (void)state;
    struct msg m;
    start(&m, 0, 1, "t.test", DNS_T_TXT);
    rr_head(&m, DNS_T_TXT, 300, 1 + 7 + 1 + 4 + 1 + 0 + 1 + 2);
    put8(&m, 7);
    put(&m, "v=spf1 ", 7);
    put8(&m, 4);
    put(&m, "-all", 4);
    put8(&m, 0);
    put8(&m, 2);
    put(&m, "\0x", 2);
    struct dns_answer a;
    assert_int_equal(dns_parse_answer(m.b, m.len, DNS_T_TXT, &a), 0);
    assert_int_equal(a.status, DNS_OK);
    assert_int_equal(a.n, 1);
    assert_int_equal(a.rrs[0].text_len, 13);
    assert_memory_equal(a.rrs[0].text, "v=spf1 -all\0x", 14);
    dns_answer_clear(&a);
}

static void test_parse_cname_chain(void **state)
{
    (void)state;
    struct msg m;
    start(&m, 0, 4, "www.test", DNS_T_A);
    size_t target_at = m.len + 12; /* where the CNAME's target will start */
    rr_head(&m, DNS_T_CNAME, 100, 7);
    put8(&m, 4);
    put(&m, "host", 4);
    put16(&m, 0xc010);                       /* "test" of the question (12 + 4) */
    put16(&m, 0xc000 | (unsigned)target_at); /* owner: host.test, a pointer */
    put16(&m, DNS_T_A);
    put16(&m, 1);
    put32(&m, 50);
    put16(&m, 4);
    put(&m, "\x7f\0\0\x02", 4);
    rr_head(&m, 6, 10, 2); /* a type we do not keep (SOA): skipped */
    put16(&m, 0);
    put16(&m, 0xc00c); /* class CH: skipped */
    put16(&m, DNS_T_A);
    put16(&m, 3);
    put32(&m, 10);
    put16(&m, 4);
    put(&m, "\1\2\3\4", 4);
    struct dns_answer a;
    assert_int_equal(dns_parse_answer(m.b, m.len, DNS_T_A, &a), 0);
    assert_int_equal(a.status, DNS_OK);
    assert_int_equal(a.n, 2);
    assert_int_equal(a.rrs[0].type, DNS_T_CNAME);
    assert_string_equal(a.rrs[0].name, "www.test");
    assert_string_equal(a.rrs[0].target, "host.test");
    assert_int_equal(a.rrs[1].type, DNS_T_A);
    assert_string_equal(a.rrs[1].name, "host.test");
    assert_string_equal(a.rrs[1].addr, "127.0.0.2");
    dns_answer_clear(&a);

    /* asked for MX, only the CNAME and an A: NODATA, records kept */
    assert_int_equal(dns_parse_answer(m.b, m.len, DNS_T_MX, &a), 0);
    assert_int_equal(a.status, DNS_NODATA);
    assert_int_equal(a.n, 2);
    dns_answer_clear(&a);
}

static void test_parse_statuses(void **state)
{
    (void)state;
    struct msg m;
    struct dns_answer a;
    start(&m, 0, 0, "e.test", DNS_T_MX);
    assert_int_equal(dns_parse_answer(m.b, m.len, DNS_T_MX, &a), 0);
    assert_int_equal(a.status, DNS_NODATA);
    assert_int_equal(a.n, 0);
    dns_answer_clear(&a);
    start(&m, 3, 0, "e.test", DNS_T_MX);
    assert_int_equal(dns_parse_answer(m.b, m.len, DNS_T_MX, &a), 0);
    assert_int_equal(a.status, DNS_NXDOMAIN);
    dns_answer_clear(&a);
    start(&m, 2, 0, "e.test", DNS_T_MX);
    assert_int_equal(dns_parse_answer(m.b, m.len, DNS_T_MX, &a), 0);
    assert_int_equal(a.status, DNS_TEMPFAIL);
    assert_string_equal(a.error, "SERVFAIL");
    dns_answer_clear(&a);
    start(&m, 5, 0, "e.test", DNS_T_MX);
    assert_int_equal(dns_parse_answer(m.b, m.len, DNS_T_MX, &a), 0);
    assert_int_equal(a.status, DNS_TEMPFAIL);
    assert_string_equal(a.error, "REFUSED");
    dns_answer_clear(&a);
}

static void test_parse_null_mx(void **state)
{
    (void)state;
    struct msg m;
    start(&m, 0, 1, "nomail.test", DNS_T_MX);
    rr_head(&m, DNS_T_MX, 300, 3);
    put16(&m, 0);
    put8(&m, 0);
    struct dns_answer a;
    assert_int_equal(dns_parse_answer(m.b, m.len, DNS_T_MX, &a), 0);
    assert_int_equal(a.status, DNS_OK);
    assert_int_equal(a.n, 1);
    assert_int_equal(a.rrs[0].pref, 0);
    assert_string_equal(a.rrs[0].target, "");
    dns_answer_clear(&a);
}

/* ---- malformed answers ---- */

static void expect_malformed(const unsigned char *b, size_t len, enum dns_type type)
{
    struct dns_answer a;
    assert_int_equal(dns_parse_answer(b, len, type, &a), -1);
    assert_int_equal(a.status, DNS_TEMPFAIL);
    assert_int_equal(a.n, 0);
    assert_null(a.rrs);
    assert_non_null(strstr(a.error, "malformed"));
    dns_answer_clear(&a);
}

static void test_truncations(void **state)
{
    (void)state;
    struct msg m;
    build_mx(&m);
    /* every prefix is cut somewhere the header promised more; copied so that ASan sees
     * a read past the prefix */
    for (size_t n = 0; n < m.len; n++) {
        unsigned char *copy = xmalloc(n ? n : 1);
        memcpy(copy, m.b, n);
        expect_malformed(copy, n, DNS_T_MX);
        free(copy);
    }
}

static void test_compression_loops(void **state)
{
    (void)state;
    struct msg m;
    /* the question's name is a pointer to itself */
    m.len = 0;
    put16(&m, 1);
    put16(&m, 0x8180);
    put16(&m, 1);
    put16(&m, 0);
    put16(&m, 0);
    put16(&m, 0);
    put16(&m, 0xc00c);
    put16(&m, DNS_T_A);
    put16(&m, 1);
    expect_malformed(m.b, m.len, DNS_T_A);

    /* an MX target: a label, then a pointer back to that label */
    start(&m, 0, 1, "l.test", DNS_T_MX);
    size_t at = m.len + 12 + 2;
    rr_head(&m, DNS_T_MX, 1, 2 + 2 + 2);
    put16(&m, 5);
    put8(&m, 1);
    put8(&m, 'x');
    put16(&m, 0xc000 | (unsigned)at);
    expect_malformed(m.b, m.len, DNS_T_MX);

    /* two pointers pointing at each other */
    start(&m, 0, 1, "l.test", DNS_T_CNAME);
    at = m.len + 12;
    rr_head(&m, DNS_T_CNAME, 1, 4);
    put16(&m, 0xc000 | (unsigned)(at + 2));
    put16(&m, 0xc000 | (unsigned)at);
    expect_malformed(m.b, m.len, DNS_T_CNAME);

    /* a pointer past the end */
    start(&m, 0, 1, "l.test", DNS_T_NS);
    rr_head(&m, DNS_T_NS, 1, 2);
    put16(&m, 0xc000 | 0x3ff);
    expect_malformed(m.b, m.len, DNS_T_NS);
}

static void test_bad_rdata(void **state)
{
    (void)state;
    struct msg m;
    /* an A record of 3 bytes, an AAAA of 4 */
    start(&m, 0, 1, "a.test", DNS_T_A);
    rr_head(&m, DNS_T_A, 1, 3);
    put(&m, "\1\2\3", 3);
    expect_malformed(m.b, m.len, DNS_T_A);
    start(&m, 0, 1, "a.test", DNS_T_AAAA);
    rr_head(&m, DNS_T_AAAA, 1, 4);
    put(&m, "\1\2\3\4", 4);
    expect_malformed(m.b, m.len, DNS_T_AAAA);

    /* MX: a name shorter than the rdata, then one running past it */
    start(&m, 0, 1, "m.test", DNS_T_MX);
    rr_head(&m, DNS_T_MX, 1, 2 + 3 + 1);
    put16(&m, 1);
    put8(&m, 1);
    put8(&m, 'a');
    put8(&m, 0);
    put8(&m, 0);
    expect_malformed(m.b, m.len, DNS_T_MX);
    start(&m, 0, 1, "m.test", DNS_T_MX);
    rr_head(&m, DNS_T_MX, 1, 2 + 2);
    put16(&m, 1);
    put8(&m, 1);
    put8(&m, 'a');
    put8(&m, 0); /* the name ends one byte past the rdata */
    expect_malformed(m.b, m.len, DNS_T_MX);
    start(&m, 0, 1, "m.test", DNS_T_MX);
    rr_head(&m, DNS_T_MX, 1, 2);
    put16(&m, 1);
    expect_malformed(m.b, m.len, DNS_T_MX);

    /* TXT: a string longer than its record; an empty record */
    start(&m, 0, 1, "t.test", DNS_T_TXT);
    rr_head(&m, DNS_T_TXT, 1, 3);
    put8(&m, 5);
    put(&m, "ab", 2);
    put(&m, "cdefgh", 6); /* bytes after the record: not its own */
    expect_malformed(m.b, m.len - 6, DNS_T_TXT);
    start(&m, 0, 1, "t.test", DNS_T_TXT);
    rr_head(&m, DNS_T_TXT, 1, 0);
    expect_malformed(m.b, m.len, DNS_T_TXT);

    /* rdlength past the end */
    start(&m, 0, 1, "a.test", DNS_T_A);
    rr_head(&m, DNS_T_A, 1, 400);
    put(&m, "\1\2\3\4", 4);
    expect_malformed(m.b, m.len, DNS_T_A);
}

static void test_bad_headers(void **state)
{
    (void)state;
    struct msg m;
    start(&m, 0, 0, "q.test", DNS_T_A);
    m.b[2] &= 0x7f; /* a query, not a response */
    expect_malformed(m.b, m.len, DNS_T_A);
    start(&m, 0, 0, "q.test", DNS_T_A);
    m.b[5] = 2; /* two questions */
    expect_malformed(m.b, m.len, DNS_T_A);
    start(&m, 0, 0, "q.test", DNS_T_A);
    m.b[5] = 0; /* none */
    expect_malformed(m.b, m.len, DNS_T_A);
    expect_malformed(m.b, 11, DNS_T_A);
    /* a label type that does not exist (0x40) in the question */
    start(&m, 0, 0, "q.test", DNS_T_A);
    m.b[12] = 0x41;
    expect_malformed(m.b, m.len, DNS_T_A);
}

/* ---- names and types ---- */

static void test_reverse_name(void **state)
{
    (void)state;
    char buf[80];
    assert_int_equal(dns_reverse_name("192.0.2.7", buf, sizeof(buf)), 0);
    assert_string_equal(buf, "7.2.0.192.in-addr.arpa");
    assert_int_equal(dns_reverse_name("2001:db8::1", buf, sizeof(buf)), 0);
    assert_string_equal(buf,
                        "1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2.ip6.arpa");
    assert_int_equal(dns_reverse_name("::ffff:192.0.2.1", buf, sizeof(buf)), 0);
    assert_non_null(strstr(buf, "f.f.f.f.0.0.0.0"));
    assert_int_equal(dns_reverse_name("example.test", buf, sizeof(buf)), -1);
    assert_int_equal(dns_reverse_name("192.0.2", buf, sizeof(buf)), -1);
    assert_int_equal(dns_reverse_name("", buf, sizeof(buf)), -1);
    assert_int_equal(dns_reverse_name("192.0.2.7", buf, 22), -1); /* no room for the NUL */
    assert_int_equal(dns_reverse_name("192.0.2.7", buf, 23), 0);
    assert_int_equal(dns_reverse_name("2001:db8::1", buf, 72), -1);
    assert_int_equal(dns_reverse_name("2001:db8::1", buf, 73), 0);
}

static void test_type_names(void **state)
{
    (void)state;
    assert_int_equal(dns_type_from_name("MX"), DNS_T_MX);
    assert_int_equal(dns_type_from_name("mx"), DNS_T_MX);
    assert_int_equal(dns_type_from_name("Aaaa"), DNS_T_AAAA);
    assert_int_equal(dns_type_from_name("a"), DNS_T_A);
    assert_int_equal(dns_type_from_name("txt"), DNS_T_TXT);
    assert_int_equal(dns_type_from_name("PTR"), DNS_T_PTR);
    assert_int_equal(dns_type_from_name("ns"), DNS_T_NS);
    assert_int_equal(dns_type_from_name("CNAME"), DNS_T_CNAME);
    assert_int_equal(dns_type_from_name("SOA"), -1);
    assert_int_equal(dns_type_from_name(""), -1);
    assert_int_equal(dns_type_from_name("MXX"), -1);
    assert_string_equal(dns_type_name(DNS_T_AAAA), "AAAA");
    assert_string_equal(dns_type_name(DNS_T_MX), "MX");
    assert_string_equal(dns_type_name((enum dns_type)99), "TYPE?");
    assert_string_equal(dns_status_name(DNS_NXDOMAIN), "NXDOMAIN");
    assert_string_equal(dns_status_name(DNS_TEMPFAIL), "TEMPFAIL");
}

static void test_name_valid(void **state)
{
    (void)state;
    assert_true(dns_name_valid("example.test"));
    assert_true(dns_name_valid("example.test."));
    assert_true(dns_name_valid("_dmarc.example.test"));
    assert_true(dns_name_valid("a-b.c1.test"));
    assert_true(dns_name_valid("7.2.0.192.in-addr.arpa"));
    assert_true(dns_name_valid("localhost"));
    assert_false(dns_name_valid(""));
    assert_false(dns_name_valid("."));
    assert_false(dns_name_valid("a..b"));
    assert_false(dns_name_valid(".a"));
    assert_false(dns_name_valid("a.b.."));
    assert_false(dns_name_valid("a b.test"));
    assert_false(dns_name_valid("a\nb.test"));
    assert_false(dns_name_valid("a\\b.test"));
    assert_false(dns_name_valid("caf\xc3\xa9.test"));
    assert_false(dns_name_valid("192.0.2.1"));
    assert_false(dns_name_valid("2001:db8::1"));

    char label[70], name[300];
    memset(label, 'a', 63);
    label[63] = '\0';
    assert_true(dns_name_valid(label));
    memset(label, 'a', 64);
    label[64] = '\0';
    assert_false(dns_name_valid(label));
    /* 253 bytes is the limit (63 x 3 + 3 dots + 61) */
    snprintf(name, sizeof(name), "%.63s.%.63s.%.63s.%.61s", label, label, label, label);
    assert_int_equal(strlen(name), 253);
    assert_true(dns_name_valid(name));
    strcat(name, ".");
    assert_true(dns_name_valid(name));
    snprintf(name, sizeof(name), "%.63s.%.63s.%.63s.%.62s", label, label, label, label);
    assert_false(dns_name_valid(name));
}

/* ---- the resolver, without sending anything ---- */

static void test_servers(void **state)
{
    (void)state;
    const char *error = NULL;
    struct dns_resolver *r =
        dns_resolver_new("127.0.0.1:5353, [::1]:54 ::1,192.0.2.1", 1000, 1, &error);
    assert_non_null(r);
    assert_string_equal(dns_resolver_servers(r),
                        "127.0.0.1:5353, [::1]:54, [::1]:53, 192.0.2.1:53");
    dns_resolver_free(&r);
    assert_null(r);

    static const char *bad[] = {"example.test", "127.0.0.1:0", "127.0.0.1:65536",
                                "127.0.0.1:x",  "[::1",        "[::1]x",
                                "[::1]:",       "1.2.3.4.5",   "127.0.0.1:53:53"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        error = NULL;
        assert_null(dns_resolver_new(bad[i], 1000, 1, &error));
        assert_non_null(error);
    }
}

static void test_no_query_needed(void **state)
{
    (void)state;
    const char *error = NULL;
    /* a port nothing answers on: anything that was sent would time out */
    struct dns_resolver *r = dns_resolver_new("127.0.0.1:9", 200, 1, &error);
    assert_non_null(r);
    struct dns_answer a;
    bool cached = true;
    assert_int_equal(dns_query(r, "bad..name", DNS_T_A, &a, &cached), DNS_BADNAME);
    assert_false(cached);
    dns_answer_clear(&a);

    struct dns_mx mx;
    assert_int_equal(dns_resolve_mx(r, "[192.0.2.7]", &mx), DNS_OK);
    assert_int_equal(mx.nhosts, 1);
    assert_int_equal(mx.hosts[0].naddrs, 1);
    assert_string_equal(mx.hosts[0].addrs[0], "192.0.2.7");
    dns_mx_clear(&mx);
    assert_int_equal(dns_resolve_mx(r, "[IPv6:2001:DB8::1]", &mx), DNS_OK);
    assert_string_equal(mx.hosts[0].addrs[0], "2001:db8::1");
    dns_mx_clear(&mx);
    assert_int_equal(dns_resolve_mx(r, "[300.1.2.3]", &mx), DNS_BADNAME);
    dns_mx_clear(&mx);
    assert_int_equal(dns_resolve_mx(r, "[2001:db8::1]", &mx), DNS_BADNAME); /* no IPv6: tag */
    dns_mx_clear(&mx);
    assert_int_equal(dns_resolve_mx(r, "-bad domain", &mx), DNS_BADNAME);
    dns_mx_clear(&mx);
    assert_int_equal(dns_resolve_host(r, "192.0.2.9", &mx), DNS_OK);
    assert_string_equal(mx.hosts[0].addrs[0], "192.0.2.9");
    dns_mx_clear(&mx);
    dns_resolver_free(&r);
}

/* ---- the cache and the pool, against a responder in a thread ---- */

struct responder {
    int fd;
    int port;
    volatile int stop;
    int queries;
    pthread_t thread;
};

/* Answers "nx.*" with NXDOMAIN, "sf.*" with SERVFAIL, anything else with A 127.0.0.1
 * (TTL 100). Questions are taken as sent (uncompressed). */
static void *respond(void *arg)
{
    struct responder *rs = arg;
    while (!rs->stop) {
        struct pollfd pfd = {.fd = rs->fd, .events = POLLIN};
        if (poll(&pfd, 1, 50) <= 0) continue;
        unsigned char q[512];
        struct sockaddr_storage peer;
        socklen_t plen = sizeof(peer);
        ssize_t n = recvfrom(rs->fd, q, sizeof(q), 0, (struct sockaddr *)&peer, &plen);
        if (n < 17) continue;
        __atomic_fetch_add(&rs->queries, 1, __ATOMIC_SEQ_CST);
        size_t qend = 12;
        while (qend < (size_t)n && q[qend] != 0)
            qend += (size_t)q[qend] + 1;
        qend += 5;
        if (qend > (size_t)n) continue;
        unsigned rcode = memcmp(q + 13, "nx", 2) == 0 ? 3 : memcmp(q + 13, "sf", 2) == 0 ? 2 : 0;
        struct msg m = {.len = 0};
        put(&m, q, 2);
        put16(&m, 0x8180 | rcode);
        put16(&m, 1);
        put16(&m, rcode == 0 ? 1 : 0);
        put16(&m, 0);
        put16(&m, 0);
        put(&m, q + 12, qend - 12);
        if (rcode == 0) {
            rr_head(&m, DNS_T_A, 100, 4);
            put(&m, "\x7f\0\0\x01", 4);
        }
        sendto(rs->fd, m.b, m.len, 0, (struct sockaddr *)&peer, plen);
    }
    return NULL;
}

static int responder_start(void **state)
{
    struct responder *rs = xcalloc(1, sizeof(*rs));
    rs->fd = socket(AF_INET, SOCK_DGRAM, 0);
    struct sockaddr_in sin = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof(sin);
    if (rs->fd < 0 || bind(rs->fd, (struct sockaddr *)&sin, sizeof(sin)) < 0 ||
        getsockname(rs->fd, (struct sockaddr *)&sin, &len) < 0)
        return -1;
    rs->port = ntohs(sin.sin_port);
    pthread_create(&rs->thread, NULL, respond, rs);
    *state = rs;
    return 0;
}

static int responder_stop(void **state)
{
    struct responder *rs = *state;
    rs->stop = 1;
    pthread_join(rs->thread, NULL);
    close(rs->fd);
    free(rs);
    return 0;
}

static struct dns_resolver *resolver_for(struct responder *rs)
{
    char servers[32];
    snprintf(servers, sizeof(servers), "127.0.0.1:%d", rs->port);
    const char *error = NULL;
    struct dns_resolver *r = dns_resolver_new(servers, 2000, 1, &error);
    assert_non_null(r);
    return r;
}

static void test_cache(void **state)
{
    struct responder *rs = *state;
    struct dns_resolver *r = resolver_for(rs);
    struct dns_answer a;
    bool cached = true;
    assert_int_equal(dns_query(r, "host.test", DNS_T_A, &a, &cached), DNS_OK);
    assert_false(cached);
    assert_int_equal(a.rrs[0].ttl, 100);
    dns_answer_clear(&a);
    assert_int_equal(dns_query(r, "HOST.test.", DNS_T_A, &a, &cached), DNS_OK);
    assert_true(cached);
    assert_true(a.rrs[0].ttl <= 100 && a.rrs[0].ttl >= 99);
    assert_string_equal(a.rrs[0].addr, "127.0.0.1");
    dns_answer_clear(&a);
    assert_int_equal(rs->queries, 1);

    assert_int_equal(dns_query(r, "nx.test", DNS_T_A, &a, &cached), DNS_NXDOMAIN);
    dns_answer_clear(&a);
    assert_int_equal(dns_query(r, "nx.test", DNS_T_A, &a, &cached), DNS_NXDOMAIN);
    assert_true(cached);
    dns_answer_clear(&a);
    assert_int_equal(rs->queries, 2);

    assert_int_equal(dns_query(r, "sf.test", DNS_T_A, &a, &cached), DNS_TEMPFAIL);
    assert_non_null(strstr(a.error, "SERVFAIL from 127.0.0.1:"));
    dns_answer_clear(&a);
    assert_int_equal(dns_query(r, "sf.test", DNS_T_A, &a, &cached), DNS_TEMPFAIL);
    assert_false(cached);
    dns_answer_clear(&a);
    assert_int_equal(rs->queries, 4);

    dns_cache_clear(r);
    assert_int_equal(dns_query(r, "host.test", DNS_T_A, &a, &cached), DNS_OK);
    assert_false(cached);
    dns_answer_clear(&a);
    dns_resolver_free(&r);
}

#define NTHREADS   6
#define NPERTHREAD 20

struct worker {
    struct dns_resolver *r;
    int id, ok;
};

static void *worker_run(void *arg)
{
    struct worker *w = arg;
    for (int i = 0; i < NPERTHREAD; i++) {
        char name[64];
        snprintf(name, sizeof(name), "h%d-%d.test", w->id, i);
        struct dns_answer a;
        if (dns_query(w->r, name, DNS_T_A, &a, NULL) == DNS_OK && a.n == 1 &&
            strcmp(a.rrs[0].name, name) == 0)
            w->ok++;
        dns_answer_clear(&a);
    }
    return NULL;
}

static void test_threads(void **state)
{
    struct responder *rs = *state;
    struct dns_resolver *r = resolver_for(rs);
    pthread_t t[NTHREADS];
    struct worker w[NTHREADS];
    for (int i = 0; i < NTHREADS; i++) {
        w[i] = (struct worker){.r = r, .id = i};
        pthread_create(&t[i], NULL, worker_run, &w[i]);
    }
    for (int i = 0; i < NTHREADS; i++) {
        pthread_join(t[i], NULL);
        assert_int_equal(w[i].ok, NPERTHREAD);
    }
    dns_resolver_free(&r);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse_mx),
        cmocka_unit_test(test_parse_addresses),
        cmocka_unit_test(test_parse_txt),
        cmocka_unit_test(test_parse_cname_chain),
        cmocka_unit_test(test_parse_statuses),
        cmocka_unit_test(test_parse_null_mx),
        cmocka_unit_test(test_truncations),
        cmocka_unit_test(test_compression_loops),
        cmocka_unit_test(test_bad_rdata),
        cmocka_unit_test(test_bad_headers),
        cmocka_unit_test(test_reverse_name),
        cmocka_unit_test(test_type_names),
        cmocka_unit_test(test_name_valid),
        cmocka_unit_test(test_servers),
        cmocka_unit_test(test_no_query_needed),
        cmocka_unit_test_setup_teardown(test_cache, responder_start, responder_stop),
        cmocka_unit_test_setup_teardown(test_threads, responder_start, responder_stop),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
