/* test_smtp_parse.c - unit tests for the SMTP command, path and parameter parsers
 *
 * Valid and invalid MAIL/RCPT arguments (null path, <Postmaster>, source routes, quoted
 * local parts, address literals, parameters, limits), every verb, BDAT arguments and
 * HELO/EHLO names. The parsers take a whole line, so the byte-at-a-time test feeds every
 * prefix of every valid input, one octet longer each time, in an exactly-sized buffer.
 *
 * SECURITY: inputs live in exactly-sized heap copies so that ASan sees any read past the
 * terminating NUL; every accepted path is freed with smtp_path_clear() (LeakSanitizer).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "smtp_parse.h"
#include "xalloc.h"

#define E_MAIL_SYNTAX "501 5.5.4 Syntax: MAIL FROM:<address>"
#define E_RCPT_SYNTAX "501 5.5.4 Syntax: RCPT TO:<address>"
#define E_MAIL_ADDR   "501 5.1.7 Bad sender address syntax"
#define E_RCPT_ADDR   "501 5.1.3 Bad recipient address syntax"
#define E_MAIL_LONG   "501 5.1.7 Sender address too long"
#define E_RCPT_LONG   "501 5.1.3 Recipient address too long"
#define E_8BIT        "553 5.6.7 Non-ASCII addresses are not permitted (no SMTPUTF8)"
#define E_PARAM       "501 5.5.4 Malformed parameter"
#define E_MANY        "501 5.5.4 Too many parameters"
#define E_DUP         "501 5.5.4 Duplicate parameter"

typedef int (*path_parser)(const char *, struct smtp_path *, const char **);

static void path_ok(path_parser fn, const char *arg, const char *address, const char *local,
                    const char *domain)
{
    struct smtp_path p;
    const char *err = "unset";
    char *copy = xstrdup(arg);
    int r = fn(copy, &p, &err);
    if (r != 0) {
        print_error("refused: [%s]: %s\n", arg, err);
        fail();
    }
    assert_string_equal(p.address, address);
    assert_string_equal(p.localpart, local);
    assert_string_equal(p.domain, domain);
    smtp_path_clear(&p);
    assert_null(p.address);
    free(copy);
}

static void path_err(path_parser fn, const char *arg, const char *error)
{
    struct smtp_path p;
    const char *err = NULL;
    char *copy = xstrdup(arg);
    int r = fn(copy, &p, &err);
    if (r != -1) {
        print_error("accepted: [%s] as [%s]\n", arg, p.address);
        smtp_path_clear(&p);
        fail();
    }
    assert_non_null(err);
    if (strcmp(err, error) != 0) {
        print_error("[%s]: got \"%s\", expected \"%s\"\n", arg, err, error);
        fail();
    }
    assert_null(p.address);
    assert_int_equal(p.nparams, 0);
    smtp_path_clear(&p); /* safe after -1 */
    free(copy);
}

#define mail_ok(arg, a, l, d) path_ok(smtp_parse_mail, arg, a, l, d)
#define rcpt_ok(arg, a, l, d) path_ok(smtp_parse_rcpt, arg, a, l, d)
#define mail_err(arg, e)      path_err(smtp_parse_mail, arg, e)
#define rcpt_err(arg, e)      path_err(smtp_parse_rcpt, arg, e)

static char *repeat(char c, size_t n)
{
    char *s = xmalloc(n + 1);
    memset(s, c, n);
    s[n] = '\0';
    return s;
}

/* ---- commands ---- */

static void cmd_ok(const char *line, enum smtp_verb verb, const char *arg)
{
    struct smtp_command cmd;
    size_t len = strlen(line);
    char *copy = xstrdup(line);
    assert_int_equal(smtp_parse_command(copy, len, &cmd), 0);
    assert_int_equal(cmd.verb, verb);
    assert_string_equal(cmd.arg, arg);
    assert_int_equal(cmd.arg_len, strlen(arg));
    assert_true(cmd.arg >= copy && cmd.arg <= copy + len);
    free(copy);
}

static void cmd_err(const char *line, size_t len)
{
    struct smtp_command cmd;
    char *copy = xmemdup(line, len + 1);
    assert_int_equal(smtp_parse_command(copy, len, &cmd), -1);
    assert_int_equal(cmd.verb, SMTP_CMD_UNKNOWN);
    assert_string_equal(cmd.arg, "");
    assert_int_equal(cmd.arg_len, 0);
    free(copy);
}

