/* test_resolve.c - unit tests for resolve.c (recipient -> mailboxes and remote addresses)
 *
 * The tests share one SQLite store (store_open_sqlite on a file in a directory made by
 * mkdtemp() under $ALKAID_TEST_TMP or /tmp), filled once through the store API with users,
 * aliases, forwards and catch-alls. Covered: a user to its mailbox (any case); an alias to
 * its members, nested and de-duplicated; alias loops that end (with and without a real
 * member); the depth limit at its boundary; forwards with and without keep_copy, to
 * remote and to local targets; remote targets de-duplicated without regard to case; the
 * catch-all (to a local user, to a remote address, to an unknown address of its own
 * domain) and "null" (catch-all and alias member); unknown local parts, also deeper in
 * an expansion; domains that are not ours; wildcard domains; and an alias as wide as the
 * store allows.
 *
 * SECURITY: the loop and width cases are what keeps a bad alias table from hanging or
 * exhausting a session.
 */
#include <errno.h>
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
#include <unistd.h>

#include <cmocka.h>

#include "fsutil.h"
#include "resolve.h"
#include "store.h"
#include "testutil.h"
#include "xalloc.h"

#define TEST_HASH "$scram-sha-256$4096$c2FsdA==$c3RvcmVk$c2VydmVy"

struct fixture {
    char *dir;
    char *mail;
    struct store *st;
};

static void add_domain(struct store *st, const char *name, const char *catchall)
{
    const char *error = NULL;
    assert_int_equal(store_domain_add(st, name, &error), STORE_OK);
    if (catchall) assert_int_equal(store_domain_set_catchall(st, name, catchall, &error), STORE_OK);
}

static void add_user(struct store *st, const char *local, const char *domain, uint64_t quota,
                     char **targets, size_t n, bool keep_copy)
{
    struct store_account a = {.localpart = (char *)local,
                              .domain = (char *)domain,
                              .type = ACCOUNT_USER,
                              .password_hash = TEST_HASH,
                              .quota = quota,
                              .targets = targets,
                              .ntargets = n,
                              .keep_copy = keep_copy};
    const char *error = NULL;
    enum store_result r = store_account_add(st, &a, &error);
    if (r != STORE_OK) print_error("add user %s@%s: %s\n", local, domain, error);
    assert_int_equal(r, STORE_OK);
}

static void add_alias(struct store *st, const char *local, const char *domain, char **targets,
                      size_t n)
{
    struct store_account a = {.localpart = (char *)local,
                              .domain = (char *)domain,
                              .type = ACCOUNT_ALIAS,
                              .targets = targets,
                              .ntargets = n};
    const char *error = NULL;
    enum store_result r = store_account_add(st, &a, &error);
    if (r != STORE_OK) print_error("add alias %s@%s: %s\n", local, domain, error);
    assert_int_equal(r, STORE_OK);
}

#define N(a) (sizeof(a) / sizeof((a)[0]))

