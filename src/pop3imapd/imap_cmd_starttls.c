/* imap_cmd_starttls.c - STARTTLS (RFC 3501 6.2.1)
 *
 * The tagged OK goes out in plaintext, then the handshake; the capabilities change
 * (LOGINDISABLED goes, AUTH= mechanisms come), so clients ask for them again.
 *
 * SECURITY: whatever the client pipelined behind STARTTLS in plaintext is discarded by
 * conn_starttls() (CVE-2021-33515 and the CVE-2011-0411 family): the parser stops at
 * the end of the STARTTLS line, so those octets are still in the connection's buffer.
 */
#include "imap_session.h"
#include "log.h"

void imap_cmd_starttls(struct imap_session *s, const struct imap_command *cmd)
{
    if (cmd->nargs) {
        imap_bad(s, "STARTTLS takes no arguments");
        return;
    }
    if (conn_is_tls(s->conn)) {
        imap_bad(s, "TLS is already active");
        return;
    }
    SSL_CTX *tls = server_get_tls(s->base->server);
    if (tls == NULL) {
        imap_no(s, "TLS is not available");
        return;
    }
    imap_send(s, "%s OK Begin TLS negotiation now", cmd->tag);
    s->tagged_sent = true;
    imap_ok(s, "STARTTLS");
    const char *err = NULL;
    int64_t deadline = conn_now_ms() + 60000;
    if (conn_flush(s->conn, deadline) != CONN_OK ||
        conn_starttls(s->conn, tls, deadline, &err) != CONN_OK) {
        log_line(LOG_IMAP, s->ip, "STARTTLS failed: %s", err ? err : "connection lost");
        s->state = IMAP_STATE_LOGOUT;
    } else {
        log_line(LOG_IMAP, s->ip, "TLS started: %s", s->conn->tls_info);
    }
    SSL_CTX_free(tls);
}
