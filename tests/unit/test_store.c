/* test_store.c - unit tests for the account store (store.c + store_sqlite.c)
 *
 * Each test gets a fresh database in a directory made by mkdtemp() under $ALKAID_TEST_TMP
 * (or /tmp). Covered: migrations from an empty file and reopening, every add / del /
 * list / find / set function, wildcard domains (longest pattern wins), case, invalid
 * names, domain delete with and without force, lookups from 8 threads while another
 * thread writes, and STORE_TEMPFAIL (never NOTFOUND) while another connection holds the
 * database locked past the busy timeout.
 *
 * SECURITY: the invalid-name cases are the path and injection tricks the store refuses.
 */
#include <pthread.h>
#include <setjmp.h>
#include <sqlite3.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "store.h"
#include "store_backend.h"
#include "testutil.h"
#include "xalloc.h"

#define TEST_HASH "$scram-sha-256$4096$c2FsdA==$c3RvcmVk$c2VydmVy"

struct fixture {
    char *dir;
    char *path;
    struct store *st;
};

static int setup(void **state)
{
    struct fixture *f = xcalloc(1, sizeof(*f));
    if ((f->dir = make_tmpdir("store")) == NULL) return -1;
    f->path = xasprintf("%s/accounts.db", f->dir);
    const char *error = NULL;
    f->st = store_open_sqlite(f->path, &error);
    if (f->st == NULL) {
        fprintf(stderr, "store_open_sqlite: %s\n", error);
        return -1;
    }
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;
    store_close(&f->st);
    rm_rf(f->dir);
    free(f->path);
    free(f->dir);
    free(f);
    return 0;
}

static sqlite3 *raw_open(const char *path)
{
    sqlite3 *db = NULL;
    assert_int_equal(sqlite3_open_v2(path, &db, SQLITE_OPEN_READWRITE, NULL), SQLITE_OK);
    return db;
}

