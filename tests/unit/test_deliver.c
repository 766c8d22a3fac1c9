/* test_deliver.c - unit tests for deliver.c (making an accepted message durable)
 *
 * Each test gets a fresh root (mkdtemp() under $ALKAID_TEST_TMP or /tmp) with temp/,
 * mail/ and mail/FORWARD/, and a SQLite store filled through the store API; recipients
 * are resolved with resolve_recipient() as the session does. Covered: local delivery
 * links the TEMP file into every mailbox (same inode); remote recipients get one queue
 * file with the envelope and the message from body_offset; recipients reached several
 * ways are delivered once; the single-recipient quota refusal (552, nothing written,
 * usage already in the mailbox counted) and the soft quota for several recipients; a
 * failure in one mailbox or in the queue rolls back every copy already made (451); the
 * reply texts; the smtpd counters.
 *
 * SECURITY: the rollback cases are what keeps a 4xx from leaving a duplicate behind.
 */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "config.h"
#include "deliver.h"
#include "fsutil.h"
#include "log.h"
#include "resolve.h"
#include "smtpd.h"
#include "spool.h"
#include "store.h"
#include "testutil.h"
#include "xalloc.h"

#define TEST_HASH "$scram-sha-256$4096$c2FsdA==$c3RvcmVk$c2VydmVy"
#define MAXR      8

struct fixture {
    char *dir, *mail, *temp, *forward;
    struct store *st;
    struct alkaid_config cfg;
    struct spool_file msg;
    struct resolved rcpts[MAXR];
    char *names[MAXR];
    size_t nrcpts;
};

static void add_user(struct store *st, const char *local, uint64_t quota, char **targets, size_t n)
{
    struct store_account a = {.localpart = (char *)local,
                              .domain = "example.com",
                              .type = ACCOUNT_USER,
                              .password_hash = TEST_HASH,
                              .quota = quota,
                              .targets = targets,
                              .ntargets = n};
    const char *error = NULL;
    assert_int_equal(store_account_add(st, &a, &error), STORE_OK);
}

static void add_alias(struct store *st, const char *local, char **targets, size_t n)
{
    struct store_account a = {.localpart = (char *)local,
                              .domain = "example.com",
                              .type = ACCOUNT_ALIAS,
                              .targets = targets,
                              .ntargets = n};
    const char *error = NULL;
    assert_int_equal(store_account_add(st, &a, &error), STORE_OK);
}

static int setup(void **state)
{
    struct fixture *f = xcalloc(1, sizeof(*f));
    if ((f->dir = make_tmpdir("deliver")) == NULL) return -1;
    f->mail = xasprintf("%s/mail", f->dir);
    f->temp = xasprintf("%s/temp", f->dir);
    f->forward = xasprintf("%s/mail/FORWARD", f->dir);
    if (fs_mkdirs(f->forward, 0700) < 0 || fs_mkdirs(f->temp, 0700) < 0) return -1;
    f->cfg.root = f->dir;
    f->cfg.mail_dir = f->mail;
    f->cfg.temp_dir = f->temp;
    char *db = xasprintf("%s/accounts.db", f->dir);
    const char *error = NULL;
    f->st = store_open_sqlite(db, &error);
    free(db);
    if (f->st == NULL) return -1;
    if (store_domain_add(f->st, "example.com", &error) != STORE_OK) return -1;
    add_user(f->st, "alice", 0, NULL, 0);
    add_user(f->st, "bob", 0, NULL, 0);
    char *team[] = {"alice@example.com", "bob@example.com"};
    add_alias(f->st, "team", team, 2);
    char *remote[] = {"x@remote.org"};
    add_user(f->st, "fwd", 0, remote, 1);
    char *ext[] = {"someone@remote.org", "other@remote.net"};
    add_alias(f->st, "ext", ext, 2);
    char *mixed[] = {"alice@example.com", "x@Remote.ORG"};
    add_alias(f->st, "mixed", mixed, 2);
    char *null1[] = {"null"};
    add_alias(f->st, "blackhole", null1, 1);
    spool_set_hostname("mx.example.com");
    memset(&smtpd, 0, sizeof(smtpd));
    char *logdir = xasprintf("%s/log", f->dir);
    if (log_init(logdir) < 0) return -1;
    free(logdir);
    *state = f;
    return 0;
}

