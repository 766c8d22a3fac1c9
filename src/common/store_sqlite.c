/* store_sqlite.c - the SQLite backend of the account store
 *
 * One database file (config/accounts.db by default) in WAL mode with synchronous=FULL and
 * foreign keys on. The schema is versioned with PRAGMA user_version: migrations[] is the
 * ordered list of changes, each applied in its own BEGIN IMMEDIATE transaction that
 * re-reads the version first, so two programs opening a new database at once do not
 * both apply it. A database newer than this program is refused.
 *
 * Threads: a pool of at most STORE_SQLITE_POOL_MAX connections, opened on first need; a
 * thread takes a free one or waits for one. Each connection keeps its prepared
 * statements. Reads run in a deferred transaction (one consistent snapshot per call),
 * writes in BEGIN IMMEDIATE. SQLITE_BUSY after the busy timeout, SQLITE_LOCKED, I/O
 * errors and anything else unexpected become STORE_TEMPFAIL.
 *
 * Error strings handed out through error_r live in thread-local storage and stay valid
 * until the calling thread's next store call.
 *
 * SECURITY: every statement is a constant string with ?N parameters; no value is ever
 * spliced into SQL (the only formatted statement is PRAGMA user_version with our own
 * migration number). The file is created with mode 0600 before SQLite opens it; the WAL
 * and shared-memory files get the same permissions from SQLite. Connections run with
 * SQLITE_DBCONFIG_DEFENSIVE and trusted_schema off.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <openssl/crypto.h>
#include <openssl/rand.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "address.h"
#include "store.h"
#include "store_backend.h"
#include "xalloc.h"

#define ERRBUF_SIZE 512

static const struct migration {
    int version;
    const char *sql;
} migrations[] = {
    {1, "CREATE TABLE domains ("
        "  id       INTEGER PRIMARY KEY,"
        "  name     TEXT NOT NULL UNIQUE COLLATE NOCASE,"
        "  catchall TEXT"
        ");"
        "CREATE TABLE accounts ("
        "  id            INTEGER PRIMARY KEY,"
        "  domain_id     INTEGER NOT NULL REFERENCES domains(id) ON DELETE CASCADE,"
        "  localpart     TEXT NOT NULL COLLATE NOCASE,"
        "  type          TEXT NOT NULL CHECK (type IN ('user', 'alias')),"
        "  password_hash TEXT,"
        "  admin         INTEGER NOT NULL DEFAULT 0 CHECK (admin IN (0, 1)),"
        "  quota         INTEGER NOT NULL DEFAULT 0 CHECK (quota >= 0),"
        "  keep_copy     INTEGER NOT NULL DEFAULT 0 CHECK (keep_copy IN (0, 1)),"
        "  UNIQUE (domain_id, localpart)"
        ");"
        "CREATE TABLE targets ("
        "  account_id INTEGER NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,"
        "  position   INTEGER NOT NULL,"
        "  address    TEXT NOT NULL,"
        "  PRIMARY KEY (account_id, position)"
        ") WITHOUT ROWID;"},
    /* secrets the services share, e.g. the key of SCRAM's fake salts (store_secret()) */
    {2, "CREATE TABLE settings ("
        "  name  TEXT PRIMARY KEY,"
        "  value BLOB NOT NULL"
        ") WITHOUT ROWID;"},
    /* a domain's type: 'local' (mailboxes here) or 'etrn' (queued for another server
     * until it asks with ETRN, RFC 1985) */
    {3, "ALTER TABLE domains ADD COLUMN type TEXT NOT NULL DEFAULT 'local'"
        " CHECK (type IN ('local', 'etrn'));"},
};
#define SCHEMA_LATEST (migrations[sizeof(migrations) / sizeof(migrations[0]) - 1].version)

enum stmt_id {
    S_BEGIN_READ,
    S_BEGIN_WRITE,
    S_COMMIT,
    S_ROLLBACK,
    S_DOMAIN_EXACT,
    S_DOMAIN_PATTERNS,
    S_DOMAIN_LIST,
    S_DOMAIN_INSERT,
    S_DOMAIN_DELETE,
    S_DOMAIN_CATCHALL,
    S_ACCOUNT_GET,
    S_ACCOUNT_LIST_DOMAIN,
    S_ACCOUNT_LIST_ALL,
    S_ACCOUNT_INSERT,
    S_ACCOUNT_DELETE,
    S_ACCOUNT_SET_PASSWORD,
    S_ACCOUNT_SET_ADMIN,
    S_ACCOUNT_SET_QUOTA,
    S_ACCOUNT_SET_KEEP,
    S_TARGETS_GET,
    S_TARGETS_DELETE,
    S_TARGETS_INSERT,
    S_SETTING_GET,
    S_SETTING_INSERT,
    S_COUNT
};

/* Columns: id, name, catchall, number of accounts, type. */
#define DOMAIN_COLS                                                                                \
    "SELECT d.id, d.name, d.catchall,"                                                             \
    " (SELECT count(*) FROM accounts a WHERE a.domain_id = d.id), d.type FROM domains d"
/* Columns: id, localpart, type, password_hash, admin, quota, keep_copy, domain name. */
#define ACCOUNT_COLS                                                                               \
    "SELECT a.id, a.localpart, a.type, a.password_hash, a.admin, a.quota, a.keep_copy, d.name"     \
    " FROM accounts a JOIN domains d ON d.id = a.domain_id"