static long long raw_int(sqlite3 *db, const char *sql)
{
    sqlite3_stmt *s = NULL;
    assert_int_equal(sqlite3_prepare_v2(db, sql, -1, &s, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_step(s), SQLITE_ROW);
    long long v = sqlite3_column_int64(s, 0);
    sqlite3_finalize(s);
    return v;
}

static void add_domain(struct store *st, const char *name)
{
    const char *error = NULL;
    assert_int_equal(store_domain_add(st, name, &error), STORE_OK);
}

static void add_user(struct store *st, const char *local, const char *domain)
{
    struct store_account a = {.localpart = (char *)local,
                              .domain = (char *)domain,
                              .type = ACCOUNT_USER,
                              .password_hash = TEST_HASH};
    const char *error = NULL;
    assert_int_equal(store_account_add(st, &a, &error), STORE_OK);
}

static enum store_result add_alias(struct store *st, const char *local, const char *domain,
                                   char **targets, size_t n, const char **error_r)
{
    struct store_account a = {.localpart = (char *)local,
                              .domain = (char *)domain,
                              .type = ACCOUNT_ALIAS,
                              .targets = targets,
                              .ntargets = n};
    return store_account_add(st, &a, error_r);
}

/* ---- opening ---- */

static void test_migrate_from_empty(void **state)
{
    struct fixture *f = *state;
    assert_int_equal(store_schema_version(f->st), 3);

    struct stat sb;
    assert_int_equal(stat(f->path, &sb), 0);
    assert_int_equal(sb.st_mode & 0777, 0600);

    sqlite3 *db = raw_open(f->path);
    assert_int_equal(raw_int(db, "PRAGMA user_version"), 3);
    assert_int_equal(raw_int(db, "SELECT count(*) FROM sqlite_schema WHERE type = 'table' AND"
                                 " name IN ('domains', 'accounts', 'targets', 'settings')"),
                     4);
    sqlite3_stmt *s = NULL;
    assert_int_equal(sqlite3_prepare_v2(db, "PRAGMA journal_mode", -1, &s, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_step(s), SQLITE_ROW);
    assert_string_equal((const char *)sqlite3_column_text(s, 0), "wal");
    sqlite3_finalize(s);
    sqlite3_close(db);
}

static void test_secret(void **state)
{
    struct fixture *f = *state;
    unsigned char a[32], b[32], c[16];
    assert_int_equal(store_secret(f->st, "k1", a, sizeof(a)), STORE_OK);
    assert_int_equal(store_secret(f->st, "k1", b, sizeof(b)), STORE_OK);
    assert_memory_equal(a, b, sizeof(a)); /* made once, then the same for everyone */
    assert_int_equal(store_secret(f->st, "k2", c, sizeof(c)), STORE_OK);
    assert_memory_not_equal(a, c, sizeof(c));
    /* survives a reopen (another service opening the same store) */
    store_close(&f->st);
    const char *error = NULL;
    f->st = store_open_sqlite(f->path, &error);
    assert_non_null(f->st);
    assert_int_equal(store_secret(f->st, "k1", b, sizeof(b)), STORE_OK);
    assert_memory_equal(a, b, sizeof(a));
    assert_int_equal(store_secret(f->st, "k1", b, 0), STORE_INVALID);
    assert_int_equal(store_secret(f->st, "", b, 8), STORE_INVALID);
}

static void test_reopen(void **state)
{
    struct fixture *f = *state;
    add_domain(f->st, "example.com");
    add_user(f->st, "bob", "example.com");
    store_close(&f->st);
    assert_null(f->st);

    const char *error = NULL;
    for (int i = 0; i < 2; i++) {
        f->st = store_open_sqlite(f->path, &error);
        assert_non_null(f->st);
        assert_int_equal(store_schema_version(f->st), 3);
        struct store_account *a = NULL;
        assert_int_equal(store_account_find(f->st, "bob", "example.com", &a, NULL), STORE_OK);
        store_account_free(&a);
        if (i == 0) store_close(&f->st);
    }
    /* A second store on the same file at the same time is fine, too. */
    struct store *st2 = store_open_sqlite(f->path, &error);
    assert_non_null(st2);
    assert_int_equal(store_account_find(st2, "bob", "example.com", NULL, NULL), STORE_OK);
    store_close(&st2);
}

static void test_newer_schema_refused(void **state)
{
    struct fixture *f = *state;
    store_close(&f->st);
    sqlite3 *db = raw_open(f->path);
    assert_int_equal(sqlite3_exec(db, "PRAGMA user_version = 99", NULL, NULL, NULL), SQLITE_OK);
    sqlite3_close(db);
    const char *error = NULL;
    assert_null(store_open_sqlite(f->path, &error));
    assert_non_null(error);
    assert_non_null(strstr(error, "99"));
}

/* A version 2 database (before domain types) gets the type column; its domains are local. */
static void test_migrate_domain_type(void **state)
{
    struct fixture *f = *state;
    add_domain(f->st, "old.example");
    store_close(&f->st);
    sqlite3 *db = raw_open(f->path);
    assert_int_equal(sqlite3_exec(db,
                                  "ALTER TABLE domains DROP COLUMN type; PRAGMA user_version = 2",
                                  NULL, NULL, NULL),
                     SQLITE_OK);
    sqlite3_close(db);
    const char *error = NULL;
    f->st = store_open_sqlite(f->path, &error);
    assert_non_null(f->st);
    assert_int_equal(store_schema_version(f->st), 3);
    struct store_domain *d = NULL;
    assert_int_equal(store_domain_find(f->st, "old.example", &d), STORE_OK);
    assert_int_equal(d->type, DOMAIN_LOCAL);
    store_domain_free(&d);

    assert_int_equal(store_domain_add_type(f->st, "Dial.Example", DOMAIN_ETRN, &error), STORE_OK);
    assert_int_equal(store_domain_find(f->st, "dial.example", &d), STORE_OK);
    assert_int_equal(d->type, DOMAIN_ETRN);
    store_domain_free(&d);
    /* no wildcard ETRN domains */
    assert_int_equal(store_domain_add_type(f->st, "*.dial.example", DOMAIN_ETRN, &error),
                     STORE_INVALID);
    struct store_domain **v = NULL;
    size_t n = 0;
    assert_int_equal(store_domain_list(f->st, &v, &n), STORE_OK);
    assert_int_equal(n, 2);
    assert_string_equal(v[0]->name, "dial.example");
    assert_int_equal(v[0]->type, DOMAIN_ETRN);
    assert_int_equal(v[1]->type, DOMAIN_LOCAL);
    store_domain_list_free(&v, n);
}

static void test_open_failure(void **state)
{
    const char *error = NULL;
    assert_null(store_open_sqlite("/nonexistent-dir-for-alkaid/accounts.db", &error));
    assert_non_null(error);
    error = NULL;
    assert_null(store_open_sqlite("", &error));
    assert_non_null(error);
}

/* ---- domains ---- */

static void test_domain_add_list_del(void **state)
{
    struct fixture *f = *state;
    const char *error = NULL;
    add_domain(f->st, "Example.COM");
    add_domain(f->st, "a.example.org");
    assert_int_equal(store_domain_add(f->st, "example.com", &error), STORE_EXISTS);
    assert_non_null(error);
    assert_int_equal(store_domain_add(f->st, "EXAMPLE.COM", &error), STORE_EXISTS);

    static const char *const invalid[] = {
        "",
        "example..com",
        "-example.com",
        "example.com.",
        ".example.com",
        "a/b.com",
        "../x",
        "a b.com",
        "*",
        "*.*",
        "example.*",
        "forward",
        "FORWARD",
        "a'b.com",
        "x;DROP TABLE domains",
    };
    for (size_t i = 0; i < sizeof(invalid) / sizeof(invalid[0]); i++) {
        error = NULL;
        assert_int_equal(store_domain_add(f->st, invalid[i], &error), STORE_INVALID);
        assert_non_null(error);
    }
    assert_int_equal(store_domain_add(f->st, NULL, &error), STORE_INVALID);

    add_user(f->st, "bob", "example.com");

    struct store_domain **v = NULL;
    size_t n = 0;
    assert_int_equal(store_domain_list(f->st, &v, &n), STORE_OK);
    assert_int_equal(n, 2);
    assert_string_equal(v[0]->name, "a.example.org");
    assert_int_equal(v[0]->accounts, 0);
    assert_string_equal(v[1]->name, "example.com");
    assert_string_equal(v[1]->dir, "example.com");
    assert_null(v[1]->catchall);
    assert_int_equal(v[1]->accounts, 1);
    store_domain_list_free(&v, n);
    assert_null(v);

    assert_int_equal(store_domain_del(f->st, "nosuch.example", false, &error), STORE_NOTFOUND);
    assert_int_equal(store_domain_del(f->st, "a..b", false, &error), STORE_INVALID);
    assert_int_equal(store_domain_del(f->st, "A.Example.ORG", false, &error), STORE_OK);
    assert_int_equal(store_domain_list(f->st, &v, &n), STORE_OK);
    assert_int_equal(n, 1);
    store_domain_list_free(&v, n);
}

static void test_domain_del_force(void **state)
{
    struct fixture *f = *state;
    const char *error = NULL;
    add_domain(f->st, "example.com");
    add_domain(f->st, "other.com");
    add_user(f->st, "bob", "example.com");
    add_user(f->st, "carol", "other.com");
    char *t[] = {"bob@example.com", "x@remote.example"};
    assert_int_equal(add_alias(f->st, "all", "example.com", t, 2, &error), STORE_OK);

    assert_int_equal(store_domain_del(f->st, "example.com", false, &error), STORE_NOTEMPTY);
    assert_non_null(error);
    assert_int_equal(store_account_find(f->st, "bob", "example.com", NULL, NULL), STORE_OK);

    assert_int_equal(store_domain_del(f->st, "example.com", true, &error), STORE_OK);
    assert_int_equal(store_domain_find(f->st, "example.com", &(struct store_domain *){NULL}),
                     STORE_NOTFOUND);
    assert_int_equal(store_account_find(f->st, "bob", "example.com", NULL, NULL), STORE_NOTFOUND);

    /* Its accounts and targets went with it; the other domain's did not. */
    sqlite3 *db = raw_open(f->path);
    assert_int_equal(raw_int(db, "SELECT count(*) FROM accounts"), 1);
    assert_int_equal(raw_int(db, "SELECT count(*) FROM targets"), 0);
    sqlite3_close(db);
    assert_int_equal(store_account_find(f->st, "carol", "other.com", NULL, NULL), STORE_OK);

    /* Deleting an empty domain needs no force. */
    assert_int_equal(store_account_del(f->st, "carol", "other.com", &error), STORE_OK);
    assert_int_equal(store_domain_del(f->st, "other.com", false, &error), STORE_OK);
}

static void test_catchall(void **state)
{
    struct fixture *f = *state;
    const char *error = NULL;
    struct store_domain *d = NULL;
    add_domain(f->st, "example.com");

    assert_int_equal(
        store_domain_set_catchall(f->st, "example.com", "postmaster@example.com", &error),
        STORE_OK);
    assert_int_equal(store_domain_find(f->st, "example.com", &d), STORE_OK);
    assert_string_equal(d->catchall, "postmaster@example.com");
    store_domain_free(&d);

    assert_int_equal(store_domain_set_catchall(f->st, "example.com", "NULL", &error), STORE_OK);
    assert_int_equal(store_domain_find(f->st, "EXAMPLE.com", &d), STORE_OK);
    assert_string_equal(d->catchall, "null");
    store_domain_free(&d);

    static const char *const invalid[] = {"postmaster", "a b@c.com", "<a@b.com>", "a@b@c.com",
                                          "@b.com",     "a@",        "a,b@c.com", ""};
    for (size_t i = 0; i < sizeof(invalid) / sizeof(invalid[0]); i++)
        assert_int_equal(store_domain_set_catchall(f->st, "example.com", invalid[i], &error),
                         STORE_INVALID);

    assert_int_equal(store_domain_set_catchall(f->st, "example.com", NULL, &error), STORE_OK);
    assert_int_equal(store_domain_find(f->st, "example.com", &d), STORE_OK);
    assert_null(d->catchall);
    store_domain_free(&d);

    assert_int_equal(store_domain_set_catchall(f->st, "nosuch.com", "null", &error),
                     STORE_NOTFOUND);
}

static void test_wildcard_domains(void **state)
{
    struct fixture *f = *state;
    struct store_domain *d = NULL;
    add_domain(f->st, "*.example.com");
    add_domain(f->st, "*.mail.example.com");
    add_domain(f->st, "example.com");
    add_domain(f->st, "*example.org");
    add_domain(f->st, "*.Sub.Example.NET");

    static const struct {
        const char *domain;
        const char *want; /* NULL: not local */
    } cases[] = {
        {"example.com", "example.com"},
        {"EXAMPLE.COM", "example.com"},
        {"a.example.com", "*.example.com"},
        {"a.b.example.com", "*.example.com"},
        {"x.mail.example.com", "*.mail.example.com"},
        {"X.MAIL.Example.Com", "*.mail.example.com"},
        {"mail.example.com", "*.example.com"},
        {"example.org", "*example.org"},
        {"myexample.org", "*example.org"},
        {"a.sub.example.net", "*.sub.example.net"},
        {"sub.example.net", NULL},
        {"example.net", NULL},
        {"example.com.evil", NULL},
        {"badexample.com", NULL},
        {"", NULL},
        {"a/b.example.com", NULL},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        enum store_result r = store_domain_find(f->st, cases[i].domain, &d);
        if (cases[i].want == NULL) {
            assert_int_equal(r, STORE_NOTFOUND);
            assert_null(d);
        } else {
            assert_int_equal(r, STORE_OK);
            assert_string_equal(d->name, cases[i].want);
            store_domain_free(&d);
        }
    }

    /* An account in a wildcard domain answers for every matching name. */
    add_user(f->st, "bob", "*.example.com");
    struct store_account *a = NULL;
    assert_int_equal(store_account_find(f->st, "Bob", "x.Example.com", &a, &d), STORE_OK);
    assert_string_equal(a->domain, "*.example.com");
    assert_string_equal(a->domain_dir, "%.example.com");
    assert_string_equal(d->name, "*.example.com");
    assert_string_equal(d->dir, "%.example.com");
    store_account_free(&a);
    store_domain_free(&d);
    /* ...but not where a longer pattern (or the exact name) wins. */
    assert_int_equal(store_account_find(f->st, "bob", "x.mail.example.com", &a, &d),
                     STORE_NOTFOUND);
    assert_null(a);
    assert_string_equal(d->name, "*.mail.example.com");
    store_domain_free(&d);
    assert_int_equal(store_account_find(f->st, "bob", "example.com", &a, &d), STORE_NOTFOUND);
    store_domain_free(&d);
}

/* ---- accounts ---- */

static void test_account_add_find(void **state)
{
    struct fixture *f = *state;
    const char *error = NULL;
    add_domain(f->st, "example.com");

    struct store_account u = {.localpart = "Bob.Smith",
                              .domain = "EXAMPLE.com",
                              .type = ACCOUNT_USER,
                              .password_hash = TEST_HASH,
                              .admin = true,
                              .quota = 500ull << 20};
    assert_int_equal(store_account_add(f->st, &u, &error), STORE_OK);
    assert_int_equal(store_account_add(f->st, &u, &error), STORE_EXISTS);
    assert_non_null(error);
    u.localpart = "BOB.SMITH";
    assert_int_equal(store_account_add(f->st, &u, &error), STORE_EXISTS);

    struct store_account *a = NULL;
    struct store_domain *d = NULL;
    assert_int_equal(store_account_find(f->st, "bob.SMITH", "Example.Com", &a, &d), STORE_OK);
    assert_string_equal(a->localpart, "bob.smith");
    assert_string_equal(a->domain, "example.com");
    assert_string_equal(a->domain_dir, "example.com");
    assert_int_equal(a->type, ACCOUNT_USER);
    assert_string_equal(a->password_hash, TEST_HASH);
    assert_true(a->admin);
    assert_int_equal(a->quota, 500ull << 20);
    assert_int_equal(a->ntargets, 0);
    assert_false(a->keep_copy);
    assert_string_equal(d->name, "example.com");
    assert_int_equal(d->accounts, 1);
    store_account_free(&a);
    store_domain_free(&d);
    assert_null(a);

    /* Unknown local part of a local domain: NOTFOUND, and the domain is given. */
    assert_int_equal(store_account_find(f->st, "nobody", "example.com", &a, &d), STORE_NOTFOUND);
    assert_null(a);
    assert_non_null(d);
    assert_string_equal(d->name, "example.com");
    store_domain_free(&d);
    /* A local part no account can have: still NOTFOUND with the domain (catch-all). */
    assert_int_equal(store_account_find(f->st, "a b/../c", "example.com", &a, &d), STORE_NOTFOUND);
    assert_non_null(d);
    store_domain_free(&d);
    assert_int_equal(store_account_find(f->st, "a b", "example.com", NULL, NULL), STORE_NOTFOUND);
    /* Not a local domain. */
    assert_int_equal(store_account_find(f->st, "bob.smith", "example.org", &a, &d), STORE_NOTFOUND);
    assert_null(d);
    assert_int_equal(store_account_find(f->st, "bob.smith", "[192.0.2.1]", &a, &d), STORE_NOTFOUND);
    assert_null(d);
    /* Outputs are optional. */
    assert_int_equal(store_account_find(f->st, "bob.smith", "example.com", NULL, NULL), STORE_OK);

    /* The domain must exist by its exact name. */
    u.localpart = "carol";
    u.domain = "nosuch.example";
    assert_int_equal(store_account_add(f->st, &u, &error), STORE_NOTFOUND);
    assert_non_null(error);
}

static void test_account_add_invalid(void **state)
{
    struct fixture *f = *state;
    const char *error = NULL;
    add_domain(f->st, "example.com");

    static const char *const bad_local[] = {"",   ".bob",  "bob.", "bo..b", "bo/b", "bo b", "bo@b",
                                            "..", "bo\nb", "bo'b", "a\"b",  "b\\o", "x;y"};
    for (size_t i = 0; i < sizeof(bad_local) / sizeof(bad_local[0]); i++) {
        struct store_account u = {.localpart = (char *)bad_local[i],
                                  .domain = "example.com",
                                  .type = ACCOUNT_USER,
                                  .password_hash = TEST_HASH};
        error = NULL;
        assert_int_equal(store_account_add(f->st, &u, &error), STORE_INVALID);
        assert_non_null(error);
    }
    struct store_account u = {.localpart = "bob",
                              .domain = "ex ample.com",
                              .type = ACCOUNT_USER,
                              .password_hash = TEST_HASH};
    assert_int_equal(store_account_add(f->st, &u, &error), STORE_INVALID);

    /* A user needs a hash without spaces or control characters. */
    u.domain = "example.com";
    u.password_hash = NULL;
    assert_int_equal(store_account_add(f->st, &u, &error), STORE_INVALID);
    u.password_hash = "";
    assert_int_equal(store_account_add(f->st, &u, &error), STORE_INVALID);
    u.password_hash = "a b";
    assert_int_equal(store_account_add(f->st, &u, &error), STORE_INVALID);
    u.password_hash = TEST_HASH;
    u.quota = UINT64_MAX;
    assert_int_equal(store_account_add(f->st, &u, &error), STORE_INVALID);
    u.type = (enum account_type)7;
    u.quota = 0;
    assert_int_equal(store_account_add(f->st, &u, &error), STORE_INVALID);
    assert_int_equal(store_account_add(f->st, NULL, &error), STORE_INVALID);

    /* Aliases: at least one target, no admin, no quota. */
    assert_int_equal(add_alias(f->st, "all", "example.com", NULL, 0, &error), STORE_INVALID);
    char *t1[] = {"bob@example.com"};
    struct store_account al = {.localpart = "all",
                               .domain = "example.com",
                               .type = ACCOUNT_ALIAS,
                               .targets = t1,
                               .ntargets = 1,
                               .admin = true};
    assert_int_equal(store_account_add(f->st, &al, &error), STORE_INVALID);
    al.admin = false;
    al.quota = 1;
    assert_int_equal(store_account_add(f->st, &al, &error), STORE_INVALID);

    static const char *const bad_target[] = {
        "bob",         "bob@",        "@example.com", "a@b@c.com",   "a b@c.com", "<a@b.com>",
        "a@b.com,c@d", "a@b.com\r\n", "a\t@b.com",    "\"a\"@b.com", "a@b.com;x", "",
        "nul",         "a(b)@c.com",  "a\\b@c.com",
    };
    for (size_t i = 0; i < sizeof(bad_target) / sizeof(bad_target[0]); i++) {
        char *t[] = {"ok@example.net", (char *)bad_target[i]};
        error = NULL;
        assert_int_equal(add_alias(f->st, "all", "example.com", t, 2, &error), STORE_INVALID);
        assert_non_null(error);
    }
    char long_target[400];
    memset(long_target, 'a', sizeof(long_target) - 1);
    long_target[sizeof(long_target) - 1] = '\0';
    long_target[10] = '@';
    char *tl[] = {long_target};
    assert_int_equal(add_alias(f->st, "all", "example.com", tl, 1, &error), STORE_INVALID);

    /* An account cannot be its own target. */
    char *self[] = {"All@Example.COM"};
    assert_int_equal(add_alias(f->st, "all", "example.com", self, 1, &error), STORE_INVALID);

    /* Nothing was stored by any of that. */
    struct store_account **v = NULL;
    size_t n = 0;
    assert_int_equal(store_account_list(f->st, NULL, &v, &n), STORE_OK);
    assert_int_equal(n, 0);
    store_account_list_free(&v, n);
}

static void test_alias_targets(void **state)
{
    struct fixture *f = *state;
    const char *error = NULL;
    add_domain(f->st, "example.com");
    add_user(f->st, "tod", "example.com");

    char *t[] = {"tod@example.com", "Stacia@Example.COM", "niclas@skyweb.se", "NULL",
                 "TOD@example.com", "stacia@example.com"};
    assert_int_equal(add_alias(f->st, "all", "example.com", t, 6, &error), STORE_OK);
    struct store_account *a = NULL;
    assert_int_equal(store_account_find(f->st, "ALL", "example.com", &a, NULL), STORE_OK);
    assert_int_equal(a->type, ACCOUNT_ALIAS);
    assert_null(a->password_hash);
    assert_false(a->admin);
    /* Order kept, duplicates dropped, "null" normalised, other case kept as given. */
    assert_int_equal(a->ntargets, 4);
    assert_string_equal(a->targets[0], "tod@example.com");
    assert_string_equal(a->targets[1], "Stacia@Example.COM");
    assert_string_equal(a->targets[2], "niclas@skyweb.se");
    assert_string_equal(a->targets[3], "null");
    store_account_free(&a);

    /* Replace; an alias cannot lose all its targets. */
    char *t2[] = {"webmaster@example.org"};
    assert_int_equal(store_account_set_targets(f->st, "all", "example.com", t2, 1, true, &error),
                     STORE_OK);
    assert_int_equal(store_account_find(f->st, "all", "example.com", &a, NULL), STORE_OK);
    assert_int_equal(a->ntargets, 1);
    assert_string_equal(a->targets[0], "webmaster@example.org");
    store_account_free(&a);
    assert_int_equal(store_account_set_targets(f->st, "all", "example.com", NULL, 0, false, &error),
                     STORE_INVALID);
    assert_non_null(error);

    /* Aliases have no password, admin flag or quota. */
    assert_int_equal(store_account_set_password(f->st, "all", "example.com", TEST_HASH),
                     STORE_INVALID);
    assert_int_equal(store_account_set_admin(f->st, "all", "example.com", true), STORE_INVALID);
    assert_int_equal(store_account_set_admin(f->st, "all", "example.com", false), STORE_OK);
    assert_int_equal(store_account_set_quota(f->st, "all", "example.com", 1024), STORE_INVALID);

    /* The target limit. */
    char **many = xcalloc(STORE_MAX_TARGETS + 1, sizeof(*many));
    for (size_t i = 0; i <= STORE_MAX_TARGETS; i++)
        many[i] = xasprintf("user%zu@example.net", i);
    assert_int_equal(store_account_set_targets(f->st, "all", "example.com", many,
                                               STORE_MAX_TARGETS + 1, false, &error),
                     STORE_INVALID);
    assert_int_equal(store_account_set_targets(f->st, "all", "example.com", many, STORE_MAX_TARGETS,
                                               false, &error),
                     STORE_OK);
    assert_int_equal(store_account_find(f->st, "all", "example.com", &a, NULL), STORE_OK);
    assert_int_equal(a->ntargets, STORE_MAX_TARGETS);
    assert_string_equal(a->targets[999], "user999@example.net");
    store_account_free(&a);
    for (size_t i = 0; i <= STORE_MAX_TARGETS; i++)
        free(many[i]);
    free(many);
}

static void test_user_settings(void **state)
{
    struct fixture *f = *state;
    const char *error = NULL;
    struct store_account *a = NULL;
    add_domain(f->st, "example.com");
    add_user(f->st, "bob", "example.com");

    assert_int_equal(store_account_set_password(f->st, "BOB", "example.com", "$new$hash"),
                     STORE_OK);
    assert_int_equal(store_account_set_password(f->st, "bob", "example.com", ""), STORE_INVALID);
    assert_int_equal(store_account_set_password(f->st, "bob", "example.com", NULL), STORE_INVALID);
    assert_int_equal(store_account_set_admin(f->st, "bob", "EXAMPLE.com", true), STORE_OK);
    assert_int_equal(store_account_set_quota(f->st, "bob", "example.com", 2ull << 30), STORE_OK);
    assert_int_equal(store_account_set_quota(f->st, "bob", "example.com", UINT64_MAX),
                     STORE_INVALID);
    assert_int_equal(store_account_find(f->st, "bob", "example.com", &a, NULL), STORE_OK);
    assert_string_equal(a->password_hash, "$new$hash");
    assert_true(a->admin);
    assert_int_equal(a->quota, 2ull << 30);
    store_account_free(&a);

    assert_int_equal(store_account_set_admin(f->st, "bob", "example.com", false), STORE_OK);
    assert_int_equal(store_account_set_quota(f->st, "bob", "example.com", 0), STORE_OK);

    /* Forwarding, with and without keeping a copy, and off again. */
    char *fw[] = {"bob@elsewhere.example", "null"};
    assert_int_equal(store_account_set_targets(f->st, "bob", "example.com", fw, 2, true, &error),
                     STORE_OK);
    assert_int_equal(store_account_find(f->st, "bob", "example.com", &a, NULL), STORE_OK);
    assert_false(a->admin);
    assert_int_equal(a->quota, 0);
    assert_int_equal(a->ntargets, 2);
    assert_true(a->keep_copy);
    store_account_free(&a);
    assert_int_equal(store_account_set_targets(f->st, "bob", "example.com", fw, 1, false, &error),
                     STORE_OK);
    assert_int_equal(store_account_find(f->st, "bob", "example.com", &a, NULL), STORE_OK);
    assert_int_equal(a->ntargets, 1);
    assert_false(a->keep_copy);
    store_account_free(&a);
    assert_int_equal(store_account_set_targets(f->st, "bob", "example.com", NULL, 0, true, &error),
                     STORE_OK);
    assert_int_equal(store_account_find(f->st, "bob", "example.com", &a, NULL), STORE_OK);
    assert_int_equal(a->ntargets, 0);
    assert_false(a->keep_copy);
    assert_string_equal(a->password_hash, "$new$hash");
    store_account_free(&a);
    char *self[] = {"bob@example.com"};
    assert_int_equal(store_account_set_targets(f->st, "bob", "example.com", self, 1, true, &error),
                     STORE_INVALID);

    /* Unknown accounts and domains, invalid names. */
    assert_int_equal(store_account_set_admin(f->st, "nobody", "example.com", true), STORE_NOTFOUND);
    assert_int_equal(store_account_set_quota(f->st, "bob", "nosuch.example", 1), STORE_NOTFOUND);
    assert_int_equal(store_account_set_password(f->st, "bob", "nosuch.example", "x"),
                     STORE_NOTFOUND);
    assert_int_equal(
        store_account_set_targets(f->st, "nobody", "example.com", fw, 1, false, &error),
        STORE_NOTFOUND);
    assert_int_equal(store_account_set_admin(f->st, "../bob", "example.com", true), STORE_INVALID);
    assert_int_equal(store_account_set_quota(f->st, "bob", "exa mple.com", 1), STORE_INVALID);
}

static void test_account_del_and_list(void **state)
{
    struct fixture *f = *state;
    const char *error = NULL;
    add_domain(f->st, "b.example");
    add_domain(f->st, "a.example");
    add_user(f->st, "zed", "a.example");
    add_user(f->st, "carol", "b.example");
    add_user(f->st, "bob", "a.example");
    char *t[] = {"bob@a.example", "carol@b.example"};
    assert_int_equal(add_alias(f->st, "team", "a.example", t, 2, &error), STORE_OK);

    struct store_account **v = NULL;
    size_t n = 0;
    assert_int_equal(store_account_list(f->st, NULL, &v, &n), STORE_OK);
    assert_int_equal(n, 4);
    assert_string_equal(v[0]->localpart, "bob");
    assert_string_equal(v[0]->domain, "a.example");
    assert_string_equal(v[1]->localpart, "team");
    assert_int_equal(v[1]->type, ACCOUNT_ALIAS);
    assert_int_equal(v[1]->ntargets, 2);
    assert_string_equal(v[1]->targets[1], "carol@b.example");
    assert_string_equal(v[2]->localpart, "zed");
    assert_string_equal(v[3]->localpart, "carol");
    assert_string_equal(v[3]->domain, "b.example");
    store_account_list_free(&v, n);

    assert_int_equal(store_account_list(f->st, "B.Example", &v, &n), STORE_OK);
    assert_int_equal(n, 1);
    assert_string_equal(v[0]->localpart, "carol");
    store_account_list_free(&v, n);
    assert_int_equal(store_account_list(f->st, "nosuch.example", &v, &n), STORE_NOTFOUND);
    assert_null(v);
    assert_int_equal(n, 0);
    assert_int_equal(store_account_list(f->st, "bad..name", &v, &n), STORE_INVALID);

    assert_int_equal(store_account_del(f->st, "TEAM", "a.example", &error), STORE_OK);
    assert_int_equal(store_account_del(f->st, "team", "a.example", &error), STORE_NOTFOUND);
    assert_non_null(error);
    assert_int_equal(store_account_del(f->st, "bob", "nosuch.example", &error), STORE_NOTFOUND);
    assert_int_equal(store_account_del(f->st, "b/ob", "a.example", &error), STORE_INVALID);
    assert_int_equal(store_account_find(f->st, "team", "a.example", NULL, NULL), STORE_NOTFOUND);
    sqlite3 *db = raw_open(f->path);
    assert_int_equal(raw_int(db, "SELECT count(*) FROM targets"), 0);
    sqlite3_close(db);

    assert_int_equal(store_account_list(f->st, "a.example", &v, &n), STORE_OK);
    assert_int_equal(n, 2);
    store_account_list_free(&v, n);
}

/* ---- threads ---- */

#define READERS          8
#define READS_PER_THREAD 1500
#define WRITES           150

struct concurrency {
    struct store *st;
    atomic_int stop;
    atomic_int errors;
    atomic_int tempfails;
    atomic_int found;
};

static void *reader(void *arg)
{
    struct concurrency *c = arg;
    for (int i = 0; i < READS_PER_THREAD; i++) {
        struct store_account *a = NULL;
        struct store_domain *d = NULL;
        char local[32];
        snprintf(local, sizeof(local), "%s", (i % 2) ? "bob" : "list");
        enum store_result r = store_account_find(c->st, local, "x.example.com", &a, &d);
        if (r == STORE_OK) {
            atomic_fetch_add(&c->found, 1);
            /* A reader sees a whole write or none of it. */
            if (a->type == ACCOUNT_ALIAS && a->ntargets != 3) atomic_fetch_add(&c->errors, 1);
            if (d == NULL || strcmp(d->name, "*.example.com") != 0) atomic_fetch_add(&c->errors, 1);
        } else if (r == STORE_TEMPFAIL) {
            atomic_fetch_add(&c->tempfails, 1);
        } else if (r != STORE_NOTFOUND || d == NULL) {
            atomic_fetch_add(&c->errors, 1);
        }
        store_account_free(&a);
        store_domain_free(&d);
    }
    return NULL;
}

static void *writer(void *arg)
{
    struct concurrency *c = arg;
    char *t[] = {"a@example.net", "b@example.net", "c@example.net"};
    for (int i = 0; i < WRITES && !atomic_load(&c->stop); i++) {
        const char *error = NULL;
        struct store_account al = {.localpart = "list",
                                   .domain = "*.example.com",
                                   .type = ACCOUNT_ALIAS,
                                   .targets = t,
                                   .ntargets = 3};
        if (store_account_add(c->st, &al, &error) != STORE_OK) atomic_fetch_add(&c->errors, 1);
        if (store_account_set_quota(c->st, "bob", "*.example.com", (uint64_t)i) != STORE_OK)
            atomic_fetch_add(&c->errors, 1);
        if (store_account_del(c->st, "list", "*.example.com", &error) != STORE_OK)
            atomic_fetch_add(&c->errors, 1);
    }
    return NULL;
}

static void test_concurrent_lookups(void **state)
{
    struct fixture *f = *state;
    add_domain(f->st, "*.example.com");
    add_user(f->st, "bob", "*.example.com");

    struct concurrency c = {.st = f->st};
    pthread_t readers[READERS], w;
    assert_int_equal(pthread_create(&w, NULL, writer, &c), 0);
    for (int i = 0; i < READERS; i++)
        assert_int_equal(pthread_create(&readers[i], NULL, reader, &c), 0);
    for (int i = 0; i < READERS; i++)
        pthread_join(readers[i], NULL);
    atomic_store(&c.stop, 1);
    pthread_join(w, NULL);

    assert_int_equal(atomic_load(&c.errors), 0);
    assert_int_equal(atomic_load(&c.tempfails), 0);
    assert_true(atomic_load(&c.found) >= READERS * READS_PER_THREAD / 2);
}

/* ---- locked database ---- */

static void test_tempfail_when_locked(void **state)
{
    struct fixture *f = *state;
    const char *error = NULL;
    add_domain(f->st, "example.com");
    add_user(f->st, "bob", "example.com");
    assert_int_equal(store_sqlite_set_busy_timeout(f->st, 100), 0);

    /* Another writer holds the write lock: changes fail temporarily, reads go on (WAL). */
    sqlite3 *db = raw_open(f->path);
    assert_int_equal(sqlite3_exec(db, "BEGIN IMMEDIATE", NULL, NULL, NULL), SQLITE_OK);
    error = NULL;
    assert_int_equal(store_domain_add(f->st, "other.example", &error), STORE_TEMPFAIL);
    assert_non_null(error);
    assert_int_equal(store_account_set_quota(f->st, "bob", "example.com", 1), STORE_TEMPFAIL);
    assert_int_equal(store_account_find(f->st, "bob", "example.com", NULL, NULL), STORE_OK);
    assert_int_equal(sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL), SQLITE_OK);
    assert_int_equal(store_domain_add(f->st, "other.example", &error), STORE_OK);

    /* An exclusive lock shuts out readers too: TEMPFAIL, never NOTFOUND. In WAL mode
     * another connection can take one only while this process has none open, which is
     * the case for a freshly opened store (its pool fills on demand). */
    store_close(&f->st);
    f->st = store_open_sqlite(f->path, &error);
    assert_non_null(f->st);
    assert_int_equal(store_sqlite_set_busy_timeout(f->st, 100), 0);
    assert_int_equal(raw_int(db, "SELECT count(*) FROM domains"), 2);
    assert_int_equal(sqlite3_exec(db,
                                  "PRAGMA locking_mode = EXCLUSIVE; BEGIN EXCLUSIVE;"
                                  " UPDATE domains SET catchall = NULL;",
                                  NULL, NULL, NULL),
                     SQLITE_OK);
    struct store_account *a = NULL;
    struct store_domain *d = NULL;
    assert_int_equal(store_account_find(f->st, "bob", "example.com", &a, &d), STORE_TEMPFAIL);
    assert_null(a);
    assert_null(d);
    assert_int_equal(store_account_find(f->st, "nobody", "example.com", &a, &d), STORE_TEMPFAIL);
    assert_null(d);
    assert_int_equal(store_domain_find(f->st, "example.com", &d), STORE_TEMPFAIL);
    assert_null(d);
    struct store_account **v = NULL;
    size_t n = 0;
    assert_int_equal(store_account_list(f->st, NULL, &v, &n), STORE_TEMPFAIL);
    assert_null(v);
    struct store_domain **dv = NULL;
    assert_int_equal(store_domain_list(f->st, &dv, &n), STORE_TEMPFAIL);
    assert_null(dv);
    error = NULL;
    assert_int_equal(store_account_del(f->st, "bob", "example.com", &error), STORE_TEMPFAIL);
    assert_non_null(error);
    assert_int_equal(store_account_set_admin(f->st, "bob", "example.com", true), STORE_TEMPFAIL);

    assert_int_equal(sqlite3_exec(db, "COMMIT", NULL, NULL, NULL), SQLITE_OK);
    sqlite3_close(db);

    /* Everything works again once the lock is gone. */
    assert_int_equal(store_account_find(f->st, "bob", "example.com", &a, &d), STORE_OK);
    store_account_free(&a);
    store_domain_free(&d);
    assert_int_equal(store_account_del(f->st, "bob", "example.com", &error), STORE_OK);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_migrate_from_empty, setup, teardown),
        cmocka_unit_test_setup_teardown(test_reopen, setup, teardown),
        cmocka_unit_test_setup_teardown(test_secret, setup, teardown),
        cmocka_unit_test_setup_teardown(test_newer_schema_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(test_migrate_domain_type, setup, teardown),
        cmocka_unit_test(test_open_failure),
        cmocka_unit_test_setup_teardown(test_domain_add_list_del, setup, teardown),
        cmocka_unit_test_setup_teardown(test_domain_del_force, setup, teardown),
        cmocka_unit_test_setup_teardown(test_catchall, setup, teardown),
        cmocka_unit_test_setup_teardown(test_wildcard_domains, setup, teardown),
        cmocka_unit_test_setup_teardown(test_account_add_find, setup, teardown),
        cmocka_unit_test_setup_teardown(test_account_add_invalid, setup, teardown),
        cmocka_unit_test_setup_teardown(test_alias_targets, setup, teardown),
        cmocka_unit_test_setup_teardown(test_user_settings, setup, teardown),
        cmocka_unit_test_setup_teardown(test_account_del_and_list, setup, teardown),
        cmocka_unit_test_setup_teardown(test_concurrent_lookups, setup, teardown),
        cmocka_unit_test_setup_teardown(test_tempfail_when_locked, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