static void test_every_verb(void **state)
{
    static const struct {
        const char *name;
        enum smtp_verb verb;
    } v[] = {
        {"HELO", SMTP_CMD_HELO},         {"EHLO", SMTP_CMD_EHLO}, {"MAIL", SMTP_CMD_MAIL},
        {"RCPT", SMTP_CMD_RCPT},         {"DATA", SMTP_CMD_DATA}, {"BDAT", SMTP_CMD_BDAT},
        {"RSET", SMTP_CMD_RSET},         {"NOOP", SMTP_CMD_NOOP}, {"QUIT", SMTP_CMD_QUIT},
        {"VRFY", SMTP_CMD_VRFY},         {"EXPN", SMTP_CMD_EXPN}, {"HELP", SMTP_CMD_HELP},
        {"STARTTLS", SMTP_CMD_STARTTLS}, {"AUTH", SMTP_CMD_AUTH}, {"ETRN", SMTP_CMD_ETRN},
    };
    /* the table above must list every verb of the enum */
    assert_int_equal(sizeof(v) / sizeof(v[0]), SMTP_CMD_ETRN);
    for (size_t i = 0; i < sizeof(v) / sizeof(v[0]); i++) {
        char line[64], lower[16], mixed[16];
        size_t n = strlen(v[i].name);
        for (size_t k = 0; k <= n; k++) {
            char c = v[i].name[k];
            lower[k] = (char)(c >= 'A' && c <= 'Z' ? c - 'A' + 'a' : c);
            mixed[k] = (k % 2) ? lower[k] : c;
        }
        cmd_ok(v[i].name, v[i].verb, "");
        cmd_ok(lower, v[i].verb, "");
        cmd_ok(mixed, v[i].verb, "");
        snprintf(line, sizeof(line), "%s arg ument", v[i].name);
        cmd_ok(line, v[i].verb, "arg ument");
        snprintf(line, sizeof(line), "%s   x  ", lower);
        cmd_ok(line, v[i].verb, "x  ");
        snprintf(line, sizeof(line), "%s ", v[i].name);
        cmd_ok(line, v[i].verb, "");
        /* a verb with one more letter is not the verb */
        snprintf(line, sizeof(line), "%sX", v[i].name);
        cmd_err(line, strlen(line));
        snprintf(line, sizeof(line), "%sX arg", v[i].name);
        cmd_err(line, strlen(line));
    }
}

static void test_command_errors(void **state)
{
    cmd_err("", 0);
    cmd_err(" ", 1);
    cmd_err(" MAIL FROM:<>", 13);
    cmd_err("FOO bar", 7);
    cmd_err("MAIL\tFROM:<>", 12);
    cmd_err("MAI", 3);
    cmd_err("STARTTLSX", 9);
    cmd_err("DATA\0x", 6); /* an embedded NUL (the caller refuses those, but still) */
    cmd_err("\x80\x81", 2);
    /* the argument keeps everything after the separating spaces */
    cmd_ok("MAIL  FROM:<a@b> SIZE=1", SMTP_CMD_MAIL, "FROM:<a@b> SIZE=1");
    cmd_ok("rcpt to:<a@b>", SMTP_CMD_RCPT, "to:<a@b>");
    /* len, not strlen, bounds the line */
    struct smtp_command cmd;
    char line[] = "QUIT";
    assert_int_equal(smtp_parse_command(line, 2, &cmd), -1);
}

/* ---- MAIL ---- */

static void test_mail_valid(void **state)
{
    mail_ok("FROM:<user@example.com>", "user@example.com", "user", "example.com");
    mail_ok("from:<User@Example.COM>", "User@example.com", "User", "example.com");
    mail_ok("From:<a@b>", "a@b", "a", "b");
    mail_ok("FROM: <a@b.example>", "a@b.example", "a", "b.example");
    mail_ok("FROM:   <a@b.example>", "a@b.example", "a", "b.example");
    mail_ok("FROM:<a@b.example>   ", "a@b.example", "a", "b.example");
    mail_ok("FROM:<>", "", "", "");
    mail_ok("FROM: <>  ", "", "", "");
    mail_ok("FROM:<first.last+tag@sub.example.co.uk>", "first.last+tag@sub.example.co.uk",
            "first.last+tag", "sub.example.co.uk");
    mail_ok("FROM:<!#$%&'*+-/=?^_`{|}~@x.org>", "!#$%&'*+-/=?^_`{|}~@x.org", "!#$%&'*+-/=?^_`{|}~",
            "x.org");
    mail_ok("FROM:<a@123.example>", "a@123.example", "a", "123.example");
    mail_ok("FROM:<a@x-y.example>", "a@x-y.example", "a", "x-y.example");
    mail_ok("FROM:<a@localhost>", "a@localhost", "a", "localhost");
}

static void test_source_route(void **state)
{
    mail_ok("FROM:<@relay.example:user@example.com>", "user@example.com", "user", "example.com");
    mail_ok("FROM:<@r1.example,@r2.example:user@example.com>", "user@example.com", "user",
            "example.com");
    rcpt_ok("TO:<@r1.example,@R2.EXAMPLE:U@EXAMPLE.com>", "U@example.com", "U", "example.com");
    mail_err("FROM:<@relay.example>", E_MAIL_ADDR);
    mail_err("FROM:<@relay.example:>", E_MAIL_ADDR);
    mail_err("FROM:<@:a@b>", E_MAIL_ADDR);
    mail_err("FROM:<@a,b:c@d>", E_MAIL_ADDR);
    mail_err("FROM:<@a,:c@d>", E_MAIL_ADDR);
    mail_err("FROM:<@a;@b:c@d>", E_MAIL_ADDR);
    mail_err("FROM:<@[192.0.2.1]:c@d>", E_MAIL_ADDR); /* At-domain is a Domain only */
    mail_err("FROM:<a@b,@c:d@e>", E_MAIL_ADDR);
}