static const char *const stmt_sql[S_COUNT] = {
    [S_BEGIN_READ] = "BEGIN",
    [S_BEGIN_WRITE] = "BEGIN IMMEDIATE",
    [S_COMMIT] = "COMMIT",
    [S_ROLLBACK] = "ROLLBACK",
    [S_DOMAIN_EXACT] = DOMAIN_COLS " WHERE d.name = ?1",
    [S_DOMAIN_PATTERNS] = DOMAIN_COLS " WHERE instr(d.name, '*') > 0"
                                      " ORDER BY length(d.name) DESC, d.name",
    [S_DOMAIN_LIST] = DOMAIN_COLS " ORDER BY d.name",
    [S_DOMAIN_INSERT] = "INSERT INTO domains (name, type) VALUES (?1, ?2)",
    [S_DOMAIN_DELETE] = "DELETE FROM domains WHERE id = ?1",
    [S_DOMAIN_CATCHALL] = "UPDATE domains SET catchall = ?2 WHERE id = ?1",
    [S_ACCOUNT_GET] = ACCOUNT_COLS " WHERE a.domain_id = ?1 AND a.localpart = ?2",
    [S_ACCOUNT_LIST_DOMAIN] = ACCOUNT_COLS " WHERE a.domain_id = ?1 ORDER BY a.localpart",
    [S_ACCOUNT_LIST_ALL] = ACCOUNT_COLS " ORDER BY d.name, a.localpart",
    [S_ACCOUNT_INSERT] = "INSERT INTO accounts"
                         " (domain_id, localpart, type, password_hash, admin, quota, keep_copy)"
                         " VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
    [S_ACCOUNT_DELETE] = "DELETE FROM accounts WHERE id = ?1",
    [S_ACCOUNT_SET_PASSWORD] = "UPDATE accounts SET password_hash = ?2 WHERE id = ?1",
    [S_ACCOUNT_SET_ADMIN] = "UPDATE accounts SET admin = ?2 WHERE id = ?1",
    [S_ACCOUNT_SET_QUOTA] = "UPDATE accounts SET quota = ?2 WHERE id = ?1",
    [S_ACCOUNT_SET_KEEP] = "UPDATE accounts SET keep_copy = ?2 WHERE id = ?1",
    [S_TARGETS_GET] = "SELECT address FROM targets WHERE account_id = ?1 ORDER BY position",
    [S_TARGETS_DELETE] = "DELETE FROM targets WHERE account_id = ?1",
    [S_TARGETS_INSERT] = "INSERT INTO targets (account_id, position, address) VALUES (?1, ?2, ?3)",
    [S_SETTING_GET] = "SELECT value FROM settings WHERE name = ?1",
    [S_SETTING_INSERT] = "INSERT OR IGNORE INTO settings (name, value) VALUES (?1, ?2)",
};

enum slot_state { SLOT_CLOSED, SLOT_IDLE, SLOT_BUSY };

struct conn {
    sqlite3 *db;
    sqlite3_stmt *stmt[S_COUNT];
    enum slot_state state;
    int busy_ms;
};

struct sq {
    char *path;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    struct conn pool[STORE_SQLITE_POOL_MAX];
    int busy_ms;
    int version;
};

static const struct store_ops sqlite_ops;

static _Thread_local char errbuf[ERRBUF_SIZE];

static void set_error(const char **error_r, const char *msg)
{
    if (error_r != NULL) *error_r = msg;
}

/* Any SQLite failure: the message in the thread-local buffer, STORE_TEMPFAIL, except a
 * constraint violation, which is a refusal of the data rather than a failure. */
static enum store_result db_fail(struct conn *c, int rc, const char **error_r)
{
    snprintf(errbuf, sizeof(errbuf), "account database: %s",
             c->db != NULL ? sqlite3_errmsg(c->db) : sqlite3_errstr(rc));
    set_error(error_r, errbuf);
    if (rc == SQLITE_CONSTRAINT_UNIQUE || rc == SQLITE_CONSTRAINT_PRIMARYKEY) {
        set_error(error_r, "already exists");
        return STORE_EXISTS;
    }
    if ((rc & 0xff) == SQLITE_CONSTRAINT) return STORE_INVALID;
    return STORE_TEMPFAIL;
}

/* ---- connections and statements ---- */

static void conn_close(struct conn *c)
{
    for (int i = 0; i < S_COUNT; i++) {
        sqlite3_finalize(c->stmt[i]);
        c->stmt[i] = NULL;
    }
    sqlite3_close(c->db);
    c->db = NULL;
}

static int conn_open(struct sq *q, struct conn *c, int busy_ms, const char **error_r)
{
    int rc = sqlite3_open_v2(q->path, &c->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX, NULL);
    if (rc != SQLITE_OK) {
        snprintf(errbuf, sizeof(errbuf), "cannot open account database %s: %s", q->path,
                 c->db != NULL ? sqlite3_errmsg(c->db) : sqlite3_errstr(rc));
        set_error(error_r, errbuf);
        conn_close(c);
        return -1;
    }
    sqlite3_extended_result_codes(c->db, 1);
    sqlite3_busy_timeout(c->db, busy_ms);
    c->busy_ms = busy_ms;
    sqlite3_db_config(c->db, SQLITE_DBCONFIG_DEFENSIVE, 1, (int *)NULL);
    sqlite3_db_config(c->db, SQLITE_DBCONFIG_TRUSTED_SCHEMA, 0, (int *)NULL);
    rc = sqlite3_exec(c->db, "PRAGMA foreign_keys = ON; PRAGMA synchronous = FULL;", NULL, NULL,
                      NULL);
    if (rc != SQLITE_OK) {
        db_fail(c, rc, error_r);
        conn_close(c);
        return -1;
    }
    return 0;
}

