/* test_bounce.c - unit tests for bounce_build() (bounce.c): the DSN's text
 *
 * BOUNCE_FAILED and BOUNCE_DELAYED for a message with two recipients (one refused by a
 * remote server, one given up by us): the headers (From MAILER-DAEMON@<hostname>, To the
 * sender, Subject, a multipart/report whose boundary holds the DSN id), the three parts
 * in order, the per-recipient fields of RFC 3464 (Final-Recipient, Action, Status,
 * Remote-MTA, Diagnostic-Code: smtp;), Will-Retry-Until for a delay only, and the
 * original header section copied up to the blank line and never the body.
 *
 * SECURITY: the body of the original is not returned; only its header section is.
 */
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "bounce.h"
#include "config.h"
#include "log.h"
#include "spool.h"
#include "testutil.h"
#include "xalloc.h"

#define HOST  "mx1.example.com"
#define DSNID "1795305600.M1P2Q3.mx1.example.com"
#define BOUND DSNID "/" HOST

static const char original[] = "From: <a@example.com>\r\n"
                               "To: <b@example.org>\r\n"
                               "Subject: Quarterly report\r\n"
                               "\r\n"
                               "SECRET BODY LINE\r\n";

static const struct bounce_rcpt rcpts[] = {
    {.address = "b@example.org",
     .status = "5.1.1",
     .remote_mta = "mx.example.org",
     .diagnostic = "550 5.1.1 <b@example.org>: no such user"},
    {.address = "c@example.net",
     .status = "4.4.1",
     .reason = "no mail server of example.net could be reached"},
};

/* A file holding "XX" + text; the message starts at offset 2. */
static int message_fd(const char *text)
{
    char *dir = make_tmpdir("bounce");
    assert_non_null(dir);
    char *path = xasprintf("%s/m", dir);
    write_plain(path, "XX", 2);
    int fd = open(path, O_RDWR | O_APPEND);
    assert_true(fd >= 0);
    assert_int_equal(fs_write_all(fd, text, strlen(text)), 0);
    rm_rf(dir);
    free(path);
    free(dir);
    return fd;
}

static char *build(enum bounce_kind kind, const char *text, size_t nrcpts)
{
    struct alkaid_config cfg;
    memset(&cfg, 0, sizeof(cfg));
    cfg.hostname = HOST;
    cfg.queue.give_up = 2 * 86400;
    struct queue_envelope env;
    memset(&env, 0, sizeof(env));
    env.id = "1795305000.M9P9Q9.mx1.example.com";
    env.created = 1795305000LL;
    env.sender = "a@example.com";
    char *r[] = {"b@example.org", "c@example.net"};
    env.rcpts = r;
    env.nrcpts = 2;
    env.size = strlen(text);
    int fd = message_fd(text);
    struct sbuf out = SBUF_INIT(SBUF_NO_MAX);
    bounce_build(&cfg, kind, &env, fd, 2, rcpts, nrcpts, DSNID, &out);
    close(fd);
    return sbuf_steal(&out);
}

static size_t count(const char *hay, const char *needle)
{
    size_t n = 0;
    for (const char *p = hay; (p = strstr(p, needle)) != NULL; p += strlen(needle))
        n++;
    return n;
}

/* The text of the part that starts after the n-th (0-based) boundary line. */
static char *part(const char *dsn, int n)
{
    const char *p = dsn;
    for (int i = 0; i <= n; i++) {
        p = strstr(p, "\r\n--" BOUND "\r\n");
        assert_non_null(p);
        p += strlen("\r\n--" BOUND "\r\n");
    }
    const char *end = strstr(p, "\r\n--" BOUND);
    assert_non_null(end);
    return xstrndup(p, (size_t)(end - p));
}