static void test_quoted_localpart(void **state)
{
    mail_ok("FROM:<\"john doe\"@example.com>", "\"john doe\"@example.com", "john doe",
            "example.com");
    /* quotes that are not needed are dropped from address */
    mail_ok("FROM:<\"john.doe\"@example.com>", "john.doe@example.com", "john.doe", "example.com");
    mail_ok("FROM:<\"\\j\\o\\h\\n\"@example.com>", "john@example.com", "john", "example.com");
    /* quotes and backslashes are escaped again in address */
    mail_ok("FROM:<\"a\\\"b\\\\c\"@x.org>", "\"a\\\"b\\\\c\"@x.org", "a\"b\\c", "x.org");
    mail_ok("FROM:<\"a..b\"@x.org>", "\"a..b\"@x.org", "a..b", "x.org");
    mail_ok("FROM:<\".a\"@x.org>", "\".a\"@x.org", ".a", "x.org");
    mail_ok("FROM:<\"a@b\"@x.org>", "\"a@b\"@x.org", "a@b", "x.org");
    mail_ok("FROM:<\"<a>\"@x.org>", "\"<a>\"@x.org", "<a>", "x.org");
    mail_ok("FROM:<\"Case Kept\"@X.ORG>", "\"Case Kept\"@x.org", "Case Kept", "x.org");
    mail_ok("FROM:<\" \"@x.org>", "\" \"@x.org", " ", "x.org");

    mail_err("FROM:<\"\"@x.org>", E_MAIL_ADDR);       /* empty local part */
    mail_err("FROM:<\"abc@x.org>", E_MAIL_ADDR);      /* unbalanced quote */
    mail_err("FROM:<\"abc\\\"@x.org>", E_MAIL_ADDR);  /* the quote is escaped */
    mail_err("FROM:<\"a\tb\"@x.org>", E_MAIL_ADDR);   /* HTAB is not qtextSMTP */
    mail_err("FROM:<\"a\\\tb\"@x.org>", E_MAIL_ADDR); /* nor a quoted-pairSMTP */
    mail_err("FROM:<\"a\\\x01\"@x.org>", E_MAIL_ADDR);
    mail_err("FROM:<\"a\x7f\"@x.org>", E_MAIL_ADDR);
    mail_err("FROM:<\"a\"b@x.org>", E_MAIL_ADDR); /* quoted then atom */
    mail_err("FROM:<a\"b\"@x.org>", E_MAIL_ADDR);
    mail_err("FROM:<\"a\".\"b\"@x.org>", E_MAIL_ADDR);
    mail_err("FROM:<\"a\\", E_MAIL_ADDR); /* backslash at the end */
}