/* Takes a connection from the pool, opening one if none is free and the pool is not
 * full, otherwise waiting for one to come back. */
static struct conn *conn_get(struct sq *q, const char **error_r)
{
    pthread_mutex_lock(&q->mu);
    for (;;) {
        struct conn *closed = NULL;
        for (int i = 0; i < STORE_SQLITE_POOL_MAX; i++) {
            struct conn *c = &q->pool[i];
            if (c->state == SLOT_IDLE) {
                c->state = SLOT_BUSY;
                int ms = q->busy_ms;
                pthread_mutex_unlock(&q->mu);
                if (c->busy_ms != ms) {
                    sqlite3_busy_timeout(c->db, ms);
                    c->busy_ms = ms;
                }
                return c;
            }
            if (c->state == SLOT_CLOSED && closed == NULL) closed = c;
        }
        if (closed != NULL) {
            closed->state = SLOT_BUSY;
            int ms = q->busy_ms;
            pthread_mutex_unlock(&q->mu);
            if (conn_open(q, closed, ms, error_r) == 0) return closed;
            pthread_mutex_lock(&q->mu);
            closed->state = SLOT_CLOSED;
            pthread_cond_signal(&q->cv);
            pthread_mutex_unlock(&q->mu);
            return NULL;
        }
        pthread_cond_wait(&q->cv, &q->mu);
    }
}

static void conn_put(struct sq *q, struct conn *c)
{
    bool broken = false;
    if (!sqlite3_get_autocommit(c->db)) {
        /* A transaction survived a failed rollback: do not hand it to another caller. */
        if (sqlite3_exec(c->db, "ROLLBACK", NULL, NULL, NULL) != SQLITE_OK ||
            !sqlite3_get_autocommit(c->db))
            broken = true;
    }
    if (broken) conn_close(c);
    pthread_mutex_lock(&q->mu);
    c->state = broken ? SLOT_CLOSED : SLOT_IDLE;
    pthread_cond_signal(&q->cv);
    pthread_mutex_unlock(&q->mu);
}

/* The cached prepared statement id of c, reset and with no bindings. */
static sqlite3_stmt *stmt(struct conn *c, enum stmt_id id, int *rc_r)
{
    if (c->stmt[id] == NULL) {
        *rc_r = sqlite3_prepare_v3(c->db, stmt_sql[id], -1, SQLITE_PREPARE_PERSISTENT, &c->stmt[id],
                                   NULL);
        if (*rc_r != SQLITE_OK) return NULL;
    }
    *rc_r = SQLITE_OK;
    return c->stmt[id];
}

static void stmt_done(sqlite3_stmt *s)
{
    sqlite3_reset(s);
    sqlite3_clear_bindings(s);
}

/* Runs a statement that returns no rows. SQLITE_OK or the error. */
static int stmt_run(sqlite3_stmt *s)
{
    int rc = sqlite3_step(s);
    stmt_done(s);
    return rc == SQLITE_DONE || rc == SQLITE_ROW ? SQLITE_OK : rc;
}

static int bind_text(sqlite3_stmt *s, int i, const char *v)
{
    return v != NULL ? sqlite3_bind_text(s, i, v, -1, SQLITE_STATIC) : sqlite3_bind_null(s, i);
}

static char *col_dup(sqlite3_stmt *s, int i)
{
    const unsigned char *t = sqlite3_column_text(s, i);
    return t != NULL ? xstrdup((const char *)t) : NULL;
}

/* Runs s (a statement without rows, its parameters bound) as stmt_run() does; s NULL
 * means stmt() could not prepare it, and rc says why. STORE_OK, or what db_fail() makes
 * of the error. */
static enum store_result run_result(struct conn *c, sqlite3_stmt *s, int rc, const char **error_r)
{
    if (s != NULL) rc = stmt_run(s);
    return rc == SQLITE_OK ? STORE_OK : db_fail(c, rc, error_r);
}

/* Runs a statement without parameters or rows (BEGIN, COMMIT, ...). */
static enum store_result exec_id(struct conn *c, enum stmt_id id, const char **error_r)
{
    int rc;
    sqlite3_stmt *s = stmt(c, id, &rc);
    return run_result(c, s, rc, error_r);
}

/* Statement id about one row, with the row's id bound to ?1 (NULL as stmt()). */
static sqlite3_stmt *stmt_row(struct conn *c, enum stmt_id id, sqlite3_int64 row, int *rc_r)
{
    sqlite3_stmt *s = stmt(c, id, rc_r);
    if (s != NULL) sqlite3_bind_int64(s, 1, row);
    return s;
}

/* Runs id, "DELETE ... WHERE <column> = ?1", for the row id row. */
static enum store_result row_delete(struct conn *c, enum stmt_id id, sqlite3_int64 row,
                                    const char **error_r)
{
    int rc;
    sqlite3_stmt *s = stmt_row(c, id, row, &rc);
    return run_result(c, s, rc, error_r);
}

/* "UPDATE ... SET column = ?2 WHERE id = ?1" with a text (NULL: SQL NULL). */
static enum store_result row_set_text(struct conn *c, enum stmt_id id, sqlite3_int64 row,
                                      const char *value, const char **error_r)
{
    int rc;
    sqlite3_stmt *s = stmt_row(c, id, row, &rc);
    if (s != NULL) bind_text(s, 2, value);
    return run_result(c, s, rc, error_r);
}

