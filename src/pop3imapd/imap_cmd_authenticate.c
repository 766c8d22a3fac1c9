/* imap_cmd_authenticate.c - AUTHENTICATE mechanism [initial-response] (RFC 3501 6.2.2,
 * SASL-IR RFC 4959)
 *
 * Drives sasl.c: "+ <challenge>" lines out, one base64 line in per step, "*" cancels.
 *
 * SECURITY: refused before TLS unless [IMAP] AllowPlaintextAuth; responses are bounded
 * (IMAP_SASL_LINE_MAX), never logged, and wiped after use.
 */
#include <openssl/crypto.h>
#include <string.h>

#include "authfail.h"
#include "imap_auth.h"
#include "log.h"

void imap_cmd_authenticate(struct imap_session *s, const struct imap_command *cmd)
{
    enum sasl_mech mech;
    if (cmd->nargs < 1 || cmd->nargs > 2 || cmd->args[0].type != IMAP_ARG_ATOM ||
        (cmd->nargs == 2 && imap_arg_astring(&cmd->args[1]) == NULL)) {
        imap_bad(s, "Syntax: AUTHENTICATE mechanism [initial-response]");
        return;
    }
    if (!conn_is_tls(s->conn) && !s->cfg->imap.allow_plaintext_auth) {
        imap_no(s, "[PRIVACYREQUIRED] Authentication is disabled here; use STARTTLS first");
        return;
    }
    if (sasl_mech_parse(cmd->args[0].str, &mech) < 0) {
        imap_no(s, "Unsupported authentication mechanism");
        return;
    }
    const char *initial = NULL;
    if (cmd->nargs == 2) {
        initial = imap_arg_astring(&cmd->args[1]);
        if (strcmp(initial, "=") == 0) initial = "";
    }
    if (!imap_auth_begin(s)) return;

    struct imap_auth a = {.s = s};
    struct sasl_server *sasl = sasl_server_new(mech, imap_auth_lookup, &a);
    struct sbuf challenge = SBUF_INIT(SBUF_NO_MAX);
    struct sbuf line = SBUF_INIT(IMAP_SASL_LINE_MAX + 2);
    const char *response = initial;
    enum sasl_status st;
    for (;;) {
        st = sasl_server_step(sasl, response, &challenge);
        if (line.data) OPENSSL_cleanse(line.data, line.len);
        if (st != SASL_STATUS_CONTINUE) break;
        conn_printf(s->conn, "+ %s\r\n", sbuf_cstr(&challenge));
        log_proto(LOG_IMAP, s->ip, ">>>", "+ ****", 6);
        if (conn_flush(s->conn, conn_now_ms() + 60000) != CONN_OK) {
            st = SASL_STATUS_MALFORMED;
            s->state = IMAP_STATE_LOGOUT;
            break;
        }
        enum conn_status cs = conn_read_line(s->conn, &line, IMAP_SASL_LINE_MAX,
                                             conn_now_ms() + (int64_t)s->cfg->imap.timeout * 1000);
        if (cs != CONN_OK) {
            st = SASL_STATUS_MALFORMED;
            if (cs != CONN_TOOLONG) s->state = IMAP_STATE_LOGOUT;
            break;
        }
        log_proto(LOG_IMAP, s->ip, "<<<", "****", 4);
        if (strcmp(sbuf_cstr(&line), "*") == 0) {
            /* cancelled: no password was judged, the attempt does not count */
            authfail_done(&s->af);
            store_account_free(&a.account);
            sasl_server_free(&sasl);
            imap_bad(s, "Authentication cancelled");
            goto out;
        }
        response = sbuf_cstr(&line);
    }
    imap_auth_finish(&a, st, sasl_server_user(sasl), sasl_mech_name(mech));
    sasl_server_free(&sasl);
out:
    if (line.data) OPENSSL_cleanse(line.data, line.cap);
    sbuf_free(&line);
    sbuf_free(&challenge);
}