static void clear_rcpts(struct fixture *f)
{
    for (size_t i = 0; i < f->nrcpts; i++) {
        resolved_clear(&f->rcpts[i]);
        free(f->names[i]);
    }
    f->nrcpts = 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;
    clear_rcpts(f);
    if (f->msg.path) spool_file_discard(&f->msg);
    store_close(&f->st);
    log_shutdown();
    rm_rf(f->dir);
    free(f->forward);
    free(f->temp);
    free(f->mail);
    free(f->dir);
    free(f);
    return 0;
}

static const char received[] = "Received: from client.example by mx.example.com\r\n";

/* Writes the TEMP file: a Received: line then body (size bytes of it if body is NULL). */
static void make_message(struct fixture *f, const char *body, size_t size)
{
    assert_int_equal(spool_file_create(&f->msg, f->temp, ".tmp"), 0);
    spool_file_write(&f->msg, received, strlen(received));
    if (body) {
        spool_file_write(&f->msg, body, strlen(body));
    } else {
        char line[] = "0123456789012345678901234567890123456789012345678901234567890123456789\r\n";
        for (size_t n = 0; n < size; n += strlen(line)) {
            size_t k = size - n < strlen(line) ? size - n : strlen(line);
            spool_file_write(&f->msg, line, k);
        }
    }
    assert_int_equal(spool_file_sync(&f->msg), 0);
}

static void add_rcpt(struct fixture *f, const char *local, const char *domain)
{
    assert_true(f->nrcpts < MAXR);
    enum resolve_result r = resolve_recipient(f->st, f->mail, local, domain, &f->rcpts[f->nrcpts]);
    assert_int_equal(r, RESOLVE_OK);
    f->names[f->nrcpts] = xasprintf("%s@%s", local, domain);
    f->nrcpts++;
}

static enum deliver_result deliver(struct fixture *f, struct sbuf *reply)
{
    struct deliver_request req = {
        .cfg = &f->cfg,
        .temp = &f->msg,
        .body_offset = strlen(received),
        .sender = "sender@client.example",
        .auth = "alice@example.com",
        .client = "192.0.2.7",
        .ip = "192.0.2.7",
        .rcpts = f->rcpts,
        .rcpt_names = f->names,
        .nrcpts = f->nrcpts,
    };
    sbuf_init(reply, 0);
    return deliver_message(&req, reply);
}

/* Prints what the error log says (the reason behind a 451). */
static void dump_error_log(struct fixture *f)
{
    char *cmd = xasprintf("cat %s/log/error/*.log 2>/dev/null", f->dir);
    FILE *p = popen(cmd, "r");
    char line[2048];
    while (p && fgets(line, sizeof(line), p))
        print_error("error log: %s", line);
    if (p) pclose(p);
    free(cmd);
}

static void expect_deliver(struct fixture *f, struct sbuf *reply, enum deliver_result want)
{
    enum deliver_result got = deliver(f, reply);
    if (got != want) {
        print_error("deliver_message: %d (wanted %d), reply '%s'\n", got, want, sbuf_cstr(reply));
        dump_error_log(f);
        sbuf_free(reply); /* the caller's free is skipped by the failure */
    }
    assert_int_equal(got, want);
}

static char *msg_path(struct fixture *f, const char *local)
{
    return xasprintf("%s/example.com/%s/%s.eml", f->mail, local, f->msg.id);
}

static void expect_linked(struct fixture *f, const char *local)
{
    char *p = msg_path(f, local);
    struct stat a, b;
    if (stat(p, &b) != 0) print_error("%s was not delivered\n", p);
    assert_int_equal(stat(p, &b), 0);
    assert_int_equal(stat(f->msg.path, &a), 0);
    assert_int_equal(a.st_ino, b.st_ino);
    free(p);
}