/* "UPDATE ... SET column = ?2 WHERE id = ?1" with an integer. */
static enum store_result row_set_int(struct conn *c, enum stmt_id id, sqlite3_int64 row,
                                     sqlite3_int64 value, const char **error_r)
{
    int rc;
    sqlite3_stmt *s = stmt_row(c, id, row, &rc);
    if (s != NULL) sqlite3_bind_int64(s, 2, value);
    return run_result(c, s, rc, error_r);
}

static enum store_result tx_begin(struct conn *c, bool write, const char **error_r)
{
    return exec_id(c, write ? S_BEGIN_WRITE : S_BEGIN_READ, error_r);
}

/* Ends the transaction: a write is committed only if r is STORE_OK; a read is committed
 * unless r is STORE_TEMPFAIL. Returns r, or STORE_TEMPFAIL if the commit failed. */
static enum store_result tx_end(struct conn *c, enum store_result r, bool write,
                                const char **error_r)
{
    bool commit = write ? r == STORE_OK : r != STORE_TEMPFAIL;
    if (commit) {
        enum store_result cr = exec_id(c, S_COMMIT, error_r);
        if (cr == STORE_OK) return r;
        r = STORE_TEMPFAIL;
    }
    if (!sqlite3_get_autocommit(c->db)) {
        int rc;
        sqlite3_stmt *s = stmt(c, S_ROLLBACK, &rc);
        if (s != NULL) stmt_run(s);
    }
    return r;
}

/* ---- rows ---- */

static struct store_domain *domain_row(sqlite3_stmt *s, sqlite3_int64 *id_r)
{
    if (id_r != NULL) *id_r = sqlite3_column_int64(s, 0);
    const char *catchall = (const char *)sqlite3_column_text(s, 2);
    struct store_domain *d = store_domain_new((const char *)sqlite3_column_text(s, 1), catchall,
                                              (unsigned)sqlite3_column_int64(s, 3));
    const char *type = (const char *)sqlite3_column_text(s, 4);
    d->type = type != NULL && strcmp(type, "etrn") == 0 ? DOMAIN_ETRN : DOMAIN_LOCAL;
    return d;
}

/* NULL if the row holds a type this program does not know. */
static struct store_account *account_row(sqlite3_stmt *s, sqlite3_int64 *id_r)
{
    const char *type = (const char *)sqlite3_column_text(s, 2);
    enum account_type t;
    if (type != NULL && strcmp(type, "user") == 0)
        t = ACCOUNT_USER;
    else if (type != NULL && strcmp(type, "alias") == 0)
        t = ACCOUNT_ALIAS;
    else
        return NULL;
    struct store_account *a = xcalloc(1, sizeof(*a));
    *id_r = sqlite3_column_int64(s, 0);
    a->localpart = col_dup(s, 1);
    a->type = t;
    a->password_hash = t == ACCOUNT_USER ? col_dup(s, 3) : NULL;
    a->admin = sqlite3_column_int(s, 4) != 0;
    sqlite3_int64 quota = sqlite3_column_int64(s, 5);
    a->quota = quota > 0 ? (uint64_t)quota : 0;
    a->keep_copy = sqlite3_column_int(s, 6) != 0;
    a->domain = col_dup(s, 7);
    a->domain_dir = address_domain_dir(a->domain != NULL ? a->domain : "");
    return a;
}

static enum store_result load_targets(struct conn *c, sqlite3_int64 id, struct store_account *a,
                                      const char **error_r)
{
    int rc;
    sqlite3_stmt *s = stmt(c, S_TARGETS_GET, &rc);
    if (s == NULL) return db_fail(c, rc, error_r);
    sqlite3_bind_int64(s, 1, id);
    size_t cap = 0;
    while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
        if (a->ntargets == cap) {
            cap = cap ? cap * 2 : 4;
            a->targets = xreallocarray(a->targets, cap, sizeof(*a->targets));
        }
        a->targets[a->ntargets++] = col_dup(s, 0);
    }
    stmt_done(s);
    return rc == SQLITE_DONE ? STORE_OK : db_fail(c, rc, error_r);
}

/* ---- lookups inside a transaction ---- */

/* The domain with exactly this name. dom_r may be NULL. */
static enum store_result domain_exact(struct conn *c, const char *name, sqlite3_int64 *id_r,
                                      unsigned *accounts_r, struct store_domain **dom_r,
                                      const char **error_r)
{
    int rc;
    sqlite3_stmt *s = stmt(c, S_DOMAIN_EXACT, &rc);
    if (s == NULL) return db_fail(c, rc, error_r);
    bind_text(s, 1, name);
    rc = sqlite3_step(s);
    enum store_result r;
    if (rc == SQLITE_ROW) {
        struct store_domain *d = domain_row(s, id_r);
        if (accounts_r != NULL) *accounts_r = d->accounts;
        if (dom_r != NULL)
            *dom_r = d;
        else
            store_domain_free(&d);
        r = STORE_OK;
    } else if (rc == SQLITE_DONE) {
        set_error(error_r, "no such domain");
        r = STORE_NOTFOUND;
    } else {
        r = db_fail(c, rc, error_r);
    }
    stmt_done(s);
    return r;
}

/* The local domain for a recipient's domain: the exact name, else the longest
 * wildcard pattern that matches (ties broken by name, so the answer is stable). */