static void check_common(const char *dsn)
{
    /* the header section */
    const char *hend = strstr(dsn, "\r\n\r\n");
    assert_non_null(hend);
    char *hdr = xstrndup(dsn, (size_t)(hend - dsn) + 2);
    assert_true(strncmp(hdr, "Date: ", 6) == 0);
    assert_non_null(strstr(hdr, "\r\nFrom: Mail Delivery System <MAILER-DAEMON@" HOST ">\r\n"));
    assert_non_null(strstr(hdr, "\r\nTo: <a@example.com>\r\n"));
    assert_non_null(strstr(hdr, "\r\nMessage-ID: <" DSNID "@" HOST ">\r\n"));
    assert_non_null(strstr(hdr, "\r\nAuto-Submitted: auto-replied\r\n"));
    assert_non_null(strstr(hdr, "\r\nMIME-Version: 1.0\r\n"));
    assert_non_null(strstr(hdr, "\r\nContent-Type: multipart/report; "
                                "report-type=delivery-status;\r\n\tboundary=\"" BOUND "\"\r\n"));
    free(hdr);

    /* three parts and the closing boundary, at the very end */
    assert_int_equal(count(dsn, "\r\n--" BOUND "\r\n"), 3);
    const char *close = "\r\n--" BOUND "--\r\n";
    assert_int_equal(count(dsn, close), 1);
    assert_string_equal(dsn + strlen(dsn) - strlen(close), close);

    char *p1 = part(dsn, 0), *p2 = part(dsn, 1), *p3 = part(dsn, 2);
    assert_non_null(strstr(p1, "Content-Type: text/plain; charset=utf-8\r\n\r\n"));
    assert_non_null(strstr(p1, "This is the mail system at host " HOST "."));
    assert_non_null(strstr(p1, "Subject of your message: Quarterly report\r\n"));
    assert_non_null(strstr(
        p1, "<b@example.org>: host mx.example.org said: 550 5.1.1 <b@example.org>: no such user"));
    assert_non_null(
        strstr(p1, "<c@example.net>: no mail server of example.net could be reached\r\n"));

    assert_true(strncmp(p2,
                        "Content-Description: Delivery report\r\n"
                        "Content-Type: message/delivery-status\r\n\r\n"
                        "Reporting-MTA: dns; " HOST "\r\n",
                        strlen("Content-Description: Delivery report\r\n"
                               "Content-Type: message/delivery-status\r\n\r\n"
                               "Reporting-MTA: dns; " HOST "\r\n")) == 0);
    char arrived[64];
    log_format_date(arrived, sizeof(arrived), 1795305000LL);
    char *want = xasprintf("Arrival-Date: %s\r\n", arrived);
    assert_non_null(strstr(p2, want));
    free(want);

    /* the original's headers, not its body */
    assert_string_equal(p3, "Content-Description: Undelivered Message Headers\r\n"
                            "Content-Type: text/rfc822-headers\r\n\r\n"
                            "From: <a@example.com>\r\n"
                            "To: <b@example.org>\r\n"
                            "Subject: Quarterly report\r\n");
    assert_null(strstr(dsn, "SECRET"));
    free(p1);
    free(p2);
    free(p3);
}

static void test_failed(void **state)
{
    (void)state;
    char *dsn = build(BOUNCE_FAILED, original, 2);
    check_common(dsn);
    assert_non_null(strstr(dsn, "\r\nSubject: Undelivered Mail Returned to Sender\r\n"));
    char *p2 = part(dsn, 1);
    assert_non_null(strstr(p2, "\r\n\r\nFinal-Recipient: rfc822; b@example.org\r\n"
                               "Action: failed\r\n"
                               "Status: 5.1.1\r\n"
                               "Remote-MTA: dns; mx.example.org\r\n"
                               "Diagnostic-Code: smtp; 550 5.1.1 <b@example.org>: no such user\r\n"
                               "Last-Attempt-Date: "));
    assert_non_null(strstr(p2, "\r\n\r\nFinal-Recipient: rfc822; c@example.net\r\n"
                               "Action: failed\r\n"
                               "Status: 4.4.1\r\n"
                               "Diagnostic-Code: X-Alkaid; no mail server of example.net could "
                               "be reached\r\n"
                               "Last-Attempt-Date: "));
    assert_int_equal(count(p2, "Remote-MTA:"), 1);
    assert_int_equal(count(p2, "Action: "), 2);
    assert_null(strstr(p2, "Will-Retry-Until"));
    assert_null(strstr(p2, "delayed"));
    free(p2);
    free(dsn);
}

static void test_delayed(void **state)
{
    (void)state;
    char *dsn = build(BOUNCE_DELAYED, original, 2);
    check_common(dsn);
    assert_non_null(strstr(dsn, "\r\nSubject: Delayed Mail (still being retried)\r\n"));
    assert_null(strstr(dsn, "Undelivered Mail Returned"));
    char *p2 = part(dsn, 1);
    assert_int_equal(count(p2, "Action: delayed\r\n"), 2);
    assert_null(strstr(p2, "Action: failed"));
    char until[64];
    log_format_date(until, sizeof(until), 1795305000LL + 2 * 86400);
    char *want = xasprintf("Will-Retry-Until: %s\r\n", until);
    assert_int_equal(count(p2, want), 2);
    free(want);
    free(p2);
    free(dsn);
}

static void test_headers_without_body(void **state)
{
    (void)state;
    /* no blank line: cut after the last whole line */
    char *dsn = build(BOUNCE_FAILED, "Subject: only\r\nX-Cut: par", 1);
    char *p3 = part(dsn, 2);
    assert_string_equal(p3, "Content-Description: Undelivered Message Headers\r\n"
                            "Content-Type: text/rfc822-headers\r\n\r\n"
                            "Subject: only\r\n");
    free(p3);
    assert_int_equal(count(dsn, "Final-Recipient:"), 1);
    free(dsn);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_failed),
        cmocka_unit_test(test_delayed),
        cmocka_unit_test(test_headers_without_body),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