static void populate(struct store *st)
{
    add_domain(st, "example.com", NULL);
    add_domain(st, "catch.org", "alice@example.com");
    add_domain(st, "remotecatch.org", "someone@remote.org");
    add_domain(st, "null.org", "null");
    add_domain(st, "self.org", "nobody@self.org");
    add_domain(st, "*.wild.org", NULL);

    add_user(st, "alice", "example.com", 0, NULL, 0, false);
    add_user(st, "bob", "example.com", 5000, NULL, 0, false);
    add_user(st, "u", "*.wild.org", 0, NULL, 0, false);

    char *team[] = {"alice@example.com", "bob@example.com"};
    add_alias(st, "team", "example.com", team, N(team));
    char *dup[] = {"alice@example.com", "team@example.com"};
    add_alias(st, "dup", "example.com", dup, N(dup));
    char *dup2[] = {"Alice@Example.COM", "team@example.com"};
    add_alias(st, "dup2", "example.com", dup2, N(dup2));

    char *l1[] = {"loop2@example.com"};
    char *l2[] = {"loop1@example.com"};
    add_alias(st, "loop1", "example.com", l1, 1);
    add_alias(st, "loop2", "example.com", l2, 1);
    char *la[] = {"loopb@example.com", "alice@example.com"};
    char *lb[] = {"loopa@example.com"};
    add_alias(st, "loopa", "example.com", la, N(la));
    add_alias(st, "loopb", "example.com", lb, N(lb));

    char *remote1[] = {"x@remote.org"};
    add_user(st, "fwd", "example.com", 0, remote1, 1, false);
    add_user(st, "fwdk", "example.com", 0, remote1, 1, true);
    char *tobob[] = {"bob@example.com"};
    add_user(st, "fwdlocal", "example.com", 0, tobob, 1, false);
    char *ext[] = {"someone@remote.org", "other@remote.net"};
    add_alias(st, "ext", "example.com", ext, N(ext));
    char *mixed[] = {"alice@example.com", "x@Remote.ORG", "fwd@example.com"};
    add_alias(st, "mixed", "example.com", mixed, N(mixed));

    char *null1[] = {"null"};
    add_alias(st, "blackhole", "example.com", null1, 1);
    char *halfnull[] = {"NULL", "alice@example.com"};
    add_alias(st, "halfnull", "example.com", halfnull, N(halfnull));
    char *ghost[] = {"nobody@example.com"};
    add_alias(st, "ghost", "example.com", ghost, 1);
    char *ghostplus[] = {"nobody@example.com", "bob@example.com"};
    add_alias(st, "ghostplus", "example.com", ghostplus, N(ghostplus));
    char *tocatch[] = {"whoever@catch.org"};
    add_alias(st, "tocatch", "example.com", tocatch, 1);

    /* chains: dNN -> d(NN+1) ... -> alice; c1 reaches alice at depth 10, e1 at depth 11 */
    for (int i = 1; i <= 10; i++) {
        char local[16], next[64];
        snprintf(local, sizeof(local), "c%d", i);
        if (i < 10)
            snprintf(next, sizeof(next), "c%d@example.com", i + 1);
        else
            snprintf(next, sizeof(next), "alice@example.com");
        char *t[] = {next};
        add_alias(st, local, "example.com", t, 1);
    }
    for (int i = 1; i <= 11; i++) {
        char local[16], next[64];
        snprintf(local, sizeof(local), "e%d", i);
        if (i < 11)
            snprintf(next, sizeof(next), "e%d@example.com", i + 1);
        else
            snprintf(next, sizeof(next), "alice@example.com");
        char *t[] = {next};
        add_alias(st, local, "example.com", t, 1);
    }
}

static int setup(void **state)
{
    struct fixture *f = xcalloc(1, sizeof(*f));
    if ((f->dir = make_tmpdir("resolve")) == NULL) return -1;
    f->mail = xasprintf("%s/mail", f->dir);
    char *db = xasprintf("%s/accounts.db", f->dir);
    const char *error = NULL;
    f->st = store_open_sqlite(db, &error);
    free(db);
    if (f->st == NULL) {
        fprintf(stderr, "store_open_sqlite: %s\n", error);
        return -1;
    }
    populate(f->st);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;
    store_close(&f->st);
    rm_rf(f->dir);
    free(f->mail);
    free(f->dir);
    free(f);
    return 0;
}

/* ---- helpers to check a result ----------------------------------------------------- */

static enum resolve_result resolve(struct fixture *f, const char *local, const char *domain,
                                   struct resolved *out)
{
    return resolve_recipient(f->st, f->mail, local, domain, out);
}

static bool has_mailbox(const struct fixture *f, const struct resolved *r, const char *domain_dir,
                        const char *local)
{
    char *dir = xasprintf("%s/%s/%s", f->mail, domain_dir, local);
    bool found = false;
    for (size_t i = 0; i < r->nmailboxes; i++)
        found |= strcmp(r->mailboxes[i].dir, dir) == 0;
    free(dir);
    return found;
}

static bool has_remote(const struct resolved *r, const char *addr)
{
    for (size_t i = 0; i < r->nremote; i++)
        if (strcasecmp(r->remote[i], addr) == 0) return true;
    return false;
}

static void expect_cleared(const struct resolved *r)
{
    assert_int_equal(r->nmailboxes, 0);
    assert_null(r->mailboxes);
    assert_int_equal(r->nremote, 0);
    assert_null(r->remote);
}

static void dump(const struct resolved *r)
{
    for (size_t i = 0; i < r->nmailboxes; i++)
        print_message("  mailbox %s (%s)\n", r->mailboxes[i].address, r->mailboxes[i].dir);
    for (size_t i = 0; i < r->nremote; i++)
        print_message("  remote %s\n", r->remote[i]);
    if (r->discard) print_message("  discard\n");
}

/* ---- tests ------------------------------------------------------------------------ */