static enum store_result domain_match(struct conn *c, const char *domain, sqlite3_int64 *id_r,
                                      struct store_domain **dom_r, const char **error_r)
{
    enum store_result r = domain_exact(c, domain, id_r, NULL, dom_r, error_r);
    if (r != STORE_NOTFOUND) return r;
    int rc;
    sqlite3_stmt *s = stmt(c, S_DOMAIN_PATTERNS, &rc);
    if (s == NULL) return db_fail(c, rc, error_r);
    while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
        const char *pattern = (const char *)sqlite3_column_text(s, 1);
        if (pattern != NULL && address_domain_match(pattern, domain)) {
            struct store_domain *d = domain_row(s, id_r);
            if (dom_r != NULL)
                *dom_r = d;
            else
                store_domain_free(&d);
            stmt_done(s);
            return STORE_OK;
        }
    }
    stmt_done(s);
    if (rc != SQLITE_DONE) return db_fail(c, rc, error_r);
    set_error(error_r, "no such domain");
    return STORE_NOTFOUND;
}

/* The account local in the domain with id domain_id; a_r may be NULL. */
static enum store_result account_get(struct conn *c, sqlite3_int64 domain_id, const char *local,
                                     sqlite3_int64 *id_r, struct store_account **a_r,
                                     const char **error_r)
{
    int rc;
    sqlite3_stmt *s = stmt(c, S_ACCOUNT_GET, &rc);
    if (s == NULL) return db_fail(c, rc, error_r);
    sqlite3_bind_int64(s, 1, domain_id);
    bind_text(s, 2, local);
    rc = sqlite3_step(s);
    enum store_result r;
    struct store_account *a = NULL;
    sqlite3_int64 id = 0;
    if (rc == SQLITE_ROW) {
        a = account_row(s, &id);
        if (a == NULL) {
            set_error(error_r, "account database: unknown account type");
            r = STORE_TEMPFAIL;
        } else {
            r = STORE_OK;
        }
    } else if (rc == SQLITE_DONE) {
        set_error(error_r, "no such account");
        r = STORE_NOTFOUND;
    } else {
        r = db_fail(c, rc, error_r);
    }
    stmt_done(s);
    if (r == STORE_OK) r = load_targets(c, id, a, error_r);
    if (r == STORE_OK) {
        if (id_r != NULL) *id_r = id;
        if (a_r != NULL) {
            *a_r = a;
            a = NULL;
        }
    }
    store_account_free(&a);
    return r;
}

/* ---- the backend functions ---- */

static int sq_schema_version(void *be)
{
    return ((struct sq *)be)->version;
}

static enum store_result sq_domain_find(void *be, const char *domain,
                                        struct store_domain **domain_r)
{
    struct conn *c = conn_get(be, NULL);
    if (c == NULL) return STORE_TEMPFAIL;
    struct store_domain *d = NULL;
    enum store_result r = tx_begin(c, false, NULL);
    if (r == STORE_OK) r = domain_match(c, domain, NULL, domain_r != NULL ? &d : NULL, NULL);
    r = tx_end(c, r, false, NULL);
    conn_put(be, c);
    if (r == STORE_OK && domain_r != NULL)
        *domain_r = d;
    else
        store_domain_free(&d);
    return r;
}

static enum store_result sq_account_find(void *be, const char *local, const char *domain,
                                         struct store_account **account_r,
                                         struct store_domain **domain_r)
{
    struct conn *c = conn_get(be, NULL);
    if (c == NULL) return STORE_TEMPFAIL;
    struct store_domain *d = NULL;
    struct store_account *a = NULL;
    sqlite3_int64 did = 0;
    enum store_result r = tx_begin(c, false, NULL);
    if (r == STORE_OK) r = domain_match(c, domain, &did, domain_r != NULL ? &d : NULL, NULL);
    bool have_domain = r == STORE_OK;
    if (r == STORE_OK) r = account_get(c, did, local, NULL, account_r != NULL ? &a : NULL, NULL);
    r = tx_end(c, r, false, NULL);
    conn_put(be, c);
    if (r == STORE_TEMPFAIL || !have_domain) store_domain_free(&d);
    if (r != STORE_OK) store_account_free(&a);
    if (domain_r != NULL) *domain_r = d;
    if (account_r != NULL) *account_r = a;
    return r;
}

static enum store_result sq_domain_add(void *be, const char *name, enum domain_type type,
                                       const char **error_r)
{
    struct conn *c = conn_get(be, error_r);
    if (c == NULL) return STORE_TEMPFAIL;
    enum store_result r = tx_begin(c, true, error_r);
    if (r == STORE_OK) {
        r = domain_exact(c, name, NULL, NULL, NULL, error_r);
        if (r == STORE_OK) {
            set_error(error_r, "domain already exists");
            r = STORE_EXISTS;
        } else if (r == STORE_NOTFOUND) {
            int rc;
            sqlite3_stmt *s = stmt(c, S_DOMAIN_INSERT, &rc);
            if (s != NULL) {
                bind_text(s, 1, name);
                bind_text(s, 2, type == DOMAIN_ETRN ? "etrn" : "local");
            }
            r = run_result(c, s, rc, error_r);
        }
    }
    r = tx_end(c, r, true, error_r);
    conn_put(be, c);
    return r;
}

static enum store_result sq_domain_del(void *be, const char *name, bool force, const char **error_r)
{
    struct conn *c = conn_get(be, error_r);
    if (c == NULL) return STORE_TEMPFAIL;
    sqlite3_int64 id = 0;
    unsigned accounts = 0;
    enum store_result r = tx_begin(c, true, error_r);
    if (r == STORE_OK) r = domain_exact(c, name, &id, &accounts, NULL, error_r);
    if (r == STORE_OK && accounts > 0 && !force) {
        set_error(error_r, "domain still has accounts");
        r = STORE_NOTEMPTY;
    }
    /* Accounts and their targets go with it (ON DELETE CASCADE). */
    if (r == STORE_OK) r = row_delete(c, S_DOMAIN_DELETE, id, error_r);
    r = tx_end(c, r, true, error_r);
    conn_put(be, c);
    return r;
}