static void test_address_literals(void **state)
{
    mail_ok("FROM:<a@[192.0.2.1]>", "a@[192.0.2.1]", "a", "[192.0.2.1]");
    mail_ok("FROM:<a@[0.0.0.0]>", "a@[0.0.0.0]", "a", "[0.0.0.0]");
    mail_ok("FROM:<a@[255.255.255.255]>", "a@[255.255.255.255]", "a", "[255.255.255.255]");
    mail_ok("FROM:<a@[IPv6:2001:DB8::1]>", "a@[ipv6:2001:db8::1]", "a", "[ipv6:2001:db8::1]");
    mail_ok("FROM:<a@[ipv6:::1]>", "a@[ipv6:::1]", "a", "[ipv6:::1]");
    mail_ok("FROM:<a@[IPv6:::]>", "a@[ipv6:::]", "a", "[ipv6:::]");
    mail_ok("FROM:<a@[IPv6:1:2:3:4:5:6:7:8]>", "a@[ipv6:1:2:3:4:5:6:7:8]", "a",
            "[ipv6:1:2:3:4:5:6:7:8]");
    mail_ok("FROM:<a@[IPv6:1::]>", "a@[ipv6:1::]", "a", "[ipv6:1::]");
    mail_ok("FROM:<a@[IPv6:::ffff:192.0.2.1]>", "a@[ipv6:::ffff:192.0.2.1]", "a",
            "[ipv6:::ffff:192.0.2.1]");
    mail_ok("FROM:<a@[IPv6:1:2:3:4:5:6:192.0.2.1]>", "a@[ipv6:1:2:3:4:5:6:192.0.2.1]", "a",
            "[ipv6:1:2:3:4:5:6:192.0.2.1]");
    rcpt_ok("TO:<postmaster@[192.0.2.1]>", "postmaster@[192.0.2.1]", "postmaster", "[192.0.2.1]");

    static const char *const bad[] = {
        "FROM:<a@[1.2.3]>",
        "FROM:<a@[1.2.3.4.5]>",
        "FROM:<a@[256.1.1.1]>",
        "FROM:<a@[1.2.3.1000]>",
        "FROM:<a@[01.2.3.4]>",
        "FROM:<a@[1..2.3]>",
        "FROM:<a@[.1.2.3.4]>",
        "FROM:<a@[1.2.3.4.]>",
        "FROM:<a@[]>",
        "FROM:<a@[ 1.2.3.4]>",
        "FROM:<a@[1.2.3.4>",
        "FROM:<a@1.2.3.4]>",
        "FROM:<a@[[1.2.3.4]]>",
        "FROM:<a@[IPv6:]>",
        "FROM:<a@[IPv6:1:2:3]>",
        "FROM:<a@[IPv6:1:2:3:4:5:6:7:8:9]>",
        "FROM:<a@[IPv6:1::2::3]>",
        "FROM:<a@[IPv6::::1]>",
        "FROM:<a@[IPv6::1]>",
        "FROM:<a@[IPv6:1:]>",
        "FROM:<a@[IPv6:12345::1]>",
        "FROM:<a@[IPv6:g::1]>",
        "FROM:<a@[IPv6:1:2:3:4:5:6:7:192.0.2.1]>",
        "FROM:<a@[IPv6:::1.2.3]>",
        "FROM:<a@[IPv6:::1.2.3.4:5]>",
        "FROM:<a@[IPv6:2001:db8::1%eth0]>",
        "FROM:<a@[IPv4:1.2.3.4]>",
        "FROM:<a@[x-tag:anything]>",
        "FROM:<a@[2001:db8::1]>",
        "FROM:<a@[1.2.3.4\\]>",
        "FROM:<a@[1.2.3.4]x>",
        "FROM:<a@[1.2.3.4].example>",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        mail_err(bad[i], E_MAIL_ADDR);
    char *lit = repeat('1', 80);
    char arg[128];
    snprintf(arg, sizeof(arg), "FROM:<a@[%s]>", lit);
    mail_err(arg, E_MAIL_ADDR);
    free(lit);
}

static void test_mail_invalid(void **state)
{
    /* the command's shape */
    mail_err("", E_MAIL_SYNTAX);
    mail_err("FROM", E_MAIL_SYNTAX);
    mail_err("FROM:", E_MAIL_SYNTAX); /* missing path */
    mail_err("FROM:   ", E_MAIL_SYNTAX);
    mail_err("FROM :<a@b>", E_MAIL_SYNTAX);
    mail_err(" FROM:<a@b>", E_MAIL_SYNTAX);
    mail_err("FRM:<a@b>", E_MAIL_SYNTAX);
    mail_err("TO:<a@b>", E_MAIL_SYNTAX);
    mail_err("FROM:a@b", E_MAIL_SYNTAX); /* no angle brackets */
    mail_err("FROM:\ta@b", E_MAIL_SYNTAX);
    mail_err("FROM:\t<a@b>", E_MAIL_SYNTAX);
    mail_err("FROM:<a@b>>", E_MAIL_SYNTAX);
    mail_err("FROM:<a@b>x", E_MAIL_SYNTAX);
    mail_err("FROM:<a@b>\tSIZE=1", E_MAIL_SYNTAX);
    mail_err("FROM:<>x", E_MAIL_SYNTAX);
    mail_err("FROM:<><a@b>", E_MAIL_SYNTAX);

    /* the address */
    static const char *const bad[] = {
        "FROM:<",         "FROM:<a@b",      "FROM:<<a@b>>",  "FROM:<a>",       "FROM:<Postmaster>",
        "FROM:<@x>",      "FROM:<a@>",      "FROM:<@>",      "FROM:< >",       "FROM:< a@b>",
        "FROM:<a@b >",    "FROM:<a @b>",    "FROM:<a@ b>",   "FROM:<a@.b>",    "FROM:<a@b.>",
        "FROM:<a@b..c>",  "FROM:<a@-b.c>",  "FROM:<a@b-.c>", "FROM:<a@b_c.d>", "FROM:<.a@b>",
        "FROM:<a.@b>",    "FROM:<a..b@c>",  "FROM:<.@b>",    "FROM:<a b@c>",   "FROM:<a\x01@b>",
        "FROM:<a@b\x7f>", "FROM:<a\x7f@b>", "FROM:<a@b\r>",  "FROM:<a@b\n>",   "FROM:<a@b@c>",
        "FROM:<a(b)@c>",  "FROM:<a,b@c>",   "FROM:<a;b@c>",  "FROM:<a:b@c>",   "FROM:<a\\b@c>",
        "FROM:<a[b@c>",   "FROM:<a@b:25>",  "FROM:<a@b/c>",  "FROM:<a@b%c>",   "FROM:<a@\"b\">",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        mail_err(bad[i], E_MAIL_ADDR);

    /* 8-bit: we do not offer SMTPUTF8 */
    mail_err("FROM:<\xc3\xbc@x.org>", E_8BIT);
    mail_err("FROM:<a\xc3\xbc@x.org>", E_8BIT);
    mail_err("FROM:<a@ex\xc3\xa4mple.org>", E_8BIT);
    mail_err("FROM:<a@\xc3\xa4.org>", E_8BIT);
    mail_err("FROM:<\"\xc3\xbc\"@x.org>", E_8BIT);
    mail_err("FROM:<\"a\\\xc3\"@x.org>", E_8BIT);
    mail_err("FROM:<a@[1.2.3.4\xff]>", E_8BIT);
    mail_err("FROM:<@r\xc3\xa4.example:a@b>", E_8BIT);
    rcpt_err("TO:<\xc3\xbc@x.org>", E_8BIT);
}

static void test_limits(void **state)
{
    char arg[1024];
    char *l64 = repeat('l', 64), *l65 = repeat('l', 65);
    char *q62 = repeat('q', 62), *q63 = repeat('q', 63);
    char *lab63 = repeat('d', 63), *lab64 = repeat('d', 64);
    char addr[512];

    /* local part: 64 octets as sent, quotes included */
    snprintf(arg, sizeof(arg), "FROM:<%s@x.org>", l64);
    snprintf(addr, sizeof(addr), "%s@x.org", l64);
    mail_ok(arg, addr, l64, "x.org");
    snprintf(arg, sizeof(arg), "FROM:<%s@x.org>", l65);
    mail_err(arg, E_MAIL_LONG);
    snprintf(arg, sizeof(arg), "TO:<%s@x.org>", l65);
    rcpt_err(arg, E_RCPT_LONG);
    snprintf(arg, sizeof(arg), "FROM:<\"%s\"@x.org>", q62);
    snprintf(addr, sizeof(addr), "%s@x.org", q62);
    mail_ok(arg, addr, q62, "x.org");
    snprintf(arg, sizeof(arg), "FROM:<\"%s\"@x.org>", q63);
    mail_err(arg, E_MAIL_LONG);

    /* a label of 63 is fine, 64 is not */
    snprintf(arg, sizeof(arg), "FROM:<a@%s.org>", lab63);
    snprintf(addr, sizeof(addr), "a@%s.org", lab63);
    mail_ok(arg, addr, "a", addr + 2);
    snprintf(arg, sizeof(arg), "FROM:<a@%s.org>", lab64);
    mail_err(arg, E_MAIL_ADDR);

    /* domain: with the shortest local part "a@" the 256-octet address limit allows a
     * 254-octet domain; 255 (the domain limit) and 256 are refused */
    char dom[300];
    snprintf(dom, sizeof(dom), "%s.%s.%s.%.62s", lab63, lab63, lab63, lab63);
    assert_int_equal(strlen(dom), 254);
    snprintf(arg, sizeof(arg), "FROM:<a@%s>", dom);
    snprintf(addr, sizeof(addr), "a@%s", dom);
    mail_ok(arg, addr, "a", dom);
    snprintf(arg, sizeof(arg), "FROM:<a@%s.%s.%s.%s>", lab63, lab63, lab63, lab63);
    mail_err(arg, E_MAIL_LONG);
    snprintf(arg, sizeof(arg), "FROM:<a@%s.%s.%s.%sd>", lab63, lab63, lab63, lab63);
    mail_err(arg, E_MAIL_LONG);
    snprintf(arg, sizeof(arg), "FROM:<a@%s.%s.%s.%s.d>", lab63, lab63, lab63, lab63);
    mail_err(arg, E_MAIL_LONG);

    /* address: 256 octets is fine (64 + 1 + 191), 257 is not */
    snprintf(dom, sizeof(dom), "%s.%s.%s", lab63, lab63, lab63);
    assert_int_equal(strlen(dom), 191);
    snprintf(arg, sizeof(arg), "FROM:<%s@%s>", l64, dom);
    snprintf(addr, sizeof(addr), "%s@%s", l64, dom);
    assert_int_equal(strlen(addr), 256);
    mail_ok(arg, addr, l64, dom);
    snprintf(arg, sizeof(arg), "TO:<%s@%s.%s.%.61s.d>", l64, lab63, lab63, lab63);
    snprintf(addr, sizeof(addr), "%s@%s.%s.%.61s.d", l64, lab63, lab63, lab63);
    assert_int_equal(strlen(addr), 256);
    rcpt_ok(arg, addr, l64, addr + 65);
    snprintf(arg, sizeof(arg), "TO:<%s@%s.%s.%.62s.d>", l64, lab63, lab63, lab63);
    rcpt_err(arg, E_RCPT_LONG);
    /* quoted and re-escaped: "\"\"..." stays within its as-sent length */
    snprintf(arg, sizeof(arg), "FROM:<\"%s\"@%s>", "\\\"\\\"", dom);
    snprintf(addr, sizeof(addr), "\"\\\"\\\"\"@%s", dom);
    mail_ok(arg, addr, "\"\"", dom);
    free(l64);
    free(l65);
    free(q62);
    free(q63);
    free(lab63);
    free(lab64);
}

/* ---- parameters ---- */

static void test_params(void **state)
{
    struct smtp_path p;
    const char *err;
    bool present;

    char *arg = xstrdup("FROM:<a@b>  size=1000   Body=8BITMIME SMTPUTF8 x-Vendor=a+2Bb ");
    assert_int_equal(smtp_parse_mail(arg, &p, &err), 0);
    assert_int_equal(p.nparams, 4);
    assert_string_equal(p.params[0].keyword, "SIZE");
    assert_string_equal(p.params[0].value, "1000");
    assert_string_equal(p.params[1].keyword, "BODY");
    assert_string_equal(p.params[1].value, "8BITMIME");
    assert_string_equal(p.params[2].keyword, "SMTPUTF8");
    assert_null(p.params[2].value);
    assert_string_equal(p.params[3].keyword, "X-VENDOR");
    assert_string_equal(p.params[3].value, "a+2Bb"); /* value case kept */

    assert_string_equal(smtp_path_param(&p, "size", &present), "1000");
    assert_true(present);
    assert_string_equal(smtp_path_param(&p, "SIZE", NULL), "1000");
    assert_string_equal(smtp_path_param(&p, "SmtpUtf8", &present), "");
    assert_true(present);
    assert_null(smtp_path_param(&p, "RET", &present));
    assert_false(present);
    assert_null(smtp_path_param(&p, "SIZ", NULL));
    assert_null(smtp_path_param(&p, "SIZEX", NULL));
    smtp_path_clear(&p);
    free(arg);

    /* parameters after <> and on RCPT */
    arg = xstrdup("FROM:<> RET=HDRS ENVID=QQ314159");
    assert_int_equal(smtp_parse_mail(arg, &p, &err), 0);
    assert_string_equal(p.address, "");
    assert_string_equal(smtp_path_param(&p, "ENVID", NULL), "QQ314159");
    smtp_path_clear(&p);
    free(arg);
    arg = xstrdup("TO:<a@b> NOTIFY=SUCCESS,FAILURE ORCPT=rfc822;a+40b");
    assert_int_equal(smtp_parse_rcpt(arg, &p, &err), 0);
    assert_string_equal(smtp_path_param(&p, "NOTIFY", NULL), "SUCCESS,FAILURE");
    assert_string_equal(smtp_path_param(&p, "ORCPT", NULL), "rfc822;a+40b");
    smtp_path_clear(&p);
    free(arg);

    /* SMTP_MAX_PARAMS are fine, one more is not */
    char line[1024];
    size_t n = (size_t)snprintf(line, sizeof(line), "FROM:<a@b>");
    for (int i = 0; i < SMTP_MAX_PARAMS; i++)
        n += (size_t)snprintf(line + n, sizeof(line) - n, " P%d=%d", i, i);
    arg = xstrdup(line);
    assert_int_equal(smtp_parse_mail(arg, &p, &err), 0);
    assert_int_equal(p.nparams, SMTP_MAX_PARAMS);
    assert_string_equal(smtp_path_param(&p, "p15", NULL), "15");
    smtp_path_clear(&p);
    free(arg);
    snprintf(line + n, sizeof(line) - n, " EXTRA");
    mail_err(line, E_MANY);
    snprintf(line + n, sizeof(line) - n, " EXTRA=1");
    mail_err(line, E_MANY);

    static const char *const bad[] = {
        "FROM:<a@b> =x",         "FROM:<a@b> SIZE=",     "FROM:<a@b> SIZE==1",
        "FROM:<a@b> SIZE=1=2",   "FROM:<a@b> -X",        "FROM:<a@b> SI_ZE=1",
        "FROM:<a@b> SIZE=1\t",   "FROM:<a@b> X=\x01",    "FROM:<a@b> X=\x7f",
        "FROM:<a@b> X=\xc3\xbc", "FROM:<a@b> X\xc3\xbc", "FROM:<a@b> X=a\r",
        "FROM:<a@b> SIZE =1",    "FROM:<a@b> <c@d>",     "FROM:<a@b> \"X\"",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        mail_err(bad[i], E_PARAM);
    rcpt_err("TO:<a@b> NOTIFY=", E_PARAM);

    mail_err("FROM:<a@b> SIZE=1 size=2", E_DUP);
    mail_err("FROM:<a@b> X X", E_DUP);
    rcpt_err("TO:<a@b> NOTIFY=NEVER NOTIFY=NEVER", E_DUP);

    /* keyword 64 is fine, 65 is not; value 512 is fine, 513 is not */
    char *k64 = repeat('K', 64), *k65 = repeat('K', 65);
    char *v512 = repeat('v', 512), *v513 = repeat('v', 513);
    snprintf(line, sizeof(line), "FROM:<a@b> %s=1", k64);
    arg = xstrdup(line);
    assert_int_equal(smtp_parse_mail(arg, &p, &err), 0);
    smtp_path_clear(&p);
    free(arg);
    snprintf(line, sizeof(line), "FROM:<a@b> %s=1", k65);
    mail_err(line, E_PARAM);
    snprintf(line, sizeof(line), "FROM:<a@b> X=%s", v512);
    arg = xstrdup(line);
    assert_int_equal(smtp_parse_mail(arg, &p, &err), 0);
    assert_int_equal(strlen(smtp_path_param(&p, "x", NULL)), 512);
    smtp_path_clear(&p);
    free(arg);
    snprintf(line, sizeof(line), "FROM:<a@b> X=%s", v513);
    mail_err(line, E_PARAM);
    free(k64);
    free(k65);
    free(v512);
    free(v513);
}

/* ---- RCPT ---- */

static void test_rcpt(void **state)
{
    rcpt_ok("TO:<user@example.com>", "user@example.com", "user", "example.com");
    rcpt_ok("to: <User@EXAMPLE.com>  ", "User@example.com", "User", "example.com");
    rcpt_ok("TO:<Postmaster>", "Postmaster", "Postmaster", "");
    rcpt_ok("TO:<postmaster>", "postmaster", "postmaster", "");
    rcpt_ok("To:<POSTMASTER> NOTIFY=NEVER", "POSTMASTER", "POSTMASTER", "");
    rcpt_ok("TO:<Postmaster@Example.COM>", "Postmaster@example.com", "Postmaster", "example.com");
    rcpt_ok("TO:<\"x y\"@example.com>", "\"x y\"@example.com", "x y", "example.com");

    rcpt_err("", E_RCPT_SYNTAX);
    rcpt_err("TO:", E_RCPT_SYNTAX);
    rcpt_err("TO: ", E_RCPT_SYNTAX);
    rcpt_err("TO:a@b", E_RCPT_SYNTAX);
    rcpt_err("FROM:<a@b>", E_RCPT_SYNTAX);
    rcpt_err("T:<a@b>", E_RCPT_SYNTAX);
    rcpt_err("TO:<a@b>x", E_RCPT_SYNTAX);
    rcpt_err("TO:<>", E_RCPT_ADDR); /* no null forward-path */
    rcpt_err("TO:<postmaster", E_RCPT_ADDR);
    rcpt_err("TO:<postmasterx>", E_RCPT_ADDR);
    rcpt_err("TO:<postmaste>", E_RCPT_ADDR);
    rcpt_err("TO:<\"postmaster\">", E_RCPT_ADDR);
    rcpt_err("TO:<@a:postmaster>", E_RCPT_ADDR);
    rcpt_err("TO:<postmaster >", E_RCPT_ADDR);
    rcpt_err("TO:<abuse>", E_RCPT_ADDR);
    rcpt_err("TO:<a@b", E_RCPT_ADDR);
    rcpt_err("TO:<a..b@c>", E_RCPT_ADDR);
    rcpt_err("TO:<a@b> X=", E_PARAM);
}

/* ---- BDAT ---- */

static void bdat_ok(const char *arg, unsigned long long size, bool last)
{
    unsigned long long s = 99;
    bool l = !last;
    char *copy = xstrdup(arg);
    assert_int_equal(smtp_parse_bdat(copy, &s, &l), 0);
    assert_int_equal(s, size);
    assert_int_equal(l, last);
    free(copy);
}

static void bdat_err(const char *arg)
{
    unsigned long long s;
    bool l;
    char *copy = xstrdup(arg);
    if (smtp_parse_bdat(copy, &s, &l) != -1) {
        print_error("accepted BDAT [%s]\n", arg);
        fail();
    }
    free(copy);
}

static void test_bdat(void **state)
{
    bdat_ok("100", 100, false);
    bdat_ok("0", 0, false);
    bdat_ok("100 LAST", 100, true);
    bdat_ok("0 last", 0, true);
    bdat_ok("7 LaSt", 7, true);
    bdat_ok("100  LAST  ", 100, true);
    bdat_ok("100 ", 100, false);
    bdat_ok("000012", 12, false);
    bdat_ok("9007199254740992", 9007199254740992ULL, false); /* 2^53 */
    bdat_ok("9007199254740992 LAST", 9007199254740992ULL, true);

    bdat_err("");
    bdat_err(" ");
    bdat_err(" 10");
    bdat_err("LAST");
    bdat_err("9007199254740993");
    bdat_err("99999999999999999999999999999999999999");
    bdat_err("18446744073709551616");
    bdat_err("-1");
    bdat_err("+1");
    bdat_err("0x10");
    bdat_err("1e3");
    bdat_err("10LAST");
    bdat_err("10 LASTX");
    bdat_err("10 LAS");
    bdat_err("10 FIRST");
    bdat_err("10 LAST LAST");
    bdat_err("10 LAST x");
    bdat_err("10\tLAST");
    bdat_err("10 20");
}

/* ---- HELO/EHLO ---- */

static void test_helo(void **state)
{
    static const char *const good[] = {
        "mail.example.com",
        "localhost",
        "MAIL.EXAMPLE.COM",
        "[192.0.2.1]",
        "[IPv6:::1]",
        "[ipv6:2001:db8::25]",
        "my_pc",
        "host.example.",
        "mail.example.com  ",
        "192.0.2.1",
        "a-b.c-d",
        "x",
    };
    static const char *const bad[] = {
        "",           " ",       "a..b",          ".a",
        "..",         ".",       "[1.2.3]",       "[192.0.2.1",
        "192.0.2.1]", "foo bar", "<foo>",         "\xc3\xbc.de",
        "a@b",        "[]",      "[x]",           "a\tb",
        "a\x01",      "a/b",     "[192.0.2.1] x",
    };
    for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
        char *c = xstrdup(good[i]);
        if (!smtp_helo_valid(c)) {
            print_error("refused HELO [%s]\n", good[i]);
            fail();
        }
        free(c);
    }
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        char *c = xstrdup(bad[i]);
        if (smtp_helo_valid(c)) {
            print_error("accepted HELO [%s]\n", bad[i]);
            fail();
        }
        free(c);
    }
    char *lab = repeat('a', 63), *lab64 = repeat('a', 64);
    char name[400];
    snprintf(name, sizeof(name), "%s.%s.%s.%s", lab, lab, lab, lab);
    assert_true(smtp_helo_valid(name));
    snprintf(name, sizeof(name), "%s.%s.%s.%sa", lab, lab, lab, lab);
    assert_false(smtp_helo_valid(name));
    assert_false(smtp_helo_valid(lab64));
    free(lab);
    free(lab64);
}

/* ---- byte at a time: every prefix of every valid input ---- */

static const char *const valid_lines[] = {
    "MAIL FROM:<user@example.com> SIZE=1000 BODY=8BITMIME",
    "MAIL FROM:<>",
    "MAIL FROM: <\"john \\\"q\\\" doe\"@[IPv6:2001:db8::1]> RET=HDRS",
    "MAIL FROM:<@r1.example,@r2.example:u@[192.0.2.1]>",
    "RCPT TO:<Postmaster>",
    "RCPT TO:<a.b+c@sub.example.org> NOTIFY=SUCCESS,FAILURE ORCPT=rfc822;a+40b",
    "BDAT 1000 LAST",
    "EHLO [IPv6:::ffff:192.0.2.1]",
    "HELO mail.example.com",
    "STARTTLS",
};

static void parse_all(const char *line, size_t len)
{
    char *copy = xmemdup(line, len + 1);
    copy[len] = '\0';
    struct smtp_command cmd;
    struct smtp_path p;
    const char *err;
    unsigned long long size;
    bool last;

    if (smtp_parse_command(copy, len, &cmd) == 0) {
        assert_true(cmd.arg + cmd.arg_len == copy + len);
        if (smtp_parse_mail(cmd.arg, &p, &err) == 0)
            smtp_path_clear(&p);
        else
            assert_non_null(err);
        if (smtp_parse_rcpt(cmd.arg, &p, &err) == 0)
            smtp_path_clear(&p);
        else
            assert_non_null(err);
        (void)smtp_parse_bdat(cmd.arg, &size, &last);
        (void)smtp_helo_valid(cmd.arg);
    }
    free(copy);
}

static void test_byte_at_a_time(void **state)
{
    for (size_t i = 0; i < sizeof(valid_lines) / sizeof(valid_lines[0]); i++) {
        size_t len = strlen(valid_lines[i]);
        for (size_t k = 0; k <= len; k++)
            parse_all(valid_lines[i], k);
    }
    /* a prefix of a path is never a valid path */
    const char *arg = "FROM:<\"q\"@[IPv6:2001:db8::1]>";
    size_t len = strlen(arg);
    for (size_t k = 0; k < len; k++) {
        char *copy = xmemdup(arg, k + 1);
        copy[k] = '\0';
        struct smtp_path p;
        const char *err;
        assert_int_equal(smtp_parse_mail(copy, &p, &err), -1);
        free(copy);
    }
}

static void test_clear_zeroed(void **state)
{
    struct smtp_path p;
    memset(&p, 0, sizeof(p));
    smtp_path_clear(&p);
    smtp_path_clear(&p);
    assert_null(p.address);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_every_verb),
        cmocka_unit_test(test_command_errors),
        cmocka_unit_test(test_mail_valid),
        cmocka_unit_test(test_source_route),
        cmocka_unit_test(test_quoted_localpart),
        cmocka_unit_test(test_address_literals),
        cmocka_unit_test(test_mail_invalid),
        cmocka_unit_test(test_limits),
        cmocka_unit_test(test_params),
        cmocka_unit_test(test_rcpt),
        cmocka_unit_test(test_bdat),
        cmocka_unit_test(test_helo),
        cmocka_unit_test(test_byte_at_a_time),
        cmocka_unit_test(test_clear_zeroed),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