static void test_user(void **state)
{
    struct fixture *f = *state;
    struct resolved r;
    assert_int_equal(resolve(f, "alice", "example.com", &r), RESOLVE_OK);
    assert_int_equal(r.nmailboxes, 1);
    assert_string_equal(r.mailboxes[0].address, "alice@example.com");
    char *dir = xasprintf("%s/example.com/alice", f->mail);
    assert_string_equal(r.mailboxes[0].dir, dir);
    free(dir);
    assert_int_equal(r.mailboxes[0].quota, 0);
    assert_int_equal(r.nremote, 0);
    assert_false(r.discard);
    resolved_clear(&r);
    expect_cleared(&r);

    /* any case; the quota comes along */
    assert_int_equal(resolve(f, "BoB", "Example.COM", &r), RESOLVE_OK);
    assert_int_equal(r.nmailboxes, 1);
    assert_string_equal(r.mailboxes[0].address, "bob@example.com");
    assert_int_equal(r.mailboxes[0].quota, 5000);
    assert_true(has_mailbox(f, &r, "example.com", "bob"));
    resolved_clear(&r);
    resolved_clear(&r); /* twice is fine */
}

static void test_alias(void **state)
{
    struct fixture *f = *state;
    struct resolved r;
    assert_int_equal(resolve(f, "team", "example.com", &r), RESOLVE_OK);
    assert_int_equal(r.nmailboxes, 2);
    assert_true(has_mailbox(f, &r, "example.com", "alice"));
    assert_true(has_mailbox(f, &r, "example.com", "bob"));
    assert_false(has_mailbox(f, &r, "example.com", "team")); /* an alias has none */
    assert_int_equal(r.nremote, 0);
    resolved_clear(&r);

    /* nested and overlapping: each mailbox once */
    assert_int_equal(resolve(f, "dup", "example.com", &r), RESOLVE_OK);
    assert_int_equal(r.nmailboxes, 2);
    resolved_clear(&r);
    assert_int_equal(resolve(f, "dup2", "example.com", &r), RESOLVE_OK);
    if (r.nmailboxes != 2) dump(&r);
    assert_int_equal(r.nmailboxes, 2);
    assert_true(has_mailbox(f, &r, "example.com", "alice"));
    assert_true(has_mailbox(f, &r, "example.com", "bob"));
    resolved_clear(&r);
}

static void test_alias_loops_end(void **state)
{
    struct fixture *f = *state;
    struct resolved r;
    /* a pure loop: nothing to deliver to */
    assert_int_equal(resolve(f, "loop1", "example.com", &r), RESOLVE_UNKNOWN);
    expect_cleared(&r);
    /* a loop with a real member: the member gets it, once */
    assert_int_equal(resolve(f, "loopa", "example.com", &r), RESOLVE_OK);
    assert_int_equal(r.nmailboxes, 1);
    assert_true(has_mailbox(f, &r, "example.com", "alice"));
    resolved_clear(&r);
    assert_int_equal(resolve(f, "loopb", "example.com", &r), RESOLVE_OK);
    assert_int_equal(r.nmailboxes, 1);
    resolved_clear(&r);
    /* a catch-all pointing into its own domain at an unknown name */
    assert_int_equal(resolve(f, "anyone", "self.org", &r), RESOLVE_UNKNOWN);
    expect_cleared(&r);
}

static void test_depth_limit(void **state)
{
    struct fixture *f = *state;
    struct resolved r;
    /* alice at depth RESOLVE_MAX_DEPTH: delivered */
    assert_int_equal(resolve(f, "c1", "example.com", &r), RESOLVE_OK);
    assert_int_equal(r.nmailboxes, 1);
    assert_true(has_mailbox(f, &r, "example.com", "alice"));
    resolved_clear(&r);
    /* one level more: the expansion stops, nothing is left */
    enum resolve_result res = resolve(f, "e1", "example.com", &r);
    assert_int_equal(res, RESOLVE_UNKNOWN);
    expect_cleared(&r);
    /* starting further down the same chain is fine */
    assert_int_equal(resolve(f, "e2", "example.com", &r), RESOLVE_OK);
    resolved_clear(&r);
}

static void test_forward(void **state)
{
    struct fixture *f = *state;
    struct resolved r;
    /* without keep_copy: only the remote target */
    assert_int_equal(resolve(f, "fwd", "example.com", &r), RESOLVE_OK);
    assert_int_equal(r.nmailboxes, 0);
    assert_int_equal(r.nremote, 1);
    assert_string_equal(r.remote[0], "x@remote.org");
    resolved_clear(&r);
    /* with keep_copy: its own mailbox too */
    assert_int_equal(resolve(f, "fwdk", "example.com", &r), RESOLVE_OK);
    assert_int_equal(r.nmailboxes, 1);
    assert_true(has_mailbox(f, &r, "example.com", "fwdk"));
    assert_int_equal(r.nremote, 1);
    assert_true(has_remote(&r, "x@remote.org"));
    resolved_clear(&r);
    /* forwarding to a local user */
    assert_int_equal(resolve(f, "fwdlocal", "example.com", &r), RESOLVE_OK);
    assert_int_equal(r.nmailboxes, 1);
    assert_true(has_mailbox(f, &r, "example.com", "bob"));
    assert_false(has_mailbox(f, &r, "example.com", "fwdlocal"));
    assert_int_equal(r.nremote, 0);
    resolved_clear(&r);
}

