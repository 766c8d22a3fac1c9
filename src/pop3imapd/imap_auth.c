/* imap_auth.c - what LOGIN and AUTHENTICATE share
 *
 * SECURITY: see imap_auth.h. Passwords never reach this file: sasl.c verifies them.
 */
#include "imap_auth.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "address.h"
#include "authfail.h"
#include "imap_server.h"
#include "log.h"
#include "mailbox.h"
#include "xalloc.h"

bool imap_auth_begin(struct imap_session *s)
{
    unsigned left = authfail_begin(s->ip, &s->af);
    if (left == 0) return true;
    log_line(LOG_IMAP, s->ip, "Authentication refused: address locked out for %u more seconds",
             left);
    imap_send(s, "* BYE [UNAVAILABLE] Too many failed logins from your address, try later");
    imap_no(s, "[UNAVAILABLE] Too many failed logins");
    s->state = IMAP_STATE_LOGOUT;
    return false;
}

int imap_auth_lookup(void *ctx, const char *user, char **hash_r)
{
    struct imap_auth *a = ctx;
    const char *at = strrchr(user, '@');
    if (at == NULL || at == user || at[1] == '\0') return 0;
    char *local = xstrndup(user, (size_t)(at - user));
    struct store_account *acc = NULL;
    enum store_result r = store_account_find(a->s->ctx->store, local, at + 1, &acc, NULL);
    free(local);
    if (r == STORE_TEMPFAIL) return -1;
    if (r != STORE_OK || acc->type != ACCOUNT_USER || acc->password_hash == NULL) {
        store_account_free(&acc);
        return 0;
    }
    *hash_r = xstrdup(acc->password_hash);
    store_account_free(&a->account);
    a->account = acc;
    return 1;
}

static void logged_in(struct imap_auth *a, const char *user, const char *how)
{
    struct imap_session *s = a->s;
    struct store_account *acc = a->account;
    if (!imap_user_enter(s->ctx, user, s->cfg->imap_max_sessions_per_user)) {
        log_line(LOG_IMAP, s->ip, "Login %s refused: %d sessions already", user,
                 s->cfg->imap_max_sessions_per_user);
        imap_no(s, "[LIMIT] Too many sessions for this user");
        return;
    }
    char *dir = mailbox_path(s->cfg->mail_dir, acc->domain_dir, acc->localpart);
    const char *err = NULL;
    if (mailbox_create(dir) < 0 || folder_mailbox_init(dir, &err) != FOLDER_OK) {
        log_error(LOG_IMAP, s->ip, "Login %s: cannot open mailbox %s: %s", user, dir,
                  err ? err : strerror(errno));
        imap_user_leave(s->ctx, user);
        free(dir);
        imap_no(s, "[UNAVAILABLE] Cannot open the mailbox, try again later");
        return;
    }
    s->user = address_lower(xstrdup(user));
    s->mailbox_dir = dir;
    s->state = IMAP_STATE_AUTH;
    __atomic_fetch_add(&s->ctx->logins, 1, __ATOMIC_RELAXED);
    log_line(LOG_IMAP, s->ip, "Login %s (%s%s%s)", s->user, how, conn_is_tls(s->conn) ? ", " : "",
             s->conn->tls_info);
    struct sbuf caps = SBUF_INIT(SBUF_NO_MAX);
    imap_capabilities(s, &caps);
    imap_ok(s, "[CAPABILITY %s] Logged in", sbuf_cstr(&caps));
    sbuf_free(&caps);
}

void imap_auth_finish(struct imap_auth *a, enum sasl_status st, const char *user, const char *how)
{
    struct imap_session *s = a->s;
    switch (st) {
    case SASL_STATUS_OK:
        authfail_done(&s->af);
        logged_in(a, user, how);
        break;
    case SASL_STATUS_FAIL: {
        __atomic_fetch_add(&s->ctx->auth_failures, 1, __ATOMIC_RELAXED);
        unsigned delay = authfail_failure(&s->af);
        log_line(LOG_IMAP, s->ip, "Authentication failed (%s) for %s", how, user ? user : "?");
        if (delay) {
            conn_flush(s->conn, conn_now_ms() + 10000);
            usleep(delay * 1000u);
        }
        imap_no(s, "[AUTHENTICATIONFAILED] Authentication failed");
        break;
    }
    case SASL_STATUS_TEMPFAIL:
        authfail_done(&s->af); /* no password was judged */
        log_error(LOG_IMAP, s->ip, "Authentication not possible: the account store did not answer");
        imap_no(s, "[UNAVAILABLE] Authentication is temporarily unavailable, try again later");
        break;
    default:
        authfail_done(&s->af);
        imap_bad(s, "Malformed authentication exchange");
        break;
    }
    store_account_free(&a->account);
}
