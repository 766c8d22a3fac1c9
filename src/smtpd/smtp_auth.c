/* smtp_auth.c - SMTP AUTH (RFC 4954) over sasl.c
 *
 * Offered only over TLS unless [SMTP] AllowPlaintextAuth; one success per session;
 * failures are slowed and then refused per client address (authfail.c).
 *
 * SECURITY: the client's responses are never logged; a wrong user and a wrong password
 * get the same 535 after the same work; a store failure is a 454, never a 535.
 */
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "authfail.h"
#include "log.h"
#include "sasl.h"
#include "smtp_session.h"
#include "xalloc.h"

bool smtp_auth_allowed(const struct smtp_session *s)
{
    return conn_is_tls(s->conn) || s->cfg->smtp.allow_plaintext_auth;
}

static int lookup_password(void *ctx, const char *user, char **hash_r)
{
    (void)ctx;
    const char *at = strrchr(user, '@');
    if (at == NULL || at == user || at[1] == '\0') return 0;
    char *local = xstrndup(user, (size_t)(at - user));
    struct store_account *acc = NULL;
    enum store_result r = store_account_find(smtpd.store, local, at + 1, &acc, NULL);
    free(local);
    if (r == STORE_TEMPFAIL) return -1;
    if (r != STORE_OK) return 0;
    int found = 0;
    if (acc->type == ACCOUNT_USER && acc->password_hash) {
        *hash_r = xstrdup(acc->password_hash);
        found = 1;
    }
    store_account_free(&acc);
    return found;
}

/* After refusing an AUTH command: whatever the client pipelined behind it is thrown
 * away (RFC 4954 4: AUTH is the last command of a pipelined group), so responses it
 * sent out of turn - credentials - are neither run nor logged as commands. */
static void refused(struct smtp_session *s)
{
    conn_discard_input(s->conn);
}

void smtp_cmd_auth(struct smtp_session *s, const char *arg)
{
    if (s->state == SMTP_STATE_INIT || !s->esmtp) {
        smtp_reply(s, "503 5.5.1 Error: send EHLO first");
        return;
    }
    if (s->auth_user) {
        smtp_reply(s, "503 5.5.1 Error: already authenticated");
        return;
    }
    if (s->state != SMTP_STATE_HELO) {
        smtp_reply(s, "503 5.5.1 Error: AUTH not allowed during a mail transaction");
        return;
    }
    if (!smtp_auth_allowed(s)) {
        smtp_reply(s, "538 5.7.11 Encryption required for requested authentication mechanism");
        refused(s);
        return;
    }
    char mechname[32];
    size_t mlen = strcspn(arg, " ");
    if (mlen == 0 || mlen >= sizeof(mechname)) {
        smtp_reply(s, "501 5.5.4 Syntax: AUTH mechanism [initial-response]");
        refused(s);
        return;
    }
    memcpy(mechname, arg, mlen);
    mechname[mlen] = '\0';
    enum sasl_mech mech;
    if (sasl_mech_parse(mechname, &mech) < 0) {
        smtp_reply(s, "504 5.5.4 Error: unsupported authentication mechanism");
        refused(s);
        return;
    }
    const char *initial = NULL;
    if (arg[mlen] == ' ') {
        initial = arg + mlen + 1;
        if (strcmp(initial, "=") == 0) initial = "";
    }
    if (initial && strcmp(initial, "*") == 0) {
        smtp_reply(s, "501 5.0.0 Authentication cancelled");
        return;
    }

    /* counted before any password is checked, so parallel or held-open exchanges cannot
     * get more guesses than AuthFailLockAfter (authfail.h) */
    struct authfail_attempt af;
    unsigned locked = authfail_begin(s->ip, &af);
    if (locked) {
        log_line(LOG_SMTP, s->ip, "AUTH refused: too many failures from this address (%u s left)",
                 locked);
        smtp_reply(s, "421 4.7.0 %s Too many failed authentications, try again later",
                   s->cfg->hostname);
        smtp_set_state(s, SMTP_STATE_CLOSE);
        return;
    }

    struct sasl_server *sasl = sasl_server_new(mech, lookup_password, NULL);
    bool settled = false; /* the counted attempt ended in a success or a failure */
    struct sbuf challenge = SBUF_INIT(SASL_MAX_RESPONSE * 2);
    struct sbuf line = SBUF_INIT(SMTP_AUTH_LINE_MAX + 2);
    const char *response = initial;
    enum sasl_status st;
    for (;;) {
        st = sasl_server_step(sasl, response, &challenge);
        if (st != SASL_STATUS_CONTINUE) break;
        smtp_reply(s, "334 %s", sbuf_cstr(&challenge));
        smtp_flush(s);
        if (s->state == SMTP_STATE_CLOSE) goto out;
        enum conn_status cs =
            conn_read_line(s->conn, &line, SMTP_AUTH_LINE_MAX, smtp_command_deadline(s));
        if (cs == CONN_TOOLONG) {
            st = SASL_STATUS_MALFORMED;
            break;
        }
        if (cs != CONN_OK) {
            smtp_set_state(s, SMTP_STATE_CLOSE);
            goto out;
        }
        log_proto(LOG_SMTP, s->ip, "<<<", "****", 4);
        if (strcmp(sbuf_cstr(&line), "*") == 0) {
            smtp_reply(s, "501 5.0.0 Authentication cancelled");
            goto out;
        }
        response = sbuf_cstr(&line);
    }
    const char *user = sasl_server_user(sasl);
    switch (st) {
    case SASL_STATUS_OK:
        settled = true;
        s->auth_user = xstrdup(user);
        authfail_done(&af);
        SMTPD_COUNT(auth_ok, 1);
        log_line(LOG_SMTP, s->ip, "Authenticated as %s (%s)", user, sasl_mech_name(mech));
        smtp_reply(s, "235 2.7.0 Authentication successful");
        break;
    case SASL_STATUS_TEMPFAIL:
        log_error(LOG_SMTP, s->ip, "AUTH: the account store did not answer");
        smtp_reply(s, "454 4.7.0 Temporary authentication failure, try again later");
        break;
    case SASL_STATUS_MALFORMED:
        smtp_reply(s, "501 5.5.2 Error: malformed authentication response");
        s->bad_commands++;
        break;
    default: {
        settled = true;
        SMTPD_COUNT(auth_failed, 1);
        unsigned delay = authfail_failure(&af);
        log_line(LOG_SMTP, s->ip, "Authentication failed for %s (%s)", user ? user : "?",
                 sasl_mech_name(mech));
        if (delay) {
            smtp_flush(s);
            usleep(delay * 1000u);
        }
        smtp_reply(s, "535 5.7.8 Error: authentication failed");
        break;
    }
    }
out:
    /* cancelled, malformed, cut off or a store failure: no password was judged */
    if (!settled) authfail_done(&af);
    sasl_server_free(&sasl);
    sbuf_free(&challenge);
    sbuf_free(&line);
}