static void test_remote_targets(void **state)
{
    struct fixture *f = *state;
    struct resolved r;
    assert_int_equal(resolve(f, "ext", "example.com", &r), RESOLVE_OK);
    assert_int_equal(r.nmailboxes, 0);
    assert_int_equal(r.nremote, 2);
    assert_true(has_remote(&r, "someone@remote.org"));
    assert_true(has_remote(&r, "other@remote.net"));
    resolved_clear(&r);
    /* the same remote address reached twice (its domain in another case) is listed once */
    assert_int_equal(resolve(f, "mixed", "example.com", &r), RESOLVE_OK);
    if (r.nremote != 1) dump(&r);
    assert_int_equal(r.nmailboxes, 1);
    assert_true(has_mailbox(f, &r, "example.com", "alice"));
    assert_int_equal(r.nremote, 1);
    assert_true(has_remote(&r, "x@remote.org"));
    resolved_clear(&r);
}

static void test_catchall(void **state)
{
    struct fixture *f = *state;
    struct resolved r;
    assert_int_equal(resolve(f, "anything", "catch.org", &r), RESOLVE_OK);
    assert_int_equal(r.nmailboxes, 1);
    assert_true(has_mailbox(f, &r, "example.com", "alice"));
    resolved_clear(&r);
    /* a local part no account could have still reaches the catch-all */
    assert_int_equal(resolve(f, "no..valid", "catch.org", &r), RESOLVE_OK);
    assert_int_equal(r.nmailboxes, 1);
    resolved_clear(&r);
    /* a remote catch-all */
    assert_int_equal(resolve(f, "x", "remotecatch.org", &r), RESOLVE_OK);
    assert_int_equal(r.nmailboxes, 0);
    assert_int_equal(r.nremote, 1);
    assert_true(has_remote(&r, "someone@remote.org"));
    resolved_clear(&r);
    /* an alias into a catch-all domain */
    assert_int_equal(resolve(f, "tocatch", "example.com", &r), RESOLVE_OK);
    assert_int_equal(r.nmailboxes, 1);
    assert_true(has_mailbox(f, &r, "example.com", "alice"));
    resolved_clear(&r);
}

static void test_null(void **state)
{
    struct fixture *f = *state;
    struct resolved r;
    assert_int_equal(resolve(f, "whoever", "null.org", &r), RESOLVE_OK);
    assert_true(r.discard);
    assert_int_equal(r.nmailboxes, 0);
    assert_int_equal(r.nremote, 0);
    resolved_clear(&r);
    assert_false(r.discard);
    assert_int_equal(resolve(f, "blackhole", "example.com", &r), RESOLVE_OK);
    assert_true(r.discard);
    assert_int_equal(r.nmailboxes, 0);
    resolved_clear(&r);
    assert_int_equal(resolve(f, "halfnull", "example.com", &r), RESOLVE_OK);
    assert_true(r.discard);
    assert_int_equal(r.nmailboxes, 1);
    assert_true(has_mailbox(f, &r, "example.com", "alice"));
    resolved_clear(&r);
}

static void test_unknown(void **state)
{
    struct fixture *f = *state;
    struct resolved r;
    assert_int_equal(resolve(f, "nobody", "example.com", &r), RESOLVE_UNKNOWN);
    expect_cleared(&r);
    assert_false(r.discard);
    assert_int_equal(resolve(f, "no..valid", "example.com", &r), RESOLVE_UNKNOWN);
    expect_cleared(&r);
    assert_int_equal(resolve(f, "", "example.com", &r), RESOLVE_UNKNOWN);
    expect_cleared(&r);
    /* an alias whose only member does not exist */
    assert_int_equal(resolve(f, "ghost", "example.com", &r), RESOLVE_UNKNOWN);
    expect_cleared(&r);
    /* ... and one with a good member next to it */
    assert_int_equal(resolve(f, "ghostplus", "example.com", &r), RESOLVE_OK);
    assert_int_equal(r.nmailboxes, 1);
    assert_true(has_mailbox(f, &r, "example.com", "bob"));
    resolved_clear(&r);
    /* a wildcard domain without that local part */
    assert_int_equal(resolve(f, "v", "sub.wild.org", &r), RESOLVE_UNKNOWN);
    expect_cleared(&r);
}