static void expect_not_delivered(struct fixture *f, const char *local)
{
    char *p = msg_path(f, local);
    if (exists(p)) print_error("%s exists\n", p);
    assert_false(exists(p));
    free(p);
}

static char *queue_path(struct fixture *f)
{
    return xasprintf("%s/%s.tmp", f->forward, f->msg.id);
}

/* ---- tests ------------------------------------------------------------------------ */

static void test_local(void **state)
{
    struct fixture *f = *state;
    make_message(f, "Subject: hi\r\n\r\nHello\r\n", 0);
    add_rcpt(f, "alice", "example.com");
    add_rcpt(f, "bob", "example.com");
    struct sbuf reply;
    expect_deliver(f, &reply, DELIVER_OK);
    char *want = xasprintf("250 2.0.0 Ok: queued as %s", f->msg.id);
    assert_string_equal(sbuf_cstr(&reply), want);
    free(want);
    sbuf_free(&reply);
    expect_linked(f, "alice");
    expect_linked(f, "bob");
    struct stat st;
    assert_int_equal(stat(f->msg.path, &st), 0);
    assert_int_equal(st.st_nlink, 3);
    /* nothing queued; the TEMP file is left for the caller */
    assert_int_equal(count_entries(f->forward), 0);
    assert_true(exists(f->msg.path));
    assert_int_equal(smtpd.counters.rcpts_local, 2);
    assert_int_equal(smtpd.counters.rcpts_remote, 0);
    /* the mailboxes list it with the message's size */
    char *mb = xasprintf("%s/example.com/alice", f->mail);
    assert_int_equal(count_entries(mb), 1);
    free(mb);
}

static void test_remote(void **state)
{
    struct fixture *f = *state;
    const char *body = "Subject: out\r\n\r\nTo the world\r\n";
    make_message(f, body, 0);
    add_rcpt(f, "fwd", "example.com");
    add_rcpt(f, "ext", "example.com");
    /* a relayed recipient (not local): the session passes it as one remote address */
    memset(&f->rcpts[2], 0, sizeof(f->rcpts[2]));
    f->rcpts[2].remote = xcalloc(1, sizeof(char *));
    f->rcpts[2].remote[0] = xstrdup("someone@elsewhere.example");
    f->rcpts[2].nremote = 1;
    f->names[2] = xstrdup("someone@elsewhere.example");
    f->nrcpts = 3;
    struct sbuf reply;
    time_t before = time(NULL);
    expect_deliver(f, &reply, DELIVER_OK);
    assert_int_equal(strncmp(sbuf_cstr(&reply), "250 ", 4), 0);
    sbuf_free(&reply);

    /* one queue file for all of them */
    assert_int_equal(count_entries(f->forward), 1);
    char *qp = queue_path(f);
    struct queue_envelope env;
    uint64_t off;
    assert_int_equal(spool_queue_read(qp, &env, &off), 0);
    assert_string_equal(env.id, f->msg.id);
    assert_string_equal(env.sender, "sender@client.example");
    assert_string_equal(env.auth, "alice@example.com");
    assert_string_equal(env.client, "192.0.2.7");
    assert_int_equal(env.nrcpts, 4);
    assert_string_equal(env.rcpts[0], "x@remote.org");
    assert_string_equal(env.rcpts[1], "someone@remote.org");
    assert_string_equal(env.rcpts[2], "other@remote.net");
    assert_string_equal(env.rcpts[3], "someone@elsewhere.example");
    assert_int_equal(env.attempts, 0);
    assert_true(env.created >= before && env.created <= time(NULL));
    /* the copy starts at body_offset */
    assert_int_equal(env.size, strlen(body));
    size_t len;
    char *text = fs_read_file(qp, 1 << 20, &len);
    assert_memory_equal(text + off, body, strlen(body));
    free(text);
    spool_queue_envelope_clear(&env);
    free(qp);
    assert_int_equal(smtpd.counters.rcpts_remote, 4);
    assert_int_equal(smtpd.counters.rcpts_local, 0);
    /* no mailbox was touched */
    expect_not_delivered(f, "fwd");
}