static enum store_result sq_secret(void *be, const char *name, unsigned char *out, size_t len)
{
    struct conn *c = conn_get(be, NULL);
    if (c == NULL) return STORE_TEMPFAIL;
    unsigned char fresh[STORE_SECRET_MAX];
    if (RAND_bytes(fresh, (int)len) != 1) {
        conn_put(be, c);
        return STORE_TEMPFAIL;
    }
    enum store_result r = tx_begin(c, true, NULL);
    int rc = SQLITE_OK;
    if (r == STORE_OK) {
        /* the first service to ask makes it; everyone after reads the same value */
        sqlite3_stmt *s = stmt(c, S_SETTING_INSERT, &rc);
        if (s != NULL) {
            sqlite3_bind_text(s, 1, name, -1, SQLITE_STATIC);
            sqlite3_bind_blob(s, 2, fresh, (int)len, SQLITE_STATIC);
            rc = sqlite3_step(s);
            stmt_done(s);
            if (rc == SQLITE_DONE) rc = SQLITE_OK;
        }
        if (rc == SQLITE_OK && (s = stmt(c, S_SETTING_GET, &rc)) != NULL) {
            sqlite3_bind_text(s, 1, name, -1, SQLITE_STATIC);
            rc = sqlite3_step(s);
            if (rc == SQLITE_ROW && (size_t)sqlite3_column_bytes(s, 0) >= len) {
                memcpy(out, sqlite3_column_blob(s, 0), len);
                rc = SQLITE_OK;
            } else if (rc == SQLITE_ROW || rc == SQLITE_DONE) {
                rc = SQLITE_CORRUPT;
            }
            stmt_done(s);
        }
        if (rc != SQLITE_OK) r = db_fail(c, rc, NULL);
    }
    r = tx_end(c, r, true, NULL);
    conn_put(be, c);
    OPENSSL_cleanse(fresh, sizeof(fresh));
    return r;
}

static enum store_result sq_domain_list(void *be, struct store_domain ***domains_r, size_t *count_r)
{
    struct conn *c = conn_get(be, NULL);
    if (c == NULL) return STORE_TEMPFAIL;
    struct store_domain **v = NULL;
    size_t n = 0, cap = 0;
    enum store_result r = tx_begin(c, false, NULL);
    if (r == STORE_OK) {
        int rc;
        sqlite3_stmt *s = stmt(c, S_DOMAIN_LIST, &rc);
        if (s != NULL) {
            while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
                if (n == cap) {
                    cap = cap ? cap * 2 : 8;
                    v = xreallocarray(v, cap, sizeof(*v));
                }
                v[n++] = domain_row(s, NULL);
            }
            stmt_done(s);
            if (rc == SQLITE_DONE) rc = SQLITE_OK;
        }
        if (rc != SQLITE_OK) r = db_fail(c, rc, NULL);
    }
    r = tx_end(c, r, false, NULL);
    conn_put(be, c);
    if (r != STORE_OK) {
        store_domain_list_free(&v, n);
        n = 0;
    }
    *domains_r = v;
    *count_r = n;
    return r;
}

static enum store_result sq_domain_set_catchall(void *be, const char *name, const char *catchall,
                                                const char **error_r)
{
    struct conn *c = conn_get(be, error_r);
    if (c == NULL) return STORE_TEMPFAIL;
    sqlite3_int64 id = 0;
    enum store_result r = tx_begin(c, true, error_r);
    if (r == STORE_OK) r = domain_exact(c, name, &id, NULL, NULL, error_r);
    if (r == STORE_OK) r = row_set_text(c, S_DOMAIN_CATCHALL, id, catchall, error_r);
    r = tx_end(c, r, true, error_r);
    conn_put(be, c);
    return r;
}

static enum store_result set_targets(struct conn *c, sqlite3_int64 id, char *const *targets,
                                     size_t n, bool keep_copy, const char **error_r)
{
    enum store_result r = row_delete(c, S_TARGETS_DELETE, id, error_r);
    for (size_t i = 0; r == STORE_OK && i < n; i++) {
        int rc;
        sqlite3_stmt *s = stmt_row(c, S_TARGETS_INSERT, id, &rc);
        if (s != NULL) {
            sqlite3_bind_int64(s, 2, (sqlite3_int64)i);
            bind_text(s, 3, targets[i]);
        }
        r = run_result(c, s, rc, error_r);
    }
    if (r == STORE_OK) r = row_set_int(c, S_ACCOUNT_SET_KEEP, id, keep_copy ? 1 : 0, error_r);
    return r;
}

