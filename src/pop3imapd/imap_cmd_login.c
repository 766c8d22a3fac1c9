/* imap_cmd_login.c - LOGIN user password (RFC 3501 6.2.3)
 *
 * The credentials go through sasl.c's PLAIN mechanism, so LOGIN gets the same
 * lower-casing, the same timing for unknown users and the same checks as AUTHENTICATE.
 *
 * SECURITY: refused before TLS unless [IMAP] AllowPlaintextAuth (LOGINDISABLED is
 * advertised then); the password is never logged and is wiped after use.
 */
#include <openssl/crypto.h>
#include <string.h>

#include "base64.h"
#include "imap_auth.h"

void imap_cmd_login(struct imap_session *s, const struct imap_command *cmd)
{
    if (cmd->nargs != 2 || imap_arg_astring(&cmd->args[0]) == NULL ||
        imap_arg_astring(&cmd->args[1]) == NULL) {
        imap_bad(s, "Syntax: LOGIN user password");
        return;
    }
    if (!conn_is_tls(s->conn) && !s->cfg->imap.allow_plaintext_auth) {
        imap_no(s, "[PRIVACYREQUIRED] Plaintext login is disabled here; use STARTTLS first");
        return;
    }
    const char *user = imap_arg_astring(&cmd->args[0]);
    const struct imap_arg *pw = &cmd->args[1];
    if (strlen(user) != cmd->args[0].len || strlen(pw->str) != pw->len) {
        imap_bad(s, "NUL in LOGIN arguments");
        return;
    }
    if (!imap_auth_begin(s)) return;

    /* authzid NUL authcid NUL password, as PLAIN carries it */
    struct sbuf plain = SBUF_INIT(SASL_MAX_RESPONSE);
    struct sbuf b64 = SBUF_INIT(SASL_MAX_RESPONSE * 2);
    struct sbuf challenge = SBUF_INIT(SBUF_NO_MAX);
    struct imap_auth a = {.s = s};
    enum sasl_status st = SASL_STATUS_MALFORMED;
    if (sbuf_putc(&plain, '\0') == 0 && sbuf_appends(&plain, user) == 0 &&
        sbuf_putc(&plain, '\0') == 0 && sbuf_append(&plain, pw->str, pw->len) == 0 &&
        base64_encode(plain.data, plain.len, &b64) == 0) {
        struct sasl_server *sasl = sasl_server_new(SASL_MECH_PLAIN, imap_auth_lookup, &a);
        st = sasl_server_step(sasl, sbuf_cstr(&b64), &challenge);
        if (st == SASL_STATUS_CONTINUE) st = SASL_STATUS_MALFORMED;
        imap_auth_finish(&a, st == SASL_STATUS_MALFORMED ? SASL_STATUS_FAIL : st,
                         sasl_server_user(sasl) ? sasl_server_user(sasl) : user, "LOGIN");
        sasl_server_free(&sasl);
    } else {
        /* too long for PLAIN: it cannot be a password we have */
        imap_auth_finish(&a, SASL_STATUS_FAIL, user, "LOGIN");
    }
    if (plain.data) OPENSSL_cleanse(plain.data, plain.len);
    if (b64.data) OPENSSL_cleanse(b64.data, b64.len);
    sbuf_free(&plain);
    sbuf_free(&b64);
    sbuf_free(&challenge);
}