static void test_dedup(void **state)
{
    struct fixture *f = *state;
    make_message(f, "Subject: many ways\r\n\r\nx\r\n", 0);
    add_rcpt(f, "alice", "example.com");
    add_rcpt(f, "team", "example.com");  /* alice, bob */
    add_rcpt(f, "mixed", "example.com"); /* alice, x@Remote.ORG */
    add_rcpt(f, "fwd", "example.com");   /* x@remote.org */
    add_rcpt(f, "Alice", "Example.com");
    struct sbuf reply;
    expect_deliver(f, &reply, DELIVER_OK);
    sbuf_free(&reply);
    expect_linked(f, "alice");
    expect_linked(f, "bob");
    struct stat st;
    assert_int_equal(stat(f->msg.path, &st), 0);
    assert_int_equal(st.st_nlink, 3); /* TEMP + alice + bob */
    char *qp = queue_path(f);
    struct queue_envelope env;
    assert_int_equal(spool_queue_read(qp, &env, NULL), 0);
    assert_int_equal(env.nrcpts, 1);
    assert_true(strcasecmp(env.rcpts[0], "x@remote.org") == 0);
    spool_queue_envelope_clear(&env);
    free(qp);
    assert_int_equal(smtpd.counters.rcpts_local, 2);
    assert_int_equal(smtpd.counters.rcpts_remote, 1);
}

static void test_discard_only(void **state)
{
    struct fixture *f = *state;
    make_message(f, "x\r\n", 0);
    add_rcpt(f, "blackhole", "example.com");
    assert_true(f->rcpts[0].discard);
    struct sbuf reply;
    expect_deliver(f, &reply, DELIVER_OK);
    assert_int_equal(strncmp(sbuf_cstr(&reply), "250 ", 4), 0);
    sbuf_free(&reply);
    assert_int_equal(count_entries(f->forward), 0);
}

static void test_quota_single_recipient(void **state)
{
    struct fixture *f = *state;
    assert_int_equal(store_account_set_quota(f->st, "alice", "example.com", 1000), STORE_OK);
    make_message(f, NULL, 2000);
    add_rcpt(f, "alice", "example.com");
    assert_int_equal(f->rcpts[0].mailboxes[0].quota, 1000);
    struct sbuf reply;
    expect_deliver(f, &reply, DELIVER_PERMFAIL);
    assert_string_equal(sbuf_cstr(&reply),
                        "552 5.2.2 <alice@example.com>: Mailbox full (quota exceeded)");
    sbuf_free(&reply);
    expect_not_delivered(f, "alice");
    assert_int_equal(count_entries(f->forward), 0);
    assert_int_equal(smtpd.counters.rcpts_local, 0);
}

static void test_quota_counts_existing_mail(void **state)
{
    struct fixture *f = *state;
    assert_int_equal(store_account_set_quota(f->st, "alice", "example.com", 1000), STORE_OK);
    /* 600 bytes already there */
    char *mb = xasprintf("%s/example.com/alice", f->mail);
    assert_int_equal(fs_mkdirs(mb, 0700), 0);
    char *old = xasprintf("%s/old.eml", mb);
    char fill[600];
    memset(fill, 'o', sizeof(fill));
    assert_int_equal(fs_write_file_atomic(old, fill, sizeof(fill), 0600), 0);

    make_message(f, NULL, 500 - strlen(received)); /* 500 bytes in all: 1100 > 1000 */
    add_rcpt(f, "alice", "example.com");
    struct sbuf reply;
    expect_deliver(f, &reply, DELIVER_PERMFAIL);
    assert_int_equal(strncmp(sbuf_cstr(&reply), "552 5.2.2 ", 10), 0);
    sbuf_free(&reply);
    expect_not_delivered(f, "alice");
    spool_file_discard(&f->msg);
    clear_rcpts(f);

    /* 400 bytes fits exactly: 1000 <= 1000 */
    make_message(f, NULL, 400 - strlen(received));
    assert_int_equal(f->msg.size, 400);
    add_rcpt(f, "alice", "example.com");
    expect_deliver(f, &reply, DELIVER_OK);
    sbuf_free(&reply);
    expect_linked(f, "alice");
    free(old);
    free(mb);
}