static enum store_result sq_account_add(void *be, const struct store_account *a,
                                        const char **error_r)
{
    struct conn *c = conn_get(be, error_r);
    if (c == NULL) return STORE_TEMPFAIL;
    sqlite3_int64 did = 0;
    enum store_result r = tx_begin(c, true, error_r);
    if (r == STORE_OK) r = domain_exact(c, a->domain, &did, NULL, NULL, error_r);
    if (r == STORE_OK) {
        r = account_get(c, did, a->localpart, NULL, NULL, error_r);
        if (r == STORE_OK) {
            set_error(error_r, "account already exists");
            r = STORE_EXISTS;
        } else if (r == STORE_NOTFOUND) {
            r = STORE_OK;
        }
    }
    if (r == STORE_OK) {
        int rc;
        sqlite3_stmt *s = stmt(c, S_ACCOUNT_INSERT, &rc);
        if (s != NULL) {
            sqlite3_bind_int64(s, 1, did);
            bind_text(s, 2, a->localpart);
            bind_text(s, 3, a->type == ACCOUNT_USER ? "user" : "alias");
            bind_text(s, 4, a->type == ACCOUNT_USER ? a->password_hash : NULL);
            sqlite3_bind_int(s, 5, a->admin ? 1 : 0);
            sqlite3_bind_int64(s, 6, (sqlite3_int64)a->quota);
            sqlite3_bind_int(s, 7, a->keep_copy ? 1 : 0);
        }
        r = run_result(c, s, rc, error_r);
        if (r == STORE_OK)
            r = set_targets(c, sqlite3_last_insert_rowid(c->db), a->targets, a->ntargets,
                            a->keep_copy, error_r);
    }
    r = tx_end(c, r, true, error_r);
    conn_put(be, c);
    return r;
}

static enum store_result sq_account_del(void *be, const char *local, const char *domain,
                                        const char **error_r)
{
    struct conn *c = conn_get(be, error_r);
    if (c == NULL) return STORE_TEMPFAIL;
    sqlite3_int64 did = 0, id = 0;
    enum store_result r = tx_begin(c, true, error_r);
    if (r == STORE_OK) r = domain_exact(c, domain, &did, NULL, NULL, error_r);
    if (r == STORE_OK) r = account_get(c, did, local, &id, NULL, error_r);
    if (r == STORE_OK) r = row_delete(c, S_ACCOUNT_DELETE, id, error_r);
    r = tx_end(c, r, true, error_r);
    conn_put(be, c);
    return r;
}

static enum store_result apply_update(struct conn *c, sqlite3_int64 id,
                                      const struct store_update *u, const char **error_r)
{
    enum store_result r = STORE_OK;
    if (u->fields & STORE_UPDATE_PASSWORD)
        r = row_set_text(c, S_ACCOUNT_SET_PASSWORD, id, u->password_hash, error_r);
    if (r == STORE_OK && (u->fields & STORE_UPDATE_ADMIN))
        r = row_set_int(c, S_ACCOUNT_SET_ADMIN, id, u->admin ? 1 : 0, error_r);
    if (r == STORE_OK && (u->fields & STORE_UPDATE_QUOTA))
        r = row_set_int(c, S_ACCOUNT_SET_QUOTA, id, (sqlite3_int64)u->quota, error_r);
    if (r == STORE_OK && (u->fields & STORE_UPDATE_TARGETS))
        r = set_targets(c, id, u->targets, u->ntargets, u->keep_copy, error_r);
    return r;
}

static enum store_result sq_account_update(void *be, const char *local, const char *domain,
                                           const struct store_update *u, const char **error_r)
{
    struct conn *c = conn_get(be, error_r);
    if (c == NULL) return STORE_TEMPFAIL;
    sqlite3_int64 did = 0, id = 0;
    struct store_account *a = NULL;
    enum store_result r = tx_begin(c, true, error_r);
    if (r == STORE_OK) r = domain_exact(c, domain, &did, NULL, NULL, error_r);
    if (r == STORE_OK) r = account_get(c, did, local, &id, &a, error_r);
    if (r == STORE_OK) r = store_update_check(a->type, u, error_r);
    if (r == STORE_OK) r = apply_update(c, id, u, error_r);
    r = tx_end(c, r, true, error_r);
    conn_put(be, c);
    store_account_free(&a);
    return r;
}

static enum store_result sq_account_list(void *be, const char *domain,
                                         struct store_account ***accounts_r, size_t *count_r)
{
    struct conn *c = conn_get(be, NULL);
    if (c == NULL) return STORE_TEMPFAIL;
    struct store_account **v = NULL;
    sqlite3_int64 *ids = NULL;
    size_t n = 0, cap = 0;
    sqlite3_int64 did = 0;
    enum store_result r = tx_begin(c, false, NULL);
    if (r == STORE_OK && domain != NULL) r = domain_exact(c, domain, &did, NULL, NULL, NULL);
    if (r == STORE_OK) {
        int rc;
        sqlite3_stmt *s = stmt(c, domain != NULL ? S_ACCOUNT_LIST_DOMAIN : S_ACCOUNT_LIST_ALL, &rc);
        if (s != NULL) {
            if (domain != NULL) sqlite3_bind_int64(s, 1, did);
            while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
                if (n == cap) {
                    cap = cap ? cap * 2 : 16;
                    v = xreallocarray(v, cap, sizeof(*v));
                    ids = xreallocarray(ids, cap, sizeof(*ids));
                }
                if ((v[n] = account_row(s, &ids[n])) == NULL) {
                    rc = SQLITE_CORRUPT;
                    break;
                }
                n++;
            }
            stmt_done(s);
            if (rc == SQLITE_DONE) rc = SQLITE_OK;
        }
        if (rc != SQLITE_OK) r = db_fail(c, rc, NULL);
    }
    for (size_t i = 0; r == STORE_OK && i < n; i++)
        r = load_targets(c, ids[i], v[i], NULL);
    r = tx_end(c, r, false, NULL);
    conn_put(be, c);
    free(ids);
    if (r != STORE_OK) {
        store_account_list_free(&v, n);
        n = 0;
    }
    *accounts_r = v;
    *count_r = n;
    return r;
}

static void sq_close(void *be)
{
    struct sq *q = be;
    for (int i = 0; i < STORE_SQLITE_POOL_MAX; i++)
        conn_close(&q->pool[i]);
    pthread_cond_destroy(&q->cv);
    pthread_mutex_destroy(&q->mu);
    free(q->path);
    free(q);
}