static void test_not_local(void **state)
{
    struct fixture *f = *state;
    struct resolved r;
    assert_int_equal(resolve(f, "alice", "example.net", &r), RESOLVE_NOT_LOCAL);
    expect_cleared(&r);
    assert_int_equal(resolve(f, "alice", "sub.example.com", &r), RESOLVE_NOT_LOCAL);
    expect_cleared(&r);
    assert_int_equal(resolve(f, "alice", "wild.org", &r), RESOLVE_NOT_LOCAL); /* *.wild.org */
    assert_int_equal(resolve(f, "alice", "bad..domain", &r), RESOLVE_NOT_LOCAL);
    assert_int_equal(resolve(f, "alice", "", &r), RESOLVE_NOT_LOCAL);
    assert_int_equal(resolve(f, "alice", "[192.0.2.1]", &r), RESOLVE_NOT_LOCAL);
    expect_cleared(&r);
}

static void test_wildcard_domain(void **state)
{
    struct fixture *f = *state;
    struct resolved r;
    assert_int_equal(resolve(f, "u", "sub.wild.org", &r), RESOLVE_OK);
    assert_int_equal(r.nmailboxes, 1);
    assert_true(has_mailbox(f, &r, "%.wild.org", "u"));
    resolved_clear(&r);
    assert_int_equal(resolve(f, "U", "A.B.Wild.Org", &r), RESOLVE_OK);
    assert_int_equal(r.nmailboxes, 1);
    assert_true(has_mailbox(f, &r, "%.wild.org", "u"));
    resolved_clear(&r);
}

/* The store accepts an alias with STORE_MAX_TARGETS targets; resolving it must deliver to
 * all of them or fail, never quietly drop some and report success. */
static void test_wide_alias(void **state)
{
    struct fixture *f = *state;
    size_t n = 1000;
    char **t = xcalloc(n, sizeof(char *));
    for (size_t i = 0; i < n; i++)
        t[i] = xasprintf("user%zu@remote.example", i);
    add_alias(f->st, "wide", "example.com", t, n);
    struct resolved r;
    enum resolve_result res = resolve(f, "wide", "example.com", &r);
    size_t got = r.nremote;
    bool all = true;
    for (size_t i = 0; i < n && res == RESOLVE_OK; i++)
        all &= has_remote(&r, t[i]);
    resolved_clear(&r);
    for (size_t i = 0; i < n; i++)
        free(t[i]);
    free(t);
    if (res == RESOLVE_OK && (got != n || !all))
        print_error("an alias of %zu targets resolved OK to %zu of them\n", n, got);
    assert_true(res != RESOLVE_OK || (got == n && all));
}

/* A wide expansion under the limit is complete. */
static void test_wide_alias_under_limit(void **state)
{
    struct fixture *f = *state;
    size_t n = 500;
    char **t = xcalloc(n, sizeof(char *));
    for (size_t i = 0; i < n; i++)
        t[i] = xasprintf("user%zu@remote.example", i);
    add_alias(f->st, "half", "example.com", t, n);
    struct resolved r;
    assert_int_equal(resolve(f, "half", "example.com", &r), RESOLVE_OK);
    assert_int_equal(r.nremote, n);
    resolved_clear(&r);
    for (size_t i = 0; i < n; i++)
        free(t[i]);
    free(t);
}

static void test_store_changes_seen_at_once(void **state)
{
    struct fixture *f = *state;
    struct resolved r;
    assert_int_equal(resolve(f, "carol", "example.com", &r), RESOLVE_UNKNOWN);
    add_user(f->st, "carol", "example.com", 0, NULL, 0, false);
    assert_int_equal(resolve(f, "carol", "example.com", &r), RESOLVE_OK);
    resolved_clear(&r);
    const char *error = NULL;
    assert_int_equal(store_account_del(f->st, "carol", "example.com", &error), STORE_OK);
    assert_int_equal(resolve(f, "carol", "example.com", &r), RESOLVE_UNKNOWN);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_user),
        cmocka_unit_test(test_alias),
        cmocka_unit_test(test_alias_loops_end),
        cmocka_unit_test(test_depth_limit),
        cmocka_unit_test(test_forward),
        cmocka_unit_test(test_remote_targets),
        cmocka_unit_test(test_catchall),
        cmocka_unit_test(test_null),
        cmocka_unit_test(test_unknown),
        cmocka_unit_test(test_not_local),
        cmocka_unit_test(test_wildcard_domain),
        cmocka_unit_test(test_wide_alias),
        cmocka_unit_test(test_wide_alias_under_limit),
        cmocka_unit_test(test_store_changes_seen_at_once),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