static void test_quota_soft_with_several_recipients(void **state)
{
    struct fixture *f = *state;
    assert_int_equal(store_account_set_quota(f->st, "alice", "example.com", 100), STORE_OK);
    make_message(f, NULL, 2000);
    add_rcpt(f, "alice", "example.com");
    add_rcpt(f, "bob", "example.com");
    struct sbuf reply;
    expect_deliver(f, &reply, DELIVER_OK);
    sbuf_free(&reply);
    expect_linked(f, "alice");
    expect_linked(f, "bob");
    spool_file_discard(&f->msg);
    clear_rcpts(f);

    /* one recipient that expands to two mailboxes: delivered too */
    make_message(f, NULL, 2000);
    add_rcpt(f, "team", "example.com");
    expect_deliver(f, &reply, DELIVER_OK);
    sbuf_free(&reply);
    expect_linked(f, "alice");
}

static void test_rollback_on_mailbox_failure(void **state)
{
    struct fixture *f = *state;
    make_message(f, "x\r\n", 0);
    add_rcpt(f, "alice", "example.com");
    add_rcpt(f, "fwd", "example.com");
    add_rcpt(f, "bob", "example.com");
    /* bob's mailbox cannot be made: a file sits where it should be */
    char *dom = xasprintf("%s/example.com", f->mail);
    assert_int_equal(fs_mkdirs(dom, 0700), 0);
    char *blocker = xasprintf("%s/bob", dom);
    assert_int_equal(fs_write_file_atomic(blocker, "x", 1, 0600), 0);

    struct sbuf reply;
    expect_deliver(f, &reply, DELIVER_TEMPFAIL);
    assert_string_equal(sbuf_cstr(&reply),
                        "451 4.3.0 Error: local delivery failed, try again later");
    sbuf_free(&reply);
    /* alice's copy, made before bob failed, was taken back; nothing queued */
    expect_not_delivered(f, "alice");
    assert_int_equal(count_entries(f->forward), 0);
    struct stat st;
    assert_int_equal(stat(f->msg.path, &st), 0);
    assert_int_equal(st.st_nlink, 1);
    assert_int_equal(smtpd.counters.rcpts_local, 0);
    free(blocker);
    free(dom);
}

static void test_rollback_on_queue_failure(void **state)
{
    struct fixture *f = *state;
    make_message(f, "x\r\n", 0);
    add_rcpt(f, "alice", "example.com");
    add_rcpt(f, "bob", "example.com");
    add_rcpt(f, "fwd", "example.com");
    /* the queue directory cannot be used (a file stands where it should be; a directory
     * that is simply gone would be made again) */
    assert_int_equal(rmdir(f->forward), 0);
    write_plain(f->forward, "x", 1);
    struct sbuf reply;
    expect_deliver(f, &reply, DELIVER_TEMPFAIL);
    assert_int_equal(strncmp(sbuf_cstr(&reply), "451 4.3.0 ", 10), 0);
    sbuf_free(&reply);
    expect_not_delivered(f, "alice");
    expect_not_delivered(f, "bob");
    struct stat st;
    assert_int_equal(stat(f->msg.path, &st), 0);
    assert_int_equal(st.st_nlink, 1);

    /* the client retries once the directory is back: one copy each, no duplicate */
    assert_int_equal(unlink(f->forward), 0);
    assert_int_equal(mkdir(f->forward, 0700), 0);
    expect_deliver(f, &reply, DELIVER_OK);
    sbuf_free(&reply);
    expect_linked(f, "alice");
    expect_linked(f, "bob");
    char *mb = xasprintf("%s/example.com/alice", f->mail);
    assert_int_equal(count_entries(mb), 1);
    free(mb);
    assert_int_equal(count_entries(f->forward), 1);
}