static const struct store_ops sqlite_ops = {
    .name = "sqlite",
    .close = sq_close,
    .schema_version = sq_schema_version,
    .domain_find = sq_domain_find,
    .account_find = sq_account_find,
    .domain_add = sq_domain_add,
    .domain_del = sq_domain_del,
    .domain_list = sq_domain_list,
    .secret = sq_secret,
    .domain_set_catchall = sq_domain_set_catchall,
    .account_add = sq_account_add,
    .account_del = sq_account_del,
    .account_update = sq_account_update,
    .account_list = sq_account_list,
};

/* ---- opening and migrations ---- */

static int user_version(struct conn *c, int *version_r)
{
    sqlite3_stmt *s = NULL;
    int rc = sqlite3_prepare_v2(c->db, "PRAGMA user_version", -1, &s, NULL);
    if (rc == SQLITE_OK) {
        rc = sqlite3_step(s);
        if (rc == SQLITE_ROW) {
            *version_r = sqlite3_column_int(s, 0);
            rc = SQLITE_OK;
        }
    }
    sqlite3_finalize(s);
    return rc;
}

static int migrate(struct conn *c, int *version_r, const char **error_r)
{
    int version = 0;
    int rc = user_version(c, &version);
    for (size_t i = 0; rc == SQLITE_OK && i < sizeof(migrations) / sizeof(migrations[0]); i++) {
        if (version >= migrations[i].version) continue;
        rc = sqlite3_exec(c->db, "BEGIN IMMEDIATE", NULL, NULL, NULL);
        if (rc != SQLITE_OK) break;
        /* Another process may have migrated while we waited for the lock. */
        rc = user_version(c, &version);
        if (rc == SQLITE_OK && version < migrations[i].version) {
            char pragma[64];
            snprintf(pragma, sizeof(pragma), "PRAGMA user_version = %d", migrations[i].version);
            rc = sqlite3_exec(c->db, migrations[i].sql, NULL, NULL, NULL);
            if (rc == SQLITE_OK) rc = sqlite3_exec(c->db, pragma, NULL, NULL, NULL);
            if (rc == SQLITE_OK) version = migrations[i].version;
        }
        if (rc == SQLITE_OK) rc = sqlite3_exec(c->db, "COMMIT", NULL, NULL, NULL);
        if (rc != SQLITE_OK) {
            snprintf(errbuf, sizeof(errbuf), "account database: migration to version %d: %s",
                     migrations[i].version, sqlite3_errmsg(c->db));
            set_error(error_r, errbuf);
            if (!sqlite3_get_autocommit(c->db)) sqlite3_exec(c->db, "ROLLBACK", NULL, NULL, NULL);
            return -1;
        }
    }
    if (rc != SQLITE_OK) {
        db_fail(c, rc, error_r);
        return -1;
    }
    if (version > SCHEMA_LATEST) {
        snprintf(errbuf, sizeof(errbuf),
                 "account database has schema version %d; this program knows up to %d", version,
                 SCHEMA_LATEST);
        set_error(error_r, errbuf);
        return -1;
    }
    *version_r = version;
    return 0;
}

static int set_wal(struct conn *c, const char **error_r)
{
    sqlite3_stmt *s = NULL;
    int rc = sqlite3_prepare_v2(c->db, "PRAGMA journal_mode = WAL", -1, &s, NULL);
    if (rc == SQLITE_OK) rc = sqlite3_step(s);
    if (rc != SQLITE_ROW) {
        sqlite3_finalize(s);
        db_fail(c, rc, error_r);
        return -1;
    }
    const char *mode = (const char *)sqlite3_column_text(s, 0);
    bool wal = mode != NULL && strcmp(mode, "wal") == 0;
    if (!wal) {
        snprintf(errbuf, sizeof(errbuf), "account database: cannot use WAL journal (got %s)",
                 mode != NULL ? mode : "nothing");
        set_error(error_r, errbuf);
    }
    sqlite3_finalize(s);
    return wal ? 0 : -1;
}

struct store *store_open_sqlite(const char *path, const char **error_r)
{
    if (path == NULL || path[0] == '\0') {
        set_error(error_r, "no account database path");
        return NULL;
    }
    /* Create the file ourselves so that it is 0600 whatever the umask. */
    int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (fd < 0) {
        snprintf(errbuf, sizeof(errbuf), "cannot open account database %s: %s", path,
                 strerror(errno));
        set_error(error_r, errbuf);
        return NULL;
    }
    close(fd);

    struct sq *q = xcalloc(1, sizeof(*q));
    q->path = xstrdup(path);
    q->busy_ms = STORE_SQLITE_BUSY_TIMEOUT;
    pthread_mutex_init(&q->mu, NULL);
    pthread_cond_init(&q->cv, NULL);
    struct conn *c = &q->pool[0];
    if (conn_open(q, c, q->busy_ms, error_r) != 0 || set_wal(c, error_r) != 0 ||
        migrate(c, &q->version, error_r) != 0) {
        sq_close(q);
        return NULL;
    }
    /* The pool starts empty: connections are opened when the first calls need them. */
    conn_close(c);
    return store_new(&sqlite_ops, q);
}

int store_sqlite_set_busy_timeout(struct store *st, int milliseconds)
{
    if (st == NULL || st->ops != &sqlite_ops) return -1;
    struct sq *q = st->be;
    pthread_mutex_lock(&q->mu);
    q->busy_ms = milliseconds;
    pthread_mutex_unlock(&q->mu);
    return 0;
}