/* DESIGN.md: in a cluster mail/ is on a shared file system and temp/ is local, so the
 * hard link fails (EXDEV) and mailbox_deliver() copies from the TEMP file's descriptor. */
static void test_local_across_filesystems(void **state)
{
    struct fixture *f = *state;
    struct stat here, there;
    assert_int_equal(stat(f->dir, &here), 0);
    if (stat("/dev/shm", &there) < 0 || there.st_dev == here.st_dev ||
        access("/dev/shm", W_OK) < 0) {
        print_message("/dev/shm is not another file system here; not tested\n");
        skip();
    }
    char *other = xstrdup("/dev/shm/alkaid-deliver-XXXXXX");
    assert_non_null(mkdtemp(other));
    f->cfg.mail_dir = other;
    make_message(f, "Subject: across\r\n\r\nx\r\n", 0);
    enum resolve_result r = resolve_recipient(f->st, other, "alice", "example.com", &f->rcpts[0]);
    assert_int_equal(r, RESOLVE_OK);
    f->names[0] = xstrdup("alice@example.com");
    f->nrcpts = 1;
    struct sbuf reply;
    enum deliver_result got = deliver(f, &reply);
    if (got != DELIVER_OK) {
        print_error("deliver_message across file systems: reply '%s'\n", sbuf_cstr(&reply));
        dump_error_log(f);
    }
    sbuf_free(&reply);
    char *copy = xasprintf("%s/example.com/alice/%s.eml", other, f->msg.id);
    size_t len = 0;
    char *text = fs_read_file(copy, 1 << 20, &len);
    bool ok = got == DELIVER_OK && text != NULL && len == f->msg.size;
    free(text);
    free(copy);
    rm_rf(other);
    free(other);
    f->cfg.mail_dir = f->mail;
    assert_true(ok);
}

static void test_reply_is_appended_cleanly(void **state)
{
    struct fixture *f = *state;
    make_message(f, "x\r\n", 0);
    add_rcpt(f, "alice", "example.com");
    struct deliver_request req = {.cfg = &f->cfg,
                                  .temp = &f->msg,
                                  .body_offset = 0,
                                  .sender = "",
                                  .ip = "192.0.2.1",
                                  .rcpts = f->rcpts,
                                  .rcpt_names = f->names,
                                  .nrcpts = f->nrcpts};
    struct sbuf reply = SBUF_INIT(0);
    assert_int_equal(deliver_message(&req, &reply), DELIVER_OK);
    /* one line, no CRLF */
    assert_null(strchr(sbuf_cstr(&reply), '\r'));
    assert_null(strchr(sbuf_cstr(&reply), '\n'));
    assert_int_equal(strncmp(sbuf_cstr(&reply), "250 2.0.0 Ok: queued as ", 24), 0);
    sbuf_free(&reply);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_local, setup, teardown),
        cmocka_unit_test_setup_teardown(test_remote, setup, teardown),
        cmocka_unit_test_setup_teardown(test_dedup, setup, teardown),
        cmocka_unit_test_setup_teardown(test_discard_only, setup, teardown),
        cmocka_unit_test_setup_teardown(test_quota_single_recipient, setup, teardown),
        cmocka_unit_test_setup_teardown(test_quota_counts_existing_mail, setup, teardown),
        cmocka_unit_test_setup_teardown(test_quota_soft_with_several_recipients, setup, teardown),
        cmocka_unit_test_setup_teardown(test_rollback_on_mailbox_failure, setup, teardown),
        cmocka_unit_test_setup_teardown(test_rollback_on_queue_failure, setup, teardown),
        cmocka_unit_test_setup_teardown(test_local_across_filesystems, setup, teardown),
        cmocka_unit_test_setup_teardown(test_reply_is_appended_cleanly, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
